"""Parse the stdout of TFLite's `benchmark_model` tool (pure text in, dataclass out).

Why a parser of our own: the tool has no machine-readable output that every
release supports, and its summary line changed form across releases:

- current (TF >= 2.2 / LiteRT):
  `Inference timings in us: Init: I, First inference: F, Warmup (avg): W, Inference (avg): A`
- older (TF 1.x - 2.1; the Android benchmark app even later):
  `Average inference timings in us: Warmup: W, Init: I, Inference: A`
  (some releases say `no stats:` where others say `Inference:`).

Each timed phase also logs one stats line from tensorflow's `Stat<int64>`:
`count=N first=F curr=C min=m max=M avg=A std=S` (or `count=N curr=C(all same)`
when every run took the same time). Lines may carry an `INFO: ` prefix
(newer releases) or a glog-style `I0101 12:00:00.0 123 file.cc:42] ` prefix.
With `--enable_op_profiling=true` the tool appends tables, each introduced by a
`===== Title =====` banner and a header row of `[column]` cells; they are read
by header name so that added or removed columns ([start] went away) don't matter.

Newer releases append `p5=P median=M p95=Q` to the stats line
(StatWithPercentiles); the median is then the tool's own per-invocation median.

LiteRT's CompiledModel tool (litert/tools) prints the same stats lines but, instead of
the `Inference timings` line, a block of milliseconds (form "compiled_model"):
`========== BENCHMARK RESULTS ==========`, `Model initialization: X ms`,
`Warmup (first): X ms`, `Warmup (avg): X ms (N runs)`, `Inference (avg): X ms (N runs)`,
`Inference (min|max): X ms`, `Inference (std): X`.

Delegates announce what they took: `Replacing N out of M node(s) with delegate
(NAME) node, yielding P partitions for the whole graph.` (older releases:
`Replacing N node(s) with delegate (NAME) node, yielding P partitions.`, no
M; newer ones say `for subgraph S`). When GPU or NNAPI take part of a graph,
XNNPACK is applied to the rest and prints a second such line: every line is
kept, in order, so the requested delegate's and the fallback's are told apart.
The GPU delegate says which API it initialised (`Initialized OpenCL-based API.`
or, when OpenCL is missing, `Initialized OpenGL-based API.`): `gpu_backend`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

from latbench.devices.measure import Measurement

_PREFIX = re.compile(
    r"^\s*(?:(?:INFO|WARN|WARNING|ERROR|VERBOSE):\s*"  # TFLITE_LOG in newer releases
    r"|[IWEF]\d{4}\s+\S+\s+\d+\s+\S+\]\s*"  # glog
    r"|\d\d-\d\d\s+[\d:.]+\s+\d+\s+\d+\s+[VDIWEF]\s+\S+\s*:\s*)"
)  # logcat (Android app)
_NUM = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_CURRENT = re.compile(
    rf"Inference timings in us:\s*Init:\s*(?P<init>{_NUM}),\s*First inference:\s*(?P<first>{_NUM}),"
    rf"\s*Warmup \(avg\):\s*(?P<warmup>{_NUM}),\s*Inference \(avg\):\s*(?P<avg>{_NUM})"
)
_LEGACY = re.compile(r"Average inference timings in us:(?P<body>.*)")
_LEGACY_FIELD = re.compile(rf"(?P<name>[A-Za-z][A-Za-z ()]*?):\s*(?P<val>{_NUM})")
_STATS = re.compile(r"^count=\d+")
_KV = re.compile(rf"(?P<k>[A-Za-z][A-Za-z0-9_]*)=(?P<v>{_NUM})")
_BANNER = re.compile(r"^=+\s*(?P<title>.*?)\s*=+$")
_RUNNING = re.compile(r"Running benchmark for at least (?P<n>\d+) iterations")
_PCTL = re.compile(r"^p(?P<q>\d{1,2}(?:\.\d+)?)$")
_REPLACING = re.compile(
    r"Replacing (?P<n>\d+)(?: out of (?P<m>\d+))? node\(s\) with delegate \((?P<name>[^)]*)\)"
    r"(?: node)?, yielding (?P<p>\d+) partitions(?: for subgraph (?P<sg>\d+))?"
)
_GPU_API = re.compile(r"Initialized (?P<api>OpenCL|OpenGL|Vulkan|Metal|WebGPU)[- ]based API", re.I)
# BenchmarkLoggingListener::OnBenchmarkEnd (tflite/tools/benchmark/benchmark_model.cc): always
# the max-RSS delta; the periodic peak only with --report_peak_memory_footprint
_MEM_DELTA = re.compile(
    r"Memory footprint delta from the start of the tool \(MB\): "
    r"init=(?P<init>[-+0-9.eE]+) overall=(?P<overall>[-+0-9.eE]+)"
)
_MEM_PEAK = re.compile(
    r"Overall peak memory footprint \(MB\) via periodic monitoring: (?P<peak>[-+0-9.eE]+)"
)
_CM_BANNER = re.compile(r"=+\s*BENCHMARK RESULTS\s*=+")
_CM_FIELD = re.compile(
    rf"(?P<k>Model initialization|Warmup \(first\)|Warmup \(avg\)|Inference \((?:avg|min|max|std)\))"
    rf":\s*(?P<v>{_NUM})(?:\s*ms)?(?:\s*\((?P<n>\d+) runs\))?"
)
_NOT_DELEGATED = re.compile(
    r"delegate is explicitly applied, the model graph will not be executed", re.I
)


class BenchmarkOutputError(ValueError):
    """The text is not benchmark_model output we understand (garbage, crash, truncation)."""


@dataclass(frozen=True)
class RunStats:
    """One `count= first= curr= min= max= avg= std=` line, in microseconds."""

    count: int
    first: float | None
    curr: float | None
    min: float
    max: float
    avg: float
    std: float
    percentiles: dict[float, float] = field(default_factory=dict)  # q -> us, where printed

    @classmethod
    def parse(cls, line: str) -> "RunStats":
        kv = {m["k"]: float(m["v"]) for m in _KV.finditer(line)}
        count = int(kv.get("count", 0))
        pct = {}
        for k, v in kv.items():
            m = _PCTL.match(k)
            if m:
                pct[float(m["q"])] = v
        if "median" in kv:
            pct[50.0] = kv["median"]
        if "all same" in line or ("avg" not in kv and "curr" in kv):
            c = kv.get("curr", 0.0)
            return cls(count, c, c, c, c, c, 0.0, pct)
        if count == 0:
            return cls(0, None, None, 0.0, 0.0, 0.0, 0.0, pct)
        missing = [k for k in ("min", "max", "avg", "std") if k not in kv]
        if missing:
            raise BenchmarkOutputError(f"stats line lacks {missing}: {line.strip()!r}")
        return cls(
            count, kv.get("first"), kv.get("curr"), kv["min"], kv["max"], kv["avg"], kv["std"], pct
        )


@dataclass(frozen=True)
class OpTable:
    """One op-profiling table: its banner title, column names, rows as dicts."""

    title: str
    section: str  # e.g. "Profiling Info for Benchmark Initialization" or ""
    columns: tuple[str, ...]
    rows: tuple[dict[str, str], ...]

    def column(self, name: str, as_float: bool = True) -> list[Any]:
        vals = [r.get(name, "") for r in self.rows]
        return [_to_float(v) for v in vals] if as_float else vals


@dataclass(frozen=True)
class Delegation:
    """What one delegate took: nodes replaced of the graph's total (None where the release does not say)."""

    name: str
    nodes: int
    total: int | None
    partitions: int
    subgraph: int | None = None

    @property
    def fraction(self) -> float | None:
        return self.nodes / self.total if self.total else None


