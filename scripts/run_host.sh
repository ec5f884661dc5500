#!/usr/bin/env bash
# The main job, end to end on this machine's CPU (the `host` device):
# zoo -> layer LUT of the whole MnasNet space -> zoo LUT -> calibration on whole
# networks -> held-out validation -> a short search. Every step resumes if re-run.
# QUICK=1 shrinks calibration, validation and search for a first look.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
CAL=${CAL:-100}; VAL=${VAL:-50}; SAMPLES=${SAMPLES:-24}
if [ "${QUICK:-0}" = 1 ]; then CAL=30; VAL=15; SAMPLES=8; fi

latbench zoo
latbench profile --device host --space mnasnet
latbench profile --device host --zoo
latbench calibrate --device host --archs "$CAL" --seed 0 --no-zoo   # zoo stays held out
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
echo "done: LUTs and predictor in lut/, reports in runs/"
