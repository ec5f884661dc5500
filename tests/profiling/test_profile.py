import os

import pytest

from latbench.devices import open_device
from latbench.devices.base import DeviceProfile
from latbench.devices.measure import Protocol, summarize
from latbench.errors import InputError
from latbench.nets.load import arch_from_dict
from latbench.profiling.layers import converter_cpus, count_missing, other_luts, profile, reuse_rows
from latbench.profiling.lut import LUT, Row

# a few runs per layer (the files and counts are checked, not the latency); a contended
# timing re-timed after 0.1 s, not 3 s
FAST = Protocol(
    warmup_runs=1, min_runs=5, max_runs=20, batch_runs=5, max_seconds=0.2, target_ci=1.0
)


def _host(name, cpus=(0,), threads=1):
    return DeviceProfile(
        name, "host", threads=threads, cpus=cpus, protocol=FAST, options={"retime_wait_s": 0.1}
    )


def test_converters_stay_off_the_timing_cpus():
    all_cpus = set(os.sched_getaffinity(0))
    with open_device(_host("a", cpus=())) as unpinned:
        assert converter_cpus([unpinned]) is None
    with open_device(_host("a", cpus=(min(all_cpus),))) as pinned:
        free = converter_cpus([pinned])
        assert free == (all_cpus - {min(all_cpus)} or None)


def test_two_devices_two_luts_and_split_shares_one(tmp_path, tiny_arch_dict):
    specs = arch_from_dict(tiny_arch_dict).layers()
    a, b = open_device(_host("hosta")), open_device(_host("hostb"))
    try:
        sums = profile([a, b], specs, "t", "fp32", tmp_path / "own", progress=False)
        assert [s.measured for s in sums] == [8, 8]
        assert len(LUT.load(tmp_path / "own" / "hosta_t_fp32.csv").ok()) == 8
        assert len(LUT.load(tmp_path / "own" / "hostb_t_fp32.csv").ok()) == 8

        sums = profile([a, b], specs, "t", "fp32", tmp_path / "split", progress=False, split=True)
        assert sum(s.measured for s in sums) == 8
        assert not (tmp_path / "split" / "hostb_t_fp32.csv").exists()
        lut = LUT.load(tmp_path / "split" / "hosta_t_fp32.csv")
        assert len(lut.ok()) == 8
    finally:
        a.close()
        b.close()


def test_split_refuses_different_devices(tmp_path, tiny_arch_dict):
    specs = arch_from_dict(tiny_arch_dict).layers()
    with open_device(_host("a")) as a, open_device(_host("b", threads=2)) as b:
        with pytest.raises(InputError, match="differ in (clock|threads)"):
            profile([a, b], specs, "t", "fp32", tmp_path, progress=False, split=True)


# ---- reusing rows of the device's other LUT files (profile --arch) -------------------------


META = {
    "fingerprint": {"device": "host", "cpu": "x"},
    "converter": "tf-1/recipe-1",
    "precision": "fp32",
    "space": "t",
}


def _lut(path, meta, specs, status="ok"):
    lut = LUT.create(path, meta)
    for s in specs:
        lut.append(
            Row(
                s,
                status,
                summarize([1.0, 2.0, 3.0]) if status == "ok" else None,
                error="" if status == "ok" else "run: boom",
            )
        )
    return lut


def test_rows_measured_in_other_lut_files_of_the_device_are_copied(tmp_path, tiny_arch_dict):
    specs = arch_from_dict(tiny_arch_dict).layers()
    src = _lut(tmp_path / "host_space_fp32.csv", META, specs[:5])
    _lut(tmp_path / "host_other_fp32.csv", {**META, "converter": "tf-2/recipe-1"}, specs)
    mine = _lut(tmp_path / "host_tiny_fp32.csv", META, [])
    sources = other_luts(mine, tmp_path, "host", "fp32")
    assert [s.path.name for s in sources] == ["host_space_fp32.csv"]  # other settings: left out
    assert reuse_rows(mine, specs, sources) == 5
    back = LUT.load(tmp_path / "host_tiny_fp32.csv")
    assert set(back.ok()) == {s.key for s in specs[:5]}
    k = specs[0].key
    assert back.rows[k].measured_at == src.rows[k].measured_at
    assert back.rows[k].measurement.median_ms == src.rows[k].measurement.median_ms


