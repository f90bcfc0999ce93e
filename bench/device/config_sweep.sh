#!/usr/bin/env bash
# On the device: named configs of named problems under several carried CLIs (template variants
# built here as .carry/deconvtune_<tag>), each verified against the float64 GPU reference and
# timed: one line per run. Usage: config_sweep.sh "tag:problem:config ..." (tag "" is
# .carry/deconvtune, config "" the problem's default). Problems come from bench/problems.jsonl or
# problems_16bit.jsonl. CONFIG_TIMEOUT: seconds per run.
# Logs: $OUT/configs/.
set -u
# shellcheck source=bench/device/env.sh
source "$(dirname "$0")/env.sh"
out=${OUT:-/tmp}/configs
mkdir -p "$out"
for entry in $1; do
  IFS=: read -r tag name config <<< "$entry"
  bash bench/device/problem_file.sh "$name" "$out/$name.json" || continue
  log=$out/${tag:-main}_${name}_${config:-default}.txt
  timeout "${CONFIG_TIMEOUT:-60}" ".carry/deconvtune${tag:+_$tag}" run --problem "$out/$name.json" \
    --precision tf32 --reps 20 ${config:+--config "$config"} > "$log" 2>&1
  echo "${tag:-main} $name rc=$? $(grep -E ' (ok|wrong|fault|timeout|compile)' "$log" | tail -1)"
done
