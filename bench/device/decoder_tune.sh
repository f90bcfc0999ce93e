#!/usr/bin/env bash
# On the device: the decoder blocks of bench/problems_decoders.jsonl (the blocks bench/decoder_bench.py
# builds, BatchNorm folded into the bias), each run with its untuned default config, then tuned
# (successive halving, TUNE_BUDGET_SECONDS each, default 20) into one DB; then bench/decoder_bench.py
# (its convert rows on an empty DB, so on the untuned defaults; its tuned row on its own). STEPS (default "default tune bench") picks the parts.
# Logs under $OUT/decoder_tune/ (archived, DBs left out, into $OUT/decoder_tune.tar.gz).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
out="${OUT:?set OUT}/decoder_tune"
mkdir -p "$out"
export LD_LIBRARY_PATH="$root/.carry/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
bin="$root/.carry/deconvtune"
db="$out/decoders.db"
budget=${TUNE_BUDGET_SECONDS:-20}
steps=" ${STEPS:-default tune bench} "
while IFS= read -r problem; do
  [ -n "$problem" ] || continue
  name=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["name"])' "$problem")
  if [[ $steps == *" default "* ]]; then
  timeout 60 "$bin" run --problem "$problem" --reps 20 >"$out/default_${name}.log" 2>&1
  echo "$name default: exit $? $(grep -E ' (ok|wrong|fault|timeout)' "$out/default_${name}.log" | tail -1)"
  fi
  [[ $steps == *" tune "* ]] || continue
  timeout $((budget + 60)) "$bin" autotune --problem "$problem" --db "$db" --strategy halving \
    --budget-seconds "$budget" --no-launch --wide >"$out/autotune_${name}.log" 2>&1
  echo "$name tuned: exit $? $(grep -E '^winner' "$out/autotune_${name}.log")"
done <bench/problems_decoders.jsonl | tee "$out/summary.txt"
if [[ $steps == *" bench "* ]]; then
  DECONVTUNE_DB=/tmp/dt-cache/untuned.db PYTHONPATH=$root/python DECONVTUNE_LIBRARY_PATH=$root/.carry/lib/libdeconvtune.so.0.1 \
    DECONVTUNE_BINARY=$bin DECONVTUNE_WORKER=$bin XDG_CACHE_HOME=/tmp/dt-cache python3 bench/decoder_bench.py --reps 20 --out "$out/bench" >"$out/bench.log" 2>&1
  echo "decoder_bench: exit $?" | tee -a "$out/summary.txt"
fi
tar -czf "$OUT/decoder_tune.tar.gz" -C "$out" --exclude="*.db*" .
