"""Compatibility: the MnasNet space moved to `latbench.spaces.mnasnet`.

`latbench.space.SearchSpace` is the MnasNet space class, as before the move;
new code imports `latbench.spaces` (the table, the interface and every space).
"""

from __future__ import annotations

from latbench.spaces import SPACES, get_space  # noqa: F401
from latbench.spaces.mnasnet import (CONV_OPS, DECISIONS, DEPTH_DELTAS, KERNELS,  # noqa: F401
                             MOBILENET_V2_SKELETON, SE_RATIOS, SKIPS, TOKENS_PER_BLOCK,
                             WIDTH_MULTS, MnasNetSpace)

SearchSpace = MnasNetSpace
