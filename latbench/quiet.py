"""Keeping TensorFlow's own logging off the user's terminal.

TensorFlow, absl and oneDNN read their settings from the environment once,
when TensorFlow is first imported, so `quiet_tensorflow` must run before that:
at the command-line entry point and at the top of every worker-process
function that imports TensorFlow (spawned workers inherit the environment,
but library users may start them from a process that never ran the CLI).
A variable the user set already is left alone, so `TF_CPP_MIN_LOG_LEVEL=0
latbench ...` still shows everything.
"""

from __future__ import annotations

import os

QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow's C++ INFO/WARNING/ERROR lines
    # TensorFlow 2.21 prints the "oneDNN custom operations are on" banner (and absl's "All log
    # messages before absl::InitializeLog()" line) whatever TF_CPP_MIN_LOG_LEVEL says; only
    # turning the oneDNN kernels off removes it. They affect TensorFlow's own kernels (Keras
    # building, the search's proxy training), never the LiteRT timings; TF_ENABLE_ONEDNN_OPTS=1
    # brings them back.
    "TF_ENABLE_ONEDNN_OPTS": "0",
}


def quiet_tensorflow() -> None:
    """Silence TensorFlow/absl/oneDNN logs in this process and the ones it starts."""
    for k, v in QUIET_ENV.items():
        os.environ.setdefault(k, v)
