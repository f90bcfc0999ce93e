#!/usr/bin/env bash
# On the device: the same problems' default configs, verified and timed, under several builds of
# the CLI (template variants built here and carried as .carry/deconvtune_<tag>, e.g. by
# build_clis.sh): one line per (problem, build). Usage: binary_sweep.sh "tag tag ..." "problem
# problem ...". BUILD_TIMEOUT: seconds per run. Logs: $OUT/configs/ (config_sweep.sh).
set -u
entries=""
for name in $2; do
  for tag in $1; do entries="$entries $tag:$name:"; done
done
CONFIG_TIMEOUT=${BUILD_TIMEOUT:-60} exec bash "$(dirname "$0")/config_sweep.sh" "$entries"
