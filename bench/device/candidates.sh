#!/usr/bin/env bash
# For run_bench.py --configs-cmd "bench/device/candidates.sh {bin} {problem} {precision}": the
# problem's default config, then the wgmma configs that measured best on the seed and stride-1
# shapes (bench/results/2026-11-24-h100-wgmma/), where the problem's space has them.
set -euo pipefail
bin=$1 problem=$2 precision=$3
"$bin" inspect --problem "$problem" --precision "$precision" | awk 'NR == 1 { sub(/.*config /, ""); print }'
"$bin" inspect --problem "$problem" --precision "$precision" --list-configs | awk '{ print $1 }' |
  grep -E 'wg1_mishfast|3xtf32.*wg1' |
  grep -E 'rp2_cp64_wm4_wn2_st1_xs0|rp4_cp32_wm4_wn2_st2_xs0|rp1_cp64_wm4_wn2_st1_xs1|rp1_cp64_wm4_wn2_st2_xs0' || true
