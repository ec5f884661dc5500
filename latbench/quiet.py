"""Keeping TensorFlow's own logging off the user's terminal.

TensorFlow reads its log settings from the environment once, when it is first
imported, so `quiet_tensorflow` runs before that: at the command-line entry
point and at the top of every worker-process function that imports TensorFlow
(spawned workers inherit the environment, but library users may start them
from a process that never ran the CLI). It does two things:

- sets TF_CPP_MIN_LOG_LEVEL=3 (unless the user set it: `TF_CPP_MIN_LOG_LEVEL=0
  latbench ...` still shows everything), which silences TensorFlow's C++ log
  lines, the converter's included;
- TensorFlow 2.21 still prints, while being imported, the "oneDNN custom
  operations are on" banner and absl's "All log messages before
  absl::InitializeLog() is called..." line, whatever that variable says. Only
  TF_ENABLE_ONEDNN_OPTS=0 removes them at the source, and that costs the
  search's proxy training 1.5-1.8x here (oneDNN kernels off), so instead the
  first `import tensorflow` runs with file descriptor 2 captured: the known
  banner lines are dropped and anything else (a real import error, a Python
  warning) is written back to stderr unchanged. convert.py runs each converter
  call the same way (`filtered_stderr`): the int8 calibrator prints its settings.

What TensorFlow's *Python* code says goes through Python's `logging` (the "tensorflow"
logger), which TF_CPP_MIN_LOG_LEVEL does not govern, and after the import, so the import
filter never sees it either. The one such line latbench triggers by design is tf.function's
"N out of the last N calls to <function fit.<locals>.step> triggered tf.function retracing":
the proxy trainer traces one training step per network (a new network is a new graph), and
TensorFlow counts traces of a nested function across its instances by code object, so the
sixth network "retraces". `quiet_tensorflow` puts a filter on that logger dropping
`PY_NOISE` (that line only; any other TensorFlow warning still shows).

LATBENCH_TF_VERBOSE=1 leaves the import and the logger alone (with TF_CPP_MIN_LOG_LEVEL=0, everything
TensorFlow says is shown).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator

QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3"}  # TensorFlow's C++ INFO/WARNING/ERROR lines

# What TensorFlow prints regardless of TF_CPP_MIN_LOG_LEVEL: while it is imported, and from
# the int8 converter (its calibrator writes straight to fd 2; a UserWarning about input
# statistics the representative dataset deliberately does not give).
NOISE = re.compile(
    r"oneDNN custom operations are on|absl::InitializeLog\(\)|cpu_feature_guard|"
    r"This TensorFlow binary is optimized|To enable the following instructions|"
    r"rebuild TensorFlow with the appropriate compiler flags|"
    r"^fully_quantize: \d+, inference_type: |"
    r"Statistics for quantized inputs were expected|^\s*warnings\.warn\("
)

# What TensorFlow's Python code logs that latbench causes by design (see the module docstring).
PY_NOISE = re.compile(r"triggered tf\.function retracing")


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            return not PY_NOISE.search(record.getMessage())
        except Exception:  # noqa: BLE001 - a record that cannot format is not ours to drop
            return True


@contextmanager
def filtered_stderr() -> Iterator[None]:
    """Capture fd 2 (C++ and Python writes alike); on exit drop the known noise, replay the rest.

    For the single-threaded stretches where TensorFlow talks: its import and a converter call.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode(errors="replace")
            kept = [ln for ln in text.splitlines(keepends=True) if not NOISE.search(ln)]
            if kept:
                os.write(2, "".join(kept).encode())


class _FilteredLoader(importlib.abc.Loader):
    """Runs the real loader of `tensorflow` with stderr filtered."""

    def __init__(self, inner: importlib.abc.Loader):
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = self.inner
        if module.__spec__ is not None:
            module.__spec__.loader = self.inner
        with filtered_stderr():
            self.inner.exec_module(module)


class _TensorFlowImportFilter(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` like the normal machinery does, and wraps its loader once."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        _remove_filter()
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _FilteredLoader(spec.loader)
        return spec


def _remove_filter() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _TensorFlowImportFilter)]


def quiet_tensorflow() -> None:
    """Silence TensorFlow/absl/oneDNN logs in this process and the ones it starts."""
    for k, v in QUIET_ENV.items():
        os.environ.setdefault(k, v)
    if os.environ.get("LATBENCH_TF_VERBOSE") == "1":
        return
    tf_logger = logging.getLogger("tensorflow")  # the one TensorFlow uses, made now if need be
    if not any(isinstance(f, _DropNoise) for f in tf_logger.filters):
        tf_logger.addFilter(_DropNoise())
    if "tensorflow" in sys.modules:
        return
    if not any(isinstance(f, _TensorFlowImportFilter) for f in sys.meta_path):
        sys.meta_path.insert(0, _TensorFlowImportFilter())
