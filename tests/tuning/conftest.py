"""Shared set-up of the tuning tests (NetAdapt, compound scaling)."""

from __future__ import annotations

import pytest

# pytest imports every directory's conftest.py under the one module name "conftest", the
# last one loaded winning: a test that runs `from conftest import latbench_cli` after this
# file was loaded gets this module, so it offers the same helper.
from tests.conftest import latbench_cli  # noqa: F401

# NetAdapt's seed networks (width 1.0). SMALL has a residual group (its second block's
# repeat) and three things to shrink: block 1's expansion and both blocks' outputs.
SMALL = {
    "name": "small",
    "resolution": 32,
    "act": "relu",
    "stem": {"filters": 16},
    "blocks": ["r1_k3_s11_e1_i16_o16_noskip", "r2_k3_s22_e4_i16_o32"],
    "head": {"filters": 96},
    "classes": 10,
}
# One thing to shrink (the block's outputs, 16 -> 8), then nothing: any target below that
# is unreachable after at most one step.
STUCK = {
    "name": "stuck",
    "resolution": 32,
    "act": "relu",
    "stem": {"filters": 16},
    "blocks": ["r1_k3_s11_e1_i16_o16_noskip"],
    "head": {"filters": 32},
    "classes": 10,
}


def netadapt_shrinks(arch, steps: int = 2):
    """The networks one NetAdapt proposal from `arch`, each shrunk by 1..`steps` channel
    steps (what a proposal of a few per cent asks the predictor about)."""
    from latbench.tuning.netadapt import _shrunk, block_mid, residual_groups

    kinds = [("mid", (i,), block_mid(arch, i)) for i in range(len(arch.blocks))]
    kinds += [("out", tuple(g), arch.blocks[g[-1]].out_filters) for g in residual_groups(arch)]
    out = []
    for kind, blocks, now in kinds:
        for k in range(1, steps + 1):
            a = _shrunk(arch, kind, blocks, now - 8 * k) if now - 8 * k >= 8 else None
            if a is not None:
                out.append(a)
    return out


@pytest.fixture(scope="session")
def netadapt_lut(tmp_path_factory, fast_host):
    """A LUT folder (host_netadapt_fp32.csv, the fast host protocol) holding the layers of
    STUCK and of the networks two NetAdapt steps from SMALL or STUCK, timed in one batch -
    but not SMALL's own layers (those STUCK lacks): a run from SMALL profiles them on
    demand. Copy it before use."""
    from latbench.devices import load_profile, open_device
    from latbench.nets.arch import unique_specs
    from latbench.nets.load import arch_from_dict
    from latbench.predictors.ondemand import measure_layers

    small, stuck = arch_from_dict(SMALL), arch_from_dict(STUCK)
    near = [
        b for s in (small, stuck) for a in netadapt_shrinks(s) for b in [a, *netadapt_shrinks(a)]
    ]
    left_out = {s.key for s in small.layers()} - {s.key for s in stuck.layers()}
    specs = [s for s in unique_specs([stuck, *near], "fp32") if s.key not in left_out]
    lut_dir = tmp_path_factory.mktemp("netadapt") / "lut"
    with open_device(load_profile(str(fast_host))) as dev:
        measure_layers(dev, specs, "netadapt", "fp32", lut_dir, progress=False)
    return lut_dir
