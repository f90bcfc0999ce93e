#!/usr/bin/env bash
# Prints the tuned winner of a problem and precision from a tuning DB, for run_bench.py's
# --configs-cmd:  --configs-cmd "bench/winner_config.sh {bin} DB {problem} {precision}"
set -euo pipefail
"$1" db show --db "$2" --problem "$3" --precision "$4" | awk '$1 == "1" && $3 == "ok" { print $2 }'
