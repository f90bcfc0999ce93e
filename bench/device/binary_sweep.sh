#!/usr/bin/env bash
# On the device: the same problems' default configs, verified and timed, under several builds of
# the CLI (template variants built here and carried as .carry/deconvtune_<tag>): one line per
# (problem, build). Usage: binary_sweep.sh "tag tag ..." "problem problem ...". Logs: $OUT/builds/.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export LD_LIBRARY_PATH=$root/.carry/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
out=${OUT:-/tmp}/builds
mkdir -p "$out"
for name in $2; do
  grep "\"name\": \"$name\"" bench/problems.jsonl > "$out/$name.json"
  for tag in $1; do
    timeout "${BUILD_TIMEOUT:-60}" ".carry/deconvtune_$tag" run --problem "$out/$name.json" \
      --precision tf32 --reps 20 > "$out/${name}_$tag.txt" 2>&1
    echo "$name $tag rc=$? $(grep -E ' (ok|wrong|fault|timeout)' "$out/${name}_$tag.txt" | tail -1)"
  done
done
