#!/usr/bin/env bash
# For run_bench.py --configs-cmd "bench/device/xl_siblings.sh {bin} {problem} {precision}": the
# problem's default config, then its siblings with the other x paths (the same name with each
# other xl value) where the space lists them, after the configs matching EXTRA (an extended
# regex; those with the default's Mish): the default beside what it was chosen over.
set -euo pipefail
bin=$1 problem=$2 precision=$3
default=$("$bin" inspect --problem "$problem" --precision "$precision" | awk 'NR == 1 { sub(/.*config /, ""); print }')
listed=$("$bin" inspect --problem "$problem" --precision "$precision" --list-configs | awk '{ print $1 }')
{
  echo "$default"
  if [ -n "${EXTRA:-}" ]; then grep -E "$EXTRA" <<< "$listed" | grep -E "_${default##*_}\$" || true; fi
  for xl in 0 1 2; do
    sibling=$(sed -E "s/_xl[0-9]_/_xl${xl}_/" <<< "$default")
    if grep -qxF "$sibling" <<< "$listed"; then echo "$sibling"; fi
  done
} | awk '!seen[$0]++'
