#!/usr/bin/env bash
# On the device: ncu's view of the seed's default kernel (speed of light, warp states), then
# run_bench.py over BENCH_ONLY (default: every problem) with each problem's default config and the
# wsgemm candidates (ws_candidates.sh) beside PyTorch eager, torch.compile and the seed's ModelNew,
# all in one process. Binaries come carried in .carry/. Results: $OUT/bench.tgz.
set -u
# shellcheck source=bench/device/env.sh
source "$(dirname "$0")/env.sh"
export DECONVTUNE_BINARY=$root/.carry/deconvtune PYTHONUNBUFFERED=1
cli=$root/.carry/deconvtune
out=${OUT:-/tmp}/bench
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$out/device.txt"
if [ "${NCU:-1}" = 1 ] && command -v ncu > /dev/null; then
  timeout 120 ncu --clock-control none --kernel-name deconv_wsgemm --launch-count 1 \
    --section SpeedOfLight --section WarpStateStats --section SchedulerStats \
    "$cli" run --problem seed --precision tf32 --reps 1 --warmup 0 > "$out/ncu_seed.txt" 2>&1
  grep -E "Throughput|Duration|Stall|Issued|Eligible|Active Warps" "$out/ncu_seed.txt" | head -30
fi
timeout "${BENCH_TIMEOUT:-450}" python3 bench/run_bench.py --deconvtune "$cli" ${BENCH_ONLY:+--only "$BENCH_ONLY"} \
  --reps 20 --out "$out" --configs-cmd "bench/device/ws_candidates.sh {bin} {problem} {precision}" \
  --device-label "$(cat "$out/device.txt")" > "$out/bench.log" 2>&1
tar czf "${OUT:-/tmp}/bench.tgz" -C "$(dirname "$out")" bench
sed -n '/[Ss]ummary/,$p' "$out/bench.md" | head -40
