#!/usr/bin/env bash
# On the device: the wgmma (wg1) configs beside the mma.sync default, verified and timed on the
# seed shape and the stride-1 problem, then every GPU test. Results: $OUT/wgmma.tgz.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export LD_LIBRARY_PATH=$root/.carry/lib:${LD_LIBRARY_PATH:-}
export DECONVTUNE_GOLDEN_DIR=$root/tests/golden DECONVTUNE_BINARY=$root/.carry/deconvtune
cli=$root/.carry/deconvtune
out=${OUT:-/tmp}/wgmma
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$out/device.txt"
grep '"name": "stride1"' bench/problems.jsonl > "$out/stride1.json"
for precision in tf32 fp32; do
  "$cli" run --problem seed --precision "$precision" > "$out/seed_${precision}_default.txt" 2>&1
  timeout 150 "$cli" run --problem seed --precision "$precision" --all-configs --only wg1 \
    > "$out/seed_${precision}_wg1.txt" 2>&1
done
"$cli" run --problem "$out/stride1.json" --precision tf32 > "$out/stride1_tf32_default.txt" 2>&1
timeout 100 "$cli" run --problem "$out/stride1.json" --precision tf32 --all-configs --only wg1 \
  > "$out/stride1_tf32_wg1.txt" 2>&1
timeout 240 "$root/.carry/deconvtune_tests" --gtest_filter='*Gpu*' > "$out/gpu_tests.txt" 2>&1
tar czf "${OUT:-/tmp}/wgmma.tgz" -C "$(dirname "$out")" wgmma
grep -h -E "^pgemm|median|FAILED|PASSED|tests ran" "$out"/*.txt | head -120
