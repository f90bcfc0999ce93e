#!/usr/bin/env bash
# On the device (2026-12-03, the tensor map boxes of staged windows): the stage probe of what
# `stage_probe.sh build` carried, the staged-window GPU test, the xl2 configs of SWEEP
# (NAME:ONLY ...; default every xl2 config of k4s2_wide and wide_512's cooperative single-CTA
# ones) verified and timed, then run_bench.py on both problems beside PyTorch with the best xl2
# geometries (WS_CANDIDATES). Logs in $OUT.
set -u
# shellcheck source=bench/device/env.sh
source "$(dirname "$0")/env.sh"
chmod +x .carry/stage/*__* 2> /dev/null
export DECONVTUNE_GOLDEN_DIR=$root/tests/golden XDG_CACHE_HOME=/tmp/dt-cache PYTHONUNBUFFERED=1
out=${OUT:-/tmp}
cli=$root/.carry/deconvtune
bash bench/probes/stage_probe.sh run | tee "$out/stage_probe.txt"
timeout 200 .carry/deconvtune_tests --gtest_color=no --gtest_filter='Gpu.Staged*' > "$out/staged_test.txt" 2>&1
echo "Gpu.Staged: rc=$? $(grep -E '^\[  (PASSED|FAILED) ' "$out/staged_test.txt" | tr '\n' ' ') at ${SECONDS}s"
for entry in ${SWEEP:-k4s2_wide: wide_512:coop1_mc1_xl2_mishfast}; do
  name=${entry%%:*} only=${entry#*:}
  bash bench/device/problem_file.sh "$name" "/tmp/$name.json"
  timeout 200 "$cli" run --problem "/tmp/$name.json" --precision tf32 --all-configs \
    --only "${only:-_xl2_}" --reps 10 --wide > "$out/xl2_$name.txt" 2>&1
  echo "$name: rc=$? $(grep -c ' ok ' "$out/xl2_$name.txt") ok, $(grep -cE ' (wrong|fault|timeout)' "$out/xl2_$name.txt") wrong/fault"
  grep -E ' ok ' "$out/xl2_$name.txt" | sort -k3 -g | head -5
  echo "at ${SECONDS}s"
done
WS_CANDIDATES=${WS_CANDIDATES:-cp64_rp2_st3_rs1_kc16_coop1_mc1_xl2|cp32_rp2_st3_rs1_kc16_coop1_mc1_xl2|cp32_rp2_st3_rs0_kc16_coop1_mc1_xl2|cp64_rp2_st4_rs1_kc16_coop1_mc1_xl2} \
  WS_TOP=4 timeout "${BENCH_TIMEOUT:-240}" python3 bench/run_bench.py --deconvtune "$cli" \
  --only k4s2_wide,wide_512 --precisions tf32 --reps 20 --out "$out/bench" \
  --configs-cmd "bench/device/ws_candidates.sh {bin} {problem} {precision}" \
  --device-label "$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader)" > "$out/bench.log" 2>&1
echo "bench: rc=$? at ${SECONDS}s"
sed -n '/[Ss]ummary/,$p' "$out/bench/bench.md" | head -30