@dataclass(frozen=True)
class BenchmarkResult:
    """What one benchmark_model invocation printed, times in microseconds."""

    init_us: float
    first_us: float | None
    warmup_avg_us: float | None
    inference_avg_us: float
    warmup: RunStats | None
    inference: RunStats | None
    form: str  # "current" | "legacy"
    op_tables: tuple[OpTable, ...] = ()
    model_size_mb: float | None = None
    delegations: tuple[Delegation, ...] = ()
    not_delegated: bool = False  # the tool said the applied delegate takes nothing
    gpu_backend: str | None = None  # "opencl" | "opengl" | ...: what the GPU delegate initialised
    source: str = "text"  # "text" | "result_proto": where the timed statistics came from
    memory: dict[str, float] = field(default_factory=dict)  # from the result proto, where given

    @property
    def median_us(self) -> float | None:
        """The tool's own median of this invocation's timed runs (None where it printed none)."""
        s = self.inference
        return s.percentiles.get(50.0) if s is not None else None

    def with_proto(self, proto: dict[str, Any]) -> "BenchmarkResult":
        """The same run with its statistics from the tool's result proto (result_proto.py).

        The proto is the tool's own record (median, p5, p95 in ms); the text keeps what the
        proto has no field for (delegate lines, op tables). Its avg must agree with the text's.
        """
        lat = proto["latency"]
        if "avg_ms" not in lat:
            raise BenchmarkOutputError("the result proto has no avg_ms")
        avg = lat["avg_ms"] * 1e3
        if self.inference_avg_us and abs(avg - self.inference_avg_us) > 0.01 * avg + 10:
            raise BenchmarkOutputError(
                f"the result proto's avg {avg:.1f} us disagrees with the printed "
                f"{self.inference_avg_us:.1f} us: a stale or foreign result file"
            )
        pct = dict(self.inference.percentiles) if self.inference else {}
        for q, k in ((5.0, "p5_ms"), (50.0, "median_ms"), (95.0, "p95_ms")):
            if k in lat:
                pct[q] = lat[k] * 1e3
        count = int(proto["misc"].get("num_runs", self.inference.count if self.inference else 0))
        inf = RunStats(
            count,
            self.inference.first if self.inference else None,
            self.inference.curr if self.inference else None,
            lat.get("min_ms", 0.0) * 1e3,
            lat.get("max_ms", 0.0) * 1e3,
            avg,
            lat.get("stddev_ms", 0.0) * 1e3,
            pct,
        )
        return replace(
            self,
            inference=inf,
            inference_avg_us=avg,
            init_us=lat.get("init_ms", self.init_us / 1e3) * 1e3,
            source="result_proto",
            memory={**self.memory, **proto.get("memory", {})},
        )

    def table(self, title: str, section: str | None = None) -> OpTable | None:
        """The first op table whose banner title contains `title`."""
        for t in self.op_tables:
            if title.lower() in t.title.lower() and (
                section is None or section.lower() in t.section.lower()
            ):
                return t
        return None

    def to_measurement(self) -> Measurement:
        """Latency in ms under latbench's Measurement.

        benchmark_model prints no per-run samples, so the median is its printed
        median/p50 when present, else the mean; p10/p90 come from printed
        percentiles, else a normal approximation (mean +- 1.2816 std) clipped
        to [min, max]. ci_rel is that of the mean: 1.96 std / sqrt(n) / mean.
        """
        s = self.inference
        avg = self.inference_avg_us
        if s is None or s.count == 0:
            raise BenchmarkOutputError("no timed runs were reported (count=0)")
        pct = s.percentiles
        median = pct.get(50.0, avg)
        spread = "printed" if (10.0 in pct and 90.0 in pct) else "normal-approx"
        p10 = pct.get(10.0, max(s.min, avg - 1.2816 * s.std))
        p90 = pct.get(90.0, min(s.max, avg + 1.2816 * s.std))
        ci = 1.96 * s.std / math.sqrt(s.count) / avg if avg > 0 else math.inf
        extra: dict[str, Any] = {
            "source": "benchmark_model",
            "output_form": self.form,
            "init_ms": round(self.init_us / 1e3, 4),
            "min_ms": s.min / 1e3,
            "max_ms": s.max / 1e3,
            "spread": spread,
            "median_from": "p50" if 50.0 in pct else "mean",
        }
        if self.first_us is not None:
            extra["first_ms"] = self.first_us / 1e3
        if self.warmup_avg_us is not None:
            extra["warmup_avg_ms"] = self.warmup_avg_us / 1e3
        for d in self.delegations:
            extra.setdefault("delegates", []).append(
                {"name": d.name, "nodes": d.nodes, "total": d.total, "partitions": d.partitions}
            )
        return Measurement(
            median_ms=median / 1e3,
            p10_ms=p10 / 1e3,
            p90_ms=p90 / 1e3,
            std_ms=s.std / 1e3,
            mean_ms=avg / 1e3,
            runs=s.count,
            ci_rel=ci,
            extra=extra,
        )


