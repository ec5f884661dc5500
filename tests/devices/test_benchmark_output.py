"""benchmark_model output parser: fixtures written from the documented format of several releases."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from latbench.devices.benchmark_output import BenchmarkOutputError, RunStats, parse_benchmark_output

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "benchmark_model"


def load(name: str) -> str:
    return (FIX / name).read_text()


def test_current_form_with_info_prefix():
    r = parse_benchmark_output(load("litert_current_info_prefix.txt"))
    assert r.form == "current"
    assert (r.init_us, r.first_us, r.warmup_avg_us, r.inference_avg_us) == (3412, 611, 289.7, 283.9)
    assert r.warmup.count == 1720 and r.inference.count == 30
    assert (r.inference.min, r.inference.max, r.inference.std) == (271, 322, 9)
    assert r.model_size_mb == pytest.approx(0.0215)
    m = r.to_measurement()
    assert m.runs == 30
    assert m.median_ms == pytest.approx(0.2839)
    assert m.mean_ms == pytest.approx(0.2839)
    assert m.std_ms == pytest.approx(0.009)
    assert m.ci_rel == pytest.approx(1.96 * 9 / math.sqrt(30) / 283.9)
    assert 0.271 <= m.p10_ms < m.median_ms < m.p90_ms <= 0.322
    assert m.extra["init_ms"] == pytest.approx(3.412) and m.extra["first_ms"] == pytest.approx(
        0.611
    )
    assert m.extra["spread"] == "normal-approx" and m.extra["median_from"] == "mean"


def test_current_form_without_prefix():
    r = parse_benchmark_output(load("tf2_4_current_no_prefix.txt"))
    assert r.form == "current" and r.inference_avg_us == 23208.5 and r.inference.count == 50
    assert r.warmup.first == 48122


@pytest.mark.parametrize(
    "name,avg,init,warm",
    [
        ("tf1_14_legacy_no_stats.txt", 88102.6, 5207, 89540.2),
        ("android_app_logcat_legacy.txt", 18634.9, 8100, 18890.5),
        ("tf1_13_with_start_column.txt", 137722, 4452, 139420),
    ],
)
def test_legacy_forms(name, avg, init, warm):
    r = parse_benchmark_output(load(name))
    assert r.form == "legacy"
    assert (r.inference_avg_us, r.init_us, r.warmup_avg_us, r.first_us) == (avg, init, warm, None)
    assert r.inference.avg == avg
    assert r.to_measurement().runs == r.inference.count


def test_all_same_and_single_run():
    r = parse_benchmark_output(load("single_run_all_same.txt"))
    assert r.warmup.count == 1 and r.warmup.avg == 1503
    assert r.inference.count == 5 and r.inference.std == 0 and r.inference.min == 1200
    m = r.to_measurement()
    assert m.median_ms == m.p10_ms == m.p90_ms == pytest.approx(1.2) and m.ci_rel == 0


def test_op_profiling_tables_by_header():
    r = parse_benchmark_output(load("op_profiling.txt"))
    assert (
        r.inference_avg_us == 996.2 and r.inference.count == 40
    )  # the Timings line is not a phase
    init = r.table("Run Order", section="Initialization")
    assert init.column("node type", as_float=False) == [
        "ModifyGraphWithDelegate",
        "AllocateTensors",
    ]
    run = r.table("Run Order", section="Regular")
    assert "start" not in run.columns and run.columns[0] == "node type"
    assert run.column("node type", as_float=False) == ["CONV_2D", "DEPTHWISE_CONV_2D", "MEAN"]
    assert run.column("avg ms") == pytest.approx([0.604, 0.296, 0.090])
    assert run.column("%") == pytest.approx([61.0, 29.9, 9.1])
    assert run.rows[0]["Name"] == "[model/conv/Relu6;model/bn/FusedBatchNormV3]:0"
    summ = r.table("Summary by node type")
    assert summ.column("count") == [1, 1, 1]


def test_old_table_with_start_column():
    r = parse_benchmark_output(load("tf1_13_with_start_column.txt"))
    t = r.table("Run Order")
    assert t.columns[:3] == ("node type", "start", "first")
    assert t.column("avg ms") == pytest.approx([4.269, 2.150])


def test_percentiles_when_printed():
    s = RunStats.parse(
        "count=100 first=10 curr=9 min=8 max=20 avg=10 std=2 p5=8.5 p10=8.8 median=9.6 p90=12 p95=14"
    )
    assert s.percentiles == {5.0: 8.5, 10.0: 8.8, 50.0: 9.6, 90.0: 12.0, 95.0: 14.0}
    text = (
        "Running benchmark for at least 100 iterations\n"
        "count=100 first=10 curr=9 min=8 max=20 avg=10 std=2 p10=8.8 median=9.6 p90=12\n"
        "Inference timings in us: Init: 5, First inference: 10, Warmup (avg): 10, Inference (avg): 10\n"
    )
    m = parse_benchmark_output(text).to_measurement()
    assert (m.median_ms, m.p10_ms, m.p90_ms) == pytest.approx((0.0096, 0.0088, 0.012))
    assert m.extra["spread"] == "printed" and m.extra["median_from"] == "p50"


@pytest.mark.parametrize("name", ["garbage.txt", "crashed_after_warmup.txt"])
def test_garbage_and_crashes_raise(name):
    with pytest.raises(BenchmarkOutputError, match="no 'Inference timings"):
        parse_benchmark_output(load(name))


@pytest.mark.parametrize(
    "text", ["", "   \n", "\x00\x01\xff binary junk", "Inference timings in us: Init: x"]
)
def test_more_garbage(text):
    with pytest.raises(BenchmarkOutputError):
        parse_benchmark_output(text)


def test_inconsistent_stats_rejected():
    text = (
        "count=10 first=1 curr=1 min=1 max=3 avg=2 std=1\n"
        "Inference timings in us: Init: 5, First inference: 10, Warmup (avg): 10, Inference (avg): 900\n"
    )
    with pytest.raises(BenchmarkOutputError, match="disagrees"):
        parse_benchmark_output(text)


def test_zero_runs_cannot_become_a_measurement():
    text = (
        "count=0\n"
        "Inference timings in us: Init: 5, First inference: 0, Warmup (avg): 0, Inference (avg): 0\n"
    )
    with pytest.raises(BenchmarkOutputError, match="count=0"):
        parse_benchmark_output(text).to_measurement()


def test_a_partly_delegated_graph_reports_its_fraction():
    r = parse_benchmark_output(load("gpu_partial_delegate.txt"))
    (d,) = r.delegations
    assert (d.name, d.nodes, d.total, d.partitions) == ("TfLiteGpuDelegateV2", 9, 12, 3)
    assert d.fraction == 0.75 and not r.not_delegated
    assert r.to_measurement().extra["delegates"] == [
        {"name": "TfLiteGpuDelegateV2", "nodes": 9, "total": 12, "partitions": 3}
    ]


def test_older_delegate_wording_has_no_total_and_no_delegation_is_noticed():
    old = load("gpu_partial_delegate.txt").replace(
        "Replacing 9 out of 12 node(s) with delegate (TfLiteGpuDelegateV2) node, "
        "yielding 3 partitions for the whole graph.",
        "Replacing 9 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 3 partitions.",
    )
    (d,) = parse_benchmark_output(old).delegations
    assert (d.nodes, d.total, d.fraction) == (9, None, None)
    none = load("gpu_partial_delegate.txt").replace(
        "INFO: Replacing 9 out of 12 node(s) with delegate (TfLiteGpuDelegateV2) node, "
        "yielding 3 partitions for the whole graph.",
        "WARN: Though GPU delegate is explicitly applied, "
        "the model graph will not be executed by the delegate.",
    )
    r = parse_benchmark_output(none)
    assert r.not_delegated and not r.delegations


def test_the_compiled_model_tools_results_block():
    r = parse_benchmark_output(load("litert_compiled_model.txt"))
    assert r.form == "compiled_model"
    assert r.init_us == pytest.approx(3410) and r.first_us == pytest.approx(610)
    assert r.inference_avg_us == 283.9, "the stats line's microseconds, not the block's 0.28 ms"
    assert r.inference.count == 30 and r.median_us == 281
    m = r.to_measurement()
    assert m.median_ms == pytest.approx(0.281) and m.extra["median_from"] == "p50"


def test_the_compiled_model_block_alone_still_parses():
    text = "\n".join(
        ln for ln in load("litert_compiled_model.txt").splitlines() if "count=" not in ln
    )
    r = parse_benchmark_output(text)
    assert r.form == "compiled_model" and r.inference_avg_us == pytest.approx(280)
    assert r.inference.count == 30 and r.inference.min == pytest.approx(270)


def test_the_new_stats_line_carries_the_tools_median_and_p5_p95():
    s = RunStats.parse(
        "count=30 first=290 curr=280 min=271 max=322 avg=283.9 std=9 p5=273 median=281 p95=301"
    )
    assert s.percentiles == {5.0: 273, 50.0: 281, 95.0: 301}


def test_a_partial_gpu_run_keeps_both_replacing_lines_and_the_gpu_api():
    r = parse_benchmark_output(load("classic_gpu_partial_with_xnnpack_fallback.txt"))
    gpu, xnn = r.delegations
    assert (gpu.name, gpu.nodes, gpu.total, gpu.subgraph) == ("TfLiteGpuDelegateV2", 9, 14, None)
    assert (xnn.name, xnn.nodes, xnn.total, xnn.subgraph) == ("TfLiteXNNPackDelegate", 4, 8, 0)
    assert r.gpu_backend == "opencl"


def test_the_result_proto_replaces_the_texts_statistics():
    from latbench.devices.result_proto import encode_result_proto, parse_result_proto

    r = parse_benchmark_output(load("litert_current_info_prefix.txt"))
    proto = parse_result_proto(
        encode_result_proto(
            {
                "avg_ms": 0.2839,
                "median_ms": 0.2801,
                "p5_ms": 0.272,
                "p95_ms": 0.31,
                "min_ms": 0.271,
            },
            misc={"num_runs": 30},
        )
    )
    p = r.with_proto(proto)
    assert p.source == "result_proto" and p.median_us == pytest.approx(280.1, rel=1e-5)
    assert p.inference.percentiles[95.0] == pytest.approx(310, rel=1e-5)
    stale = parse_result_proto(encode_result_proto({"avg_ms": 9.0}))
    with pytest.raises(BenchmarkOutputError, match="stale or foreign"):
        r.with_proto(stale)


def test_memory_lines_are_read_as_the_result_protos_memory_fields():
    """benchmark_model.cc's OnBenchmarkEnd: the max-RSS delta always, the periodic peak with
    --report_peak_memory_footprint."""
    text = "\n".join(
        [
            "INFO: count=50 first=120 curr=100 min=98 max=130 avg=101.5 std=4",
            "INFO: Inference timings in us: Init: 5000, First inference: 120, "
            "Warmup (avg): 110, Inference (avg): 101.5",
            "INFO: Note: as the benchmark tool itself affects memory footprint, the following is "
            "only APPROXIMATE to the actual memory footprint of the model at runtime.",
            "INFO: Memory footprint delta from the start of the tool (MB): init=6.14844 "
            "overall=9.5",
            "INFO: Overall peak memory footprint (MB) via periodic monitoring: 13.1797",
        ]
    )
    r = parse_benchmark_output(text)
    assert r.memory == {
        "init_footprint_kb": pytest.approx(6.14844 * 1024),
        "overall_footprint_kb": pytest.approx(9.5 * 1024),
        "peak_mem_mb": pytest.approx(13.1797),
    }
    bad = text.replace("overall=9.5", "overall=nan")
    assert "overall_footprint_kb" not in parse_benchmark_output(bad).memory


def test_the_operator_profile_rows_carry_node_indices_and_delegate_rows_their_order():
    from latbench.devices.benchmark_output import operator_profile
    from latbench.profiling.innetwork import match_rows

    r = parse_benchmark_output((FIX / "op_profiling.txt").read_text())
    rows = operator_profile(r)
    assert [(x.node_type, x.node, x.avg_ms) for x in rows] == [
        ("CONV_2D", 0, 0.604), ("DEPTHWISE_CONV_2D", 1, 0.296), ("MEAN", 2, 0.09)
    ]  # fmt: skip

    class Op:
        def __init__(self, i):
            self.index = i

    class Model:
        ops = [Op(2), Op(0), Op(1)]

    ms, how = match_rows(Model(), rows)  # type: ignore[arg-type]
    assert ms == [0.09, 0.604, 0.296] and how == "interpreter nodes, by node index"
    with pytest.raises(BenchmarkOutputError, match="no 'Operator-wise"):
        operator_profile(parse_benchmark_output(
            (FIX / "tf2_4_current_no_prefix.txt").read_text()))  # fmt: skip


@pytest.mark.parametrize("mul_row", [False, True])
def test_delegate_rows_match_with_a_folded_operator_with_or_without_its_own_row(mul_row):
    """XNNPACK's rows follow the model's operators in graph order. A PAD it folds into the
    convolution has no row; an int8 swish MUL latbench counts as folded may or may not print
    one: both match one to one, the folded operator's time 0 where it has no row."""
    from latbench.devices.benchmark_output import OpProfileRow
    from latbench.profiling.innetwork import match_rows

    class Op:
        def __init__(self, i, op):
            self.index, self.op = i, op

    class Decomposition:
        fused = frozenset({0, 3})  # the PAD and the swish's MUL

    class Model:
        ops = [Op(0, "PAD"), Op(1, "CONV_2D"), Op(2, "LOGISTIC"), Op(3, "MUL"), Op(4, "MEAN")]
        decomposition = Decomposition()

    names = ["CONV_2D", "LOGISTIC", *(["MUL"] if mul_row else []), "MEAN"]
    rows = [OpProfileRow("TfLiteXNNPackDelegate", "[out]:5", 1.0, 1.0, 5, False, True)] + [
        OpProfileRow(n, f"Delegate/{n}:{i}", 0.1 * (i + 1), 0.1 * (i + 1), None, True, False)
        for i, n in enumerate(names)
    ]
    ms, how = match_rows(Model(), rows)  # type: ignore[arg-type]
    assert how == f"{len(names)} delegate operators, in graph order"
    if mul_row:
        assert ms == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    else:
        assert ms == pytest.approx([0.0, 0.1, 0.2, 0.0, 0.3])
    extra = rows + [OpProfileRow("X", "Delegate/X:9", 1.0, 1.0, None, True, False)] * 3
    ms, how = match_rows(Model(), extra)  # type: ignore[arg-type]
    assert "not matched one to one" in how and ms == [None] * 5
