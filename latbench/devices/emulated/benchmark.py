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

from latbench.devices.emulated.state import clock_at

STANDIN_MARKER = b"latbench-emulated-benchmark_model"
# Which tool a pushed stand-in plays (latbench.devices.benchmark_tools.TOOLS keys)
STANDIN_KINDS = ("classic", "compiled_model")

# Flags each tool takes (BenchmarkModel's run flags are common to both)
_COMMON = {"graph", "num_threads", "warmup_runs", "num_runs", "min_secs", "max_secs"}
_COMMON |= {"warmup_min_secs", "verbose", "report_peak_memory_footprint"}
_FLAGS = {
    "classic": _COMMON
    | {"use_xnnpack", "use_gpu", "use_nnapi", "enable_op_profiling"}
    | {"delegate_serialize_dir", "delegate_serialize_token", "gpu_backend"},
    "compiled_model": _COMMON
    | {"use_cpu", "use_gpu", "use_npu", "use_profiler", "require_full_delegation", "gpu_backend"},
}


# -- the benchmark_model stand-in ---------------------------------------------


def standin_script(kind: str = "classic", result_file: bool = True) -> bytes:
    """What latbench pushes as `benchmark_model` to the emulated phone (a marker, not a binary).

    kind: which of the two benchmark_model tools it plays; result_file: whether it takes
    `--result_file_path` (builds from 2025 on).
    """
    if kind not in STANDIN_KINDS:
        raise ValueError(f"kind must be one of {STANDIN_KINDS}, got {kind!r}")
    return (
        b"#!/system/bin/sh\n# "
        + STANDIN_MARKER
        + f" kind={kind} result_file={int(result_file)}".encode()
        + b": the emulated phone runs LiteRT in its place\nexit 1\n"
    )


def standin_header(data: bytes) -> dict[str, str] | None:
    """The kind and options of a pushed stand-in (None: not a stand-in)."""
    head = data[:4096]
    if STANDIN_MARKER not in head:
        return None
    line = head.split(STANDIN_MARKER, 1)[1].split(b":", 1)[0].decode("ascii", "replace")
    opts = dict(w.split("=", 1) for w in line.split() if "=" in w)
    return {"kind": opts.get("kind", "classic"), "result_file": opts.get("result_file", "0")}


def _stats_line(us: list[int]) -> str:
    """StatWithPercentiles<int64>::OutputToStream, reproduced from its documented output format
    (newer releases append p5, median and p95)."""
    n = len(us)
    if n == 0:
        return "count=0"
    if min(us) == max(us):
        return f"count={n} curr={us[-1]}" + ("(all same)" if n > 1 else "")
    avg = sum(us) / n
    var = sum(x * x for x in us) / n - avg * avg
    std = int(max(var, 0.0) ** 0.5)
    p5, med, p95 = (_percentile(us, q) for q in (5, 50, 95))
    return (
        f"count={n} first={us[0]} curr={us[-1]} min={min(us)} max={max(us)} avg={avg:g} std={std}"
        f" p5={p5} median={med} p95={p95}"
    )


def _percentile(us: list[int], q: float) -> int:
    s = sorted(us)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))]


def _usage(kind: str, result_file: bool) -> str:
    flags = sorted(_FLAGS[kind] | ({"result_file_path"} if result_file else set()))
    return "Flags:\n" + "".join(f"\t--{f}=\tstring\toptional\n" for f in flags)


