#!/usr/bin/env bash
# On the device: every wsgemm config of each problem verified and timed (SWEEP_PRECISION, default
# tf32), summarised fastest first (sweep.py); then the GPU tests matching TEST_FILTER. Binaries and
# libraries come carried in .carry/. SWEEP_ONLY picks problems of bench/problems.jsonl, each as
# NAME or NAME:FILTER; SWEEP_FILTER is the configs' name part where an entry gives none (default
# wsgemm). A problem (of bench/problems.jsonl or problems_16bit.jsonl) may come more than once with
# different filters. Results: $OUT/sweep/.
set -u
# shellcheck source=bench/device/env.sh
source "$(dirname "$0")/env.sh"
export DECONVTUNE_GOLDEN_DIR=$root/tests/golden DECONVTUNE_BINARY=$root/.carry/deconvtune
cli=$root/.carry/deconvtune
precision=${SWEEP_PRECISION:-tf32}
out=${OUT:-/tmp}/sweep
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$out/device.txt"
index=0
for entry in ${SWEEP_ONLY:-wide_in wide_512 k4s2_wide k5s2_wide}; do
  name=${entry%%:*} filter=${SWEEP_FILTER:-wsgemm}
  [ "$entry" != "$name" ] && filter=${entry#*:}
  run=$out/${name}_${precision}_$((index += 1))
  bash bench/device/problem_file.sh "$name" "$out/$name.json" || continue
  timeout "${SWEEP_TIMEOUT:-150}" "$cli" run --problem "$out/$name.json" --precision "$precision" \
    --all-configs --only "$filter" --json > "$run.json" 2> "$run.log"
  python3 bench/device/sweep.py "$run.json" --top "${SWEEP_TOP:-6}"
done
if [ -n "${TEST_FILTER:-}" ]; then
  timeout "${TEST_TIMEOUT:-240}" "$root/.carry/deconvtune_tests" --gtest_filter="$TEST_FILTER" \
    > "$out/gpu_tests.txt" 2>&1
  grep -E "tests ran|PASSED|FAILED|Failure|SKIPPED" "$out/gpu_tests.txt" | head -30
fi
