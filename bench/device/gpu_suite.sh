#!/usr/bin/env bash
# On the device: every GPU test of the carried build, fastest first, within DEADLINE seconds: the
# GPU cases of deconvtune_tests (the every-config ones last), deconvtune_api_tests, the Python GPU
# tests (bench/device/python_gpu.sh), then `run --problem seed --json`. One summary line per step on
# stdout; the logs packed into $OUT/gpu_suite.tgz (a call brings back only a few files). STEPS: an
# extended regex of the step names to run (gpu_fast api python run_seed slow_Gpu_NonFinite
# slow_Gpu_Staged slow_Golden_GoldenGpu slow_Shapes_DtypeLayoutGpu slow_Shapes_OddShapeGpu), so the
# suite can be split across calls.
set -u
DEADLINE=${DEADLINE:-400}
# shellcheck source=bench/device/env.sh
source "$(dirname "$0")/env.sh"
export DECONVTUNE_GOLDEN_DIR=$root/tests/golden DECONVTUNE_BINARY=$root/.carry/deconvtune
export DECONVTUNE_WORKER=$root/.carry/deconvtune XDG_CACHE_HOME=/tmp/dt-cache
logs=${OUT:-/tmp}/gpu_suite
mkdir -p "$logs" /tmp/dt-cache
left() { echo $((DEADLINE - SECONDS)); }
step() {  # name, timeout, command...
  local name=$1 limit=$2
  shift 2
  [[ $name =~ ${STEPS:-.} ]] || return 0
  [ "$limit" -gt 5 ] || { echo "$name: not run (no time left)"; return; }
  timeout "$limit" "$@" > "$logs/$name.txt" 2>&1
  echo "$name: rc=$? $(grep -E '^\[  (PASSED|FAILED) ' "$logs/$name.txt" | tr '\n' ' ') at ${SECONDS}s"
}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$logs/device.txt"
SLOW='Golden/GoldenGpu.*:Shapes/*:Gpu.NonFinite*:Gpu.Staged*:Compile.EveryConfig*'
step gpu_fast 300 .carry/deconvtune_tests --gtest_color=no --gtest_filter="*Gpu*:Compile*:Reliability*-$SLOW"
step api 150 .carry/deconvtune_api_tests --gtest_color=no
OUT=$logs step python "$(left)" bash bench/device/python_gpu.sh
step run_seed 90 .carry/deconvtune run --problem seed --json --require-gpu
for filter in 'Gpu.NonFinite*' 'Gpu.Staged*' 'Golden/GoldenGpu.*' 'Shapes/DtypeLayoutGpu.*' \
  'Shapes/OddShapeGpu.*'; do
  name=${filter%\*}
  step "slow_$(echo "${name%.}" | tr '/.' '__')" "$(left)" .carry/deconvtune_tests \
    --gtest_color=no --gtest_filter="$filter"
done
grep -h -E '^\[  FAILED  \] [A-Za-z]' "$logs"/*.txt | sort -u | head -20
(cd "$(dirname "$logs")" && tar czf gpu_suite.tgz "$(basename "$logs")" && rm -rf "$logs")
