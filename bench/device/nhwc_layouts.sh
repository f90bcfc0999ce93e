#!/usr/bin/env bash
# On the device (2026-12-03, thirteenth session): the Hopper family on channels_last (NHWC). The
# GPU tests the change touches (TESTS), then for each problem of PROBLEMS (the benchmark sets'
# W-resident float32 ones) under tf32 its NHWC default's geometry on every x path (xl0 cp.async,
# xl1 registers, xl2 staged: in NHWC each plane one box, no transpose), verified and timed in one
# process per layout, NHWC beside NCHW: the layout target is "no slower than the same config in
# NCHW". Then every resident staged NHWC config of the seed, for the best of them. Logs in $OUT.
set -u
# shellcheck source=bench/device/env.sh
source "$(dirname "$0")/env.sh"
export DECONVTUNE_GOLDEN_DIR=$root/tests/golden XDG_CACHE_HOME=/tmp/dt-cache
out=${OUT:-/tmp}
cli=$root/.carry/deconvtune
for filter in ${TESTS:-Gpu.ChannelsLast* Gpu.Staged* Shapes/DtypeLayoutGpu.*}; do
  log=$out/test_$(echo "${filter%\*}" | tr '/.*' '___').txt
  timeout "${TEST_TIMEOUT:-200}" .carry/deconvtune_tests --gtest_color=no --gtest_filter="$filter" > "$log" 2>&1
  echo "$filter: rc=$? $(grep -E '^\[  (PASSED|FAILED) ' "$log" | tr '\n' ' ') at ${SECONDS}s"
  grep -E '^\[  FAILED  \] [A-Za-z]|Failure|wrong|fault' "$log" | head -5
done
for name in ${PROBLEMS:-seed k4s2_leaky stride1 groups4}; do
  bash bench/device/problem_file.sh "$name" "/tmp/$name.json" || continue
  [ "$SECONDS" -lt "${DEADLINE:-480}" ] || { echo "$name: not run (deadline)"; continue; }
  default=$("$cli" inspect --problem "/tmp/$name.json" --precision tf32 --layout NHWC |
    awk 'NR == 1 { sub(/.*config /, ""); print }')
  geometry=${default#wsgemm_tf32_}
  geometry=${geometry%%_xl*}
  for layout in NHWC NCHW; do
    log=$out/layout_${name}_$layout.txt
    timeout 60 "$cli" run --problem "/tmp/$name.json" --precision tf32 --layout "$layout" \
      --all-configs --only "${geometry}_xl" --reps 20 --wide > "$log" 2>&1
    echo "$name $layout (NHWC default $default): $(grep -E ' (ok|wrong|fault|timeout) ' "$log" |
      awk '{ printf "%s %s %s | ", $1, $2, $3 }') at ${SECONDS}s"
  done
done
if [ "$SECONDS" -lt "${DEADLINE:-480}" ]; then
  log=$out/sweep_seed_nhwc_xl2.txt
  timeout 90 "$cli" run --problem seed --precision tf32 --layout NHWC --all-configs \
    --only "_kc0_coop0_mc1_xl2_mishfast" --reps 10 --wide > "$log" 2>&1
  echo "seed NHWC xl2: $(grep -c ' ok ' "$log") ok, $(grep -cE ' (wrong|fault|timeout)' "$log") bad; fastest:"
  grep -E ' ok ' "$log" | sort -k3 -g | head -4 | awk '{ print "  " $1, $3 }'
fi
exit 0