def test_failed_rows_elsewhere_are_not_reused(tmp_path, tiny_arch_dict):
    specs = arch_from_dict(tiny_arch_dict).layers()
    _lut(tmp_path / "host_space_fp32.csv", META, specs, status="failed")
    mine = _lut(tmp_path / "host_tiny_fp32.csv", META, [])
    assert reuse_rows(mine, specs, other_luts(mine, tmp_path, "host", "fp32")) == 0


def test_dry_run_counts_only_what_is_missing(tmp_path, tiny_arch_dict):
    specs = arch_from_dict(tiny_arch_dict).layers()
    _lut(tmp_path / "host_space_fp32.csv", META, specs[:3])
    _lut(tmp_path / "pixel4_space_fp32.csv", META, specs)  # another device: not counted
    target = tmp_path / "host_tiny_fp32.csv"
    assert count_missing(specs, tmp_path, "host", "fp32", target, reuse=True) == (3, len(specs) - 3)
    assert count_missing(specs, tmp_path, "host", "fp32", target, reuse=False) == (0, len(specs))
    _lut(target, META, specs[3:4], status="failed")
    assert count_missing(specs, tmp_path, "host", "fp32", target, reuse=True) == (4, len(specs) - 4)
    assert count_missing(
        specs, tmp_path, "host", "fp32", target, reuse=True, retry_failed=True
    ) == (3, len(specs) - 3)


def test_rows_timed_throttled_or_partly_delegated_are_counted_in_the_summary(tmp_path):
    from latbench.devices import Device, DeviceProfile
    from latbench.devices.fleet import WorkQueue
    from latbench.devices.measure import Measurement
    from latbench.nets.arch import LayerSpec
    from latbench.profiling.layers import Summary, measure_pending
    from latbench.profiling.lut import LUT

    class Flagging(Device):
        def fingerprint(self):
            return {"device": "f"}

        def measure(self, model):
            flags = ["throttled"] if "16" in model.name else []
            return Measurement(1.0, 0.9, 1.1, 0.1, 1.0, 10, 0.01, {"state": {"flags": flags}})

    specs = [LayerSpec("conv", 8, c, 8, c, 3) for c in (8, 16)]
    paths = {}
    for s in specs:
        paths[s.key] = (tmp_path / f"m{s.cin}.tflite", None)
    lut = LUT.create(tmp_path / "f.csv", {"fingerprint": {}})
    summ = Summary("f", lut.path)
    measure_pending(
        Flagging(DeviceProfile("f", "host")), lut, WorkQueue(specs), paths, summ, progress=False
    )
    assert summ.measured == 2 and summ.flagged == {"throttled": 1}
    assert "flagged rows: 1 throttled" in summ.line()


def test_a_run_whose_first_rows_all_fail_the_same_way_stops_early(tmp_path):
    """A wrong binary or a missing CPU fails every row: stop after a few, not after hours."""
    from latbench.devices import Device, DeviceProfile, ModelRunError
    from latbench.devices.fleet import WorkQueue
    from latbench.nets.arch import LayerSpec
    from latbench.profiling.layers import SAME_FAILURE_STOP, Summary, measure_pending
    from latbench.profiling.lut import LUT

    class Broken(Device):
        def fingerprint(self):
            return {"device": "b"}

        def measure(self, model):
            raise ModelRunError(
                f"benchmark_model exited 1 on {model.name}: taskset: Invalid argument"
            )

    specs = [LayerSpec("conv", 8, c, 8, c, 3) for c in range(8, 40)]
    paths = {s.key: (tmp_path / f"m{s.cin}.tflite", None) for s in specs}
    lut = LUT.create(tmp_path / "b.csv", {"fingerprint": {}})
    summ = Summary("b", lut.path)
    measure_pending(
        Broken(DeviceProfile("b", "host")), lut, WorkQueue(specs), paths, summ, progress=False
    )
    assert summ.failed == SAME_FAILURE_STOP < len(specs)
    assert "all failed the same way" in summ.stopped and "taskset" in summ.stopped