def _to_float(v: str) -> float:
    v = v.strip().rstrip("%")
    try:
        return float(v)
    except ValueError:
        return math.nan


def _strip(line: str) -> str:
    return _PREFIX.sub("", line.rstrip("\r\n"))


def _parse_tables(lines: list[str]) -> tuple[OpTable, ...]:
    """Tables: banner line, then a header of `[col]` cells, then tab-separated rows."""
    tables: list[OpTable] = []
    section = ""
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.endswith(":") and ("Profiling Info" in line or "Operator-wise" in line):
            section = line.rstrip(":")
        m = _BANNER.match(line)
        if m and i + 1 < len(lines) and "[" in lines[i + 1]:
            header = lines[i + 1]
            cols = tuple(c.strip("[] ") for c in re.findall(r"\[[^\]]+\]", header))
            rows = []
            j = i + 2
            while j < len(lines):
                raw = lines[j]
                if (
                    not raw.strip()
                    or _BANNER.match(raw.strip())
                    or "\t" not in raw
                    and "  " not in raw.strip()
                ):
                    break
                cells = (
                    [c.strip() for c in re.split(r"\t+", raw.strip())]
                    if "\t" in raw
                    else raw.split()
                )
                if len(cells) < len(cols):
                    break
                if len(cells) > len(cols):  # a name with spaces: glue the tail back together
                    cells = cells[: len(cols) - 1] + [" ".join(cells[len(cols) - 1 :])]
                rows.append(dict(zip(cols, cells)))
                j += 1
            tables.append(OpTable(m["title"], section, cols, tuple(rows)))
            i = j
            continue
        i += 1
    return tuple(tables)


