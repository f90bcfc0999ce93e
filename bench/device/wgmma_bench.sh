#!/usr/bin/env bash
# On the device, after the wgmma configs: run_bench.py on the problems where wgmma may change the
# picture, with each problem's default and the wgmma candidates (candidates.sh) beside PyTorch
# eager, torch.compile and the seed's ModelNew in the same process; then every GPU test (BENCH_ONLY
# picks the problems).
# Results: $OUT/bench.tgz (bench.md, bench.json, logs).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export LD_LIBRARY_PATH=$root/.carry/lib:${LD_LIBRARY_PATH:-}
export DECONVTUNE_GOLDEN_DIR=$root/tests/golden DECONVTUNE_BINARY=$root/.carry/deconvtune
out=${OUT:-/tmp}/bench
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$out/device.txt"
git rev-parse HEAD > "$out/commit.txt" 2>/dev/null || true
timeout 330 python3 bench/run_bench.py --deconvtune "$root/.carry/deconvtune" \
  --only "${BENCH_ONLY:-seed,stride1,stride3_k5,k4s2_leaky}" --reps 20 --out "$out" \
  --configs-cmd "bench/device/candidates.sh {bin} {problem} {precision}" \
  --device-label "$(cat "$out/device.txt")" > "$out/bench.log" 2>&1
timeout 180 "$root/.carry/deconvtune_tests" --gtest_filter='*Gpu*' > "$out/gpu_tests.txt" 2>&1
timeout 60 "$root/.carry/deconvtune_api_tests" --gtest_filter='*Gpu*' > "$out/api_gpu_tests.txt" 2>&1
tar czf "${OUT:-/tmp}/bench.tgz" -C "$(dirname "$out")" bench
grep -E "tests ran|PASSED|FAILED" "$out/gpu_tests.txt" "$out/api_gpu_tests.txt"
sed -n '/[Ss]ummary/,$p' "$out/bench.md" | head -40
