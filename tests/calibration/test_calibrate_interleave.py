"""calibrate --heldout: calibration and held-out networks timed in one shuffled pass."""

from pathlib import Path

import pytest

from latbench import records
from latbench.calibration.calibrate import (
    NET_COLUMNS,
    heldout_networks,
    measure_sets,
    sample_networks,
)
from latbench.devices import load_profile, open_device
from latbench.nets.spaces import get_space

pytestmark = pytest.mark.slow
# the host in a few runs per network (the order and the files are checked, not the latency)
HOST_FAST = Path(__file__).resolve().parents[1] / "fixtures" / "fast_profiles" / "host.toml"


def test_sets_are_timed_interleaved_and_each_row_lands_in_its_own_file(tmp_path):
    sp = get_space("tiny")
    calib = sample_networks(sp, 4, 0)
    held, zoo = heldout_networks(sp, 4, 7, {n.arch.digest() for n in calib}, zoo=False)
    assert held and not zoo
    assert not {n.arch.digest() for n in held} & {n.arch.digest() for n in calib}
    order: list[str] = []
    with open_device(load_profile(str(HOST_FAST))) as dev:
        real = dev.measure

        def measure(model: Path, network: bool = False):  # the real one, the order noted
            order.append(Path(model).name)
            return real(model, network=network)

        dev.measure = measure
        cp, hp = tmp_path / "c.csv", tmp_path / "h.csv"
        res = measure_sets(
            dev, [(cp, calib), (hp, held)], "fp32", workers=1, progress=False, shuffle_seed=0
        )
    assert [set(r) for r in res] == [
        {n.arch.digest() for n in calib},
        {n.arch.digest() for n in held},
    ]
    assert all(r.median_ms and r.median_ms > 0 for d in res for r in d.values())
    _, crow = records.read(cp, NET_COLUMNS)
    _, hrow = records.read(hp, NET_COLUMNS)
    assert {r["source"] for r in crow} == {"space:0"} and {r["source"] for r in hrow} == {"space:7"}
    # the timing order mixes the two sets: not all of one set before the other
    from latbench.build.cache import arch_path, spec_path

    which = {arch_path(n.arch, "fp32").name: k for k, s in enumerate((calib, held)) for n in s}
    seq = [which[m] for m in order if m in which]
    assert len(seq) == len(calib) + len(held)
    # the rest are the sentinel's layer and network, timed before the first network and
    # after the last
    from latbench.nets import zoo
    from latbench.profiling.sentinel import NETWORK, sentinel_layer

    sentinel = {spec_path(sentinel_layer("fp32")).name, arch_path(zoo.get(NETWORK), "fp32").name}
    assert set(order) - set(which) == sentinel
    assert order[0] in sentinel and order[-1] in sentinel
    assert seq != sorted(seq) and seq != sorted(seq, reverse=True)


def test_passes_time_every_network_again_and_resume(tmp_path):
    sp = get_space("tiny")
    nets = sample_networks(sp, 3, 1)
    path = tmp_path / "n.csv"
    with open_device(load_profile(str(HOST_FAST))) as dev:
        res = measure_sets(dev, [(path, nets)], "fp32", workers=1, progress=False, passes=2)[0]
        _, rows = records.read(path, NET_COLUMNS)
        assert sorted(r["pass"] for r in rows) == ["1", "1", "1", "2", "2", "2"]
        for n in nets:  # the result is the median of the network's passes
            meds = [float(r["median_ms"]) for r in rows if r["digest"] == n.arch.digest()]
            r = res[n.arch.digest()]
            assert r.passes == 2 and r.median_ms == pytest.approx(sum(meds) / 2)
        # a third pass asked later measures each network once more; a rerun measures nothing
        measure_sets(dev, [(path, nets)], "fp32", workers=1, progress=False, passes=3)
        measure_sets(dev, [(path, nets)], "fp32", workers=1, progress=False, passes=3)
    _, rows = records.read(path, NET_COLUMNS)
    assert len(rows) == 9


def test_a_file_from_before_passes_still_reads(tmp_path):
    """Tables written before the pass column: one row per network, read as one pass."""
    old_cols = NET_COLUMNS[:-1]
    path = tmp_path / "old.csv"
    net = sample_networks(get_space("tiny"), 1, 0)[0]
    import json

    records.create(
        path,
        {"space": "networks"},
        old_cols,
        [
            [
                net.arch.digest(),
                net.arch.name,
                "space:0",
                "[]",
                json.dumps(net.arch.to_dict()),
                "ok",
                "1.5",
                "1.4",
                "1.6",
                "0.1",
                "20",
                "0.01",
                "",
                "2026-11-24T00:00:00+00:00",
            ]
        ],
    )
    from latbench.calibration.calibrate import load_results

    r = load_results(path)[net.arch.digest()]
    assert r.median_ms == 1.5 and r.passes == 1