def parse_benchmark_output(text: str) -> BenchmarkResult:
    """Parse a whole benchmark_model run; raises BenchmarkOutputError on anything else."""
    if not text or not text.strip():
        raise BenchmarkOutputError("benchmark_model printed nothing")
    lines = [_strip(ln) for ln in text.splitlines()]
    stats: list[tuple[int | None, RunStats]] = []
    expected: int | None = None
    summary = None
    form = ""
    model_size = None
    delegations: list[Delegation] = []
    not_delegated = False
    gpu_backend = None
    memory: dict[str, float] = {}  # the same keys as the result proto's MemoryMetrics
    block: dict[str, tuple[float, int | None]] = {}
    in_block = False
    for ln in lines:
        s = ln.strip()
        m = _REPLACING.search(s)
        if m:
            delegations.append(
                Delegation(
                    m["name"],
                    int(m["n"]),
                    int(m["m"]) if m["m"] else None,
                    int(m["p"]),
                    int(m["sg"]) if m["sg"] else None,
                )
            )
            continue
        m = _GPU_API.search(s)
        if m:
            gpu_backend = m["api"].lower()
            continue
        if _NOT_DELEGATED.search(s):
            not_delegated = True
            continue
        if _CM_BANNER.search(s):
            in_block, block = True, {}
            continue
        if in_block:
            m = _CM_FIELD.search(s)
            if m:
                block[m["k"]] = (float(m["v"]), int(m["n"]) if m["n"] else None)
                continue
        m = _RUNNING.search(s)
        if m:
            expected = int(m["n"])
            continue
        if _STATS.match(s):
            stats.append((expected, RunStats.parse(s)))
            continue
        m = _CURRENT.search(s)
        if m:
            summary, form = {k: float(v) for k, v in m.groupdict().items()}, "current"
            continue
        m = _LEGACY.search(s)
        if m and summary is None:
            f = {
                x["name"].strip().lower(): float(x["val"])
                for x in _LEGACY_FIELD.finditer(m["body"])
            }
            avg = f.get("inference", f.get("no stats"))
            if avg is None or "init" not in f:
                raise BenchmarkOutputError(f"cannot read the legacy summary line: {s!r}")
            summary, form = (
                {"init": f["init"], "first": None, "warmup": f.get("warmup"), "avg": avg},
                "legacy",
            )
            continue
        if s.startswith("The input model file size (MB):"):
            model_size = _to_float(s.split(":", 1)[1])
            continue
        m = _MEM_DELTA.search(s)
        if m:
            init, overall = _to_float(m["init"]), _to_float(m["overall"])
            if all(math.isfinite(x) and 0 <= x < 1e7 for x in (init, overall)):
                memory["init_footprint_kb"] = init * 1024
                memory["overall_footprint_kb"] = overall * 1024
            continue
        m = _MEM_PEAK.search(s)
        if m:
            peak = _to_float(m["peak"])
            if math.isfinite(peak) and 0 < peak < 1e7:
                memory["peak_mem_mb"] = peak
    if summary is None and "Inference (avg)" in block and "Model initialization" in block:
        summary = {
            "init": block["Model initialization"][0] * 1e3,
            "first": block["Warmup (first)"][0] * 1e3 if "Warmup (first)" in block else None,
            "warmup": block["Warmup (avg)"][0] * 1e3 if "Warmup (avg)" in block else None,
            "avg": block["Inference (avg)"][0] * 1e3,
        }
        form = "compiled_model"
        if not stats:  # no stats line: the block's min/max/std stand in for it
            n = block["Inference (avg)"][1] or 0
            get = lambda k: block.get(f"Inference ({k})", (0.0, None))[0] * 1e3  # noqa: E731
            stats.append(
                (n, RunStats(n, None, None, get("min"), get("max"), summary["avg"], get("std")))
            )
    if summary is None:
        tail = " | ".join(x.strip() for x in lines if x.strip())[-300:]
        raise BenchmarkOutputError(
            "no 'Inference timings in us', 'Average inference timings in us' or "
            "'BENCHMARK RESULTS' summary found; the tool failed or its output is not "
            f"benchmark_model's. Output tail: {tail!r}"
        )
    # The timed phase is the last stats line before the summary; warm-up the one before it.
    warm = stats[-2][1] if len(stats) >= 2 else None
    inf = stats[-1][1] if stats else None
    # the CompiledModel block rounds to 10 us
    slack = 0.01 * summary["avg"] + (10 if form == "compiled_model" else 1)
    if inf is not None and inf.count and summary["avg"] and abs(inf.avg - summary["avg"]) > slack:
        raise BenchmarkOutputError(
            f"stats line avg={inf.avg} disagrees with the summary's {summary['avg']}: mixed or corrupt output"
        )
    if form == "compiled_model" and inf is not None and inf.count:
        summary["avg"] = inf.avg  # the stats line's microseconds, not the block's rounded ms
    return BenchmarkResult(
        init_us=summary["init"],
        first_us=summary["first"],
        warmup_avg_us=summary["warmup"],
        inference_avg_us=summary["avg"],
        warmup=warm,
        inference=inf,
        form=form,
        op_tables=_parse_tables(lines),
        model_size_mb=model_size,
        delegations=tuple(delegations),
        not_delegated=not_delegated,
        gpu_backend=gpu_backend,
        memory=memory,
    )


