#!/usr/bin/env bash
# Device run for the runtime library and the PyTorch drop-in (issue 5). About 3 minutes:
#   1. The API's GPU tests: C++ (every plan vs the float64 reference, plan and cubin caches,
#      threads, context kept, argument checks, tuned/nearest/rule/fail, tune-on-miss with a 10 s
#      budget) and the C test, then the torch tests (GPU part: outputs and gradients vs the Model
#      and the unfused model, allow_tf32, current stream, torch.compile, opcheck; convert() on
#      decoders within the precision's bound).                                         (~50 s)
#   2. The launch-overhead Google Benchmark: host time of a cached plan's run() (target <= 5 us).
#                                                                                        (~5 s)
#   3. pip install ./python into a fresh venv (offline, system torch visible), then
#      bench/python_bench.py: the module vs the user's Model on the benchmark set, eager and
#      torch.compile beside it, per-call overhead.                                     (~90 s)
#   4. Only with API_REPORT=1 (about 2 more minutes): default-report, the untuned default vs the
#      tuned winner on the benchmark set. The winners come from $API_REPORT_DB when given (e.g. the
#      tuner's DB of an earlier step; no tuning then), else from a short tuning run into a fresh DB
#      (--max-trials $API_REPORT_TRIALS, default 12, per problem and precision).
# Run from the repo root. Binaries: .carry/ (deconvtune, deconvtune_api_tests, deconvtune_api_c_test,
# deconvtune_launch_overhead) and .carry/lib/ (libdeconvtune.so*, libcrypto), else $API_BUILD
# (default build/). Logs and tables go to $OUT/api/. Exit status 0 when every step passed.
set -uo pipefail
out="${OUT:?set OUT}/api"
mkdir -p "$out"
root=$PWD
build="${API_BUILD:-$root/build}"
pick() {  # the carried binary, else the build folder's
  for candidate in "$root/.carry/$1" "$build/$1" "$build/tests/$1"; do
    [ -x "$candidate" ] && { echo "$candidate"; return; }
  done
  echo "missing-$1"
}
export LD_LIBRARY_PATH="$root/.carry/lib:$build:${LD_LIBRARY_PATH:-}"
library_dir="$root/.carry/lib"
[ -e "$library_dir/libdeconvtune.so" ] || library_dir="$build"
export DECONVTUNE_LIBRARY_PATH="$library_dir"
export DECONVTUNE_BINARY
DECONVTUNE_BINARY=$(pick deconvtune)
export DECONVTUNE_DB="$out/scratch.db"  # nothing reads or writes the user's default DB
rm -f "$DECONVTUNE_DB"*
export DECONVTUNE_GOLDEN_DIR="$root/tests/golden"
summary="$out/summary.txt"
: >"$summary"
failed=()
say() { echo "$*" | tee -a "$summary"; }
now_ms() { date +%s%3N; }
say "== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null)"
say "library: $library_dir, CLI: $DECONVTUNE_BINARY"
# Shared libraries the binaries need that this machine lacks (carry them in .carry/lib).
for b in deconvtune_api_tests deconvtune_api_c_test deconvtune_launch_overhead; do
  missing=$(ldd "$(pick $b)" 2>&1 | grep "not found")
  [ -z "$missing" ] || say "WARNING: $b lacks: $missing"
done

# 1. GPU tests of the API
t0=$(now_ms)
"$(pick deconvtune_api_tests)" >"$out/api_tests.log" 2>&1
rc=$?
say "1a. deconvtune_api_tests: exit $rc in $(( $(now_ms) - t0 )) ms"
grep -E "^\[ +(OK|FAILED|SKIPPED) +\]|tests? (passed|failed)" "$out/api_tests.log" | tee -a "$summary"
[ $rc -eq 0 ] || failed+=("api tests")
"$(pick deconvtune_api_c_test)" "$out/c_test.db" "$(cat "$root/python/deconvtune/_version.py" | sed -n 's/__version__ = "\(.*\)"/\1/p')" \
  >"$out/api_c_test.log" 2>&1
rc=$?
say "1b. C API test: exit $rc; $(tail -n 1 "$out/api_c_test.log")"
[ $rc -eq 0 ] || failed+=("C API test")

