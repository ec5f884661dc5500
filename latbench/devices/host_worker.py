"""The host timing worker: a separate process that owns the LiteRT interpreter.

latbench talks to it over stdin/stdout, one JSON object per line, so a crash
in the runtime (a bad model, a segfault in a kernel) kills only this process.
It pins itself to the profile's CPU set before loading anything.

request:  {"model": "/path/x.tflite", "threads": 1, "protocol": {...}, "op_resolver": "auto"}
response: {"ok": true, "measurement": {...}} | {"ok": false, "error": "..."}
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from latbench.build.tflite_ops import inputs_path
from latbench.devices.litert import (
    interpreter_class,
    op_resolver_type,
    random_inputs,
    saved_inputs,
)
from latbench.devices.measure import Protocol, run_protocol


def resolve_clock(clock: str, threads: int) -> str:
    """auto: the interpreter thread's CPU time with one thread, else wall time.

    With one thread XNNPACK runs inline on the calling thread, so its CPU time
    is the layer's compute time, immune to the scheduler lending the core to
    other processes of a shared machine; with several threads only wall time
    covers the work.
    """
    if clock == "auto":
        return "thread_cpu" if threads == 1 else "wall"
    return clock


def time_model(path: str, threads: int, protocol: Protocol, op_resolver: str = "auto") -> dict:
    Interpreter, _, _ = interpreter_class()
    t0 = time.perf_counter()
    kw = (
        {}
        if op_resolver == "auto"
        else {"experimental_op_resolver_type": op_resolver_type(op_resolver)}
    )
    interp = Interpreter(model_path=path, num_threads=threads, **kw)
    interp.allocate_tensors()
    init_ms = (time.perf_counter() - t0) * 1e3
    saved = inputs_path(Path(path))  # an operator's network activations
    on_saved = saved.exists()
    inputs = saved_inputs(saved, interp) if on_saved else random_inputs(interp)
    for i, x in inputs:
        interp.set_tensor(i, x)
    invoke = interp.invoke
    wall, cpu = time.perf_counter_ns, time.thread_time_ns
    walls: list[float] = []
    cpus: list[float] = []
    clock = resolve_clock(protocol.clock, threads)

    def once() -> float:
        """One invocation; returns the chosen clock, keeps wall and CPU time beside it."""
        t, c = wall(), cpu()
        invoke()
        c, t = cpu() - c, wall() - t
        walls.append(t / 1e6)
        cpus.append(c / 1e6)
        return (c if clock == "thread_cpu" else t) / 1e6

    m = run_protocol(once, protocol)
    d = m.to_dict()
    timed = walls[-m.runs :]
    cpu_sum = sum(cpus[-m.runs :])
    d["extra"] = {
        **d["extra"],
        "init_ms": round(init_ms, 3),
        "clock": clock,
        "inputs": "network" if on_saved else "random",
        "wall_median_ms": round(float(np.median(timed)), 6),
        # all the timed runs' wall time over their CPU time: > 1 when the thread waited for
        # its CPU (another process ran there) - a median would hide short preemptions
        "wall_cpu": round(sum(timed) / cpu_sum, 4) if cpu_sum > 0 else None,
        # and in absolute time: the clocks' own overhead makes tiny rows' ratio ~1.1 on an
        # idle machine, while a real preemption costs at least a scheduler slice (~ms)
        "lost_ms": round(sum(timed) - cpu_sum, 4),
    }
    return d


def main() -> None:
    from latbench.procs import die_with_parent_from_env

    die_with_parent_from_env()  # a kill -9 of latbench takes this worker with it
    cpus = os.environ.get("LATBENCH_CPUS", "")
    if cpus:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            res = {
                "ok": True,
                "measurement": time_model(
                    req["model"],
                    int(req["threads"]),
                    Protocol(**req["protocol"]),
                    str(req.get("op_resolver", "auto")),
                ),
            }
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which records it as failed
            res = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(res) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
