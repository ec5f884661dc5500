"""How the stand-in benchmark_model writes its log: on stderr, in the pushed tool's form.

Both real tools log through their logging macros to stderr (TFLITE_LOG in the classic tool,
LITERT_LOG in the CompiledModel one); stdout stays empty. The classic tool closes with
`Inference timings in us: ...`, the CompiledModel tool with a `BENCHMARK RESULTS` block in
milliseconds (litert/tools/benchmark_litert_model.h).
"""

from __future__ import annotations

import sys


class StandinLog:
    def __init__(self, kind: str):
        self.kind = kind

    def _line(self, level: str, s: str) -> None:
        print(f"{level}: {s}", file=sys.stderr, flush=True)

    def raw(self, s: str) -> None:
        print(s, file=sys.stderr, end="", flush=True)

    def info(self, s: str) -> None:
        self._line("INFO", s)

    def verbose(self, s: str) -> None:
        self._line("VERBOSE", s)

    def warn(self, s: str) -> None:
        self._line("WARNING" if self.kind == "compiled_model" else "WARN", s)

    def error(self, s: str) -> None:
        self._line("ERROR", s)

    def summary(self, init_us: int, warm: list[int], runs: list[int]) -> None:
        w_avg = sum(warm) / len(warm) if warm else 0
        r_avg = sum(runs) / len(runs) if runs else 0
        if self.kind == "classic":
            self.info(
                f"Inference timings in us: Init: {init_us}, First inference: "
                f"{warm[0] if warm else 0}, Warmup (avg): {w_avg:g}, Inference (avg): {r_avg:g}"
            )
            return
        n = len(runs)
        std = (max(sum(x * x for x in runs) / n - r_avg**2, 0.0) ** 0.5) if n else 0.0
        where = "[benchmark_litert_model.h:63]"
        for s in (
            "",
            "========== BENCHMARK RESULTS ==========",
            f"Model initialization: {init_us / 1e3:.2f} ms",
            f"Warmup (first):       {(warm[0] if warm else 0) / 1e3:.2f} ms",
            f"Warmup (avg):         {w_avg / 1e3:.2f} ms ({len(warm)} runs)",
            f"Inference (avg):      {r_avg / 1e3:.2f} ms ({n} runs)",
            f"Inference (min):      {min(runs, default=0) / 1e3:.2f} ms",
            f"Inference (max):      {max(runs, default=0) / 1e3:.2f} ms",
            f"Inference (std):      {std / 1e3:.2f}",
            "======================================",
        ):
            self.info(f"{where} {s}")

    def memory(self, mem: dict) -> None:
        """BenchmarkLoggingListener::OnBenchmarkEnd's memory lines (the CompiledModel tool is
        assumed to print the same: it runs BenchmarkModel's listeners)."""
        self.info(
            "Note: as the benchmark tool itself affects memory footprint, the following is only "
            "APPROXIMATE to the actual memory footprint of the model at runtime. Take the "
            "information at your discretion."
        )
        self.info(
            "Memory footprint delta from the start of the tool (MB): "
            f"init={mem['init_footprint_kb'] / 1024:g} overall={mem['overall_footprint_kb'] / 1024:g}"
        )
        if mem.get("peak_mem_mb"):
            self.info(
                f"Overall peak memory footprint (MB) via periodic monitoring: {mem['peak_mem_mb']:g}"
            )
