"""How many different networks a block-structured search space really holds.

`SearchSpace.size()` counts token sequences, but some token values are
equivalent: x0.75 and x1.0 filters round to the same channel count in the
first blocks (16 * 0.75 = 12 -> 16), a layer delta of -1 equals 0 on one-layer
blocks, and a skip choice does nothing on a block whose only layer changes
shape. Two sequences are the same network when every block decodes to the
same layers (the LayerSpec keys: shapes, op, kernel, expansion, SE, effective
skip). Blocks are chained by their channel count only, so the count is a
product over blocks, computed by dynamic programming over that channel count.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

from latbench.nets.spaces.base import SearchSpace


def _block_decisions(space: SearchSpace) -> list[tuple[str, list]]:
    """The per-block decisions, in token order (a block-structured space: MnasNet's)."""
    return list(space.decisions().items())


def _filters_position(space: SearchSpace) -> int:
    return [n for n, _ in _block_decisions(space)].index("filters")


def block_variants(
    space: SearchSpace, b: int, prev_filters_token: int | None
) -> dict[int, set[tuple[str, ...]]]:
    """Block b's distinct layer lists after a given previous-block filters token, by out channels."""
    decisions = _block_decisions(space)
    per_block = len(decisions)
    base = [0] * space.num_tokens
    if prev_filters_token is not None:
        base[(b - 1) * per_block + _filters_position(space)] = prev_filters_token
    out: dict[int, set[tuple[str, ...]]] = defaultdict(set)
    for combo in itertools.product(*[range(len(c)) for _, c in decisions]):
        t = list(base)
        t[b * per_block : (b + 1) * per_block] = combo
        arch = space.decode(t)
        first = 1 + sum(blk.repeats for blk in arch.blocks[:b])
        specs = arch.layers()[first : first + arch.blocks[b].repeats]
        out[arch.blocks[b].out_filters].add(tuple(s.key for s in specs))
    return out


def distinct_networks(space: SearchSpace) -> int:
    """The number of distinct networks (token sequences up to equivalent values)."""
    n_filters = len(space.decisions()["filters"])
    # channels entering the block -> (number of distinct prefixes, a filters token giving them)
    states: dict[int, tuple[int, int | None]] = {space.stem.filters: (1, None)}
    for b in range(space.num_blocks):
        nxt: dict[int, tuple[int, int | None]] = {}
        for count, token in states.values():
            for out, variants in block_variants(space, b, token).items():
                # the filters token that gave `out` in this block (for the next block's context)
                rep = next(f for f in range(n_filters) if _out_filters(space, b, f) == out)
                total = nxt.get(out, (0, rep))[0] + count * len(variants)
                nxt[out] = (total, rep)
        states = nxt
    return sum(c for c, _ in states.values())


def _out_filters(space: SearchSpace, b: int, filters_token: int) -> int:
    t = [0] * space.num_tokens
    t[b * len(_block_decisions(space)) + _filters_position(space)] = filters_token
    return space.decode(t).blocks[b].out_filters
