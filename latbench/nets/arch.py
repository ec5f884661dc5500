"""Architectures: the arch.json format, MnasNet block strings, and LayerSpecs.

An Arch is written at width 1.0 plus a width multiplier, as in the papers; it
decodes into a flat list of LayerSpecs with concrete shapes. One LayerSpec is
one timed unit of the lookup table, and the same list drives the Keras builder
for whole networks, so a LUT row and a network layer can never disagree.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

from latbench.errors import InputError

OPS = ("conv", "mbconv", "fbconv", "pool", "fc")
BOTTLENECK_OPS = ("mbconv", "fbconv")  # 1x1 expand, depthwise, 1x1 project
ACTIVATIONS = ("relu", "relu6", "hswish", "swish", "none")
SE_GATES = ("sigmoid", "hsigmoid")
SE_BASES = ("in", "mid")  # reduce from the layer's input channels (MnasNet) or expanded ones (V3)
PRECISIONS = ("fp32", "int8")
HEAD_KINDS = ("conv", "v3")
# "ds" block strings are mbconv with e1; fbconv and skip are the FBNet space's ops
BLOCK_OPS = ("mbconv", "conv", "fbconv", "skip")
KERNELS = (1, 3, 5, 7)
STRIDES = (1, 2)

# The range of every number in arch.json, both ends allowed (dropout's upper end excluded), as
# documented in docs/arch-format.md ("Limits"). Wide enough for every published mobile network
# and then some; narrow enough that no file can make latbench build, convert or allocate
# something absurd (`classes: 10**12`). `blocks[].x` is every block's field x.
LIMITS: dict[str, tuple[float, float]] = {
    "resolution": (8, 2048),
    "width": (0.05, 4.0),
    "classes": (1, 100_000),
    "channels": (1, 64),
    "dropout": (0.0, 1.0),
    "stem.filters": (1, 4096),
    "head.filters": (1, 8192),
    "head.hidden": (0, 8192),
    "blocks": (1, 64),  # how many blocks
    "blocks[].repeats": (1, 32),
    "blocks[].in_filters": (1, 4096),
    "blocks[].out_filters": (1, 4096),
    "blocks[].expand": (1.0, 16.0),
    "blocks[].se_ratio": (0.0, 1.0),
    "blocks[].groups": (1, 64),
}
# Bounds on the network as a whole, checked after its fields (each names the part that
# crosses it): timed layers, the largest tensor (elements), parameters.
MAX_LAYERS = 1024
MAX_TENSOR = 2**27  # 512 MiB in fp32
MAX_PARAMS = 2**28  # 1 GiB of fp32 weights


def check_range(value: Any, limit: str, where: str) -> Any:
    """`value` if it lies in LIMITS[limit] (NaN never does), else InputError naming `where`."""
    lo, hi = LIMITS[limit]
    top_ok = value < hi if limit == "dropout" else value <= hi
    if not (lo <= value and top_ok):
        top = ")" if limit == "dropout" else "]"
        raise InputError(f"must be in [{lo:g}, {hi:g}{top}, got {shown(value)}", where)
    return value


def shown(value: Any) -> str:
    """repr of a value for an error line, a huge integer cut to its size (10**12 -> 1.000e+12)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**15:
        if value.bit_length() < 1000:
            return f"{float(value):.3e}"
        return f"an integer of about {round(value.bit_length() * 0.30103)} digits"
    return repr(value)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of `divisor`, never dropping more than 10 %.

    The rule of MobileNetV2/V3, MnasNet and EfficientNet (`round_filters`).
    """
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def _fmt_num(x: float) -> str:
    return format(float(x), ".4g")


@dataclass(frozen=True, order=True)
class LayerSpec:
    """One layer as the LUT sees it: every field that changes its latency.

    op: conv (kxk conv + BN + act, optional SE and residual), mbconv (inverted
    bottleneck; e1 is the depthwise-separable conv), fbconv (FBNet's inverted
    bottleneck: the 1x1 expansion conv is always there, even at e1, its 1x1
    convs have `groups` groups and a channel shuffle follows the expansion when
    groups > 1), pool (global average pool), fc (1x1 conv on pooled features,
    with bias).

    Fields added after the first LUTs were written (groups) have a default
    that leaves every existing key unchanged.
    """

    op: str
    in_hw: int
    cin: int
    out_hw: int
    cout: int
    kernel: int = 1
    stride: int = 1
    expand: float = 1.0
    se: int = 0  # reduced SE channels, 0 = no SE
    se_gate: str = "sigmoid"
    skip: bool = False
    act: str = "relu"
    precision: str = "fp32"
    groups: int = 1  # groups of the 1x1 convs of an fbconv (key suffix :gN when > 1)

    @property
    def mid(self) -> int:
        """Expanded channels of a bottleneck (the depthwise width)."""
        if self.op == "fbconv":
            return int(round(self.cin * self.expand))  # FBNet: C_in * e, not rounded to 8
        if self.op != "mbconv" or self.expand == 1:
            return self.cin
        return make_divisible(self.cin * self.expand, 8)

    @property
    def has_expand_conv(self) -> bool:
        """Whether a 1x1 expansion conv (to `mid` channels) opens the layer."""
        return self.op == "fbconv" or (self.op == "mbconv" and self.expand != 1)

    @property
    def key(self) -> str:
        """Canonical, version-stable key: one string per distinct layer."""
        se = f"se{self.se}{'h' if self.se_gate == 'hsigmoid' else 's'}" if self.se else "se0"
        return (
            f"{self.op}:i{self.in_hw}x{self.in_hw}x{self.cin}:o{self.out_hw}x{self.out_hw}x{self.cout}"
            f":k{self.kernel}:s{self.stride}:e{_fmt_num(self.expand)}:{se}"
            f":{'skip' if self.skip else 'noskip'}:{self.act}:{self.precision}"
            + (f":g{self.groups}" if self.groups != 1 else "")
        )

    def with_precision(self, precision: str) -> "LayerSpec":
        return replace(self, precision=precision)

    def macs(self) -> int:
        """Multiply-accumulates, the FLOPs proxy that latbench exists to beat."""
        o2, k2 = self.out_hw**2, self.kernel**2
        if self.op == "pool":
            return self.in_hw**2 * self.cin
        if self.op == "fc":
            return self.cin * self.cout
        se_macs = (
            2 * self.se * (self.mid if self.op in BOTTLENECK_OPS else self.cout) if self.se else 0
        )
        if self.op == "conv":
            return o2 * k2 * self.cin * self.cout + se_macs
        g = self.groups
        expand = self.in_hw**2 * self.cin * self.mid // g if self.has_expand_conv else 0
        return expand + o2 * k2 * self.mid + o2 * self.mid * self.cout // g + se_macs

    def params(self, trainable: bool = False) -> int:
        """Parameters of the built layer.

        BatchNorm has 4 per channel, 2 of them trainable; papers count trainable.
        """
        if self.op == "pool":
            return 0
        if self.op == "fc":
            return self.cin * self.cout + self.cout
        k2 = self.kernel**2
        bn = 2 if trainable else 4
        if self.op == "conv":
            width = self.cout
            n = k2 * self.cin * self.cout + bn * self.cout
        else:
            width, g = self.mid, self.groups
            n = (self.cin * self.mid // g + bn * self.mid) if self.has_expand_conv else 0
            n += k2 * self.mid + bn * self.mid + self.mid * self.cout // g + bn * self.cout
        if self.se:
            n += width * self.se + self.se + self.se * width + width
        return n

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Block:
    """A stage of identical layers (MnasNet's block): the unit of the search space.

    op: mbconv, conv, fbconv (FBNet's bottleneck, `groups` groups in its 1x1
    convs) or skip (FBNet's skip: the identity when the shape is kept, else a
    1x1 conv with the stride + BN + ReLU).
    """

    repeats: int
    kernel: int
    stride: int
    expand: float
    in_filters: int
    out_filters: int
    se_ratio: float = 0.0
    skip: bool = True
    op: str = "mbconv"
    act: str | None = None  # None: the network's activation
    groups: int = 1


@dataclass(frozen=True)
class Stem:
    filters: int = 32
    kernel: int = 3
    stride: int = 2
    act: str | None = None


@dataclass(frozen=True)
class Head:
    """The last stage: 1x1 conv, pool, [v3: 1x1 hidden conv], classifier."""

    kind: str = "conv"
    filters: int = 1280
    hidden: int = 0  # v3 only: width of the 1x1 conv after pooling
    scale: bool = True  # multiply `filters` by the width multiplier
    act: str | None = None


@dataclass(frozen=True)
class Arch:
    """A whole network, written at width 1.0 with a width multiplier."""

    name: str = "custom"
    resolution: int = 224
    width: float = 1.0
    act: str = "relu"
    se_gate: str = "sigmoid"
    se_base: str = "in"
    stem: Stem = field(default_factory=Stem)
    blocks: tuple[Block, ...] = ()
    head: Head = field(default_factory=Head)
    classes: int = 1000
    channels: int = 3
    dropout: float = 0.2

    def filters(self, f: int) -> int:
        return f if self.width == 1.0 else make_divisible(f * self.width, 8)

    def layers(self, precision: str = "fp32") -> list[LayerSpec]:
        """Decode into LayerSpecs with concrete shapes, input to classifier."""
        hw = self.resolution
        stem_c = self.filters(self.stem.filters)
        out_hw = _out_hw(hw, self.stem.stride)
        specs = [
            LayerSpec(
                "conv",
                hw,
                self.channels,
                out_hw,
                stem_c,
                self.stem.kernel,
                self.stem.stride,
                act=self.stem.act or self.act,
                precision=precision,
            )
        ]
        hw, c = out_hw, stem_c
        for b in self.blocks:
            cout = self.filters(b.out_filters)
            act = b.act or self.act
            for r in range(b.repeats):
                stride = b.stride if r == 0 else 1
                o_hw = _out_hw(hw, stride)
                if b.op == "skip":
                    if stride != 1 or c != cout:  # else the identity: no layer to time
                        specs.append(
                            LayerSpec(
                                "conv", hw, c, o_hw, cout, 1, stride, act=act, precision=precision
                            )
                        )
                    hw, c = o_hw, cout
                    continue
                expand = 1.0 if b.op == "conv" else float(b.expand)
                spec = LayerSpec(
                    b.op,
                    hw,
                    c,
                    o_hw,
                    cout,
                    b.kernel,
                    stride,
                    expand,
                    se=0,
                    se_gate=self.se_gate,
                    skip=b.skip and stride == 1 and c == cout,
                    act=act,
                    precision=precision,
                    groups=b.groups,
                )
                if b.se_ratio:
                    base = (
                        c
                        if self.se_base == "in"
                        else (spec.mid if b.op in BOTTLENECK_OPS else cout)
                    )
                    se = (
                        max(1, int(base * b.se_ratio))
                        if self.se_base == "in"
                        else make_divisible(base * b.se_ratio, 8)
                    )
                    spec = replace(spec, se=se)
                else:
                    spec = replace(spec, se_gate="sigmoid")
                specs.append(spec)
                hw, c = o_hw, cout
        h = self.head
        head_c = self.filters(h.filters) if h.scale else h.filters
        head_act = h.act or self.act
        specs.append(LayerSpec("conv", hw, c, hw, head_c, 1, 1, act=head_act, precision=precision))
        specs.append(LayerSpec("pool", hw, head_c, 1, head_c, act="none", precision=precision))
        c = head_c
        if h.kind == "v3":
            specs.append(LayerSpec("fc", 1, c, 1, h.hidden, act=head_act, precision=precision))
            c = h.hidden
        specs.append(LayerSpec("fc", 1, c, 1, self.classes, act="none", precision=precision))
        return specs

    def macs(self) -> int:
        return sum(s.macs() for s in self.layers())

    def params(self, trainable: bool = False) -> int:
        return sum(s.params(trainable) for s in self.layers())

    def to_dict(self, block_strings: bool = True) -> dict[str, Any]:
        return arch_to_dict(self, block_strings)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def digest(self) -> str:
        """Content hash of the network (ignores the name): cache key for results."""
        import hashlib

        d = self.to_dict()
        d.pop("name", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _out_hw(hw: int, stride: int) -> int:
    return math.ceil(hw / stride)  # 'same' padding


# ---------------------------------------------------------------------------
# Block strings: tensorflow/tpu MnasNet format, with two optional extensions:
# a leading op (ir_ = mbconv, ds_ = depthwise-separable, cn_ = regular conv, as
# in timm; fb_ = FBNet bottleneck, sk_ = FBNet skip) and an activation token
# (_arelu, _arelu6, _ahswish, _aswish); fb_ blocks may add a groups token (_g2).
# ---------------------------------------------------------------------------

_OP_PREFIX = {"ir": "mbconv", "ds": "mbconv", "cn": "conv", "fb": "fbconv", "sk": "skip"}
_PREFIX_OF = {"conv": "cn_", "fbconv": "fb_", "skip": "sk_"}
_TOKEN = re.compile(r"^([a-z]+)(.*)$")


def parse_block_string(s: str, where: str = "block") -> Block:
    """Decode `r2_k3_s22_e6_i16_o24_se0.25[_noskip]` into a Block."""
    if not isinstance(s, str) or not s:
        raise InputError(f"expected a block string like 'r2_k3_s22_e6_i16_o24', got {s!r}", where)
    parts = s.split("_")
    op = "mbconv"
    ds = False
    if parts[0] in _OP_PREFIX:
        op, ds = _OP_PREFIX[parts[0]], parts[0] == "ds"
        parts = parts[1:]
    vals: dict[str, str] = {}
    skip = True
    act = None
    for p in parts:
        if p == "noskip":
            skip = False
            continue
        if p[:1] == "a" and p[1:] in ACTIVATIONS:
            act = p[1:]
            continue
        m = _TOKEN.match(p)
        if not m:
            raise InputError(f"cannot read token {p!r} in {s!r}", where)
        name, val = m.groups()
        if name not in ("r", "k", "s", "e", "i", "o", "se", "g"):
            raise InputError(
                f"unknown token {p!r} in {s!r} (known: r k s e i o se g noskip a)", where
            )
        if name in vals:
            raise InputError(f"token {name!r} given twice in {s!r}", where)
        vals[name] = val
    for req in ("r", "k", "s", "i", "o"):
        if req not in vals:
            raise InputError(f"missing token {req!r} in {s!r}", where)
    strides = vals["s"]
    if not re.fullmatch(r"\d{1,2}", strides) or (len(strides) == 2 and strides[0] != strides[1]):
        raise InputError(f"strides {strides!r} in {s!r} must be square like s11 or s22", where)
    try:
        block = Block(
            repeats=int(vals["r"]),
            kernel=int(vals["k"]),
            stride=int(strides[0]),
            expand=float(vals.get("e", "1")),
            in_filters=int(vals["i"]),
            out_filters=int(vals["o"]),
            se_ratio=float(vals.get("se", "0")),
            skip=skip,
            op=op,
            act=act,
            groups=int(vals.get("g", "1")),
        )
    except ValueError as exc:
        raise InputError(f"bad number in {s!r}: {exc}", where) from None
    if ds and block.expand != 1:
        raise InputError(f"ds_ blocks have no expansion, got e{vals['e']} in {s!r}", where)
    _check_block(block, where)
    return block


def format_block_string(b: Block) -> str:
    prefix = _PREFIX_OF.get(b.op, "")
    s = (
        f"{prefix}r{b.repeats}_k{b.kernel}_s{b.stride}{b.stride}_e{_fmt_num(b.expand)}"
        f"_i{b.in_filters}_o{b.out_filters}"
    )
    if b.se_ratio:
        s += f"_se{_fmt_num(b.se_ratio)}"
    if not b.skip:
        s += "_noskip"
    if b.groups != 1:
        s += f"_g{b.groups}"
    if b.act:
        s += f"_a{b.act}"
    return s


def _check_block(b: Block, where: str) -> None:
    def bad(name: str, val: Any, why: str) -> None:
        raise InputError(f"{why}, got {shown(val)}", f"{where}.{name}")

    for name in ("repeats", "in_filters", "out_filters", "expand", "se_ratio", "groups"):
        check_range(getattr(b, name), f"blocks[].{name}", f"{where}.{name}")
    if b.kernel not in KERNELS:
        bad("kernel", b.kernel, "must be 1, 3, 5 or 7")
    if b.stride not in STRIDES:
        bad("stride", b.stride, "must be 1 or 2")
    if b.op not in BLOCK_OPS:
        bad("op", b.op, f"must be one of {BLOCK_OPS}")
    if b.act is not None and b.act not in ACTIVATIONS:
        bad("act", b.act, f"must be one of {ACTIVATIONS}")
    if b.groups != 1 and b.op != "fbconv":
        bad("groups", b.groups, "grouped 1x1 convs exist only in fbconv blocks")
    if b.op == "fbconv" and (b.in_filters % b.groups or b.out_filters % b.groups):
        bad(
            "groups",
            b.groups,
            f"must divide in_filters and out_filters ({b.in_filters}, {b.out_filters})",
        )
    if b.op == "skip" and (b.kernel != 1 or b.expand != 1 or b.se_ratio):
        bad("op", b.op, "a skip block has kernel 1, no expansion and no SE")


# ---------------------------------------------------------------------------
# arch.json
# ---------------------------------------------------------------------------

_ARCH_FIELDS = {
    "name",
    "resolution",
    "width",
    "act",
    "se_gate",
    "se_base",
    "stem",
    "blocks",
    "head",
    "classes",
    "channels",
    "dropout",
}
_BLOCK_FIELDS = {
    "repeats",
    "kernel",
    "stride",
    "expand",
    "in_filters",
    "out_filters",
    "se_ratio",
    "skip",
    "op",
    "act",
    "groups",
}


def typed_field(d: dict, key: str, kind: type | tuple, where: str, default: Any = None) -> Any:
    if key not in d:
        return default
    v = d[key]
    ok = isinstance(v, kind) and not (
        isinstance(v, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))
    )
    if not ok:
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise InputError(f"expected {names}, got {v!r}", f"{where}.{key}" if where else key)
    if isinstance(v, float) and not math.isfinite(v):
        raise InputError(f"must be a finite number, got {v!r}", f"{where}.{key}" if where else key)
    return v


def bounded(d: dict, key: str, kind: type | tuple, where: str, default: Any, limit: str) -> Any:
    """typed_field, then the range of LIMITS[limit], checked before any conversion to float
    (so 10**400 is refused, not an OverflowError)."""
    v = typed_field(d, key, kind, where, default)
    return check_range(v, limit, f"{where}.{key}" if where else key)


def refuse_unknown(d: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(d) - known)
    if unknown:
        raise InputError(f"unknown field(s) {unknown}; known: {sorted(known)}", where or "arch")


def _choice(v: Any, choices: tuple, where: str) -> Any:
    if v not in choices:
        raise InputError(f"must be one of {list(choices)}, got {v!r}", where)
    return v


def explicit_arch_from_dict(d: Any) -> Arch:
    """Decode and validate an explicit arch.json object; every error names its field.

    The other form, a search space's tokens, is decoded by the space: `nets.load.arch_from_dict`
    takes both.
    """
    if not isinstance(d, dict):
        raise InputError(f"an arch must be a JSON object, got {type(d).__name__}", "arch")
    if "tokens" in d or "space" in d:
        raise InputError(
            "a network given by its tokens is decoded by its space "
            "(latbench.nets.load.arch_from_dict)",
            "tokens",
        )
    refuse_unknown(d, _ARCH_FIELDS, "arch")
    num = (int, float)
    act = _choice(typed_field(d, "act", str, "", "relu"), ACTIVATIONS, "act")
    stem_d = typed_field(d, "stem", dict, "", {})
    refuse_unknown(stem_d, {"filters", "kernel", "stride", "act"}, "stem")
    stem = Stem(
        filters=bounded(stem_d, "filters", int, "stem", 32, "stem.filters"),
        kernel=_choice(typed_field(stem_d, "kernel", int, "stem", 3), KERNELS, "stem.kernel"),
        stride=_choice(typed_field(stem_d, "stride", int, "stem", 2), STRIDES, "stem.stride"),
        act=typed_field(stem_d, "act", str, "stem", None),
    )
    if stem.act is not None:
        _choice(stem.act, ACTIVATIONS, "stem.act")
    head_d = typed_field(d, "head", dict, "", {})
    refuse_unknown(head_d, {"kind", "filters", "hidden", "scale", "act"}, "head")
    head = Head(
        kind=_choice(typed_field(head_d, "kind", str, "head", "conv"), HEAD_KINDS, "head.kind"),
        filters=bounded(head_d, "filters", int, "head", 1280, "head.filters"),
        hidden=bounded(head_d, "hidden", int, "head", 0, "head.hidden"),
        scale=typed_field(head_d, "scale", bool, "head", True),
        act=typed_field(head_d, "act", str, "head", None),
    )
    if head.kind == "v3" and head.hidden < 1:
        raise InputError("a v3 head needs hidden >= 1", "head.hidden")
    if head.act is not None:
        _choice(head.act, ACTIVATIONS, "head.act")
    blocks_in = typed_field(d, "blocks", list, "", None)
    if not blocks_in:
        raise InputError("an arch needs a non-empty list of blocks", "blocks")
    if len(blocks_in) > LIMITS["blocks"][1]:
        raise InputError(f"at most {LIMITS['blocks'][1]:g} blocks, got {len(blocks_in)}", "blocks")
    blocks = []
    for i, b in enumerate(blocks_in):
        where = f"blocks[{i}]"
        if isinstance(b, str):
            blocks.append(parse_block_string(b, where))
        elif isinstance(b, dict):
            refuse_unknown(b, _BLOCK_FIELDS, where)
            for req in ("repeats", "kernel", "stride", "in_filters", "out_filters"):
                if req not in b:
                    raise InputError("missing required field", f"{where}.{req}")
            blk = Block(
                repeats=bounded(b, "repeats", int, where, None, "blocks[].repeats"),
                kernel=typed_field(b, "kernel", int, where),
                stride=typed_field(b, "stride", int, where),
                expand=float(bounded(b, "expand", num, where, 1, "blocks[].expand")),
                in_filters=bounded(b, "in_filters", int, where, None, "blocks[].in_filters"),
                out_filters=bounded(b, "out_filters", int, where, None, "blocks[].out_filters"),
                se_ratio=float(bounded(b, "se_ratio", num, where, 0.0, "blocks[].se_ratio")),
                skip=typed_field(b, "skip", bool, where, True),
                op=typed_field(b, "op", str, where, "mbconv"),
                act=typed_field(b, "act", str, where, None),
                groups=typed_field(b, "groups", int, where, 1),
            )
            _check_block(blk, where)
            blocks.append(blk)
        else:
            raise InputError(f"a block is a block string or an object, got {b!r}", where)
    for part, example in (("stem", '{"filters": 32}'), ("head", '{"filters": 1280}')):
        if part not in d:  # no silent default: the first and last convs cost real time
            raise InputError(f'missing; e.g. "{part}": {example}', part)
    prev = stem.filters
    for i, blk in enumerate(blocks):
        if blk.in_filters != prev:
            raise InputError(
                f"must equal the previous output ({prev}), got {blk.in_filters}",
                f"blocks[{i}].in_filters",
            )
        prev = blk.out_filters
    arch = Arch(
        name=typed_field(d, "name", str, "", "custom"),
        resolution=bounded(d, "resolution", int, "", 224, "resolution"),
        width=float(bounded(d, "width", num, "", 1.0, "width")),
        act=act,
        se_gate=_choice(typed_field(d, "se_gate", str, "", "sigmoid"), SE_GATES, "se_gate"),
        se_base=_choice(typed_field(d, "se_base", str, "", "in"), SE_BASES, "se_base"),
        stem=stem,
        blocks=tuple(blocks),
        head=head,
        classes=bounded(d, "classes", int, "", 1000, "classes"),
        channels=bounded(d, "channels", int, "", 3, "channels"),
        dropout=float(bounded(d, "dropout", num, "", 0.2, "dropout")),
    )
    from latbench.fileio import safe_name

    safe_name(arch.name, "name")  # it names files (profile --arch): no paths, no empties
    check_size(arch)
    return arch


def _largest_tensor(s: LayerSpec) -> int:
    """Elements of the largest tensor a layer reads, expands to or writes."""
    return max(s.in_hw**2 * max(s.cin, s.mid), s.out_hw**2 * max(s.cout, s.mid))


def layer_owners(arch: Arch) -> list[str]:
    """The arch.json part that makes each of `arch.layers()`, in order (for error fields).

    Refuses a network of more than MAX_LAYERS layers before they are made."""
    owners = ["stem.filters"]
    c = arch.filters(arch.stem.filters)
    for i, b in enumerate(arch.blocks):
        cout = arch.filters(b.out_filters)
        if b.op == "skip":  # only a shape-changing first repeat is a layer
            owners += [f"blocks[{i}]"] * (b.stride != 1 or c != cout)
        else:
            owners += [f"blocks[{i}]"] * b.repeats
        c = cout
        if len(owners) > MAX_LAYERS:
            raise InputError(
                f"the network would have more than {MAX_LAYERS} layers", f"blocks[{i}].repeats"
            )
    return owners + ["head.filters"] * 2 + ["head.hidden"] * (arch.head.kind == "v3") + ["classes"]


def check_size(arch: Arch) -> None:
    """The whole network's bounds (MAX_LAYERS, MAX_TENSOR, MAX_PARAMS), each refusal naming
    the part of arch.json that crosses it."""
    owners = layer_owners(arch)
    specs = arch.layers()
    params = 0
    for spec, owner in zip(specs, owners):
        if (n := _largest_tensor(spec)) > MAX_TENSOR:
            raise InputError(
                f"a tensor of {n:.3g} elements ({spec.key}); the limit is {MAX_TENSOR:.3g} "
                f"(lower the resolution, the width or the filters)",
                owner,
            )
        params += spec.params()
        if params > MAX_PARAMS:
            raise InputError(
                f"the network would have over {MAX_PARAMS:.3g} parameters at this layer "
                f"({spec.key}); lower the filters, the width or the classes",
                owner,
            )


def arch_to_dict(a: Arch, block_strings: bool = True) -> dict[str, Any]:
    stem = {k: v for k, v in asdict(a.stem).items() if v is not None}
    head = {k: v for k, v in asdict(a.head).items() if v is not None}
    if a.head.kind != "v3":
        head.pop("hidden", None)
    blocks: list[Any] = []
    for b in a.blocks:
        if block_strings:
            blocks.append(format_block_string(b))
        else:
            d = {k: v for k, v in asdict(b).items() if v is not None}
            if d["groups"] == 1:
                d.pop("groups")  # the default: files stay as they were before the field
            blocks.append(d)
    return {
        "name": a.name,
        "resolution": a.resolution,
        "width": a.width,
        "act": a.act,
        "se_gate": a.se_gate,
        "se_base": a.se_base,
        "stem": stem,
        "blocks": blocks,
        "head": head,
        "classes": a.classes,
        "channels": a.channels,
        "dropout": a.dropout,
    }


def save_arch(arch: Arch, path: str | Path) -> None:
    from latbench.fileio import write_atomic

    write_atomic(Path(path), arch.to_json().encode())


def unique_specs(archs: Iterable[Arch], precision: str = "fp32") -> list[LayerSpec]:
    """Distinct LayerSpecs over many networks, in a deterministic order."""
    seen: dict[str, LayerSpec] = {}
    for a in archs:
        for s in a.layers(precision):
            seen.setdefault(s.key, s)
    return sorted(seen.values(), key=lambda s: s.key)
