#!/usr/bin/env bash
# On the device: the Python/PyTorch tests as CTest runs them (Api.PythonTorch*), against the carried
# library, under the device's PyTorch (2.x, so the torch.compile cases run). Logs: $OUT/python/.
# PYTHON_TESTS: the runs instead of the default three, ';'-separated (a test file and its arguments).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-/tmp}/python
mkdir -p "$out" /tmp/dt /tmp/dt-cache
export LD_LIBRARY_PATH=$root/.carry/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export PYTHONPATH=$root/python DECONVTUNE_REFERENCE_DIR=$root/bench/reference \
  DECONVTUNE_TEST_LIBRARY_DIR=$root/.carry/lib DECONVTUNE_BINARY=$root/.carry/deconvtune \
  DECONVTUNE_WORKER=$root/.carry/deconvtune XDG_CACHE_HOME=/tmp/dt-cache PYTHONUNBUFFERED=1
python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name())'
cd /tmp/dt
IFS=';' read -r -a tests <<< "${PYTHON_TESTS:-test_compile.py;test_torch.py -k Gpu.;test_convert.py -k Gpu.}"
for test in "${tests[@]}"; do
  log=$out/${test%%.py*}.txt
  # shellcheck disable=SC2086
  timeout "${PYTHON_TIMEOUT:-200}" python3 "$root/tests/python/"$test > "$log" 2>&1
  echo "== $test: rc=$? $(grep -E '^(OK|FAILED|Ran )' "$log" | tr '\n' ' ')"
done
