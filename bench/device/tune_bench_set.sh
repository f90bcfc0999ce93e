#!/usr/bin/env bash
# Tunes every problem of the benchmark set in both precisions (successive halving, a budget per
# problem), then benchmarks each tuned winner beside PyTorch. Logs and tables under $OUT/tuned/.
# Settings: TUNE_BUDGET_SECONDS (per problem and precision, default 12), BENCH_REPS (default 10).
set -uo pipefail
out="${OUT:?set OUT}/tuned"
mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/.carry/lib:${LD_LIBRARY_PATH:-}"
bin="$PWD/.carry/deconvtune"
db="$out/bench.db"
budget=${TUNE_BUDGET_SECONDS:-12}
while IFS= read -r problem; do
  [ -n "$problem" ] || continue
  name=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["name"])' "$problem")
  for precision in tf32 fp32; do
    "$bin" autotune --problem "$problem" --precision "$precision" --db "$db" --strategy halving \
      --budget-seconds "$budget" --no-launch >"$out/autotune_${name}_${precision}.log" 2>&1
    echo "$name $precision: exit $? $(grep -E '^winner' "$out/autotune_${name}_${precision}.log")"
  done
done <bench/problems.jsonl | tee "$out/summary.txt"
python3 bench/run_bench.py --deconvtune "$bin" --reps "${BENCH_REPS:-10}" --out "$out/bench" \
  --configs-cmd "bench/winner_config.sh {bin} $db {problem} {precision}" >"$out/bench.log" 2>&1
echo "bench: exit $?" | tee -a "$out/summary.txt"
# The device hands back only a few files: everything small in one archive.
tar -czf "$OUT/tuned.tar.gz" -C "$out" --exclude="bench.db*" .
