"""The FBNet space against HW-NAS-Bench's definition (the issue's spec), independently.

Fast tests check shapes, keys and hand-computed parameter and MAC counts; the
slow ones build the network a second time in plain Keras straight from the
spec (own constants, own channel shuffle by index permutation), compare it with
latbench's builder weight for weight, and check that the new ops convert to
TFLite and run inside one XNNPACK partition under LiteRT.
"""

import random

import numpy as np
import pytest

from latbench.errors import InputError
from latbench.nets.arch import Block, LayerSpec, format_block_string, parse_block_string
from latbench.nets.load import arch_from_dict
from latbench.nets.spaces import get_space
from latbench.nets.spaces.fbnet import OP_NAMES

# The example network (HW-NAS-Bench op indices).
EXAMPLE = "7-8-1-8-4-8-8-8-7-4-1-4-7-3-2-7-3-2-4-2-4-5"
SKIP = 8


def test_op_indices_follow_hw_nas_bench_order():
    assert OP_NAMES == (
        "k3_e1",
        "k3_e1_g2",
        "k3_e3",
        "k3_e6",
        "k5_e1",
        "k5_e1_g2",
        "k5_e3",
        "k5_e6",
        "skip",
    )


@pytest.mark.parametrize(
    "name, strides, res, stem_stride, head, classes",
    [
        ("fbnet-cifar100", [1, 1, 2, 2, 1, 2, 1], 32, 1, 1504, 100),
        ("fbnet-imagenet", [1, 2, 2, 2, 1, 2, 1], 224, 2, 1984, 1000),
    ],
)
def test_the_two_settings_have_the_specified_skeleton(
    name, strides, res, stem_stride, head, classes
):
    sp = get_space(name)
    arch = sp.decode(sp.parse_tokens(EXAMPLE))
    assert len(arch.blocks) == 22 and sp.vocab_sizes == [9] * 22
    assert (arch.resolution, arch.stem.filters, arch.stem.kernel, arch.stem.stride) == (
        res,
        16,
        3,
        stem_stride,
    )
    assert (arch.head.kind, arch.head.filters, arch.classes) == ("conv", head, classes)
    per_stage = np.cumsum([0, 1, 4, 4, 4, 4, 4])
    channels = [16, 24, 32, 64, 112, 184, 352]
    for s, first in enumerate(per_stage):
        n = [1, 4, 4, 4, 4, 4, 1][s]
        blocks = arch.blocks[first : first + n]
        assert [b.stride for b in blocks] == [strides[s]] + [1] * (n - 1)
        assert all(b.out_filters == channels[s] for b in blocks)
    specs = arch.layers()
    hw = res // stem_stride
    for s in strides:
        hw //= s
    assert specs[-3].in_hw == hw and specs[-1].cout == classes


def test_ops_decode_to_fbconv_and_skip_with_the_residual_rule():
    sp = get_space("fbnet-cifar100")
    t = [int(x) for x in EXAMPLE.split("-")]
    arch = sp.decode(t)
    for tok, b in zip(t, arch.blocks):
        if tok == SKIP:
            assert b.op == "skip"
        else:
            name = OP_NAMES[tok]
            assert b.op == "fbconv" and f"k{b.kernel}_e{int(b.expand)}" == name[:5]
            assert b.groups == (2 if name.endswith("_g2") else 1)
    layers = arch.layers()[1:-3]
    for s in layers:
        if s.op == "fbconv":
            assert s.skip == (s.cin == s.cout and s.stride == 1)
            assert s.has_expand_conv and s.mid == s.cin * s.expand
        else:  # a skip that changes the shape: 1x1 conv with the stride + BN + ReLU
            assert (s.op, s.kernel, s.act, s.skip) == ("conv", 1, "relu", False)
            assert s.cin != s.cout or s.stride == 2
    # identity skips are no layer: 22 layers less the shape-keeping skips
    identity = sum(
        1
        for tok, b in zip(t, arch.blocks)
        if tok == SKIP and b.stride == 1 and b.in_filters == b.out_filters
    )
    assert len(layers) == 22 - identity


def test_new_fields_leave_existing_keys_unchanged():
    # the key the LUTs and tests have always used for this layer
    s = LayerSpec("mbconv", 56, 24, 56, 24, 3, 1, 6.0, skip=True, act="relu6")
    assert s.key == "mbconv:i56x56x24:o56x56x24:k3:s1:e6:se0:skip:relu6:fp32"
    g2 = LayerSpec("fbconv", 32, 24, 32, 24, 3, 1, 1.0, skip=True, groups=2)
    assert g2.key == "fbconv:i32x32x24:o32x32x24:k3:s1:e1:se0:skip:relu:fp32:g2"
    assert LayerSpec("fbconv", 32, 24, 32, 24, 3, 1, 1.0).key.endswith(":relu:fp32")