def benchmark_main(argv: list[str]) -> int:
    """Time --graph with LiteRT like benchmark_model does, printing its log lines on stderr."""
    import resource

    from latbench.devices.emulated.benchmark_log import StandinLog

    rss0_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # "the start of the tool"
    kind, result_file = "classic", False
    while argv and argv[0].startswith("--standin-"):
        k, _, v = argv.pop(0).partition("=")
        if k == "--standin-kind":
            kind = v
        elif k == "--standin-result-file":
            result_file = v == "1"
    hang = argv[:1] == ["--hang"]
    argv = argv[1:] if hang else argv
    out = StandinLog(kind)
    if "--help" in argv or "-help" in argv:
        out.raw(_usage(kind, result_file))
        return 1
    import numpy as np

    from latbench.devices.litert import interpreter_class

    flags: dict[str, str] = {}
    unconsumed = []
    known = _FLAGS[kind] | ({"result_file_path"} if result_file else set())
    for a in argv:
        k, _, v = a.lstrip("-").partition("=")
        (flags.__setitem__(k, v) if a.startswith("--") and k in known else unconsumed.append(a))

    cpus = os.environ.get("LATBENCH_EMU_CPUS", "")
    if cpus:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    out.info("STARTING!")

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
        out.warn(f"Unconsumed cmdline flags: {' '.join(unconsumed)}")
    graph = flags.get("graph", "")
    threads = int(flags.get("num_threads", "-1"))
    warm_n, num_n = int(flags.get("warmup_runs", "1")), int(flags.get("num_runs", "50"))
    warm_s, min_s = float(flags.get("warmup_min_secs", "0.5")), float(flags.get("min_secs", "1"))
    max_s = float(flags.get("max_secs", "150"))
    out.info(f"Num threads: [{threads}]")
    out.info(f"Graph: [{graph}]")

    def on(f: str, default: str = "false") -> bool:
        return flags.get(f, default).lower() in ("1", "true")

    if kind == "compiled_model":  # CPU means XNNPACK there; the GPU stand-in is not modelled
        delegate = "gpu" if on("use_gpu") else "xnnpack" if on("use_cpu", "true") else ""
    else:
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
        out.error(f"{delegate.upper()} delegate is not available on the latbench emulated phone.")
        out.error(f"Failed to apply {delegate.upper()} delegate.")
        return 1
    if not graph or not Path(graph).is_file():
        out.error(f"Could not open '{graph}'.")
        out.error("Failed to load model")
        return 1
    Interpreter, runtime, version = interpreter_class()
    t0 = time.perf_counter_ns()
    try:
        interp = Interpreter(model_path=graph, num_threads=threads if threads > 0 else None)
        interp.allocate_tensors()
    except Exception as exc:  # noqa: BLE001 - the real tool prints and exits too
        out.error(f"Failed to construct interpreter: {exc}")
        return 1
    init_us = (time.perf_counter_ns() - t0) // 1000
    rss_init_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if delegate and kind == "classic":
        _announce_delegate(delegate, [o["op_name"] for o in interp._get_ops_details()], out)
    out.info(f"Loaded model {graph}")
    out.info(f"The input model file size (MB): {Path(graph).stat().st_size / 1e6:g}")
    out.info(f"Initialized session in {init_us / 1e3:g}ms.")
    rng = np.random.default_rng(0)
    for d in interp.get_input_details():
        if np.issubdtype(d["dtype"], np.integer):
            info = np.iinfo(d["dtype"])
            x = rng.integers(info.min, info.max, size=d["shape"], endpoint=True).astype(d["dtype"])
        else:
            x = rng.standard_normal(d["shape"]).astype(d["dtype"])
        interp.set_tensor(d["index"], x)

    clock_env = os.environ.get("LATBENCH_EMU_CLOCK", "")
    screen = float(os.environ.get("LATBENCH_EMU_SCREEN", "1") or 1)
    share = int(os.environ.get("LATBENCH_EMU_SHARE", "1") or 1)
    t_ready = ready()

    def phase(n: int, min_secs: float) -> list[int]:
        out.info(
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
            clock *= screen  # a screen-off phone schedules a shell process on a slower clock
            us.append(int(cpu_us * share / clock))
        out.info(_stats_line(us) + "\n")
        return us

    warm = phase(warm_n, warm_s)
    runs = phase(num_n, min_s)
    out.summary(init_us, warm, runs)
    # this process's max RSS (Python and LiteRT: the stand-in's, not a phone's footprint)
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    mem = {
        "init_footprint_kb": rss_init_kb - rss0_kb,
        "overall_footprint_kb": rss_kb - rss0_kb,
    }
    if on("report_peak_memory_footprint"):
        mem["peak_mem_mb"] = rss_kb / 1024
    out.memory(mem)
    if kind == "classic" and on("enable_op_profiling"):
        from latbench.devices.emulated.op_profile import print_op_profile

        print_op_profile(Path(graph), threads, delegate == "xnnpack", len(runs), out)
    if flags.get("result_file_path"):
        _write_result(Path(flags["result_file_path"]), init_us, warm, runs, out, mem)
    return 0


def _write_result(
    path: Path, init_us: int, warm: list[int], runs: list[int], out, mem: dict
) -> None:
    """The BenchmarkResult proto both tools write to --result_file_path (times in ms)."""
    from latbench.devices.result_proto import encode_result_proto

    n = len(runs)
    avg = sum(runs) / n if n else 0.0
    std = (max(sum(x * x for x in runs) / n - avg * avg, 0.0) ** 0.5) if n else 0.0
    lat = {
        "avg_ms": avg / 1e3,
        "min_ms": min(runs, default=0) / 1e3,
        "max_ms": max(runs, default=0) / 1e3,
        "stddev_ms": std / 1e3,
        "median_ms": _percentile(runs, 50) / 1e3 if runs else 0.0,
        "p5_ms": _percentile(runs, 5) / 1e3 if runs else 0.0,
        "p95_ms": _percentile(runs, 95) / 1e3 if runs else 0.0,
        "init_ms": init_us / 1e3,
        "first_inference_ms": (warm[0] if warm else 0) / 1e3,
        "average_warm_up_ms": (sum(warm) / len(warm) if warm else 0) / 1e3,
    }
    misc = {"num_runs": n, "num_warmup_runs": len(warm)}
    try:
        path.write_bytes(encode_result_proto(lat, memory=mem, misc=misc))
        out.info(f"Saved benchmark result to: {path}")
    except OSError:
        out.error(f"Failed to save benchmark result to: {path}")


def _announce_delegate(delegate: str, ops: list[str], out) -> None:
    """What the classic tool logs when delegates claim nodes.

    A GPU/NNAPI delegate that refuses some ops leaves them to XNNPACK, which the tool
    applies next and which prints a second `Replacing` line, for the nodes left (the
    delegate's kernels count as one node each, the refused ops as theirs).
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
    parts = sum(1 for i, t in enumerate(taken) if t and (i == 0 or not taken[i - 1]))
    if delegate == "xnnpack":
        out.info("Created TensorFlow Lite XNNPACK delegate for CPU.")
    elif delegate == "gpu":
        out.info(f"Initialized {os.environ.get('LATBENCH_EMU_GPU_API', 'OpenCL')}-based API.")
        out.info("Created TensorFlow Lite delegate for GPU.")
    else:
        out.info("Created TensorFlow Lite delegate for NNAPI.")
    if any(taken):
        out.info(
            f"Replacing {sum(taken)} out of {len(ops)} node(s) with delegate "
            f"({names[delegate]}) node, yielding {parts} partitions for the whole graph."
        )
    else:
        out.warn(
            f"Though {delegate.upper()} delegate is explicitly applied, the model graph "
            "will not be executed by the delegate."
        )
    left = sum(1 for t in taken if not t)
    if delegate != "xnnpack" and left:
        # XNNPACK, applied after, takes the ops the delegate refused (at VERBOSE, on stderr)
        out.verbose("Created TensorFlow Lite XNNPACK delegate for CPU.")
        remaining = parts + left
        out.verbose(
            f"Replacing {left} out of {remaining} node(s) with delegate "
            f"(TfLiteXNNPackDelegate) node, yielding {left} partitions for subgraph 0."
        )
