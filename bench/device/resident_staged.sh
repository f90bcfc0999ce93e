#!/usr/bin/env bash
# On the device (2026-12-03, twelfth session): do staged windows (xl2, tensor map boxes) pay with W
# resident now that a piece is one box? First the staged-window GPU test (streamed and resident
# cases), then for each problem of PROBLEMS (the benchmark sets' W-resident ones) in each dtype
# of DTYPES every resident wsgemm config whose name holds ONLY, verified and timed in one process;
# per (problem, dtype) the fastest of each x path (xl0 cp.async, xl1 registers, xl2 staged) and
# the problem's default. Then the stage probe of what `stage_probe.sh build` carried, if any.
# Logs in $OUT.
set -u
# shellcheck source=bench/device/env.sh
source "$(dirname "$0")/env.sh"
chmod +x .carry/stage/*__* 2> /dev/null
export DECONVTUNE_GOLDEN_DIR=$root/tests/golden XDG_CACHE_HOME=/tmp/dt-cache
out=${OUT:-/tmp}
cli=$root/.carry/deconvtune
if [ "${TEST:-1}" = 1 ]; then
  timeout 240 .carry/deconvtune_tests --gtest_color=no --gtest_filter='Gpu.Staged*' > "$out/staged_test.txt" 2>&1
  echo "Gpu.Staged: rc=$? $(grep -E '^\[  (PASSED|FAILED) ' "$out/staged_test.txt" | tr '\n' ' ') at ${SECONDS}s"
  grep -E 'wrong|fault|FAILED' "$out/staged_test.txt" | head -5
fi
for name in ${PROBLEMS:-seed groups4 k4s2_leaky stride1 stride3_k5 asym_dilated small_batch}; do
  bash bench/device/problem_file.sh "$name" "/tmp/$name.json" || continue
  for dtype in ${DTYPES:-float32 bfloat16}; do
    [ "$SECONDS" -lt "${DEADLINE:-480}" ] || { echo "$name $dtype: not run (deadline)"; continue; }
    run=("$cli" run --problem "/tmp/$name.json" --precision tf32 --dtype "$dtype")
    default=$("$cli" inspect --problem "/tmp/$name.json" --precision tf32 --dtype "$dtype" |
      awk 'NR == 1 { sub(/.*config /, ""); print }')
    # The fast Mish where the chain has one (it wins every Mish problem), else the one variant.
    mish=${default##*_}
    line="$name $dtype:"
    for xl in 0 1 2; do
      log=$out/sweep_${name}_${dtype}_xl$xl.txt
      timeout "${SWEEP_TIMEOUT:-45}" "${run[@]}" --all-configs --only "_kc0_coop0_mc1_xl${xl}_$mish" \
        --reps 10 --wide > "$log" 2>&1
      best=$(grep -E ' ok ' "$log" | sort -k3 -g | head -1 | awk '{ print $1, $3 }')
      line="$line | xl$xl $(grep -c ' ok ' "$log") ok $(grep -cE ' (wrong|fault|timeout)' "$log") bad, best ${best:--}"
    done
    echo "$line | default $default $(grep -hF "$default " "$out/sweep_${name}_${dtype}"_xl?.txt | awk '{ print $3 }') at ${SECONDS}s"
  done
done
[ -d .carry/stage ] && bash bench/probes/stage_probe.sh run | tee "$out/stage_probe.txt"
exit 0
