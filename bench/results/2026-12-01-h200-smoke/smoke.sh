#!/usr/bin/env bash
# GPU smoke run of HEAD's carried binaries; logs under $OUT. Bounded by DEADLINE seconds overall.
set -u
DEADLINE=${DEADLINE:-420}
root=$PWD
export LD_LIBRARY_PATH=$root/.carry/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export DECONVTUNE_GOLDEN_DIR=$root/tests/golden DECONVTUNE_BINARY=$root/.carry/deconvtune
export DECONVTUNE_WORKER=$root/.carry/deconvtune XDG_CACHE_HOME=/tmp/dt-cache PYTHONUNBUFFERED=1
mkdir -p /tmp/dt-cache /tmp/dt
S=$OUT/summary.txt
say() { echo "$*" | tee -a $S; }
left() { echo $(( DEADLINE - SECONDS )); }
{ nvidia-smi; nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv; uname -a; nproc; python3 -c 'import torch; print("torch", torch.__version__, torch.version.cuda, torch.cuda.is_available())'; } >$OUT/device.txt 2>&1
say "repo root on device: $root"
for b in deconvtune deconvtune_tests deconvtune_api_tests; do m=$(ldd .carry/$b | grep 'not found'); say "ldd $b: ${m:-all found}"; done
# 1. fast GPU tests (+ Compile*, Reliability*), the slow every-config ones later
FAST='*Gpu*:Compile*:Reliability*-Golden/GoldenGpu.*:Shapes/OddShapeGpu.*:Gpu.NonFinite*:Compile.EveryConfig*'
timeout 200 .carry/deconvtune_tests --gtest_color=no --gtest_filter="$FAST" >$OUT/gpu_tests.txt 2>&1
say "1. fast gtest: rc=$? at ${SECONDS}s"
# 2. API tests
timeout 150 .carry/deconvtune_api_tests --gtest_color=no >$OUT/api_tests.txt 2>&1
say "2. api tests: rc=$? at ${SECONDS}s"
# 3. Api.PythonTorchGpu as CTest runs it
( cd /tmp/dt && for f in test_torch.py test_convert.py; do echo "=== $f -k Gpu."; PYTHONPATH=$root/python DECONVTUNE_REFERENCE_DIR=$root/bench/reference DECONVTUNE_TEST_LIBRARY_DIR=$root/.carry/lib timeout 150 python3 $root/tests/python/$f -k Gpu. ; echo "=== $f rc=$?"; done ) >$OUT/python_gpu.txt 2>&1
say "3. python gpu: $(grep '=== .* rc=' $OUT/python_gpu.txt | tr '\n' ' ') at ${SECONDS}s"
# 4. run seed --json
DECONVTUNE_DB=/tmp/dt/run.db timeout 90 .carry/deconvtune run --problem seed --json --require-gpu >$OUT/run_seed.json 2>$OUT/run_seed_stderr.txt
say "4. run seed: rc=$? at ${SECONDS}s"
# 5. slow tests in the remaining time
for f in 'Golden/GoldenGpu.*' 'Gpu.NonFinite*' 'Shapes/OddShapeGpu.*' 'Compile.EveryConfig*'; do
  t=$(left); [ $t -gt 5 ] || { say "5. $f: not run (no time left)"; continue; }
  echo "######## $f (timeout ${t}s)" >>$OUT/gpu_tests_slow.txt
  timeout $t .carry/deconvtune_tests --gtest_color=no --gtest_filter="$f" >>$OUT/gpu_tests_slow.txt 2>&1
  say "5. $f: rc=$? at ${SECONDS}s"
done
