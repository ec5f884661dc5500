#!/usr/bin/env bash
# PPO vs random at equal budget (issue 12, section 3): one lane per seed, each lane
# running its PPO and its random search in turns, CHUNK samples at a time, so that every
# run has about the same number of samples whenever the whole thing is stopped (all runs
# resume: latbench search --resume). Then: latbench compare OUT/*/ --retrain-seeds 3.
#
#   benchmarks/ppo_vs_random.sh OUT TARGET_MS [SAMPLES] [SEEDS] [CHUNK]
#   (FIDELITY=halving in the environment: successive halving inside each batch;
#    SEARCH_ARGS="..." : more options for every new run, e.g. "--lut-dir L --no-measure-front")
#   Every training records its CPU seconds: compare at equal CPU with
#   latbench compare OUT/*/ --budget cpu.
set -euo pipefail
# Three lanes share this machine's cores: one TensorFlow thread per trainer (3 trainers on 2
# cores: 1.2x the throughput of TensorFlow's default pools, BENCHMARKS.md), which is the
# proxy recipe's default (--proxy-threads 1, part of the accuracy cache key) since issue 23.
export TF_NUM_INTRAOP_THREADS=${TF_NUM_INTRAOP_THREADS-1} TF_NUM_INTEROP_THREADS=${TF_NUM_INTEROP_THREADS-1}
out=$1 target=$2 samples=${3:-200} seeds=${4:-"0 1 2"} chunk=${5:-40}
mkdir -p "$out"
lane() {
  local seed=$1 n
  for ((n = chunk; n < samples + chunk; n += chunk)); do
    ((n > samples)) && n=$samples
    for ctrl in ppo random; do
      local dir="$out/$ctrl-s$seed"
      if [[ -f $dir/config.json ]]; then
        latbench search --resume "$dir" --samples "$n" --no-progress
      else
        latbench search --device host --latency lut --target-ms "$target" --constraint soft \
          --samples "$n" --batch 8 --spot-every 0 --controller "$ctrl" --seed "$seed" \
          --out "$dir" --no-progress ${FIDELITY:+--fidelity "$FIDELITY"} ${SEARCH_ARGS:-}
      fi >>"$out/$ctrl-s$seed.log" 2>&1
    done
  done
}
for s in $seeds; do lane "$s" & done
wait
