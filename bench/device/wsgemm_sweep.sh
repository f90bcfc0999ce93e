#!/usr/bin/env bash
# On the device: every wsgemm config of each problem verified and timed (SWEEP_PRECISION, default
# tf32), summarised fastest first (sweep.py); then the GPU tests matching TEST_FILTER. Binaries and libraries come carried in .carry/. SWEEP_ONLY picks problems of
# bench/problems.jsonl, SWEEP_FILTER the configs (a name part). Results: $OUT/sweep/.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export LD_LIBRARY_PATH=$root/.carry/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export DECONVTUNE_GOLDEN_DIR=$root/tests/golden DECONVTUNE_BINARY=$root/.carry/deconvtune
cli=$root/.carry/deconvtune
precision=${SWEEP_PRECISION:-tf32}
out=${OUT:-/tmp}/sweep
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$out/device.txt"
for name in ${SWEEP_ONLY:-wide_in wide_512 k4s2_wide k5s2_wide}; do
  grep "\"name\": \"$name\"" bench/problems.jsonl > "$out/$name.json"
  timeout "${SWEEP_TIMEOUT:-150}" "$cli" run --problem "$out/$name.json" --precision "$precision" \
    --all-configs --only "${SWEEP_FILTER:-wsgemm}" --json > "$out/${name}_$precision.json" \
    2> "$out/${name}_$precision.log"
  python3 bench/device/sweep.py "$out/${name}_$precision.json" --top "${SWEEP_TOP:-6}"
done
if [ -n "${TEST_FILTER:-}" ]; then
  timeout "${TEST_TIMEOUT:-240}" "$root/.carry/deconvtune_tests" --gtest_filter="$TEST_FILTER" \
    > "$out/gpu_tests.txt" 2>&1
  grep -E "tests ran|PASSED|FAILED|Failure|SKIPPED" "$out/gpu_tests.txt" | head -30
fi
