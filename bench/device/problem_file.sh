#!/usr/bin/env bash
# The benchmark problem NAME (of bench/problems.jsonl, problems_16bit.jsonl or problems_decoders.jsonl) written to PATH as a
# problem file for `deconvtune run --problem PATH`. Usage: problem_file.sh NAME PATH; exit 1,
# saying so, where no problem has that name.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
grep -h "\"name\": \"$1\"" "$root/bench/problems.jsonl" "$root/bench/problems_16bit.jsonl" \
  "$root/bench/problems_decoders.jsonl" > "$2"
[ -s "$2" ] || { echo "no benchmark problem named '$1'" >&2; exit 1; }
