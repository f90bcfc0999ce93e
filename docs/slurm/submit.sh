#!/usr/bin/env bash
# Tunes zoo.jsonl on a Slurm cluster: one array job of shards (tune.sbatch), then the merge
# (merge.sbatch) once every shard succeeded (docs/distributed.md, "Slurm"). Run it from the folder
# holding zoo.jsonl; results go to shards/ and merged.db there, logs to logs/.
#   submit.sh [SBATCH OPTIONS OF THE TUNING TASKS] [-- AUTOTUNE OPTIONS]
#   e.g. submit.sh --array=0-7 --gres=gpu:4 --cpus-per-task=32 -- --precision tf32
# Options for both jobs (partition, account): sbatch's environment, SBATCH_PARTITION=... etc.
# Prints "tune <job id>" and "merge <job id>".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sbatch_options=()
while (($#)) && [[ $1 != -- ]]; do
  sbatch_options+=("$1")
  shift
done
if (($#)); then shift; fi  # the --
# Slurm does not create the --output folder, and a task whose log cannot be opened fails.
mkdir -p logs shards
tune=$(sbatch --parsable "${sbatch_options[@]}" "$here/tune.sbatch" "$@")
tune=${tune%%;*}  # --parsable prints "id;cluster" on a federation
# A failed shard can never satisfy afterok: the merge is then cancelled rather than left pending.
merge=$(sbatch --parsable --dependency="afterok:$tune" --kill-on-invalid-dep=yes "$here/merge.sbatch")
merge=${merge%%;*}
echo "tune $tune"
echo "merge $merge"
