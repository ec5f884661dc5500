"""NetAdapt: proposals on Arch (pure), weight inheritance (real Keras), and the command end to end."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from latbench.errors import InputError
from latbench.nets import zoo
from latbench.nets.arch import parse_block_string
from latbench.nets.load import arch_from_dict
from latbench.tuning.netadapt import (
    NetAdaptConfig,
    bake_width,
    block_mid,
    proposals,
    residual_groups,
    shrink_mid,
    shrink_out,
)
from tests.conftest import latbench_cli
from tests.tuning.conftest import SMALL, STUCK

ONE_BLOCK = {  # a one-block network: fast to build and train
    "name": "t",
    "resolution": 16,
    "channels": 1,
    "classes": 4,
    "stem": {"filters": 16},
    "blocks": ["r1_k3_s22_e4_i16_o24_se0.25"],
    "head": {"filters": 32},
}


def macs_ms(archs):
    """A real, monotone cost (MACs) standing in for a latency predictor in the pure tests."""
    return np.array([a.macs() / 1e6 for a in archs])


def test_baking_the_width_leaves_every_layer_unchanged():
    a = zoo.get("mobilenet_v2_x0.35")
    b = bake_width(a)
    assert b.width == 1.0 and a.width == 0.35
    assert [s.key for s in b.layers()] == [s.key for s in a.layers()]


def test_a_block_whose_first_layer_is_residual_shares_its_output_with_the_block_before():
    a = replace(
        zoo.get("mnasnet_a1"),
        blocks=(
            parse_block_string("r1_k3_s11_e1_i32_o16_noskip"),
            parse_block_string("r2_k3_s22_e6_i16_o24"),
            parse_block_string("r2_k3_s11_e3_i24_o24"),  # tied to the block before
            parse_block_string("r1_k3_s11_e3_i24_o24_noskip"),  # no skip: a group of its own
        ),
    )
    assert residual_groups(a) == [[0], [1, 2], [3]]


def test_shrinking_a_blocks_expansion_sets_exactly_those_channels():
    a = zoo.get("mnasnet_a1")
    assert block_mid(a, 3) == 240
    b = shrink_mid(a, 3, 224)
    assert block_mid(b, 3) == 224
    mids = [s.mid for s in b.layers() if s.op == "mbconv"]
    assert all(m % 8 == 0 for m in mids)
    assert shrink_mid(a, 3, 40) is None  # would drop the expansion conv (ratio 1)
    assert shrink_mid(a, 0, 8) is None  # block 0 is depthwise-separable: nothing to shrink
    # the result survives arch.json
    assert arch_from_dict(json.loads(b.to_json())).layers() == b.layers()


def test_shrinking_a_groups_outputs_moves_the_next_blocks_input_and_stays_consistent():
    a = zoo.get("mnasnet_a1")
    b = shrink_out(a, [2], 32)
    assert b.blocks[2].out_filters == 32 and b.blocks[3].in_filters == 32
    again = arch_from_dict(json.loads(b.to_json()))  # the consistency check of arch.json passes
    assert [s.key for s in again.layers()] == [s.key for s in b.layers()]


def test_each_proposal_is_the_smallest_shrink_that_cuts_delta():
    a = zoo.get("mnasnet_a1")
    cfg = NetAdaptConfig(target_ms=1.0, delta=0.01)
    cur = float(macs_ms([a])[0])
    props = proposals(a, cur, cfg, macs_ms)
    assert {p.kind for p in props} == {"mid", "out"}
    assert len(props) == 6 + 7  # six blocks expand, seven output groups
    for p in props:
        assert p.predicted_ms <= cur * 0.99
        assert p.after % 8 == 0 and p.after < p.before
        one_less = p.after + 8
        if one_less < p.before:
            from latbench.tuning.netadapt import _shrunk

            bigger = _shrunk(a, p.kind, p.blocks, one_less)
            assert bigger is None or macs_ms([bigger])[0] > cur * 0.99


def test_bad_settings_name_the_option():
    with pytest.raises(InputError, match="--delta"):
        NetAdaptConfig(target_ms=1.0, delta=1.5)
    with pytest.raises(InputError, match="--metric"):
        NetAdaptConfig(target_ms=1.0, metric="flops")


def test_a_proposal_inherits_the_parents_weights_truncated(tmp_path):
    import keras

    from latbench.proxy import train

    a = arch_from_dict(ONE_BLOCK)
    parent = train.build(a)
    pw = train.get_weights(parent)
    b = shrink_out(shrink_mid(a, 0, 48), [0], 16)
    keras.backend.clear_session()
    child = train.build(b)
    assert train.inherit(child, pw) == len(pw)
    cw = train.get_weights(child)
    for name, arrays in cw.items():
        for c, p in zip(arrays, pw[name]):
            np.testing.assert_array_equal(c, p[tuple(slice(0, n) for n in c.shape)])
    # weights survive a checkpoint, without pickle
    train.save_weights(tmp_path / "w.npz", cw)
    back = train.load_weights(tmp_path / "w.npz")
    assert back.keys() == cw.keys()
    for k in cw:
        for x, y in zip(cw[k], back[k]):
            np.testing.assert_array_equal(x, y)
    with pytest.raises(InputError, match="cannot truncate"):
        train.inherit(train.build(a), train.get_weights(child))  # growing is not inheritance


def test_a_checkpoint_holding_pickled_objects_is_refused(tmp_path):
    from latbench.proxy import train

    np.save(tmp_path / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    import zipfile

    with zipfile.ZipFile(tmp_path / "bad.npz", "w") as z:
        z.write(tmp_path / "x.npy", "l00/0.npy")
    with pytest.raises(InputError, match="cannot read weights"):
        train.load_weights(tmp_path / "bad.npz")


FAST = (
    "--proxy-resolution",
    "16",
    "--proxy-train",
    "300",
    "--pretrain-epochs",
    "0.5",
    "--finetune-epochs",
    "0.1",
    "--long-epochs",
    "0.2",
    "--no-progress",
)


def _netadapt(arch, lut, out, device, *args):
    return latbench_cli(
        "netadapt", arch, "--device", device, "--lut-dir", lut, "--out", out, *args, *FAST
    )


@pytest.mark.slow
def test_netadapt_meets_the_target_profiles_new_layers_on_demand_and_resumes(
    tmp_path, netadapt_lut, fast_host
):
    arch = tmp_path / "small.json"
    arch.write_text(json.dumps(SMALL))
    lut, out = tmp_path / "lut", tmp_path / "run"
    shutil.copytree(netadapt_lut, lut)  # the layers a step away; the seed's are not there
    # each step cuts >= 6 %: the target (90 %) takes one or two steps
    target = ("--target-ratio", "0.9", "--delta", "0.06")
    r = _netadapt(arch, lut, out, fast_host, *target)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["status"] == "target met"
    assert summary["result"]["predicted_ms"] <= summary["target_ms"]
    assert summary["layers_profiled_on_demand"] > 0  # at least the seed's layers, measured here
    assert (lut / "host_ondemand_fp32.csv").exists()  # named after the profile given by path
    final = json.loads((out / "final.json").read_text())
    from latbench.nets.load import arch_from_dict as decode

    assert decode(final).macs() < decode(SMALL).macs()
    assert (out / "netadapt.png").stat().st_size > 0
    from latbench import records
    from latbench.tuning.netadapt import STEP_COLUMNS

    _, rows = records.read(out / "steps.csv", STEP_COLUMNS)
    chosen = [float(x["predicted_ms"]) for x in rows if x["chosen"] == "1"]
    assert len(chosen) >= 2 and all(b < a for a, b in zip(chosen, chosen[1:]))
    assert all(x["measured_ms"] for x in rows if x["chosen"] == "1")  # each chosen one timed
    # a second run finds the finished run and trains nothing more
    r2 = _netadapt(arch, lut, out, fast_host, *target)
    assert r2.returncode == 0 and "resuming" in r2.stderr
    assert json.loads(r2.stdout)["layers_profiled_on_demand"] == 0
    # other settings on the same directory are refused, naming what differs
    r3 = _netadapt(arch, lut, out, fast_host, "--target-ratio", "0.9", "--delta", "0.08")
    assert r3.returncode == 2 and "delta" in r3.stderr


@pytest.mark.slow
def test_an_unreachable_target_stops_with_the_closest_network_and_says_so(
    tmp_path, netadapt_lut, fast_host
):
    arch = tmp_path / "stuck.json"
    arch.write_text(json.dumps(STUCK))  # one shrink (16 -> 8 outputs) at most, then none
    lut, out = tmp_path / "lut", tmp_path / "run"
    shutil.copytree(netadapt_lut, lut)
    r = _netadapt(
        arch, lut, out, fast_host, "--target-ms", "0.0001", "--delta", "0.2", "--no-measure"
    )
    assert r.returncode == 1, r.stderr
    assert "not met (unreachable)" in r.stderr and "final.json" in r.stderr
    assert (out / "final.json").exists()


def test_a_users_evaluator_fine_tunes_the_inherited_weights_netadapt_carries_on(tmp_path):
    from pathlib import Path

    from latbench.tuning.netadapt import NetAdaptRun

    spec = f"{Path(__file__).resolve().parents[1] / 'fixtures/evaluators/tiny_eval.py'}:finetune"
    a = arch_from_dict(ONE_BLOCK)
    cfg = NetAdaptConfig(target_ms=1.0, evaluator=spec, long_epochs=4.0)
    run = NetAdaptRun(tmp_path, cfg, a, latency=None, dataset=None)  # no dataset: the user's
    acc, weights, _ = run._train(a, None, 2.0)  # from scratch, half the full training
    assert acc == pytest.approx(0.05)
    child = shrink_mid(a, 0, 32)
    acc, cw, _ = run._train(child, weights, 0.4)  # fine-tuned from inherited weights
    assert acc == pytest.approx(0.5 + 0.01)
    first = next(iter(cw.values()))[0]
    assert np.all(first == pytest.approx(0.1))  # the weights NetAdapt keeps are the trained ones
