"""Find the LiteRT interpreter: ai-edge-litert, else tflite_runtime, else TensorFlow's.

Also the kernel sets the interpreter can run a model with (OP_RESOLVERS): a host profile's
`op_resolver` option names one, e.g. the built-in kernels without the default XNNPACK
delegate, a different per-op cost profile on the same CPU.
"""

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


# LiteRT's OpResolverType names, lower-case as a profile writes them: which kernels run
#   auto                               the built-in kernels plus the default XNNPACK delegate
#   builtin                            the same (the default delegate applied explicitly)
#   builtin_ref                        the reference kernels (plain C++, no XNNPACK, slow)
#   builtin_without_default_delegates  the built-in optimized kernels (ruy, eigen), no XNNPACK
OP_RESOLVERS = ("auto", "builtin", "builtin_ref", "builtin_without_default_delegates")


def op_resolver_type(name: str) -> Any:
    """The runtime's OpResolverType member for one of OP_RESOLVERS."""
    Interpreter, runtime, _ = interpreter_class()
    if runtime == "tensorflow":
        import tensorflow as tf

        enum = tf.lite.experimental.OpResolverType
    else:
        import importlib

        enum = importlib.import_module(Interpreter.__module__).OpResolverType
    return enum[name.upper()]
