#!/usr/bin/env bash
# On the device: every wsgemm (Hopper family) config verified and timed on each benchmark problem
# (SWEEP_PRECISION, default tf32), beside the pgemm default it replaces; then every GPU test (each
# config of each space on the PyTorch goldens and the odd shapes). Binaries and libraries come
# carried in .carry/.
# SWEEP_ONLY picks problems, GPU_TESTS=0 skips the tests. Results: $OUT/sweep.tgz.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export LD_LIBRARY_PATH=$root/.carry/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export DECONVTUNE_GOLDEN_DIR=$root/tests/golden DECONVTUNE_BINARY=$root/.carry/deconvtune
cli=$root/.carry/deconvtune
out=${OUT:-/tmp}/sweep
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$out/device.txt"
for name in ${SWEEP_ONLY:-seed stride1 small_batch odd_sizes groups4 k4s2_leaky stride3_k5 asym_dilated}; do
  grep "\"name\": \"$name\"" bench/problems.jsonl > "$out/$name.json"
  timeout "${SWEEP_TIMEOUT:-60}" "$cli" run --problem "$out/$name.json" --precision "${SWEEP_PRECISION:-tf32}" --all-configs \
    --only "${SWEEP_FILTER:-wsgemm}" > "$out/${name}_${SWEEP_PRECISION:-tf32}_wsgemm.txt" 2>&1
  f=$out/${name}_${SWEEP_PRECISION:-tf32}_wsgemm.txt
  echo "== $name: $(awk '$2 == "ok"' "$f" | wc -l) ok, $(awk '/^wsgemm/ && $2 != "ok"' "$f" | wc -l) not; fastest:"
  awk '/^wsgemm/ && $2 == "ok" { print $1, $3, $5 }' "$f" | sort -g -k2 | head -"${SWEEP_TOP:-4}"
  awk '/^wsgemm/ && $2 != "ok" { print $1, $2 }' "$f" | head -3
  grep -m2 -E '^  wsgemm' "$f"
done
"$cli" run --problem seed --precision tf32 --config pgemm_tf32_bn64_rp2_cp64_wm4_wn2_st1_xs0_wg1_mishfast \
  > "$out/seed_pgemm_default.txt" 2>&1
echo "seed pgemm (previous default): $(awk '/^pgemm/ { print $2, $3, $5 }' "$out/seed_pgemm_default.txt")"
if [ "${GPU_TESTS:-1}" = 1 ]; then
  timeout "${TEST_TIMEOUT:-240}" "$root/.carry/deconvtune_tests" --gtest_filter='*Gpu*' > "$out/gpu_tests.txt" 2>&1
  grep -E "tests ran|PASSED|FAILED|Failure" "$out/gpu_tests.txt" | head -20
fi
tar czf "${OUT:-/tmp}/sweep.tgz" -C "$(dirname "$out")" sweep
