#!/usr/bin/env bash
# The main job, end to end on this machine's CPU (the `host` device):
# zoo -> layer LUT of the whole MnasNet space -> zoo LUT -> calibration on whole
# networks -> held-out validation -> a short search. Every step resumes if re-run.
# QUICK=1 shrinks calibration, validation and search for a first look.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
CAL=${CAL:-100}; VAL=${VAL:-50}; SAMPLES=${SAMPLES:-24}; PASSES=${PASSES:-3}
if [ "${QUICK:-0}" = 1 ]; then CAL=30; VAL=15; SAMPLES=8; PASSES=1; fi

latbench zoo
latbench profile --device host --space mnasnet
latbench profile --device host --zoo
# the held-out networks are timed interleaved with the calibration ones, in $PASSES shuffled
# passes, so that a change of the machine's speed hits both sets alike (the zoo stays held out)
latbench calibrate --device host --archs "$CAL" --seed 0 --no-zoo \
    --heldout "$VAL" --heldout-seed 7 --passes "$PASSES"
latbench validate --device host --archs "$VAL" --seed 7 --keras-refs
latbench predict examples/zoo/mnasnet_a1.json --device host | head -3
if latbench search --help >/dev/null 2>&1; then
  T=$(latbench predict examples/zoo/mobilenet_v2_x1.json --device host --json \
      | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["latency_ms"], 3))')
  if [ -f runs/search-host/config.json ]; then
    latbench search --resume runs/search-host --samples "$SAMPLES"
  else
    latbench search --device host --latency lut --target-ms "$T" --samples "$SAMPLES" \
        --out runs/search-host
  fi
fi
# one line to end on: what the LUT holds, which predictor is in use and why, how it did
latbench lut list --json | python3 -c '
import json, pathlib, sys
rows = sum(e["rows"] for e in json.load(sys.stdin)
           if e["kind"] == "lut" and e["device"] == "host" and e["precision"] == "fp32")
doc = json.loads(pathlib.Path("lut/host_mnasnet_fp32.predictor.json").read_text())
m = json.loads(pathlib.Path("runs/validate-host-mnasnet-fp32/metrics.json").read_text())
name, why = doc["default"], (doc.get("verdict") or doc.get("selection") or {}).get("reason", "")
mape, lut_mape, n = m[name]["mape"], m["lut"]["mape"], m[name]["n"]
print(f"summary: {rows} host fp32 LUT rows; predictor {name} ({why}); held-out MAPE "
      f"{mape:.2f} % (LUT sum {lut_mape:.2f} %) on {n} networks; search in runs/search-host/")'
