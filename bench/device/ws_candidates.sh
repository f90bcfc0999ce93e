#!/usr/bin/env bash
# For run_bench.py --configs-cmd "bench/device/ws_candidates.sh {bin} {problem} {precision}":
# the problem's default config, then (tf32) the wsgemm geometries of WS_CANDIDATES (an extended regex
# of name parts; default: those that measured fastest on the H200 with W resident,
# bench/results/2026-12-01-h200-wsgemm/, and streamed, bench/results/2026-12-01-h200-stream/), where
# the problem's space has them, the fast mish where there is one; at most WS_TOP of them.
set -euo pipefail
bin=$1 problem=$2 precision=$3
default=$("$bin" inspect --problem "$problem" --precision "$precision" | awk 'NR == 1 { sub(/.*config /, ""); print }')
echo "$default"
if [ "$precision" = tf32 ]; then
  "$bin" inspect --problem "$problem" --precision "$precision" --list-configs | awk '{ print $1 }' | sort -r |
    grep -E "^wsgemm_tf32_(${WS_CANDIDATES:-cp64_rp1_st2_rs0_kc0_coop0|cp32_rp2_st2_rs0_kc0_coop0|cp32_rp1_st3_rs0_kc0_coop0|cp64_rp1_st2_rs1_kc0_coop0|cp64_rp2_st3_rs1_kc16_coop1|cp64_rp2_st4_rs1_kc16_coop1|cp32_rp2_st3_rs1_kc16_coop1|cp32_rp2_st4_rs1_kc16_coop1|cp32_rp2_st3_rs0_kc16_coop1|cp32_rp2_st2_rs0_kc16_coop1|cp64_rp1_st2_rs0_kc16_coop1|cp32_rp2_st2_rs1_kc16_coop1})_mish" |
    awk '{ geometry = $0; sub(/_mish.*/, "", geometry) } !seen[geometry]++' |  # mishfast sorts last: keep the first
    grep -v -x -F "$default" | head -"${WS_TOP:-6}" || true
fi
