#!/usr/bin/env bash
# The full CPU test, as CI runs it (.ci/run, README's test command), from the repository root:
#   1. Release build (g++) and every CTest test (GPU tests report themselves skipped without a GPU);
#   2. the same suite built with AddressSanitizer + UndefinedBehaviorSanitizer (clang-14, any
#      report aborts the test), which also builds the libFuzzer targets;
#   3. each fuzzer for a bounded time from its committed seed corpus (fuzz/corpus/<target>/).
# Needs what scripts/install-deps.sh installs. Fails at the first failing step.
#
# Settings (environment): CHECK_JOBS (build and test parallelism, default 2), CHECK_BUILD_DIR
# (default build), CHECK_SANITIZE_BUILD_DIR (default build-asan), FUZZ_SECONDS (per target, default
# 60; 0 skips fuzzing), FUZZ_MAX_LEN (the longest input a fuzzer makes, default 1200000 bytes: past
# the 1 MiB problem-file limit and the ~120 KB JSON nesting that once overflowed the stack, which a
# 64 KiB cap could never reach; fuzz/*.dict hold depth and size tokens, fuzz/corpus/ deep and large
# seeds), CHECK_SANITIZE_EXCLUDE (CTest -E regex for the sanitizer run; default: the
# NVRTC compile tests, which take minutes and exercise NVRTC rather than our code; they run in
# step 1).
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=${CHECK_JOBS:-2}
build=${CHECK_BUILD_DIR:-build}
asan_build=${CHECK_SANITIZE_BUILD_DIR:-build-asan}
fuzz_seconds=${FUZZ_SECONDS:-60}
fuzz_max_len=${FUZZ_MAX_LEN:-1200000}
asan_exclude=${CHECK_SANITIZE_EXCLUDE:-^Compile\.}
fuzz_targets=(problem epilogue db_import cubin)

step() { printf '\n==== check: %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
started=$(date +%s)

step "Release build and tests"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DDECONVTUNE_BUILD_TESTS=ON -DDECONVTUNE_BUILD_BENCHMARKS=ON
cmake --build "$build" -j"$jobs"
ctest --test-dir "$build" --output-on-failure -j"$jobs"

step "ASan + UBSan build (clang-14) and tests"
# Leaks are errors too, except the CUDA toolkit's own (fuzz/lsan.supp says which and why).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/fuzz/lsan.supp:print_suppressions=0}
cmake -S . -B "$asan_build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
  -DDECONVTUNE_SANITIZE=address,undefined -DDECONVTUNE_FUZZ=ON \
  -DDECONVTUNE_BUILD_TESTS=ON -DDECONVTUNE_BUILD_BENCHMARKS=ON
cmake --build "$asan_build" -j"$jobs"
ctest --test-dir "$asan_build" --output-on-failure -j"$jobs" -E "$asan_exclude"

if ((fuzz_seconds > 0)); then
  findings="$asan_build/fuzz-findings"
  mkdir -p "$findings"
  for target in "${fuzz_targets[@]}"; do
    step "fuzz_$target for ${fuzz_seconds} s"
    # New inputs go to a scratch folder: the committed corpus changes only by hand.
    scratch=$(mktemp -d)
    dict=()
    [[ -f fuzz/$target.dict ]] && dict=(-dict="fuzz/$target.dict")
    if ! "$asan_build/fuzz/fuzz_$target" "${dict[@]}" -max_total_time="$fuzz_seconds" \
      -timeout=10 -rss_limit_mb=2048 -max_len="$fuzz_max_len" -print_final_stats=1 -print_funcs=0 \
      -artifact_prefix="$findings/$target-" "$scratch" "fuzz/corpus/$target" 2>"$findings/$target.log"; then
      tail -n 60 "$findings/$target.log" >&2
      echo "check: fuzz_$target found a failing input (in $findings/); keep it under" \
        "fuzz/regressions/$target/ once fixed" >&2
      rm -rf "$scratch"
      exit 1
    fi
    grep -E '^(Done|stat::number_of_executed_units)' "$findings/$target.log" || true
    rm -rf "$scratch"
  done
fi

step "all passed in $(( $(date +%s) - started )) s"
