"""The host timing worker: a separate process that owns the LiteRT interpreter.

latbench talks to it over stdin/stdout, one JSON object per line, so a crash
in the runtime (a bad model, a segfault in a kernel) kills only this process.
It pins itself to the profile's CPU set before loading anything.

request:  {"model": "/path/x.tflite", "threads": 1, "protocol": {...}}
response: {"ok": true, "measurement": {...}} | {"ok": false, "error": "..."}
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from ..measure import Protocol, run_protocol
from .litert import interpreter_class


def _fill_inputs(interp, rng: np.random.Generator) -> None:
    for d in interp.get_input_details():
        shape, dtype = d["shape"], d["dtype"]
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            x = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
        else:
            x = rng.standard_normal(shape).astype(dtype)
        interp.set_tensor(d["index"], x)


def time_model(path: str, threads: int, protocol: Protocol) -> dict:
    Interpreter, _, _ = interpreter_class()
    t0 = time.perf_counter()
    interp = Interpreter(model_path=path, num_threads=threads)
    interp.allocate_tensors()
    init_ms = (time.perf_counter() - t0) * 1e3
    _fill_inputs(interp, np.random.default_rng(0))
    invoke = interp.invoke
    perf = time.perf_counter_ns

    def once() -> float:
        t = perf()
        invoke()
        return (perf() - t) / 1e6

    m = run_protocol(once, protocol)
    d = m.to_dict()
    d["extra"] = {"init_ms": round(init_ms, 3)}
    return d


def main() -> None:
    cpus = os.environ.get("LATBENCH_CPUS", "")
    if cpus:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            res = {"ok": True, "measurement": time_model(
                req["model"], int(req["threads"]), Protocol(**req["protocol"]))}
        except Exception as exc:  # reported to the parent, which records it as failed
            res = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(res) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
