"""Which benchmark_model was pushed, from its --help, and the flags each takes."""

from __future__ import annotations

import pytest

from latbench.devices.benchmark_tools import TOOLS, identify, kind_of_output
from latbench.devices.emulated.benchmark import _usage


@pytest.mark.parametrize("kind", sorted(TOOLS))
@pytest.mark.parametrize("result_file", [True, False])
def test_the_stand_ins_help_identifies_its_tool(kind, result_file):
    info = identify(_usage(kind, result_file))
    assert info.kind == kind and info.result_file is result_file


def test_unknown_help_leaves_it_to_the_first_run():
    assert identify("Segmentation fault").kind is None
    assert kind_of_output("compiled_model") == "compiled_model"
    assert kind_of_output("legacy") == kind_of_output("current") == "classic"


def test_each_tool_maps_the_cpu_delegate_and_only_classic_has_nnapi():
    assert TOOLS["classic"].flags_for("cpu") == ["--use_xnnpack=true"]
    assert "--use_cpu=true" in TOOLS["compiled_model"].flags_for("cpu")
    with pytest.raises(KeyError):
        TOOLS["compiled_model"].flags_for("nnapi")
