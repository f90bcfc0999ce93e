#!/usr/bin/env bash
# For run_bench.py --configs-cmd "bench/device/ws_candidates.sh {bin} {problem} {precision}": the
# problem's default config, then (tf32) one of each wsgemm geometry that measured fastest in the H200 sweep
# (bench/results/2026-12-01-h200-wsgemm/), where the problem's space has them.
set -euo pipefail
bin=$1 problem=$2 precision=$3
default=$("$bin" inspect --problem "$problem" --precision "$precision" | awk 'NR == 1 { sub(/.*config /, ""); print }')
echo "$default"
if [ "$precision" = tf32 ]; then
  "$bin" inspect --problem "$problem" --precision "$precision" --list-configs | awk '{ print $1 }' |
    grep -E '^wsgemm_tf32_(cp64_rp1_st2_rs0|cp32_rp2_st2_rs0|cp16_rp2_st3_rs0|cp32_rp1_st3_rs0|cp64_rp1_st2_rs1|cp32_rp1_st3_rs1)_mish' |
    sort -r | awk -F_ -v default="$default" 'BEGIN { split(default, d, "_"); seen[d[3] "_" d[4] "_" d[5] "_" d[6]] = 1 }
      { key = $3 "_" $4 "_" $5 "_" $6 } !seen[key]++' | head -4 || true
fi
