"""LayerSpec / Arch -> Keras. One function builds a layer; networks chain it.

`apply_layer` is the single code path: `layer_model` wraps one LayerSpec in a
model for the LUT, `arch_model` chains every LayerSpec of an Arch. Whatever a
LUT row timed is exactly what sits inside the whole network.
"""

from __future__ import annotations

import os
from typing import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
from keras import layers

from latbench.nets.arch import Arch, LayerSpec


def _act(x, act: str, name: str):
    if act == "none":
        return x
    if act == "relu":
        return layers.ReLU(name=name)(x)
    if act == "relu6":
        return layers.ReLU(6.0, name=name)(x)
    if act == "swish":
        return layers.Activation("swish", name=name)(x)
    if act == "hswish":
        return layers.Activation(_hard_swish, name=name)(x)
    raise ValueError(f"unknown activation {act!r}")


def _hard_sigmoid(x):
    return keras.ops.relu6(x + 3.0) * (1.0 / 6.0)


def _hard_swish(x):
    return x * _hard_sigmoid(x)


def _conv_bn(x, filters: int, kernel: int, stride: int, act: str, name: str, groups: int = 1):
    x = layers.Conv2D(
        filters, kernel, stride, padding="same", use_bias=False, groups=groups, name=f"{name}_conv"
    )(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return _act(x, act, f"{name}_act")


def _channel_shuffle(x, groups: int, name: str):
    """ShuffleNet's shuffle, NHWC: channel j*g + i <- i*(C/g) + j (reshape, transpose, reshape).

    TFLite gets RESHAPE, a 5-D TRANSPOSE and RESHAPE; XNNPACK runs all three.
    """
    h, w, c = x.shape[1:]
    x = layers.Reshape((h, w, groups, c // groups), name=f"{name}_shuffle_split")(x)
    x = layers.Permute((1, 2, 4, 3), name=f"{name}_shuffle_swap")(x)
    return layers.Reshape((h, w, c), name=f"{name}_shuffle_merge")(x)


def _depthwise_bn(x, spec: LayerSpec, name: str):
    x = layers.DepthwiseConv2D(
        spec.kernel, spec.stride, padding="same", use_bias=False, name=f"{name}_dw"
    )(x)
    x = layers.BatchNormalization(name=f"{name}_dw_bn")(x)
    return _act(x, spec.act, f"{name}_dw_act")


def _se(x, width: int, reduced: int, gate: str, act: str, name: str):
    """Squeeze-excite: MnasNet/EfficientNet (sigmoid) or MobileNetV3 (hard sigmoid)."""
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_pool")(x)
    s = layers.Conv2D(reduced, 1, name=f"{name}_se_reduce")(s)
    s = _act(s, "swish" if act == "swish" else "relu", f"{name}_se_act")
    s = layers.Conv2D(width, 1, name=f"{name}_se_expand")(s)
    if gate == "hsigmoid":
        s = layers.Activation(_hard_sigmoid, name=f"{name}_se_gate")(s)
    else:
        s = layers.Activation("sigmoid", name=f"{name}_se_gate")(s)
    return layers.Multiply(name=f"{name}_se_mul")([x, s])


def apply_layer(x, spec: LayerSpec, name: str):
    """Apply one LayerSpec to a Keras tensor (the only place layers are made)."""
    if spec.op == "pool":
        return layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    if spec.op == "fc":
        x = layers.Conv2D(spec.cout, 1, use_bias=True, name=f"{name}_fc")(x)
        return _act(x, spec.act, f"{name}_act")
    inp = x
    if spec.op == "conv":
        x = _conv_bn(x, spec.cout, spec.kernel, spec.stride, spec.act, name)
        if spec.se:
            x = _se(x, spec.cout, spec.se, spec.se_gate, spec.act, name)
    elif spec.op == "mbconv":
        if spec.expand != 1:
            x = _conv_bn(x, spec.mid, 1, 1, spec.act, f"{name}_expand")
        x = _depthwise_bn(x, spec, name)
        if spec.se:
            x = _se(x, spec.mid, spec.se, spec.se_gate, spec.act, name)
        x = _conv_bn(x, spec.cout, 1, 1, "none", f"{name}_project")
    elif spec.op == "fbconv":  # FBNet: the expansion conv stays at e1; grouped 1x1 + shuffle
        x = _conv_bn(x, spec.mid, 1, 1, spec.act, f"{name}_expand", spec.groups)
        if spec.groups > 1:
            x = _channel_shuffle(x, spec.groups, name)
        x = _depthwise_bn(x, spec, name)
        if spec.se:
            x = _se(x, spec.mid, spec.se, spec.se_gate, spec.act, name)
        x = _conv_bn(x, spec.cout, 1, 1, "none", f"{name}_project", spec.groups)
    else:
        raise ValueError(f"unknown op {spec.op!r}")
    if spec.skip:
        x = layers.Add(name=f"{name}_add")([inp, x])
    return x


def _input(spec: LayerSpec, name: str):
    return keras.Input((spec.in_hw, spec.in_hw, spec.cin), batch_size=1, name=name)


def layer_model(spec: LayerSpec, name: str = "layer") -> keras.Model:
    """One LayerSpec alone, batch 1: what a LUT row times."""
    x_in = _input(spec, f"{name}_input")
    return keras.Model(x_in, apply_layer(x_in, spec, name), name=name)


def specs_model(specs: Sequence[LayerSpec], name: str = "net") -> keras.Model:
    """A chain of LayerSpecs as one network (batch 1, logits out)."""
    x_in = _input(specs[0], "input")
    x = x_in
    for i, spec in enumerate(specs):
        x = apply_layer(x, spec, f"l{i:02d}_{spec.op}")
    x = layers.Flatten(name="logits")(x)
    return keras.Model(x_in, x, name=name)


def arch_model(arch: Arch, precision: str = "fp32") -> keras.Model:
    """The whole network, built from exactly the LayerSpecs the LUT holds."""
    return specs_model(arch.layers(precision), name=arch.name)
