"""The stand-in benchmark_model: times a .tflite with LiteRT and prints the real tool's log.

latbench pushes `standin_script()` as benchmark_model; when the shell runs it,
`benchmark_main` runs in its place in a child process. It reports times at the
modelled clock: it times each invocation with the thread-CPU clock (load on this
machine does not leak in) and divides by the clock's fraction of its maximum.
Delegates: XNNPACK takes the whole graph, the "GPU"/"NNAPI" stand-ins leave some
op types on the CPU and say so ("Replacing N out of M node(s)").
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from latbench.devices.emulated.state import clock_at

STANDIN_MARKER = b"latbench-emulated-benchmark_model"


# -- the benchmark_model stand-in ---------------------------------------------


def standin_script() -> bytes:
    """What latbench pushes as `benchmark_model` to the emulated phone (a marker, not a binary)."""
    return (
        b"#!/system/bin/sh\n# "
        + STANDIN_MARKER
        + b": the emulated phone runs LiteRT in its place\nexit 1\n"
    )


def _stats_line(us: list[int]) -> str:
    """tensorflow Stat<int64>::OutputToStream, reproduced from its documented output format."""
    n = len(us)
    if n == 0:
        return "count=0"
    if min(us) == max(us):
        return f"count={n} curr={us[-1]}" + ("(all same)" if n > 1 else "")
    avg = sum(us) / n
    var = sum(x * x for x in us) / n - avg * avg
    std = int(max(var, 0.0) ** 0.5)
    return (
        f"count={n} first={us[0]} curr={us[-1]} min={min(us)} max={max(us)} avg={avg:g} std={std}"
    )


def benchmark_main(argv: list[str]) -> int:
    """Time --graph with LiteRT like benchmark_model does, printing its log lines."""
    import numpy as np

    from latbench.devices.litert import interpreter_class

    hang = argv[:1] == ["--hang"]
    argv = argv[1:] if hang else argv
    flags: dict[str, str] = {}
    unconsumed = []
    known = {
        "graph",
        "num_threads",
        "warmup_runs",
        "num_runs",
        "min_secs",
        "max_secs",
        "warmup_min_secs",
        "use_xnnpack",
        "use_gpu",
        "use_nnapi",
        "enable_op_profiling",
    }
    for a in argv:
        k, _, v = a.lstrip("-").partition("=")
        (flags.__setitem__(k, v) if a.startswith("--") and k in known else unconsumed.append(a))

    def log(s: str) -> None:
        print(f"INFO: {s}", flush=True)

    cpus = os.environ.get("LATBENCH_EMU_CPUS", "")
    if cpus:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    log("STARTING!")

    def ready() -> float:
        t = time.monotonic()
        if os.environ.get("LATBENCH_EMU_READY"):
            Path(os.environ["LATBENCH_EMU_READY"], f"ready-{os.getpid()}").write_text(repr(t))
        return t

    if hang:  # a wedged driver / deadlocked run: never returns, holds its core
        ready()
        while True:
            time.sleep(3600)
    if unconsumed:
        print(f"WARN: Unconsumed cmdline flags: {' '.join(unconsumed)}", flush=True)
    graph = flags.get("graph", "")
    threads = int(flags.get("num_threads", "-1"))
    warm_n, num_n = int(flags.get("warmup_runs", "1")), int(flags.get("num_runs", "50"))
    warm_s, min_s = float(flags.get("warmup_min_secs", "0.5")), float(flags.get("min_secs", "1"))
    max_s = float(flags.get("max_secs", "150"))
    log(f"Num threads: [{threads}]")
    log(f"Graph: [{graph}]")

    def on(f: str) -> bool:
        return flags.get(f, "false").lower() in ("1", "true")

    delegate = (
        "gpu"
        if on("use_gpu")
        else "nnapi"
        if on("use_nnapi")
        else "xnnpack"
        if on("use_xnnpack")
        else ""
    )
    if delegate in ("gpu", "nnapi") and os.environ.get("LATBENCH_EMU_NO_DELEGATE"):
        print(
            f"ERROR: {delegate.upper()} delegate is not available on the latbench emulated phone.",
            flush=True,
        )
        print(f"ERROR: Failed to apply {delegate.upper()} delegate.", flush=True)
        return 1
    if flags.get("enable_op_profiling", "false").lower() in ("1", "true"):
        print(
            "WARN: the emulated stand-in cannot profile ops; no op tables will be printed.",
            flush=True,
        )
    if not graph or not Path(graph).is_file():
        print(f"ERROR: Could not open '{graph}'.", flush=True)
        print("ERROR: Failed to load model", flush=True)
        return 1
    Interpreter, runtime, version = interpreter_class()
    t0 = time.perf_counter_ns()
    try:
        interp = Interpreter(model_path=graph, num_threads=threads if threads > 0 else None)
        interp.allocate_tensors()
    except Exception as exc:  # noqa: BLE001 - the real tool prints and exits too
        print(f"ERROR: Failed to construct interpreter: {exc}", flush=True)
        return 1
    init_us = (time.perf_counter_ns() - t0) // 1000
    if delegate:
        _announce_delegate(delegate, [o["op_name"] for o in interp._get_ops_details()], log)
    log(f"Loaded model {graph}")
    log(f"The input model file size (MB): {Path(graph).stat().st_size / 1e6:g}")
    log(f"Initialized session in {init_us / 1e3:g}ms.")
    rng = np.random.default_rng(0)
    for d in interp.get_input_details():
        if np.issubdtype(d["dtype"], np.integer):
            info = np.iinfo(d["dtype"])
            x = rng.integers(info.min, info.max, size=d["shape"], endpoint=True).astype(d["dtype"])
        else:
            x = rng.standard_normal(d["shape"]).astype(d["dtype"])
        interp.set_tensor(d["index"], x)

    clock_env = os.environ.get("LATBENCH_EMU_CLOCK", "")
    share = int(os.environ.get("LATBENCH_EMU_SHARE", "1") or 1)
    t_ready = ready()

    def phase(n: int, min_secs: float) -> list[int]:
        log(
            f"Running benchmark for at least {n} iterations and at least {min_secs:g} seconds "
            f"but terminate if exceeding {max_s:g} seconds."
        )
        us: list[int] = []
        start = time.perf_counter()
        while (
            len(us) < n or time.perf_counter() - start < min_secs
        ) and time.perf_counter() - start <= max_s:
            t = time.thread_time_ns()
            interp.invoke()
            cpu_us = (time.thread_time_ns() - t) / 1000
            clock = clock_at(clock_env, time.monotonic() - t_ready) if clock_env else 1.0
            us.append(int(cpu_us * share / clock))
        log(_stats_line(us) + "\n")
        return us

    warm = phase(warm_n, warm_s)
    runs = phase(num_n, min_s)
    w_avg = sum(warm) / len(warm) if warm else 0
    r_avg = sum(runs) / len(runs) if runs else 0
    log(
        f"Inference timings in us: Init: {init_us}, First inference: {warm[0] if warm else 0}, "
        f"Warmup (avg): {w_avg:g}, Inference (avg): {r_avg:g}"
    )
    return 0


def _announce_delegate(delegate: str, ops: list[str], log: Callable[[str], None]) -> None:
    """What the real tool logs when a delegate claims nodes.

    Old and new wording differ; this is the new.
    """
    refuses = set(filter(None, os.environ.get("LATBENCH_EMU_REFUSES", "").split(",")))
    if delegate == "xnnpack":
        refuses = set()
    names = {
        "xnnpack": "TfLiteXNNPackDelegate",
        "gpu": "TfLiteGpuDelegateV2",
        "nnapi": "TfLiteNnapiDelegate",
    }
    taken = [op not in refuses for op in ops]
    parts = sum(1 for i, t in enumerate(taken) if i == 0 or t != taken[i - 1])
    log(
        "Created TensorFlow Lite XNNPACK delegate for CPU."
        if delegate == "xnnpack"
        else f"Created TensorFlow Lite delegate for {delegate.upper()}."
    )
    if any(taken):
        log(
            f"Replacing {sum(taken)} out of {len(ops)} node(s) with delegate "
            f"({names[delegate]}) node, "
            f"yielding {parts} partitions for the whole graph."
        )
    else:
        print(
            f"WARN: Though {delegate.upper()} delegate is explicitly applied, the model graph "
            "will not be executed by the delegate.",
            flush=True,
        )
