"""Reference networks as Arch values, from their papers' block definitions.

Block strings follow tensorflow/tpu (mnasnet_models.py, efficientnet_builder.py);
MobileNetV2 and V3 follow keras.applications. Parameter counts of the built
models are pinned against the published ones in tests/nets/test_zoo.py.
"""

from __future__ import annotations

from typing import Callable

from latbench.nets.arch import Arch, Head, Stem, make_divisible, parse_block_string


def _blocks(strings: list[str]) -> tuple:
    return tuple(parse_block_string(s, f"zoo[{i}]") for i, s in enumerate(strings))


MOBILENET_V2_BLOCKS = [
    "r1_k3_s11_e1_i32_o16",
    "r2_k3_s22_e6_i16_o24",
    "r3_k3_s22_e6_i24_o32",
    "r4_k3_s22_e6_i32_o64",
    "r3_k3_s11_e6_i64_o96",
    "r3_k3_s22_e6_i96_o160",
    "r1_k3_s11_e6_i160_o320",
]


def mobilenet_v2(width: float = 1.0, resolution: int = 224) -> Arch:
    """MobileNetV2: the last conv only grows with width (keras.applications)."""
    head_filters = make_divisible(1280 * width, 8) if width > 1.0 else 1280
    return Arch(
        name=f"mobilenet_v2_x{width:g}",
        resolution=resolution,
        width=width,
        act="relu6",
        stem=Stem(32),
        blocks=_blocks(MOBILENET_V2_BLOCKS),
        head=Head("conv", head_filters, scale=False),
    )


def mnasnet_a1() -> Arch:
    return Arch(
        name="mnasnet_a1",
        act="relu",
        stem=Stem(32),
        blocks=_blocks(
            [
                "r1_k3_s11_e1_i32_o16_noskip",
                "r2_k3_s22_e6_i16_o24",
                "r3_k5_s22_e3_i24_o40_se0.25",
                "r4_k3_s22_e6_i40_o80",
                "r2_k3_s11_e6_i80_o112_se0.25",
                "r3_k5_s22_e6_i112_o160_se0.25",
                "r1_k3_s11_e6_i160_o320",
            ]
        ),
        head=Head("conv", 1280),
    )


def mnasnet_b1() -> Arch:
    return Arch(
        name="mnasnet_b1",
        act="relu",
        stem=Stem(32),
        blocks=_blocks(
            [
                "r1_k3_s11_e1_i32_o16_noskip",
                "r3_k3_s22_e3_i16_o24",
                "r3_k5_s22_e3_i24_o40",
                "r3_k5_s22_e6_i40_o80",
                "r2_k3_s11_e6_i80_o96",
                "r4_k5_s22_e6_i96_o192",
                "r1_k3_s11_e6_i192_o320_noskip",
            ]
        ),
        head=Head("conv", 1280),
    )


def mnasnet_small() -> Arch:
    return Arch(
        name="mnasnet_small",
        act="relu",
        stem=Stem(8),
        blocks=_blocks(
            [
                "r1_k3_s11_e1_i8_o8",
                "r1_k3_s22_e3_i8_o16",
                "r2_k3_s22_e6_i16_o16",
                "r4_k5_s22_e6_i16_o32_se0.25",
                "r3_k3_s11_e6_i32_o32_se0.25",
                "r3_k5_s22_e6_i32_o88_se0.25",
                "r1_k3_s11_e6_i88_o144",
            ]
        ),
        head=Head("conv", 1280),
    )


def efficientnet_b0() -> Arch:
    return Arch(
        name="efficientnet_b0",
        act="swish",
        stem=Stem(32),
        blocks=_blocks(
            [
                "r1_k3_s11_e1_i32_o16_se0.25",
                "r2_k3_s22_e6_i16_o24_se0.25",
                "r2_k5_s22_e6_i24_o40_se0.25",
                "r3_k3_s22_e6_i40_o80_se0.25",
                "r3_k5_s11_e6_i80_o112_se0.25",
                "r4_k5_s22_e6_i112_o192_se0.25",
                "r1_k3_s11_e6_i192_o320_se0.25",
            ]
        ),
        head=Head("conv", 1280),
    )


def mobilenet_v3_large() -> Arch:
    """MobileNetV3-Large with its efficient last stage (conv, pool, 1x1 conv)."""
    return Arch(
        name="mobilenet_v3_large",
        act="hswish",
        se_gate="hsigmoid",
        se_base="mid",
        stem=Stem(16),
        blocks=_blocks(
            [
                "r1_k3_s11_e1_i16_o16_arelu",
                "r1_k3_s22_e4_i16_o24_arelu",
                "r1_k3_s11_e3_i24_o24_arelu",
                "r3_k5_s22_e3_i24_o40_se0.25_arelu",
                "r1_k3_s22_e6_i40_o80",
                "r1_k3_s11_e2.5_i80_o80",
                "r2_k3_s11_e2.3_i80_o80",
                "r2_k3_s11_e6_i80_o112_se0.25",
                "r3_k5_s22_e6_i112_o160_se0.25",
            ]
        ),
        head=Head("v3", 960, hidden=1280),
    )


def mobilenet_v3_small() -> Arch:
    return Arch(
        name="mobilenet_v3_small",
        act="hswish",
        se_gate="hsigmoid",
        se_base="mid",
        stem=Stem(16),
        blocks=_blocks(
            [
                "r1_k3_s22_e1_i16_o16_se0.25_arelu",
                "r1_k3_s22_e4.5_i16_o24_arelu",
                "r1_k3_s11_e3.667_i24_o24_arelu",
                "r1_k5_s22_e4_i24_o40_se0.25",
                "r2_k5_s11_e6_i40_o40_se0.25",
                "r2_k5_s11_e3_i40_o48_se0.25",
                "r3_k5_s22_e6_i48_o96_se0.25",
            ]
        ),
        head=Head("v3", 576, hidden=1024),
    )


MOBILENET_V2_WIDTHS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)

ZOO: dict[str, Callable[[], Arch]] = {
    **{f"mobilenet_v2_x{w:g}": (lambda w=w: mobilenet_v2(w)) for w in MOBILENET_V2_WIDTHS},
    "mnasnet_a1": mnasnet_a1,
    "mnasnet_b1": mnasnet_b1,
    "mnasnet_small": mnasnet_small,
    "mobilenet_v3_large": mobilenet_v3_large,
    "mobilenet_v3_small": mobilenet_v3_small,
    "efficientnet_b0": efficientnet_b0,
}

# Published parameter counts (width 1.0, 224x224, 1000 classes).
PUBLISHED_PARAMS = {
    "mobilenet_v2_x1": 3.5e6,
    "mnasnet_a1": 3.9e6,
    "mnasnet_b1": 4.4e6,
    "efficientnet_b0": 5.3e6,
    "mobilenet_v3_large": 5.4e6,
    "mobilenet_v3_small": 2.5e6,
}


def get(name: str) -> Arch:
    from latbench.errors import InputError

    if name not in ZOO:
        raise InputError(f"unknown zoo network {name!r}; known: {', '.join(ZOO)}")
    return ZOO[name]()


def all_archs() -> list[Arch]:
    return [f() for f in ZOO.values()]