@dataclass(frozen=True)
class OpProfileRow:
    """One row of the classic tool's "Operator-wise Profiling Info" Run Order table.

    The interpreter's own nodes are named `[output tensors]:N` (N: the node index, which is
    the operator's index in subgraph 0 for the model's own operators); a delegate's kernel is
    one such node whose type names the delegate (`TfLiteXNNPackDelegate`), and the operators
    the delegate ran inside it follow as `Delegate/NAME:i` rows (XNNPACK's own operator names,
    in run order; their time is inside the kernel node's).
    """

    node_type: str
    name: str
    first_ms: float
    avg_ms: float
    node: int | None  # the interpreter's node index; None for a delegate's inner operator
    delegated: bool  # an operator a delegate reported from inside its kernel
    kernel: bool  # a delegate's kernel node (its time holds its operators')


_NODE = re.compile(r":(\d+)$")


def operator_profile(result: BenchmarkResult) -> list[OpProfileRow]:
    """The per-operator rows of a run with `--enable_op_profiling=true`, in run order; a
    BenchmarkOutputError when the run printed no such table or a number is not a time."""
    t = result.table("Run Order", "Operator-wise")
    if t is None:
        raise BenchmarkOutputError(
            "no 'Operator-wise Profiling Info' Run Order table (a classic benchmark_model run "
            "with --enable_op_profiling=true prints one)"
        )
    out = []
    for r in t.rows:
        name, typ = r.get("Name", ""), r.get("node type", "")
        first, avg = _to_float(r.get("first", "")), _to_float(r.get("avg ms", ""))
        if not (math.isfinite(avg) and 0 <= avg < 1e6) or not name:
            raise BenchmarkOutputError(f"operator row {name or typ!r}: avg ms {r.get('avg ms')!r}")
        m = _NODE.search(name)
        delegated = name.startswith("Delegate/")
        out.append(OpProfileRow(
            typ, name, first if math.isfinite(first) else avg, avg,
            int(m.group(1)) if m and not delegated else None, delegated,
            not delegated and "delegate" in typ.lower(),
        ))  # fmt: skip
    return out