def test_parameters_and_macs_match_a_hand_computation():
    # one k3_e1_g2 layer, 16 -> 16 channels at 32x32: 1x1 conv in 2 groups (16*16/2),
    # BN, 3x3 depthwise (9*16), BN, 1x1 conv in 2 groups (16*16/2), BN (2 trainable each)
    s = LayerSpec("fbconv", 32, 16, 32, 16, 3, 1, 1.0, skip=True, groups=2)
    assert s.params(trainable=True) == 128 + 32 + 144 + 32 + 128 + 32
    assert s.params() == 128 + 64 + 144 + 64 + 128 + 64
    assert s.macs() == 32 * 32 * (128 + 144 + 128)
    # the all-skip CIFAR network: stem, one 1x1 conv + BN per stage change, head, classifier
    arch = get_space("fbnet-cifar100").decode([SKIP] * 22)
    stem = 3 * 3 * 3 * 16 + 2 * 16
    changes = sum(
        a * b + 2 * b for a, b in [(16, 24), (24, 32), (32, 64), (64, 112), (112, 184), (184, 352)]
    )
    head = 352 * 1504 + 2 * 1504
    fc = 1504 * 100 + 100
    assert stem + changes + head + fc == 780660
    assert arch.params(trainable=True) == 780660


def test_block_strings_and_objects_carry_the_new_ops():
    for text in (
        "fb_r1_k5_s22_e6_i16_o24",
        "fb_r1_k3_s11_e1_i24_o24_g2",
        "sk_r1_k1_s22_e1_i24_o32",
    ):
        b = parse_block_string(text)
        assert format_block_string(b) == text
    assert parse_block_string("fb_r1_k3_s11_e1_i24_o24_g2").groups == 2
    d = {
        "stem": {"filters": 16, "stride": 1},
        "head": {"filters": 64},
        "resolution": 32,
        "classes": 10,
        "blocks": [
            {
                "repeats": 1,
                "kernel": 3,
                "stride": 1,
                "in_filters": 16,
                "out_filters": 16,
                "op": "fbconv",
                "groups": 2,
            },
            "sk_r1_k1_s22_e1_i16_o24",
        ],
    }
    arch = arch_from_dict(d)
    assert arch.blocks[0] == Block(1, 3, 1, 1.0, 16, 16, op="fbconv", groups=2)
    assert arch_from_dict(arch.to_dict()) == arch


@pytest.mark.parametrize(
    "block, field",
    [
        ("r1_k3_s11_e6_i16_o16_g2", "blocks[0].groups"),  # groups outside fbconv
        ("fb_r1_k3_s11_e1_i16_o16_g3", "blocks[0].groups"),  # 3 does not divide 16
        ("sk_r1_k3_s11_e1_i16_o16", "blocks[0].op"),  # a skip has no kernel
    ],
)
def test_bad_new_blocks_name_their_field(block, field):
    with pytest.raises(InputError) as e:
        arch_from_dict({"stem": {"filters": 16}, "blocks": [block]})
    assert e.value.field == field


# ---------------------------------------------------------------------------
# slow: an independent plain-Keras FBNet, and TFLite / XNNPACK
# ---------------------------------------------------------------------------


def reference_fbnet(op_indices, cifar: bool):
    """FBNet exactly as the issue writes it down, without latbench.build.builder or latbench.nets.spaces."""
    import keras
    import tensorflow as tf
    from keras import layers as L

    ops = [
        (3, 1, 1),
        (3, 1, 2),
        (3, 3, 1),
        (3, 6, 1),
        (5, 1, 1),
        (5, 1, 2),
        (5, 3, 1),
        (5, 6, 1),
        None,
    ]
    n_layers, chans = [1, 4, 4, 4, 4, 4, 1], [16, 24, 32, 64, 112, 184, 352]
    strides = [1, 1, 2, 2, 1, 2, 1] if cifar else [1, 2, 2, 2, 1, 2, 1]
    res, head, classes, stem_s = (32, 1504, 100, 1) if cifar else (224, 1984, 1000, 2)

    def cbr(x, c, k, s, groups=1, relu=True):
        x = L.Conv2D(c, k, s, padding="same", use_bias=False, groups=groups)(x)
        x = L.BatchNormalization()(x)
        return L.ReLU()(x) if relu else x

    def shuffle(x, g):  # torch: view(N, g, C/g, H, W).permute(0, 2, 1, 3, 4).view(N, C, H, W)
        c = x.shape[-1]
        perm = [(o % g) * (c // g) + o // g for o in range(c)]
        return L.Lambda(lambda t: tf.gather(t, perm, axis=-1))(x)

    inp = keras.Input((res, res, 3), batch_size=1)
    x, cin, i = cbr(inp, 16, 3, stem_s), 16, 0
    for n, cout, stride in zip(n_layers, chans, strides):
        for j in range(n):
            s = stride if j == 0 else 1
            op = ops[op_indices[i]]
            i += 1
            if op is None:
                if s != 1 or cin != cout:
                    x = cbr(x, cout, 1, s)
            else:
                k, e, g = op
                y = cbr(x, cin * e, 1, 1, g)
                if g > 1:
                    y = shuffle(y, g)
                y = L.DepthwiseConv2D(k, s, padding="same", use_bias=False)(y)
                y = L.ReLU()(L.BatchNormalization()(y))
                y = cbr(y, cout, 1, 1, g, relu=False)
                x = L.Add()([x, y]) if (cin == cout and s == 1) else y
            cin = cout
    x = cbr(x, head, 1, 1)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(classes)(x))


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, tokens",
    [
        ("fbnet-cifar100", EXAMPLE),
        ("fbnet-cifar100", "-".join(str(random.Random(4).randrange(9)) for _ in range(22))),
        ("fbnet-imagenet", "1-5-1-5-1-5-1-5-1-5-1-5-1-5-1-5-1-5-1-5-1-5"),  # every grouped op
    ],
)
def test_the_builder_matches_an_independent_keras_fbnet(name, tokens):
    from latbench.build.builder import arch_model

    sp = get_space(name)
    t = sp.parse_tokens(tokens)
    arch = sp.decode(t)
    ours, ref = arch_model(arch), reference_fbnet(t, name == "fbnet-cifar100")
    assert ours.count_params() == ref.count_params() == arch.params()
    rng = np.random.default_rng(0)
    weights = [
        rng.uniform(0.5, 1.5, w.shape) if "variance" in w.path else rng.normal(0, 0.3, w.shape)
        for w in ref.weights
    ]
    ref.set_weights(weights)
    assert [int(np.prod(w.shape)) for w in ours.weights] == [w.size for w in weights]
    ours.set_weights([w.reshape(o.shape) for w, o in zip(weights, ours.weights)])
    x = rng.normal(size=(1, arch.resolution, arch.resolution, 3)).astype(np.float32)
    a, b = ours(x, training=False).numpy(), ref(x, training=False).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3 * np.abs(b).max())


