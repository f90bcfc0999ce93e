#!/usr/bin/env bash
# Device run for reliability (issue 6). About 4 GPU-minutes in all:
#   1. LimitsGpu tests: a problem larger than the GPU refused before any allocation; y of
#      2^31 + 2^22 elements (the seed shape at batch 513, 28 GB on the GPU) verified in full against
#      the float64 reference with the default config and with the general (direct) kernel.  (~30 s)
#   2. compute-sanitizer memcheck (leak check on) over the benchmark set at batch 1-2
#      (bench/device/rel_problems.jsonl, 8 shapes): every config of the space on seed_b1 and
#      odd_sizes_b2 (all families: direct, igemm, pgemm), and on the 6 other shapes the default
#      config plus every general-kernel (direct_) config.                                   (~2 min)
#   3. compute-sanitizer racecheck (shared-memory hazards) on seed_b1 and odd_sizes_b2, per family
#      a subset (racecheck is slow): the default config, the first config of each family, and the
#      first 2-stage (cp.async double-buffered, `_st2_`) config of each tensor-core family. (~1 min)
# Every sanitizer run uses `deconvtune run` (verify against the float64 reference, then 1 timed run),
# so the reference, fill and compare kernels are checked too. Exit status 0 when all is clean.
# Run from the repo root; binaries from .carry/ (deconvtune, deconvtune_tests), else $REL_BUILD
# (default build/). Logs: $OUT/rel/ (summary.txt first).
set -uo pipefail
out="${OUT:?set OUT}/rel"
mkdir -p "$out"
root=$PWD
build="${REL_BUILD:-$root/build}"
pick() {
  for candidate in "$root/.carry/$1" "$build/$1" "$build/tests/$1"; do
    [ -x "$candidate" ] && { echo "$candidate"; return; }
  done
  echo "missing-$1"
}
export LD_LIBRARY_PATH="$root/.carry/lib:${LD_LIBRARY_PATH:-}"
bin=$(pick deconvtune)
tests=$(pick deconvtune_tests)
export DECONVTUNE_BINARY="$bin" DECONVTUNE_GOLDEN_DIR="$root/tests/golden"
export DECONVTUNE_DB="$out/scratch.db"  # nothing touches the user's default DB
sanitizer=$(command -v compute-sanitizer || echo "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer")
problems="$root/bench/device/rel_problems.jsonl"
summary="$out/summary.txt"
: >"$summary"
failed=()
say() { echo "$*" | tee -a "$summary"; }
now_ms() { date +%s%3N; }
start=$(now_ms)
say "rel.sh on $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
say "binaries: $bin, $tests; $("$sanitizer" --version 2>/dev/null | tail -1)"

# 1. Limits on the GPU
t0=$(now_ms)
if "$tests" --gtest_filter='*LimitsGpu*' >"$out/limits_gpu.log" 2>&1; then
  say "1. LimitsGpu tests: passed in $(( $(now_ms) - t0 )) ms"
else
  say "1. LimitsGpu tests: FAILED (limits_gpu.log)"
  failed+=("limits gpu")
fi
grep -E "^\[ +(OK|FAILED|SKIPPED) +\]|\[ INFO" "$out/limits_gpu.log" | tee -a "$summary"

# One sanitizer run of `deconvtune run`; its log is $out/<label>.log.
sanitize() {  # tool label problem run-args...
  local tool=$1 label=$2 problem=$3
  shift 3
  local t0 rc
  t0=$(now_ms)
  "$sanitizer" --tool "$tool" --error-exitcode 86 --print-limit 50 \
    $([ "$tool" = memcheck ] && echo --leak-check full) \
    "$bin" run --problem "$problem" --reps 1 --warmup 0 --seed 6 "$@" >"$out/$label.log" 2>&1
  rc=$?
  local configs
  configs=$(grep -cE "^(direct|igemm|pgemm)_" "$out/$label.log")
  local verdict
  verdict=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY|LEAK SUMMARY" "$out/$label.log" | tail -2 | tr '\n' ' ')
  if [ $rc -eq 0 ]; then
    say "  $label: clean, $configs config(s), $(( $(now_ms) - t0 )) ms. $verdict"
  else
    say "  $label: FAILED (exit $rc), $configs config(s). $verdict"
    failed+=("$label")
  fi
}

name_of() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])["name"])' "$1"; }

# 2. memcheck
say "2. memcheck"
while IFS= read -r problem; do
  [ -z "$problem" ] && continue
  name=$(name_of "$problem")
  case "$name" in
    seed_b1 | odd_sizes_b2) sanitize memcheck "memcheck_${name}_all" "$problem" --all-configs ;;
    *)
      sanitize memcheck "memcheck_${name}_default" "$problem"
      sanitize memcheck "memcheck_${name}_direct" "$problem" --all-configs --only direct_
      ;;
  esac
done <"$problems"

# 3. racecheck on a subset per family
say "3. racecheck"
while IFS= read -r problem; do
  [ -z "$problem" ] && continue
  name=$(name_of "$problem")
  case "$name" in seed_b1 | odd_sizes_b2) ;; *) continue ;; esac
  sanitize racecheck "racecheck_${name}_default" "$problem"
  space=$("$bin" inspect --problem "$problem" --list-configs | awk '{print $1}')
  for family in direct_ igemm_ pgemm_; do
    first=$(grep -m1 "^$family" <<<"$space")
    [ -n "$first" ] && sanitize racecheck "racecheck_${name}_$first" "$problem" --config "$first"
    [ "$family" = direct_ ] && continue
    staged=$(grep "^$family" <<<"$space" | grep -m1 "_st2_")
    [ -n "$staged" ] && sanitize racecheck "racecheck_${name}_$staged" "$problem" --config "$staged"
  done
done <"$problems"

say "total $(( ($(now_ms) - start) / 1000 )) s"
if [ ${#failed[@]} -eq 0 ]; then
  say "ALL CLEAN"
else
  say "FAILED: ${failed[*]}"
  exit 1
fi
