import json

import pytest

from latbench.errors import InputError
from latbench.nets.arch import (
    Arch,
    LayerSpec,
    format_block_string,
    make_divisible,
    parse_block_string,
)
from latbench.nets.load import arch_from_dict, load_arch
from latbench.nets.zoo import mobilenet_v2


def test_make_divisible_matches_keras_rule():
    assert make_divisible(32 * 0.35) == 16
    assert make_divisible(16 * 0.35) == 8
    assert make_divisible(24 * 0.75) == 24  # 16 would lose more than 10 %
    assert make_divisible(1280 * 1.4) == 1792
    assert make_divisible(88) == 88


def test_block_string_decodes_like_tensorflow_tpu():
    b = parse_block_string("r3_k5_s22_e3_i24_o40_se0.25")
    assert (
        b.repeats,
        b.kernel,
        b.stride,
        b.expand,
        b.in_filters,
        b.out_filters,
        b.se_ratio,
        b.skip,
        b.op,
    ) == (3, 5, 2, 3.0, 24, 40, 0.25, True, "mbconv")
    assert not parse_block_string("r1_k3_s11_e1_i32_o16_noskip").skip
    assert parse_block_string("cn_r1_k3_s11_i16_o16").op == "conv"
    assert parse_block_string("r1_k3_s11_e6_i16_o16_ahswish").act == "hswish"


@pytest.mark.parametrize(
    "s",
    [
        "r3_k5_s22_e3_i24_o40_se0.25",
        "r1_k3_s11_e1_i32_o16_noskip",
        "cn_r2_k3_s22_e1_i8_o16_arelu",
        "r1_k3_s11_e3.667_i24_o24",
    ],
)
def test_block_string_round_trip(s):
    b = parse_block_string(s)
    assert parse_block_string(format_block_string(b)) == b


@pytest.mark.parametrize(
    "s, field, words",
    [
        ("r2_k3_s22_e6_i16", "blocks[0]", "missing token 'o'"),
        ("r2_k4_s22_e6_i16_o24", "blocks[0].kernel", "4"),
        ("r2_k3_s12_e6_i16_o24", "blocks[0]", "square"),
        ("r2_k3_s22_e6_i16_o24_zz9", "blocks[0]", "unknown token 'zz9'"),
        ("r2_k3_s22_e6x_i16_o24", "blocks[0]", "bad number"),
    ],
)
def test_bad_block_string_names_field_and_value(s, field, words):
    with pytest.raises(InputError) as e:
        parse_block_string(s, "blocks[0]")
    assert e.value.field == field and words in str(e.value)


def test_layer_keys_are_pinned():
    """Keys are a file format: changing them orphans every LUT ever measured."""
    layers = mobilenet_v2(1.0).layers()
    keys = [s.key for s in layers]
    assert keys[0] == "conv:i224x224x3:o112x112x32:k3:s2:e1:se0:noskip:relu6:fp32"
    assert keys[1] == "mbconv:i112x112x32:o112x112x16:k3:s1:e1:se0:noskip:relu6:fp32"
    assert keys[2] == "mbconv:i112x112x16:o56x56x24:k3:s2:e6:se0:noskip:relu6:fp32"
    assert keys[3] == "mbconv:i56x56x24:o56x56x24:k3:s1:e6:se0:skip:relu6:fp32"
    assert keys[-3:] == [
        "conv:i7x7x320:o7x7x1280:k1:s1:e1:se0:noskip:relu6:fp32",
        "pool:i7x7x1280:o1x1x1280:k1:s1:e1:se0:noskip:none:fp32",
        "fc:i1x1x1280:o1x1x1000:k1:s1:e1:se0:noskip:none:fp32",
    ]
    se = LayerSpec("mbconv", 28, 40, 28, 40, 5, 1, 3.0, se=10, skip=True, precision="int8")
    assert se.key == "mbconv:i28x28x40:o28x28x40:k5:s1:e3:se10s:skip:relu:int8"


