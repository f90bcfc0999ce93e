#!/usr/bin/env bash
# For run_bench.py --configs-cmd "bench/device/knob_candidates.sh {bin} {problem} {precision} KNOB":
# the problem's default config, then every config of its space that differs from it in KNOB alone
# (a name part such as xl or st: `_st2_` against `_st3_`, `_st4_`), so one run measures one knob
# beside PyTorch on every problem.
set -euo pipefail
bin=$1 problem=$2 precision=$3 knob=$4
default=$("$bin" inspect --problem "$problem" --precision "$precision" | awk 'NR == 1 { sub(/.*config /, ""); print }')
echo "$default"
pattern=$(printf '%s\n' "$default" | sed -E "s/_${knob}[0-9]+_/_${knob}[0-9]+_/")
[ "$pattern" != "$default" ] || exit 0  # the default has no such knob (another family)
"$bin" inspect --problem "$problem" --precision "$precision" --list-configs | awk '{ print $1 }' |
  grep -E -x "$pattern" | grep -v -x -F "$default" || true
