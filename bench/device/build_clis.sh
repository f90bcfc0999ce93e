#!/usr/bin/env bash
# Here (not on the device): the CLI of each given commit, built in a throwaway worktree and copied
# to .carry/deconvtune_<tag>, for bench/device/binary_sweep.sh to time the same problems under
# every build (a bisection of a kernel regression). The templates are compiled into the CLI, so
# each binary carries its own commit's kernels.
#   build_clis.sh TAG=COMMIT [TAG=COMMIT ...]      e.g. build_clis.sh old=c6b5004 stream=134c2a9
# About 5 minutes per commit on 2 cores. The worktrees are removed afterwards.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
[ $# -gt 0 ] || { sed -n '2,7p' "$0" >&2; exit 2; }
mkdir -p .carry
for pair in "$@"; do
  tag=${pair%%=*} commit=${pair#*=}
  if [ "$tag" = "$pair" ] || ! [[ $tag =~ ^[A-Za-z0-9_]+$ ]]; then
    echo "build_clis: '$pair' is not TAG=COMMIT (TAG: letters, digits, _)" >&2
    exit 2
  fi
  git rev-parse --verify --quiet "$commit^{commit}" > /dev/null ||
    { echo "build_clis: $commit is not a commit here" >&2; exit 2; }
  tree=$(mktemp -d)
  git worktree add --detach --quiet "$tree" "$commit"
  if cmake -S "$tree" -B "$tree/build" -DCMAKE_BUILD_TYPE=Release > "$tree.log" 2>&1 &&
    cmake --build "$tree/build" -j"${CHECK_JOBS:-2}" --target deconvtune >> "$tree.log" 2>&1; then
    cp "$tree/build/deconvtune" ".carry/deconvtune_$tag"
    echo "built .carry/deconvtune_$tag ($(git log --oneline -1 "$commit" | cut -c1-70))"
  else
    echo "build_clis: $commit failed to build (log: $tree.log)" >&2
  fi
  git worktree remove --force "$tree"
done
