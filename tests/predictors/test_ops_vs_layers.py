"""latbench's own networks through both granularities: the sum of a zoo network's operators
(its .tflite decomposed, each operator timed alone) agrees with the sum of its layers (each
layer timed alone) within the noise of two LUTs timed minutes apart on a busy machine."""

from pathlib import Path

import pytest

from latbench.build.cache import converter_version
from latbench.nets.load import load_arch
from latbench.predictors import load_table
from latbench.predictors.opsum import op_sum
from latbench.profiling.oplut import OpLUT, models_of_archs, op_lut_path

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "zoo_lut"
ZOO = Path(__file__).resolve().parents[2] / "examples" / "zoo"


@pytest.mark.slow
def test_a_zoo_network_predicted_by_operators_agrees_with_its_layers():
    ops = OpLUT.load(op_lut_path(FIX, "host", "", "fp32"))
    if ops.meta.get("converter") != converter_version():
        pytest.skip(f"the fixture's operator keys are {ops.meta.get('converter')}'s output, "
                    f"this is {converter_version()}: see {FIX}/README.md")  # fmt: skip
    arch = load_arch(ZOO / "mobilenet_v3_small.json")
    layers = float(load_table("host", "fp32", FIX).features([arch])[0, 0])
    (model,) = models_of_archs([arch], "fp32", workers=1, progress=False)
    by_ops = op_sum(model, ops, "host").total_ms
    assert len(model.ops) > len(arch.layers("fp32"))  # a layer is several operators
    assert by_ops == pytest.approx(layers, rel=0.15), (by_ops, layers)