def _delegated_fully(tflite: bytes) -> tuple[list[str], bool]:
    """(op names, whether one XNNPACK partition maps the model's inputs to its outputs)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=tflite, num_threads=1)  # XNNPACK is the default delegate
    it.allocate_tensors()
    ops = it._get_ops_details()
    names = [o["op_name"] for o in ops if o["op_name"] != "DELEGATE"]
    parts = [o for o in ops if o["op_name"] == "DELEGATE"]
    outs = {d["index"] for d in it.get_output_details()}
    ins = {d["index"] for d in it.get_input_details()}
    full = (
        len(parts) == 1
        and set(map(int, parts[0]["outputs"])) == outs
        and ins <= set(map(int, parts[0]["inputs"]))
    )
    return names, full


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_grouped_convs_and_the_shuffle_convert_and_run_in_xnnpack(precision):
    from latbench.build.builder import layer_model
    from latbench.build.convert import convert_model

    spec = LayerSpec("fbconv", 16, 32, 16, 32, 5, 1, 1.0, skip=True, groups=2, precision=precision)
    names, full = _delegated_fully(convert_model(layer_model(spec), precision))
    assert names.count("CONV_2D") == 2 and "TRANSPOSE" in names and names.count("RESHAPE") == 2
    assert full, f"not every op ran in XNNPACK: {names}"


@pytest.mark.slow
def test_a_whole_fbnet_runs_under_litert_like_keras():
    from ai_edge_litert.interpreter import Interpreter

    from latbench.build.builder import arch_model
    from latbench.build.convert import convert_model

    sp = get_space("fbnet-cifar100")
    model = arch_model(sp.decode(sp.parse_tokens(EXAMPLE)))
    buf = convert_model(model, "fp32")
    assert _delegated_fully(buf)[1]
    x = np.random.default_rng(1).normal(size=(1, 32, 32, 3)).astype(np.float32)
    it = Interpreter(model_content=buf, num_threads=1)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    out = it.get_tensor(it.get_output_details()[0]["index"])
    np.testing.assert_allclose(out, model(x, training=False).numpy(), rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_profile_predict_and_export_an_fbnet_given_by_its_tokens(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    def latbench_cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "latbench.commands.main", *map(str, args)],
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            timeout=900,
        )

    af = tmp_path / "fb.json"
    af.write_text(json.dumps({"name": "example", "space": "fbnet-cifar100", "tokens": EXAMPLE}))
    lut = tmp_path / "lut"
    from tests.conftest import FAST_HOST_TOML as host  # short protocol; rows go to host_*.csv

    r = latbench_cli("profile", "--arch", af, "--device", host, "--lut-dir", lut, "--no-progress")
    assert r.returncode == 0, r.stderr
    sp = get_space("fbnet-cifar100")
    arch = sp.decode(sp.parse_tokens(EXAMPLE), name="example")
    distinct = len({s.key for s in arch.layers()})
    assert f"{distinct} measured, 0 failed" in r.stdout
    r = latbench_cli("predict", af, "--lut-dir", lut, "--json")
    assert r.returncode == 0, r.stderr
    p = json.loads(r.stdout)
    assert [x["key"] for x in p["layers"]] == [s.key for s in arch.layers()]
    assert p["params"] == arch.params(trainable=True) and p["latency_ms"] > 0
    assert any(x["key"].endswith(":g2") for x in p["layers"])
    r = latbench_cli("export", af, "-o", tmp_path / "fb.tflite", "--precision", "int8")
    assert r.returncode == 0 and (tmp_path / "fb.tflite").read_bytes()[4:8] == b"TFL3"