def test_width_multiplier_rounds_filters():
    a = mobilenet_v2(0.35)
    assert a.layers()[0].cout == 16 and a.layers()[1].cout == 8
    assert a.layers()[-3].cout == 1280  # MobileNetV2's head only grows


def test_arch_json_round_trip_and_explicit_blocks(tiny_arch_dict):
    a = arch_from_dict(tiny_arch_dict)
    assert arch_from_dict(json.loads(a.to_json())) == a
    assert arch_from_dict(a.to_dict(block_strings=False)) == a
    specs = a.layers()
    assert [s.op for s in specs] == [
        "conv",
        "mbconv",
        "mbconv",
        "mbconv",
        "conv",
        "conv",
        "pool",
        "fc",
    ]
    assert specs[2].se == 2 and specs[3].se == 4  # int(cin * 0.25), from each layer's input
    assert specs[3].skip and not specs[2].skip
    assert specs[4].op == "conv" and specs[4].skip  # 16 -> 16, stride 1


@pytest.mark.parametrize(
    "patch, field",
    [
        ({"blockz": []}, "arch"),
        ({"resolution": "224"}, "resolution"),
        ({"resolution": True}, "resolution"),
        ({"act": "gelu"}, "act"),
        ({"head": {"kind": "v9"}}, "head.kind"),
        ({"stem": {"filters": 0}}, "stem.filters"),
        ({"blocks": []}, "blocks"),
        ({"blocks": ["r1_k3_s11_e1_i32_o16"]}, "blocks[0].in_filters"),
        (
            {"blocks": [{"repeats": 1, "kernel": 3, "stride": 1, "in_filters": 16}]},
            "blocks[0].out_filters",
        ),
        (
            {
                "blocks": [
                    {
                        "repeats": 1,
                        "kernel": 3,
                        "stride": 1,
                        "in_filters": 16,
                        "out_filters": 8,
                        "colour": 1,
                    }
                ]
            },
            "blocks[0]",
        ),
    ],
)
def test_malformed_arch_names_the_field(tiny_arch_dict, patch, field):
    d = {**tiny_arch_dict, **patch}
    with pytest.raises(InputError) as e:
        arch_from_dict(d)
    assert str(e.value).startswith(field)


def test_load_arch_reports_json_position(tmp_path):
    p = tmp_path / "a.json"
    p.write_text('{"name": "x",\n "blocks": [}')
    with pytest.raises(InputError, match="line 2"):
        load_arch(p)


def test_digest_ignores_name_only(tiny_arch_dict):
    a = arch_from_dict(tiny_arch_dict)
    b = arch_from_dict({**tiny_arch_dict, "name": "other"})
    c = arch_from_dict({**tiny_arch_dict, "resolution": 64})
    assert a.digest() == b.digest() != c.digest()
    assert isinstance(Arch().name, str)


# ---- every field bounded (LIMITS, docs/arch-format.md "Limits") ------------------------------


def _with(d, path, value):
    """A deep copy of arch dict `d` with `path` (`stem.filters`, `blocks[2].repeats`) set."""
    import copy
    import re

    d = copy.deepcopy(d)
    *parents, last = path.split(".")
    node = d
    for part in parents:
        m = re.fullmatch(r"(\w+)\[(\d+)\]", part)
        node = node[m[1]][int(m[2])] if m else node.setdefault(part, {})
    m = re.fullmatch(r"(\w+)\[(\d+)\]", last)
    if m:
        node[m[1]][int(m[2])] = value
    else:
        node[last] = value
    return d


