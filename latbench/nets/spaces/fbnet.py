"""The FBNet space as HW-NAS-Bench defines it (`fbnet-cifar100`, `fbnet-imagenet`).

22 searchable layers in 7 stages of [1, 4, 4, 4, 4, 4, 1] layers with
[16, 24, 32, 64, 112, 184, 352] output channels; only a stage's first layer
has the stage's stride. Each layer is one of 9 ops, indexed 0-8:

    k3_e1, k3_e1_g2, k3_e3, k3_e6, k5_e1, k5_e1_g2, k5_e3, k5_e6, skip

`kK_eE[_g2]` is an `fbconv` block: 1x1 conv (groups g) to Cin*E + BN + ReLU,
a channel shuffle when g > 1, KxK depthwise conv with the stride + BN + ReLU,
1x1 conv (groups g) to Cout + BN, and a residual add when Cin == Cout and the
stride is 1 (the e1 ops keep their 1x1 expansion conv, unlike MobileNetV2).
`skip` is the identity when the shape is kept, else 1x1 conv with the stride
+ BN + ReLU. Stem: 3x3 conv to 16 + BN + ReLU; head: 1x1 conv + BN + ReLU,
global average pool, linear classifier. A network is its 22 op indices,
written `7-8-1-8-4-...`. Every layer's input width is fixed by its position
(a stage's output channels do not depend on the ops), so the network is a sum
of independent per-layer choices.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from latbench.nets.arch import Arch, Block, Head, Stem
from latbench.nets.spaces.base import SearchSpace, Term

# (name, kernel, expansion, groups); None: the skip op
OPS: tuple[tuple[str, int | None, int | None, int | None], ...] = (
    ("k3_e1", 3, 1, 1),
    ("k3_e1_g2", 3, 1, 2),
    ("k3_e3", 3, 3, 1),
    ("k3_e6", 3, 6, 1),
    ("k5_e1", 5, 1, 1),
    ("k5_e1_g2", 5, 1, 2),
    ("k5_e3", 5, 3, 1),
    ("k5_e6", 5, 6, 1),
    ("skip", None, None, None),
)
OP_NAMES = tuple(o[0] for o in OPS)
STAGE_LAYERS = (1, 4, 4, 4, 4, 4, 1)
STAGE_CHANNELS = (16, 24, 32, 64, 112, 184, 352)
CIFAR_STRIDES = (1, 1, 2, 2, 1, 2, 1)
IMAGENET_STRIDES = (1, 2, 2, 2, 1, 2, 1)


@dataclass(frozen=True)
class FBNetSpace(SearchSpace):
    """HW-NAS-Bench's FBNet space in one of its two settings."""

    name: str = "fbnet-cifar100"
    strides: tuple[int, ...] = CIFAR_STRIDES
    resolution: int = 32
    classes: int = 100
    channels: int = 3
    stem: Stem = Stem(16, 3, 1)
    head: Head = Head("conv", 1504)

    @property
    def num_layers(self) -> int:
        return sum(STAGE_LAYERS)

    @property
    def vocab_sizes(self) -> list[int]:
        return [len(OPS)] * self.num_layers

    def layer_shapes(self) -> list[tuple[int, int, int]]:
        """(in channels, out channels, stride) of each of the 22 layers."""
        out, c = [], self.stem.filters
        for n, cout, stride in zip(STAGE_LAYERS, STAGE_CHANNELS, self.strides):
            for i in range(n):
                out.append((c, cout, stride if i == 0 else 1))
                c = cout
        return out

    def decode(self, tokens: Sequence[int], name: str | None = None) -> Arch:
        self.check_tokens(tokens)
        blocks = []
        for t, (cin, cout, stride) in zip(tokens, self.layer_shapes()):
            _, k, e, g = OPS[t]
            if k is None:
                blocks.append(Block(1, 1, stride, 1.0, cin, cout, op="skip"))
            else:
                blocks.append(Block(1, k, stride, float(e), cin, cout, op="fbconv", groups=g))
        return Arch(
            name=name or f"{self.name}_{self.format_tokens(tokens)}",
            resolution=self.resolution,
            act="relu",
            stem=self.stem,
            blocks=tuple(blocks),
            head=self.head,
            classes=self.classes,
            channels=self.channels,
        )

    def describe(self, tokens: Sequence[int]) -> list[dict]:
        return [{"op": OP_NAMES[t]} for t in tokens]

    def decisions(self) -> dict[str, list]:
        return {"op": list(OP_NAMES)}

    def summary(self) -> list[str]:
        return [
            f"space {self.name}: {self.num_layers} layers x 1 decision (FBNet, HW-NAS-Bench; "
            f"{self.resolution}x{self.resolution} input, {self.classes} classes)",
            f"  op       {list(OP_NAMES)}",
            f"  stages   layers {list(STAGE_LAYERS)}, channels {list(STAGE_CHANNELS)}, "
            f"strides {list(self.strides)}",
            f"  stem     3x3 conv s{self.stem.stride} to {self.stem.filters}; head 1x1 conv to "
            f"{self.head.filters}, pool, fc",
        ]

    def cheapest_candidates(self) -> list[list[int]]:
        """Every layer skip (stage changes become 1x1 convs), or every layer k3_e1(_g2)."""
        return [[OP_NAMES.index(n)] * self.num_layers for n in ("skip", "k3_e1", "k3_e1_g2")]

    def with_input(self, resolution: int, classes: int, channels: int) -> "FBNetSpace":
        return replace(self, resolution=resolution, classes=classes, channels=channels)

    def additive_terms(self, precision: str = "fp32") -> list[Term]:
        """stem and head (fixed) + one term per layer, indexed by its op."""
        import numpy as np

        n = self.num_layers
        variants: list[list[tuple]] = [[() for _ in OPS] for _ in range(n)]
        stem_head: tuple = ()
        for op in range(len(OPS)):
            layers = self.decode([op] * n).layers(precision)
            pos = 1  # after the stem
            for i, (cin, cout, stride) in enumerate(self.layer_shapes()):
                if OP_NAMES[op] == "skip" and cin == cout and stride == 1:
                    continue  # the identity: decode made no layer
                variants[i][op] = (layers[pos],)
                pos += 1
            stem_head = (layers[0], *layers[pos:])  # stem; head conv, pool, fc
        terms = [Term((stem_head,), lambda t: np.zeros(len(t), np.int64))]
        terms += [Term(tuple(v), lambda t, i=i: t[:, i]) for i, v in enumerate(variants)]
        return terms


FBNET_CIFAR100 = FBNetSpace()
FBNET_IMAGENET = FBNetSpace(
    name="fbnet-imagenet",
    strides=IMAGENET_STRIDES,
    resolution=224,
    classes=1000,
    stem=Stem(16, 3, 2),
    head=Head("conv", 1984),
)
