#!/usr/bin/env bash
# On the device (2026-12-03, twelfth session): the GPU tests the new defaults touch (staged
# windows, then every dtype and layout), then run_bench.py beside PyTorch: the 16-bit set's
# W-resident problems (BENCH16) and the streamed problems whose defaults changed (BENCH32), each
# with its default and the default's siblings on the other x paths (bench/device/xl_siblings.sh).
# Logs in $OUT.
set -u
# shellcheck source=bench/device/env.sh
source "$(dirname "$0")/env.sh"
export DECONVTUNE_GOLDEN_DIR=$root/tests/golden XDG_CACHE_HOME=/tmp/dt-cache PYTHONUNBUFFERED=1
out=${OUT:-/tmp}
cli=$root/.carry/deconvtune
label=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader)
for filter in ${TESTS:-Gpu.Staged* Shapes/DtypeLayoutGpu.*}; do
  log=$out/test_$(echo "${filter%\*}" | tr '/.*' '___').txt
  timeout 240 .carry/deconvtune_tests --gtest_color=no --gtest_filter="$filter" > "$log" 2>&1
  echo "$filter: rc=$? $(grep -E '^\[  (PASSED|FAILED) ' "$log" | tr '\n' ' ') at ${SECONDS}s"
  grep -E '^\[  FAILED  \] [A-Za-z]|Failure' "$log" | head -5
done
left() { echo $((${DEADLINE:-570} - SECONDS)); }
bench() {  # label, problems file, names, EXTRA
  [ "$(left)" -gt 30 ] || { echo "bench $1: not run (deadline)"; return; }
  local limit=$(($(left) < ${BENCH_TIMEOUT:-200} ? $(left) : ${BENCH_TIMEOUT:-200}))
  EXTRA=$4 timeout "$limit" python3 bench/run_bench.py --deconvtune "$cli" \
    --problems "$2" --only "$3" --precisions tf32 --reps 20 --max-configs 3 --out "$out/bench_$1" \
    --configs-cmd "bench/device/xl_siblings.sh {bin} {problem} {precision}" \
    --device-label "$label" > "$out/bench_$1.log" 2>&1
  echo "bench $1: rc=$? at ${SECONDS}s"
  sed -n '/[Ss]ummary/,$p' "$out/bench_$1/bench.md" | head -24
}
bench 16bit bench/problems_16bit.jsonl "${BENCH16:-seed_bf16,seed_fp16,k4s2_leaky_bf16,stride1_bf16}" ""
bench streamed bench/problems.jsonl "${BENCH32:-wide_in,k5s2_wide,k4s2_wide}" \
  "${EXTRA32:-^wsgemm_tf32_(cp32_rp2_st3_rs1_kc16_coop1_mc1_xl1|cp32_rp2_st3_rs0_kc16_coop1_mc1_xl0)_mish(fast|exact)$}"
# Then, as time allows, the fast GPU cases (bench/device/gpu_suite.sh's first steps).
if [ "$(left)" -gt 60 ]; then
  STEPS='gpu_fast|api' DEADLINE=$(left) bash bench/device/gpu_suite.sh
fi
exit 0