@pytest.mark.parametrize(
    "path, value",
    [
        ("classes", 10**12),
        ("classes", 0),
        ("classes", 10**400),
        ("channels", 100_000),
        ("resolution", 10**9),
        ("resolution", 4),
        ("width", 1e308),
        ("width", float("inf")),
        ("width", float("nan")),
        ("dropout", float("nan")),
        ("dropout", 1.0),
        ("dropout", -0.1),
        ("dropout", 10**400),
        ("stem.filters", 10**6),
        ("stem.kernel", 10**6),
        ("stem.kernel", 0),
        ("stem.stride", 64),
        ("head.filters", 10**7),
        ("head.hidden", -1),
        ("blocks[2].repeats", 10**6),
        ("blocks[2].repeats", 0),
        ("blocks[2].kernel", 9),
        ("blocks[2].stride", 3),
        ("blocks[2].expand", 1e300),
        ("blocks[2].expand", 10**400),
        ("blocks[2].expand", float("nan")),
        ("blocks[2].out_filters", 10**5),
        ("blocks[2].se_ratio", 2),
        ("blocks[2].groups", 10**6),
    ],
)
def test_every_arch_field_is_bounded_and_a_value_outside_names_its_path(
    tiny_arch_dict, path, value
):
    d = _with(tiny_arch_dict, path, value)
    with pytest.raises(InputError) as e:
        arch_from_dict(d)
    assert e.value.field == path, str(e.value)
    assert len(str(e.value)) < 300 and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "block, path",
    [
        ("r99_k3_s11_e6_i16_o8", "blocks[0].repeats"),
        ("r1_k3_s11_e99_i16_o8", "blocks[0].expand"),
        ("r1_k3_s11_e1e999_i16_o8", "blocks[0].expand"),
        ("r1_k3_s11_e6_i16_o8_se5", "blocks[0].se_ratio"),
    ],
)
def test_block_strings_are_bounded_like_block_objects(tiny_arch_dict, block, path):
    with pytest.raises(InputError) as e:
        arch_from_dict(_with(tiny_arch_dict, "blocks[0]", block))
    assert e.value.field == path, str(e.value)


def test_too_many_blocks_are_refused(tiny_arch_dict):
    d = {**tiny_arch_dict, "blocks": ["r1_k3_s11_e1_i16_o16"] * 65}
    with pytest.raises(InputError) as e:
        arch_from_dict(d)
    assert e.value.field == "blocks" and "at most 64" in str(e.value)


def test_fields_in_range_that_add_up_to_too_much_are_refused_naming_the_part(tiny_arch_dict):
    """Each field within its limit, the network as a whole not: layers, a tensor, parameters."""
    many = {**tiny_arch_dict, "blocks": ["r1_k3_s11_e1_i16_o16"] + ["r32_k3_s11_e1_i16_o16"] * 40}
    with pytest.raises(InputError) as e:
        arch_from_dict(many)
    assert e.value.field.endswith(".repeats") and "1024 layers" in str(e.value)
    wide = _with(_with(tiny_arch_dict, "resolution", 2048), "stem.filters", 4096)
    wide["stem"]["stride"] = 1
    wide["blocks"][0] = "r1_k3_s11_e1_i4096_o8"
    with pytest.raises(InputError) as e:
        arch_from_dict(wide)
    assert e.value.field == "stem.filters" and "tensor" in str(e.value)
    heavy = _with(tiny_arch_dict, "head.filters", 8192)
    heavy["classes"] = 100_000
    with pytest.raises(InputError) as e:
        arch_from_dict(heavy)
    assert e.value.field == "classes" and "parameters" in str(e.value)


def test_every_zoo_network_and_space_sample_is_within_the_limits():
    import numpy as np

    from latbench.nets.arch import check_size, layer_owners
    from latbench.nets.spaces import SPACES
    from latbench.nets.zoo import all_archs

    archs = list(all_archs())
    rng = np.random.default_rng(0)
    for space in SPACES.values():
        archs += [
            space.decode([int(rng.integers(v)) for v in space.vocab_sizes]) for _ in range(50)
        ]
    for a in archs:
        assert len(layer_owners(a)) == len(a.layers()), a.name
        check_size(a)
        assert arch_from_dict(a.to_dict()) == a


@pytest.mark.parametrize("part", ["stem", "head"])
def test_a_missing_stem_or_head_is_refused_not_defaulted(tiny_arch_dict, part):
    from latbench.errors import InputError
    from latbench.nets.load import arch_from_dict

    d = {k: v for k, v in tiny_arch_dict.items() if k != part}
    with pytest.raises(InputError) as e:
        arch_from_dict(d)
    assert e.value.field == part and "missing" in str(e.value)
