"""Find the LiteRT interpreter: ai-edge-litert, else tflite_runtime, else TensorFlow's."""

from __future__ import annotations

from importlib import metadata
from typing import Any


def interpreter_class() -> tuple[Any, str, str]:
    """(Interpreter class, runtime name, version) of the best runtime installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert", metadata.version("ai-edge-litert")
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter  # type: ignore

        return Interpreter, "tflite-runtime", metadata.version("tflite-runtime")
    except ImportError:
        pass
    import tensorflow as tf  # last resort: slower import, same kernels

    return tf.lite.Interpreter, "tensorflow", tf.__version__
