"""The two tools called `benchmark_model`: name -> how to recognise it and which flags it takes.

- "classic": TFLite's tool (tflite/tools/benchmark in the LiteRT repository, formerly
  tensorflow/lite/tools/benchmark), the binary of the "Interpreter API" measurement page. It
  takes `--use_xnnpack`, `--use_gpu`, `--use_nnapi`, `--enable_op_profiling` and prints
  `Inference timings in us: ...`.
- "compiled_model": LiteRT's CompiledModel tool (litert/tools/benchmark_litert_model*),
  which takes `--use_cpu`, `--use_gpu`, `--use_npu`, `--use_profiler` (no XNNPACK or NNAPI
  switch: CPU means XNNPACK there) and prints a `BENCHMARK RESULTS` block in ms.

Both share BenchmarkModel's run flags (`--num_threads --warmup_runs --warmup_min_secs
--num_runs --min_secs --max_secs`) and its `count= ... avg= std= [p5= median= p95=]` stats
lines; recent builds of both take `--result_file_path` (a BenchmarkResult proto,
result_proto.py). Which one was pushed is read from its `--help` (the flag list), else
from its first run's output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class BenchmarkTool:
    name: str
    description: str
    delegate_flags: dict[str, tuple[str, ...]]  # profile delegate -> flags; absent: unsupported
    help_flags: tuple[str, ...]  # flags only this tool lists in --help
    output_form: str  # the parser's `form` for this tool's summary
    gpu_cache_flags: bool = False  # takes --delegate_serialize_dir/_token (GPU kernel cache)

    def flags_for(self, delegate: str) -> list[str]:
        if delegate not in self.delegate_flags:
            raise KeyError(delegate)
        return list(self.delegate_flags[delegate])


TOOLS: dict[str, BenchmarkTool] = {
    "classic": BenchmarkTool(
        "classic",
        "TFLite's benchmark_model (tflite/tools/benchmark): Interpreter API, delegates by flag",
        {
            "cpu": ("--use_xnnpack=true",),
            "xnnpack": ("--use_xnnpack=true",),
            "gpu": ("--use_gpu=true",),
            "nnapi": ("--use_nnapi=true",),
        },
        help_flags=("--use_xnnpack", "--use_nnapi", "--enable_op_profiling"),
        output_form="current",
        gpu_cache_flags=True,
    ),
    "compiled_model": BenchmarkTool(
        "compiled_model",
        "LiteRT's CompiledModel benchmark_model (litert/tools): accelerators by flag, no NNAPI",
        {
            "cpu": ("--use_cpu=true", "--use_gpu=false", "--use_npu=false"),
            "xnnpack": ("--use_cpu=true", "--use_gpu=false", "--use_npu=false"),
            # CPU stays on, as the tool's default: ops the GPU refuses fall back to XNNPACK
            "gpu": ("--use_gpu=true", "--use_npu=false"),
        },
        help_flags=("--use_npu", "--use_cpu", "--use_profiler", "--require_full_delegation"),
        output_form="compiled_model",
    ),
}

_VERSION = re.compile(
    r"(?:LiteRT|TensorFlow Lite|TFLite)[^\n]*?\bversion[:\s]+v?([0-9][\w.\-]*)", re.I
)


@dataclass(frozen=True)
class ToolInfo:
    """What `--help` said: which tool, whether it writes a result proto, its version if printed."""

    kind: str | None  # a TOOLS key, or None when --help did not tell
    result_file: bool
    version: str  # "unknown" where the tool does not print one (neither does today)


def identify(help_text: str) -> ToolInfo:
    """Which tool printed this `--help` text (flag names are matched as `--name=` / `--name `)."""

    def lists(flag: str) -> bool:
        return re.search(re.escape(flag) + r"(?:[=\s]|$)", help_text, flags=re.M) is not None

    kind = None
    for name, tool in TOOLS.items():
        if any(lists(f) for f in tool.help_flags):
            kind = name
            break
    m = _VERSION.search(help_text)
    return ToolInfo(kind, lists("--result_file_path"), m[1] if m else "unknown")


def kind_of_output(form: str) -> str | None:
    """The tool that prints a summary of this parser form ("legacy" is the classic tool's)."""
    if form == "legacy":
        return "classic"
    for name, tool in TOOLS.items():
        if tool.output_form == form:
            return name
    return None
