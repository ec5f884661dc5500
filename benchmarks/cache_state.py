"""Does an operator timed alone run from a warmer cache than it does in its network?

An operator LUT times each operator back to back: its packed weights and its activations
stay in the core's L2 (and L3) between invocations. In a network the other operators'
weights and activations pass through the caches between two runs of the same operator, so
its weights come from L3 or memory. This times every operator of some Keras applications
in three cache states, interleaved run by run, and compares each state's operator sum
with the whole model timed the same way:

  warm   back to back (what the operator LUT does);
  l2     a buffer of twice the L2 written before each run (the weights come from L3),
         then the inputs set again (the producer just wrote them);
  llc    a buffer of twice the L3 written before each run (the weights come from memory).

    .venv/bin/python benchmarks/cache_state.py --precision int8 --apps ResNet50 MobileNetV2

Single thread, the thread's CPU time (cache misses stall the thread: they count); every
model on random inputs (the three states compare on the same data). Takes the machine's
timing lock (/tmp/latbench-quiet) while it times. Result (BENCHMARKS, 2026-12-02): no one
state fits; the operator LUT stays warm.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from keras_apps_ops import Quiet, app_tflite  # noqa: E402


def cache_bytes(level: str) -> int:
    """The size of one cache level of CPU 0, from sysfs (index2 = L2, index3 = L3)."""
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for d in sorted(base.glob("index*")):
        if (d / "level").read_text().strip() == level:
            text = (d / "size").read_text().strip().upper()
            mult = {"K": 1 << 10, "M": 1 << 20}.get(text[-1], 1)
            return int(text.rstrip("KM")) * mult
    raise SystemExit(f"no L{level} cache in {base}")


class Timed:
    """One model in a LiteRT interpreter, its inputs kept to be set again."""

    def __init__(self, data: bytes):
        from ai_edge_litert.interpreter import Interpreter

        from latbench.devices.litert import random_inputs

        self.interp = Interpreter(model_content=data, num_threads=1)
        self.interp.allocate_tensors()
        self.inputs = random_inputs(self.interp)  # what a whole model is timed on
        self.set_inputs()
        self.interp.invoke()

    def set_inputs(self) -> None:
        for i, x in self.inputs:
            self.interp.set_tensor(i, x)

    def once(self, evict: np.ndarray | None) -> float:
        if evict is not None:
            evict += 1  # every line written: the caches hold this buffer now
            self.set_inputs()
        c = time.thread_time_ns()
        self.interp.invoke()
        return (time.thread_time_ns() - c) / 1e6


def time_states(t: Timed, states: dict, runs: int) -> dict[str, float]:
    """Median per state, the states interleaved run by run."""
    got: dict[str, list[float]] = {s: [] for s in states}
    for _ in range(runs):
        for s, buf in states.items():
            got[s].append(t.once(buf))
    return {s: float(np.median(v)) for s, v in got.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--precision", default="int8", choices=["fp32", "int8"])
    ap.add_argument("--apps", nargs="+", default=["MobileNetV2", "ResNet50"])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    from latbench.build.tflite_ops import decompose, extract_op, load_model

    l2, l3 = cache_bytes("2"), cache_bytes("3")
    states = {
        "warm": None,
        "l2": np.zeros(2 * l2, np.uint8),
        "llc": np.zeros(2 * l3, np.uint8),
    }
    paths = {name: app_tflite(name, args.precision) for name in args.apps}

    quiet = Quiet()
    quiet.take()
    rows = []
    try:
        for name, path in paths.items():
            data = path.read_bytes()
            dec = decompose(data)
            model = load_model(data)
            whole = Timed(data)
            before = time_states(whole, states, args.runs)
            sums = dict.fromkeys(states, 0.0)
            for spec in dec.ops:
                if spec.index in dec.fused:
                    continue
                got = time_states(Timed(extract_op(model, spec.index)), states, args.runs)
                for s in states:
                    sums[s] += got[s]
            after = time_states(whole, states, args.runs)
            w = (before["warm"] + after["warm"]) / 2
            row = {
                "model": name,
                "ops": len(dec.ops),
                "whole_warm_ms": round(w, 3),
                "whole_spread_pct": round(100 * abs(before["warm"] - after["warm"]) / w, 1),
                **{f"sum_{s}_ms": round(v, 3) for s, v in sums.items()},
                **{f"err_{s}_pct": round(100 * (v - w) / w, 1) for s, v in sums.items()},
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        quiet.release()
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "precision": args.precision,
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "l2_bytes": l2,
                    "l3_bytes": l3,
                    "rows": rows,
                },
                indent=1,
            )  # fmt: skip
        )


if __name__ == "__main__":
    main()
