import numpy as np

from latbench.build import convert
from latbench.build.builder import layer_model
from latbench.devices.litert import interpreter_class
from latbench.nets.arch import LayerSpec
from latbench.nets.load import arch_from_dict

SPECS = [
    LayerSpec("conv", 16, 8, 8, 16, 3, 2, act="relu6"),
    LayerSpec("mbconv", 8, 16, 8, 16, 5, 1, 3.0, se=4, skip=True, act="hswish", se_gate="hsigmoid"),
    LayerSpec("mbconv", 8, 16, 4, 24, 3, 2, 6.0, act="swish"),
    LayerSpec("pool", 4, 24, 1, 24, act="none"),
    LayerSpec("fc", 1, 24, 1, 10, act="none"),
]


def _ops(buf):
    Interpreter, _, _ = interpreter_class()
    it = Interpreter(model_content=buf)
    return [d["op_name"] for d in it._get_ops_details()], it


def test_batched_split_models_equal_single_conversions():
    """Cutting a batch apart gives each layer exactly its own converted graph."""
    blobs = convert.convert_layers_batch(SPECS)
    for spec, blob in zip(SPECS, blobs):
        single = convert.convert_model(layer_model(spec))
        ops_b, it = _ops(blob)
        ops_s, _ = _ops(single)
        assert ops_b == ops_s, spec.key
        it.allocate_tensors()
        assert tuple(it.get_input_details()[0]["shape"]) == (1, spec.in_hw, spec.in_hw, spec.cin)
        assert tuple(it.get_output_details()[0]["shape"]) == (
            1,
            spec.out_hw,
            spec.out_hw,
            spec.cout,
        )
        it.set_tensor(
            it.get_input_details()[0]["index"],
            np.ones((1, spec.in_hw, spec.in_hw, spec.cin), np.float32),
        )
        it.invoke()
    assert "HARD_SWISH" in _ops(blobs[1])[0]  # the converter fused our hard-swish


def test_int8_is_fully_quantized():
    blob = convert.convert_layers_batch([s.with_precision("int8") for s in SPECS[:2]])[1]
    _, it = _ops(blob)
    assert it.get_input_details()[0]["dtype"] == np.int8
    assert it.get_output_details()[0]["dtype"] == np.int8


def test_cache_means_a_rerun_converts_nothing():
    specs = [LayerSpec("mbconv", 8, 8, 8, 8, 3, 1, 3.0, skip=True)]
    first = list(convert.convert_layers(specs))
    again = list(convert.convert_layers(specs))
    assert not first[0].cached and again[0].cached and again[0].path == first[0].path


def test_whole_network_is_the_chain_of_its_layers(tiny_arch_dict):
    """One builder: the network's ops are its layers' ops, in order."""
    arch = arch_from_dict(tiny_arch_dict)
    net_ops, _ = _ops(convert.convert_arch(arch).read_bytes())
    layer_ops = []
    for blob in convert.convert_layers_batch(arch.layers()):
        layer_ops += _ops(blob)[0]
    strip = {"RESHAPE"}  # the final flatten
    assert [o for o in net_ops if o not in strip] == [o for o in layer_ops if o not in strip]
