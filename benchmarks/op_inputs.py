"""Does an operator's time depend on the values it is given? Random bytes against the network's.

For each Keras application given, every operator is timed alone twice, interleaved: on the
random inputs a model used to be timed on (devices/litert.random_inputs: uniform over int8's
range, standard normal floats) and on the activations its network computes from the whole
model's input (profiling/opinputs.activations, what `profile --model` saves beside each
operator since 2026-12-02). Prints, per operator type, both sums, and the whole model.

    .venv/bin/python benchmarks/op_inputs.py --precision int8 --apps NASNetMobile MobileNetV2

Single thread, the thread's CPU time, median of --runs per operator and input. Takes the
machine's timing lock (/tmp/latbench-quiet) while it times.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cache_state import Timed, time_states  # noqa: E402
from keras_apps_ops import Quiet, app_tflite  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--precision", default="int8", choices=["fp32", "int8"])
    ap.add_argument("--apps", nargs="+", default=["NASNetMobile", "MobileNetV2"])
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    from latbench.build.tflite_ops import decompose, extract_op, load_model, op_inputs
    from latbench.profiling.opinputs import activations

    paths = {name: app_tflite(name, args.precision) for name in args.apps}

    quiet = Quiet()
    quiet.take()
    out = []
    warm = {"warm": None}
    try:
        for name, path in paths.items():
            data = path.read_bytes()
            dec, model = decompose(data), load_model(data)
            acts = activations(data, model, {i for s in dec.ops for i in op_inputs(model, s.index)})
            whole = Timed(data)
            before = time_states(whole, warm, 3 * args.runs)["warm"]
            rnd, net, n = defaultdict(float), defaultdict(float), defaultdict(int)
            for s in dec.ops:
                if s.index in dec.fused:
                    continue
                t = Timed(extract_op(model, s.index))
                ins = op_inputs(model, s.index)
                random_in = t.inputs
                network_in = [(j, acts[i]) for (j, _), i in zip(random_in, ins)]
                got = {"random": [], "network": []}
                for _ in range(args.runs):  # interleaved, run by run
                    for label, xs in (("random", random_in), ("network", network_in)):
                        t.inputs = xs
                        t.set_inputs()  # outside the timed call
                        got[label].append(time_states(t, warm, 1)["warm"])
                rnd[s.op] += float(sorted(got["random"])[args.runs // 2])
                net[s.op] += float(sorted(got["network"])[args.runs // 2])
                n[s.op] += 1
            after = time_states(whole, warm, 3 * args.runs)["warm"]
            w = (before + after) / 2
            sr, sn = sum(rnd.values()), sum(net.values())
            row = {
                "model": name, "whole_ms": round(w, 3),
                "whole_spread_pct": round(100 * abs(before - after) / w, 1),
                "sum_random_ms": round(sr, 3), "sum_network_ms": round(sn, 3),
                "err_random_pct": round(100 * (sr - w) / w, 1),
                "err_network_pct": round(100 * (sn - w) / w, 1),
                "by_op": {k: {"n": n[k], "random_ms": round(rnd[k], 3),
                              "network_ms": round(net[k], 3)}
                          for k in sorted(rnd, key=lambda k: -rnd[k])},
            }  # fmt: skip
            out.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "by_op"}), flush=True)
            for k, v in list(row["by_op"].items())[:5]:
                print(f"   {k:20s} n={v['n']:4d} random {v['random_ms']:8.3f} ms  "
                      f"network {v['network_ms']:8.3f} ms", flush=True)  # fmt: skip
    finally:
        quiet.release()
    if args.out:
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        doc = {"precision": args.precision, "date": stamp, "rows": out}
        args.out.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
