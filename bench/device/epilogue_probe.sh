#!/usr/bin/env bash
# On the device: what the epilogue costs the wsgemm kernels. The same shape and configs with the
# seed's chain (Mish, fast and exact), with relu, and with no epilogue at all (the problems of
# bench/device/probe/epilogue_cost.jsonl); the time that goes when the chain goes is the time the
# epilogue is not hidden under the tensor-core work. Argument pairs "problem-prefix:config-part".
set -u
# shellcheck source=bench/device/env.sh
source "$(dirname "$0")/env.sh"
out=${OUT:-/tmp}/epilogue_probe
mkdir -p "$out"
for pair in "$@"; do
  prefix=${pair%%:*} part=${pair#*:}
  grep "\"name\": \"${prefix}_" bench/device/probe/epilogue_cost.jsonl | while read -r line; do
    name=$(echo "$line" | sed 's/.*"name": "\([^"]*\)".*/\1/')
    echo "$line" > "$out/$name.json"
    timeout "${PROBE_TIMEOUT:-90}" .carry/deconvtune run --problem "$out/$name.json" --precision tf32 \
      --all-configs --only "$part" --reps 20 --json > "$out/$name.run.json" 2> "$out/$name.log"
    python3 bench/device/sweep.py "$out/$name.run.json" --top 8
  done
done
