#!/usr/bin/env bash
# Where the wsgemm time goes, by leaving stages out (bench/probes/stage_probe.cu).
#   stage_probe.sh build PROBLEM[:CONFIG] ...   here (nvcc, build/deconvtune): for each problem of
#       the benchmark sets (bench/device/problem_file.sh; its default config, or CONFIG), the generated kernel and its
#       variants, built into .carry/stage/ (carry .carry to the device)
#   stage_probe.sh run                           on the device: times every variant built
# Variants: base (as generated), nocopy (the producer moves no x: W, barriers and ring stay),
# nomma (no wgmma: the accumulators set, not computed), nostore (the epilogue computed, y not
# stored), nocopy_nomma (what is left: epilogue, stores, synchronisation); for staged windows
# (xl2) also nostage (no bulk copies into the staging ring), notranspose (staged, not moved into
# the slots), nosync (no named barrier among the producer's warps after each piece) and
# nostage_notranspose, and deep (64 channels of pieces in flight instead of 32: a staging ring
# twice as deep, the question of bench/results/2026-12-03-h200-tma). VARIANTS: the variants to
# build (default: all).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$root/.carry/stage
mode=${1:-}
shift || true
case $mode in
build)
  mkdir -p "$out"
  for pair in "$@"; do
    name=${pair%%:*} config=
    [ "$pair" != "$name" ] && config="--config ${pair#*:}"
    bash "$root/bench/device/problem_file.sh" "$name" "$out/$name.json"
    # shellcheck disable=SC2086
    "$root/build/deconvtune" inspect --problem "$out/$name.json" --precision tf32 $config \
      > "$out/$name.cu"
    # shellcheck disable=SC2086
    "$root/build/deconvtune" inspect --problem "$out/$name.json" --precision tf32 $config \
      --resources | sed -n 's/.*grid \[\([0-9]*\), \([0-9]*\), \([0-9]*\)\].*/\1 \2 \3/p' \
      > "$out/$name.grid"
    staged=$(grep -c 'define DT_XL 2' "$out/$name.cu" || true)
    variants=${VARIANTS:-base nocopy nomma nostore nocopy_nomma}
    [ -z "${VARIANTS:-}" ] && [ "$staged" -gt 0 ] &&
      variants="$variants nostage notranspose nosync nostage_notranspose deep"
    for variant in $variants; do
      python3 - "$out/$name.cu" "$out/${name}_$variant.cu" "$variant" <<'PY'
import re, sys
src, dst, variant = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(src).read()
def first_statement(function, statement):
    # `statement` first in the body of `function` (a template's device function), or fail loudly.
    global text
    at = re.search(r"void " + function + r"\(", text)
    if not at:
        sys.exit(f"stage_probe: no function {function} in {src}")
    brace = text.index("{", at.end())
    text = text[:brace + 1] + "\n" + statement + "\n" + text[brace + 1:]
skip = "return;"
if "nocopy" in variant:
    for function in ("issue_window", "prepare_window", "load_window"):
        first_statement(function, skip)
if "nomma" in variant:
    first_statement("mainloop_tf32", "for (int t_ = 0; t_ < TILES; ++t_) for (int i_ = 0; "
                    "i_ < CP / 2; ++i_) acc[t_][i_] = (float)i_; return;")
if "nostage" in variant:
    first_statement("stage_piece", "mbarrier_arrive(landed); return;")
if "notranspose" in variant:
    first_statement("transpose_piece", "return;")
if "nosync" in variant:
    barrier = "named_barrier_wait<WG_THREADS>(PRODUCER_SYNC);"
    if barrier not in text:
        sys.exit(f"stage_probe: no producer barrier in {src}")
    text = text.replace(barrier, "")
if variant == "deep":
    depth = "constexpr int STAGING_DEPTH = 32 / PIECE;"
    if depth not in text:
        sys.exit(f"stage_probe: no staging depth in {src}")
    text = text.replace(depth, "constexpr int STAGING_DEPTH = 64 / PIECE;")
if "nostore" in variant:
    # Kept computing: a store the data almost never asks for.
    first_statement("store_run", "if (v[0] != 1234.5f) return;")
open(dst, "w").write(text)
PY
      nvcc -std=c++17 -O2 -gencode arch=compute_90a,code=sm_90a \
        -DKERNEL_SOURCE="\"$out/${name}_$variant.cu\"" -o "$out/${name}__$variant" \
        "$root/bench/probes/stage_probe.cu"
      echo "built $name $variant"
    done
  done
  ;;
run)
  for binary in "$out"/*__*; do
    case $binary in *.cu) continue ;; esac
    [ -x "$binary" ] || continue
    name=$(basename "$binary")
    problem=${name%%__*}
    # shellcheck disable=SC2046
    echo "$name: $("$binary" $(cat "$out/$problem.grid"))"
  done
  ;;
*)
  echo "usage: stage_probe.sh build PROBLEM[:CONFIG] ... | stage_probe.sh run" >&2
  exit 2
  ;;
esac
