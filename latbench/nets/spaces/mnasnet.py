"""The MnasNet factorized hierarchical search space over the MobileNetV2 skeleton.

Seven blocks; each chooses ConvOp, kernel, SE ratio, skip, output filters (as a
multiple of the skeleton's) and layer count (the skeleton's -1, 0, +1). All
layers of a block share its choices. A network is a flat list of integer
tokens, six per block, which is what the search controller emits. Also the
two-block `tiny` space on the same decisions, for tests and demos.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Sequence

from latbench.nets.arch import Arch, Block, Head, LayerSpec, Stem, make_divisible, unique_specs
from latbench.nets.spaces.base import SearchSpace, Term

# (ConvOp name, block op, expansion)
CONV_OPS = (
    ("conv", "conv", 1.0),
    ("dconv", "mbconv", 1.0),
    ("mbconv3", "mbconv", 3.0),
    ("mbconv6", "mbconv", 6.0),
)
KERNELS = (3, 5)
SE_RATIOS = (0.0, 0.25)
SKIPS = (True, False)  # identity residual, none
WIDTH_MULTS = (0.75, 1.0, 1.25)
DEPTH_DELTAS = (-1, 0, 1)

DECISIONS: tuple[tuple[str, tuple], ...] = (
    ("op", tuple(o[0] for o in CONV_OPS)),
    ("kernel", KERNELS),
    ("se", SE_RATIOS),
    ("skip", SKIPS),
    ("filters", WIDTH_MULTS),
    ("layers", DEPTH_DELTAS),
)
TOKENS_PER_BLOCK = len(DECISIONS)

# MobileNetV2 skeleton: (filters, layers, stride) per block.
MOBILENET_V2_SKELETON = (
    (16, 1, 1),
    (24, 2, 2),
    (32, 3, 2),
    (64, 4, 2),
    (96, 3, 1),
    (160, 3, 2),
    (320, 1, 1),
)


@dataclass(frozen=True)
class MnasNetSpace(SearchSpace):
    """A skeleton plus fixed stem/head; decode(tokens) gives an Arch."""

    name: str = "mnasnet"
    skeleton: tuple[tuple[int, int, int], ...] = MOBILENET_V2_SKELETON
    resolution: int = 224
    classes: int = 1000
    channels: int = 3
    act: str = "relu"
    stem: Stem = field(default_factory=lambda: Stem(32))
    head: Head = field(default_factory=lambda: Head("conv", 1280))
    baselines: tuple[str, ...] = ("mobilenet_v2_x1",)
    calibrate_with_zoo: bool = True

    @property
    def num_blocks(self) -> int:
        return len(self.skeleton)

    @property
    def vocab_sizes(self) -> list[int]:
        """Number of choices for each token position, in order."""
        return [len(c) for _ in self.skeleton for _, c in DECISIONS]

    def decode(self, tokens: Sequence[int], name: str | None = None) -> Arch:
        """Tokens -> Arch, with concrete filters (width 1.0)."""
        self.check_tokens(tokens)
        blocks = []
        prev = self.stem.filters
        for b, (base_f, base_n, stride) in enumerate(self.skeleton):
            t = tokens[b * TOKENS_PER_BLOCK : (b + 1) * TOKENS_PER_BLOCK]
            _, op, expand = CONV_OPS[t[0]]
            out = make_divisible(base_f * WIDTH_MULTS[t[4]], 8)
            blocks.append(
                Block(
                    repeats=max(1, base_n + DEPTH_DELTAS[t[5]]),
                    kernel=KERNELS[t[1]],
                    stride=stride,
                    expand=expand,
                    in_filters=prev,
                    out_filters=out,
                    se_ratio=SE_RATIOS[t[2]],
                    skip=SKIPS[t[3]],
                    op=op,
                )
            )
            prev = out
        return Arch(
            name=name or f"{self.name}_" + "".join(map(str, tokens)),
            resolution=self.resolution,
            act=self.act,
            stem=self.stem,
            blocks=tuple(blocks),
            head=self.head,
            classes=self.classes,
            channels=self.channels,
        )

    def describe(self, tokens: Sequence[int]) -> list[dict]:
        """Human-readable per-block choices (for CSVs and plots)."""
        out = []
        for b in range(self.num_blocks):
            t = tokens[b * TOKENS_PER_BLOCK : (b + 1) * TOKENS_PER_BLOCK]
            out.append({name: choices[i] for (name, choices), i in zip(DECISIONS, t)})
        return out

    def enumerate_specs(self, precision: str = "fp32") -> list[LayerSpec]:
        """Every distinct LayerSpec any network of the space can contain.

        Deterministic (sorted by key). Built by decoding, for each block, every
        (previous filters, own choices) pair with two layers, so the same decode
        path that builds networks defines the set.
        """
        per_block = [list(range(len(c))) for _, c in DECISIONS]
        archs = []
        base = [1] * self.num_tokens  # op dconv k5 se.25 noskip x1.0 +0 everywhere
        deepest = DEPTH_DELTAS.index(max(DEPTH_DELTAS))
        for b in range(self.num_blocks):
            prev_choices = range(len(WIDTH_MULTS)) if b > 0 else [None]
            for prev in prev_choices:
                for op in per_block[0]:
                    for k in per_block[1]:
                        for se in per_block[2]:
                            for skip in per_block[3]:
                                for f in per_block[4]:
                                    t = list(base)
                                    if prev is not None:
                                        t[(b - 1) * TOKENS_PER_BLOCK + 4] = prev
                                    t[b * TOKENS_PER_BLOCK : (b + 1) * TOKENS_PER_BLOCK] = [
                                        op,
                                        k,
                                        se,
                                        skip,
                                        f,
                                        deepest,
                                    ]
                                    archs.append(self.decode(t))
        return unique_specs(archs, precision)

    def with_input(self, resolution: int, classes: int, channels: int) -> "MnasNetSpace":
        """The same space at another input size (proxy training on small images)."""
        return replace(self, resolution=resolution, classes=classes, channels=channels)

    def distinct_networks(self) -> int:
        """Equivalent filter, depth and skip values merged (see `distinct.py`)."""
        from latbench.nets.spaces.distinct import distinct_networks

        return distinct_networks(self)

    def decisions(self) -> dict[str, list]:
        return {name: list(choices) for name, choices in DECISIONS}

    def summary(self) -> list[str]:
        lines = [
            f"space {self.name}: {self.num_blocks} blocks x {len(DECISIONS)} decisions "
            f"(MnasNet, over the MobileNetV2 skeleton)"
        ]
        lines += [f"  {name:8} {list(choices)}" for name, choices in DECISIONS]
        return lines

    def cheapest_candidates(self) -> list[list[int]]:
        """conv or dconv, k3, no SE, with or without skip, narrowest, fewest layers."""
        names = [n for n, _ in DECISIONS]
        out = []
        for op in (0, 1):  # conv, dconv
            for skip in (0, 1):
                block = [0] * TOKENS_PER_BLOCK
                block[names.index("op")] = op
                block[names.index("kernel")] = 0
                block[names.index("se")] = 0
                block[names.index("skip")] = skip
                block[names.index("filters")] = WIDTH_MULTS.index(min(WIDTH_MULTS))
                block[names.index("layers")] = DEPTH_DELTAS.index(min(DEPTH_DELTAS))
                out.append(block * self.num_blocks)
        return out

    def additive_terms(self, precision: str = "fp32") -> list[Term]:
        """stem + per block: first layer[previous width, own choices] + (layers - 1) x
        repeat layer[own choices] + head[last block's width].

        The variants come from decoding networks, so they are the layers decode makes.
        """
        import numpy as np

        nb, tpb = self.num_blocks, TOKENS_PER_BLOCK
        own_sizes = [len(c) for _, c in DECISIONS[:5]]  # op, kernel, se, skip, filters
        n_own = math.prod(own_sizes)
        f_pos = 4  # position of "filters" in a block
        nwidth = len(WIDTH_MULTS)
        deepest = DEPTH_DELTAS.index(max(DEPTH_DELTAS))
        first = [[[()] * n_own for _ in range(nwidth if b else 1)] for b in range(nb)]
        repeat = [[()] * n_own for _ in range(nb)]
        head: list = [()] * nwidth
        stem: tuple = ()
        for b in range(nb):
            for prev in range(nwidth if b else 1):
                for own in range(n_own):
                    choice = [int(i) for i in np.unravel_index(own, own_sizes)]
                    t = [1] * self.num_tokens
                    if b:
                        t[(b - 1) * tpb + f_pos] = prev
                    t[b * tpb : (b + 1) * tpb] = [*choice, deepest]
                    a = self.decode(t)
                    layers = a.layers(precision)
                    start = 1 + sum(blk.repeats for blk in a.blocks[:b])
                    first[b][prev][own] = (layers[start],)
                    repeat[b][own] = (layers[start + 1],)
                    stem = (layers[0],)
                    if b == nb - 1:
                        head[choice[f_pos]] = tuple(layers[start + a.blocks[b].repeats :])

        def own_index(t, b):
            blk = t[:, b * tpb : b * tpb + 5]
            return np.ravel_multi_index(tuple(blk[:, i] for i in range(5)), own_sizes)

        def first_index(b):
            if b == 0:
                return lambda t: own_index(t, 0)
            return lambda t: t[:, (b - 1) * tpb + f_pos] * n_own + own_index(t, b)

        def repeat_count(b):
            base = self.skeleton[b][1]
            deltas = np.asarray(DEPTH_DELTAS)
            return lambda t: np.maximum(1, base + deltas[t[:, b * tpb + 5]]) - 1

        terms = [Term((stem,), lambda t: np.zeros(len(t), np.int64))]
        for b in range(nb):
            terms.append(Term(tuple(v for per_prev in first[b] for v in per_prev), first_index(b)))
            terms.append(Term(tuple(repeat[b]), lambda t, b=b: own_index(t, b), repeat_count(b)))
        terms.append(Term(tuple(head), lambda t: t[:, (nb - 1) * tpb + f_pos]))
        return terms


MNASNET = MnasNetSpace()
# Two blocks at 32x32: the same decisions on a small skeleton, for tests and demos.
TINY = MnasNetSpace(
    name="tiny",
    skeleton=((16, 1, 1), (24, 2, 2)),
    resolution=32,
    classes=10,
    stem=Stem(16),
    head=Head("conv", 64),
)
