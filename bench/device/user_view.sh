#!/usr/bin/env bash
# On the device: what a user sees of a tuning on a real GPU (issue 17's GPU half). A budgeted
# autotune of two benchmark problems into a fresh DB (the worker measures the GPU's copy
# bandwidth once; the summary gives % of best, speedup over the rule default, GB/s and % of the
# copy), then `db list` and `db show`, human and --json, into $OUT/user_view.txt (a call brings
# back only a few files). PROBLEMS: benchmark problem names; BUDGET: seconds in all.
set -u
# shellcheck source=bench/device/env.sh
source "$(dirname "$0")/env.sh"
export DECONVTUNE_WORKER=$root/.carry/deconvtune XDG_CACHE_HOME=/tmp/dt-cache
bin=$root/.carry/deconvtune
work=$(mktemp -d)
db=$work/tuning.db
for name in ${PROBLEMS:-seed k4s2_wide}; do
  bash bench/device/problem_file.sh "$name" "$work/$name.json" && cat "$work/$name.json" >> "$work/set.jsonl"
done
budget=${BUDGET:-20}
exec > "${OUT:-/tmp}/user_view.txt" 2>&1
show() { echo "\$ deconvtune $*"; COLUMNS=120 "$bin" "$@" 2>&1; echo "(exit $?)"; }
show autotune --problems "$work/set.jsonl" --db "$db" --budget-seconds "$budget" --precision tf32 -q
show db --db "$db" list --problems "$work/set.jsonl"
show db --db "$db" show --problems "$work/set.jsonl" --precision tf32
echo "\$ deconvtune db list --json (stdout only)"
"$bin" db --db "$db" list --json --problems "$work/set.jsonl" 2>/dev/null | head -c 3000; echo
echo "\$ deconvtune db export (devices)"
"$bin" db --db "$db" export --all 2>/dev/null | python3 -c \
  'import json,sys; print(json.dumps(json.load(sys.stdin).get("devices"), indent=1))'
rm -rf "$work"