# 3 (first part). The package, installed offline into a fresh venv that sees the system's torch.
venv="$out/venv"
rm -rf "$venv"
t0=$(now_ms)
if python3 -m venv --system-site-packages "$venv" >"$out/pip.log" 2>&1 &&
   PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/pip" install --no-index --no-cache-dir ./python \
     >>"$out/pip.log" 2>&1; then
  say "3a. pip install --no-index ./python: ok in $(( $(now_ms) - t0 )) ms"
  py="$venv/bin/python"
  # The machine's python3 may itself live in a virtualenv, whose packages --system-site-packages
  # does not reach: point the venv at the folder torch comes from.
  torch_site=$(python3 -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))' 2>/dev/null)
  if [ -n "$torch_site" ] && ! "$py" -c 'import torch' 2>/dev/null; then
    echo "$torch_site" >"$("$py" -c 'import site; print(site.getsitepackages()[0])')/machine_torch.pth"
  fi
else
  say "3a. pip install --no-index ./python: FAILED (see pip.log); using PYTHONPATH=python"
  failed+=("pip install")
  py=python3
  export PYTHONPATH="$root/python"
fi

for suite in test_torch test_convert; do
  t0=$(now_ms)
  (cd "$out" && DECONVTUNE_TEST_LIBRARY_DIR="$library_dir" DECONVTUNE_REFERENCE_DIR="$root/bench/reference" \
    "$py" "$root/tests/python/$suite.py") >"$out/$suite.log" 2>&1
  rc=$?
  say "1c. torch $suite: exit $rc in $(( $(now_ms) - t0 )) ms; $(grep -E '^(OK|FAILED)' "$out/$suite.log")"
  grep -E "\.\.\. (ok|FAIL|ERROR|skipped)" "$out/$suite.log" | tee -a "$summary"
  [ $rc -eq 0 ] || failed+=("torch $suite")
done

# 2. Launch overhead
"$(pick deconvtune_launch_overhead)" --benchmark_min_time=0.5 --benchmark_repetitions=3 \
  --benchmark_report_aggregates_only=true --benchmark_out="$out/launch_overhead.json" \
  --benchmark_out_format=json >"$out/launch_overhead.log" 2>&1
rc=$?
cat "$out/launch_overhead.log" | tee -a "$summary"
verdict=$(python3 - "$out/launch_overhead.json" <<'EOF'
import json, sys
runs = {b["name"]: b for b in json.load(open(sys.argv[1]))["benchmarks"]}
b = runs["BM_CachedPlanRun_median"]
scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3}[b["time_unit"]]
us = b["cpu_time"] * scale
print(f"cached plan run(): {us:.2f} us host time per call (median of 3): "
      f"{'PASS' if us <= 5 else 'FAIL'} (target <= 5 us)")
EOF
)
say "2. $verdict"
[[ $rc -eq 0 && "$verdict" == *PASS* ]] || failed+=("launch overhead")

# 3. The module vs the user's Model, timings
t0=$(now_ms)
"$py" "$root/bench/python_bench.py" --out "$out" --reps 10 >"$out/python_bench.log" 2>&1
rc=$?
say "3b. python_bench.py: exit $rc in $(( $(now_ms) - t0 )) ms (table: python_bench.md)"
grep -E "^\|" "$out/python_bench.md" 2>/dev/null | tee -a "$summary"
[ $rc -eq 0 ] || failed+=("python bench")

# 4. Untuned default vs tuned winner
if [ -n "${API_REPORT:-}" ]; then
  if [ -n "${API_REPORT_DB:-}" ]; then
    db="$API_REPORT_DB"
    say "4a. winners from $db"
  else
    db="$out/report.db"
    rm -f "$db"*
    t0=$(now_ms)
    for precision in fp32 tf32; do
      "$DECONVTUNE_BINARY" autotune --problems "$root/bench/problems.jsonl" --precision "$precision" --db "$db" \
        --strategy random --max-trials "${API_REPORT_TRIALS:-12}" --reps 5 --no-launch \
        >"$out/report_tune_$precision.log" 2>&1 || failed+=("report tuning $precision")
    done
    say "4a. tuning for the report: $(( $(now_ms) - t0 )) ms"
  fi
  t0=$(now_ms)
  "$DECONVTUNE_BINARY" default-report --problems "$root/bench/problems.jsonl" --db "$db" --reps 5 \
    --out "$out/default_report.md" >"$out/default_report.log" 2>&1
  rc=$?
  say "4b. default-report: exit $rc in $(( $(now_ms) - t0 )) ms"
  cat "$out/default_report.md" 2>/dev/null | tee -a "$summary"
  [ $rc -eq 0 ] || failed+=("default report")
fi

if [ ${#failed[@]} -eq 0 ]; then
  say "== api: all steps passed"
else
  say "== api: FAILED: ${failed[*]}"
  exit 1
fi
