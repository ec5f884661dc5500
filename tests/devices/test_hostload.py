"""The host's conditions around a row (devices/hostload.py, devices/host.py): /proc/stat and
sysfs read right, the least busy CPU chosen, and a real busy process on the timing CPU seen,
the row timed again and flagged, and `latbench measure` saying so."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from latbench.build import convert
from latbench.devices import open_device
from latbench.devices.base import DeviceProfile
from latbench.devices.hostload import CpuTimes, cpu_times, judge, least_busy_cpus, siblings
from latbench.devices.measure import Protocol
from latbench.devices.profiles import parse_profile
from latbench.errors import InputError
from latbench.nets.arch import LayerSpec

REPO = Path(__file__).resolve().parents[2]
STAT = """cpu  100 0 50 1000 10 0 0 5 0 0
cpu0 60 0 30 400 5 0 0 5 0 0
cpu1 40 0 20 600 5 0 0 0 0 0
intr 12345
"""


def test_proc_stat_is_read_per_cpu_with_steal_apart(tmp_path):
    (tmp_path / "stat").write_text(STAT)
    t = cpu_times(str(tmp_path / "stat"))
    assert set(t) == {0, 1}  # the "cpu" total line is not a CPU
    assert t[0] == CpuTimes(busy=90, total=500, steal=5)
    assert cpu_times(str(tmp_path / "missing")) == {}


@pytest.mark.parametrize("text, cpu, expect", [("0-1", 0, {1}), ("2,6", 2, {6}), ("3", 3, set())])
def test_hyperthread_siblings_come_from_sysfs(tmp_path, text, cpu, expect):
    d = tmp_path / f"cpu{cpu}" / "topology"
    d.mkdir(parents=True)
    (d / "thread_siblings_list").write_text(text + "\n")
    assert siblings(cpu, str(tmp_path)) == expect
    assert siblings(9, str(tmp_path)) == set()


def test_the_least_busy_cpu_and_its_siblings_win():
    snaps = iter(
        [
            {0: CpuTimes(0, 0, 0), 1: CpuTimes(0, 0, 0)},
            {0: CpuTimes(90, 100, 0), 1: CpuTimes(10, 100, 0)},
        ]
    )
    assert least_busy_cpus({0, 1}, sample_s=0, read=lambda: next(snaps)) == (1,)
    two = iter(
        [
            {0: CpuTimes(0, 0, 0), 1: CpuTimes(0, 0, 0)},
            {0: CpuTimes(9, 10, 0), 1: CpuTimes(1, 10, 0)},
        ]
    )
    assert least_busy_cpus({0, 1}, 2, sample_s=0, read=lambda: next(two)) == (0, 1)


def test_judge_names_each_exceeded_limit():
    assert judge({"wall_cpu": 1.02, "lost_ms": 3, "steal": 0.0, "siblings_busy": None}) == []
    why = judge({"wall_cpu": 1.9, "lost_ms": 40, "steal": 0.05, "siblings_busy": 0.8})
    assert [w.split()[0] for w in why] == ["wall_cpu", "steal", "siblings_busy"]


def test_a_tiny_rows_clock_overhead_is_not_contention():
    """Observed on an idle machine: 250 runs of a 6 us layer, wall / CPU 1.109, 0.15 ms lost."""
    assert judge({"wall_cpu": 1.109, "lost_ms": 0.15, "steal": 0.0}) == []


def test_a_profile_may_let_latbench_pick_the_cpu():
    p = parse_profile({"name": "h", "kind": "host", "cpus": "auto"})
    assert p.pick_cpu and p.cpus == ()
    with pytest.raises(InputError, match='"auto"'):
        parse_profile({"name": "h", "kind": "host", "cpus": "0"})


@pytest.fixture(scope="module")
def model_path():
    """A layer of a few ms: 30 runs span many scheduler slices, on a 3x faster machine too
    (a row shorter than one slice runs before the hog gets the CPU back: not disturbed)."""
    spec = LayerSpec("mbconv", 56, 32, 56, 32, 3, 1, 6.0, skip=True)
    return next(iter(convert.convert_layers([spec]))).path


@pytest.fixture
def hog_on_cpu0():
    """A real busy process pinned to CPU 0, for as long as the test runs."""
    code = "import os\nos.sched_setaffinity(0, {0})\nwhile True:\n    pass\n"
    p = subprocess.Popen([sys.executable, "-c", code])
    yield p
    p.kill()
    p.wait()


def _profile(**options):
    proto = Protocol(warmup_runs=2, min_runs=30, max_runs=30, batch_runs=30, max_seconds=60)
    return DeviceProfile("h", "host", threads=1, cpus=(0,), protocol=proto, options=options)


@pytest.mark.slow
def test_a_busy_process_on_the_timing_cpu_is_seen_retimed_and_flagged(model_path, hog_on_cpu0):
    with open_device(_profile(retime_wait_s=0.1)) as dev:
        m = dev.measure(model_path)
    state = m.extra["state"]
    assert state["cpu"] == 0 and state["retimed"] is True
    assert state["wall_cpu"] > 1.10  # CFS shares CPU 0 with the hog: wall ~ 2x the CPU time
    assert m.extra["flags"] == ["contended"] and state["contended"][0].startswith("wall_cpu")


@pytest.mark.slow
def test_measure_prints_one_warning_when_the_timing_cpu_was_shared(
    tmp_path, model_path, hog_on_cpu0
):
    # the layer above, as a .tflite (timed as it is), and the sentinel layer the command times
    # around it converted here into the session's cache (this process has TensorFlow loaded
    # already; the command would start a conversion worker for it)
    from latbench.profiling.sentinel import sentinel_layer

    assert all(c.path for c in convert.convert_layers([sentinel_layer("fp32")]))
    (tmp_path / "h.toml").write_text(
        'name = "h"\nkind = "host"\ncpus = [0]\n[options]\nretime_wait_s = 0.1\n'
        "[protocol]\nwarmup_runs = 2\nmin_runs = 30\nmax_runs = 30\nbatch_runs = 30\n"
        "max_seconds = 60\n"
    )
    r = subprocess.run(
        [sys.executable, "-m", "latbench.commands.main", "measure", str(model_path),
         "--device", str(tmp_path / "h.toml"), "--no-progress"],
        cwd=REPO, capture_output=True, text=True, timeout=600, env=dict(os.environ),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "contention" in warnings[0] and "wall_cpu" in warnings[0]


def _times(busy1: int, total: int) -> dict:
    return {0: CpuTimes(total, total, 0), 1: CpuTimes(busy1, total, 0)}


def test_other_processes_work_elsewhere_is_counted_and_latbench_own_is_not():
    from latbench.devices.hostload import LoadWindow

    t = iter([0.0, 1.0, 2.5, 3.0, 4.0])
    snaps = iter([_times(0, 0), _times(50, 100), _times(250, 250), _times(250, 300),
                  _times(400, 400)])  # fmt: skip
    own = iter([{7: 0}, {7: 0}, {7: 0}, {7: 50}, {}])  # pid 7: a converter of ours; then gone
    w = LoadWindow((0,), read=lambda: next(snaps), own=lambda ex: next(own), clock=lambda: next(t),
                   min_s=2.0)  # fmt: skip
    assert w.update() is None  # 1 s: the window is not 2 s long yet
    assert w.update() == 1.0  # 0 -> 2.5 s: CPU 1 busy all along, none of it ours
    assert w.update() == pytest.approx(0.75)  # 1.0 -> 3.0 s: 250 busy ticks, 50 of them ours
    assert w.update() is None  # a process of ours ended: its last ticks are unknown


@pytest.mark.slow
def test_a_busy_process_on_another_cpu_flags_the_row_loaded(model_path):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs a second CPU")
    import signal
    import time

    other = sorted(os.sched_getaffinity(0))[1]
    code = f"import os\nos.sched_setaffinity(0, {{{other}}})\nwhile True:\n    pass\n"
    # started through a shell that exits at once, so the hog is nobody's child here: not
    # latbench's own work (this test process is the one that owns the device)
    pid = int(subprocess.run(["sh", "-c", f'"{sys.executable}" -c "{code}" >/dev/null 2>&1 & '
                              "echo $!"], capture_output=True, text=True).stdout)  # fmt: skip
    try:
        with open_device(_profile(retime_wait_s=0.1)) as dev:
            t0, rows = time.monotonic(), []
            while time.monotonic() - t0 < 3 or len(rows) < 2:  # the window spans >= 2 s
                rows.append(dev.measure(model_path))
    finally:
        os.kill(pid, signal.SIGKILL)
    last = rows[-1]
    assert last.extra["state"]["foreign_busy"] > 0.5
    assert "loaded" in last.extra["flags"]
