#!/usr/bin/env bash
# Issue 17.8: a real scheduler runs the Slurm scripts users are given (docs/slurm/, which
# docs/distributed.md points to). The test starts its own single-node cluster (munged, slurmctld,
# slurmd, all configured and kept under one temp dir), tunes a problems file with
# docs/slurm/submit.sh (an array job, one shard DB per task, with the simulated measurer), lets its
# merge job `db import` the shard DBs, and checks the merged winners equal one unsharded run's.
#   tests/slurm_array.sh DECONVTUNE_BINARY
# Exit 0: passed, 1: failed, 77: skipped (CTest SKIP_RETURN_CODE), e.g. where Slurm is not installed
# (scripts/install-deps.sh --test installs it). Every wait is bounded and the daemons are stopped on
# every exit, so the test never hangs and leaves nothing running (unless SIGKILLed: the deadlines
# here add up to about 4 minutes, under CTest's TIMEOUT of 5; a pass takes about 10 s).
# SLURM_TEST_KEEP=1 keeps the temp dir for a look.
set -euo pipefail

(($# == 1)) || { echo "usage: $0 DECONVTUNE_BINARY" >&2; exit 2; }
binary=$(realpath "$1")
repo=$(cd "$(dirname "$0")/.." && pwd)
shards=3
# The daemons live in sbin, which a non-login root shell (a container's) may not have on PATH.
PATH=/usr/sbin:/sbin:$PATH

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }

for tool in munged munge unmunge slurmctld slurmd sbatch scontrol sinfo squeue scancel jq; do
  command -v "$tool" >/dev/null ||
    skip "no $tool: this test needs slurm-wlm, munge and jq (scripts/install-deps.sh --test)"
done
# slurmd starts jobs as their owner, which needs root. CI and the containers it runs in are root.
[[ $(id -u) -eq 0 ]] || skip "slurmd must run as root to start jobs; run the test as root"

# Under /tmp whatever $TMPDIR says: munged needs every directory above its socket o+x (below), and
# a socket path fits in 107 bytes.
tmp=$(mktemp -d /tmp/deconvtune-slurm.XXXXXX)
work=$tmp/work
mkdir -p "$work" "$tmp/state" "$tmp/spool" "$tmp/node-tmp"
munge_pid="" ctld_pid="" slurmd_pid=""
export SLURM_CONF=$tmp/slurm.conf  # every Slurm command below talks to this cluster only

# Stops a daemon this test started: SIGTERM, then SIGKILL if it is still there after 10 s.
stop() {
  local pid=$1
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in {1..100}; do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# On every exit: cancel what still runs, stop the daemons, say why on failure, remove the temp dir.
cleanup() {
  local status=$?
  set +e
  if [[ -n $ctld_pid ]] && kill -0 "$ctld_pid" 2>/dev/null; then
    timeout 10 scancel --quiet --user="$(id -un)"
    local deadline=$((SECONDS + 15))  # the jobs' processes end before slurmd does (KillWait=5)
    while ((SECONDS < deadline)); do
      [[ -z $(timeout 5 squeue --noheader --format=%i 2>/dev/null) ]] && break
      sleep 0.5
    done
  fi
  stop "$slurmd_pid"
  stop "$ctld_pid"
  stop "$munge_pid"
  if ((status != 0 && status != 77)); then
    for log in "$tmp"/*.log "$work"/logs/*.log; do
      [[ -f $log ]] || continue
      echo "---- ${log#"$tmp"/} (last 40 lines)" >&2
      tail -n 40 "$log" >&2
    done
  fi
  if [[ ${SLURM_TEST_KEEP:-0} == 1 ]]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP  # so that cleanup runs when CTest or a user stops the test

# Runs "$@" every 0.2 s until it succeeds; fails after $1 seconds.
await() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "$what: not within $seconds s"
    sleep 0.2
  done
}

# A port nothing listens on (a refused connection), for slurmctld and slurmd: CI machines may run
# a Slurm of their own on the default ports 6817/6818.
used_ports=()
free_port() {
  local port
  for _ in {1..100}; do
    port=$((20000 + RANDOM % 40000))
    [[ " ${used_ports[*]} " == *" $port "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      used_ports+=("$port")
      return 0
    fi
  done
  fail "no free TCP port found"
}

# munged with its own key and socket: a system munged (its key, /run/munge) is neither needed nor
# touched. munged refuses a socket that other users cannot reach (each directory above it must be
# o+x); the key stays in a directory only root can read.
chmod 755 "$tmp"
mkdir -m 700 "$tmp/munge-key"
mkdir -m 755 "$tmp/munge"
dd if=/dev/urandom of="$tmp/munge-key/munge.key" bs=1024 count=1 status=none
chmod 400 "$tmp/munge-key/munge.key"
socket=$tmp/munge/munge.socket
munged --foreground --key-file="$tmp/munge-key/munge.key" --socket="$socket" \
  --pid-file="$tmp/munge-key/munged.pid" --seed-file="$tmp/munge-key/munged.seed" \
  --log-file="$tmp/munged.log" >/dev/null 2>&1 &  # it logs to the file too
munge_pid=$!
credential_round_trip() { munge --socket="$socket" --no-input | unmunge --socket="$socket"; }
await 10 "munged answering on its socket" credential_round_trip

host=$(uname -n)
host=${host%%.*}
free_port
free_port
cat >"$SLURM_CONF" <<EOF
# Written by tests/slurm_array.sh: a one-node cluster private to the test.
ClusterName=deconvtune-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=${used_ports[0]}
SlurmdPort=${used_ports[1]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
# No cgroups (a container has no writable cgroup tree and no systemd): processes are tracked by
# their parent chain, tasks are not bound.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
PlugStackConfig=$tmp/plugstack.conf
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
# FIFO, scheduled on every submission and completion: no 30 s backfill cycle to wait for.
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
KillWait=5
MinJobAge=600
InactiveLimit=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=test Nodes=$host Default=YES State=UP
EOF
: >"$tmp/plugstack.conf"  # the system's (/etc/slurm/plugstack.conf) would load SPANK plugins

# In the foreground (-D): their pids are known, their logs (stderr, no LogFile above) go to tmp.
slurmctld -D -i -f "$SLURM_CONF" >"$tmp/slurmctld.log" 2>&1 &
ctld_pid=$!
await 20 "slurmctld answering" timeout 5 scontrol ping
slurmd -D -f "$SLURM_CONF" -N "$host" >"$tmp/slurmd.log" 2>&1 &
slurmd_pid=$!
node_idle() { [[ $(timeout 5 sinfo --noheader --nodes="$host" --format=%t) == idle ]]; }
await 20 "node $host idle (slurmd registered)" node_idle

# Six problems (those of TunerShard.ShardDbsImportedGiveTheUnshardedWinners, tests/test_tuner.cpp).
cd "$work"
for batch in 1 2 3; do
  for channels in 4 8; do
    echo "{\"batch\": $batch, \"in_channels\": 4, \"out_channels\": $channels, \"height\": 5," \
      "\"width\": 7, \"kernel_size\": 3, \"stride\": 2, \"padding\": 1, \"output_padding\": 1}"
  done
done >zoo.jsonl
problems=$(wc -l <zoo.jsonl)

timeout 60 "$binary" autotune --problems zoo.jsonl --devices all --db whole.db --no-launch \
  --simulate -q >whole.log 2>&1 || { cat whole.log >&2; fail "the unsharded autotune failed"; }

# The documented submission, as a user runs it; only what this machine needs differs: no GPU to
# ask for, one core a task, a short time limit (a hung task is killed), the simulated measurer.
# The jobs inherit this environment (sbatch --export=ALL): deconvtune on PATH, TMPDIR, SLURM_CONF.
submitted=$(PATH=$(dirname "$binary"):$PATH TMPDIR=$tmp/node-tmp timeout 20 \
  "$repo/docs/slurm/submit.sh" --array=0-$((shards - 1)) --cpus-per-task=1 --time=2 \
  -- --simulate -q) || fail "docs/slurm/submit.sh failed"
echo "$submitted"
tune=$(awk '$1 == "tune" { print $2 }' <<<"$submitted")
merge=$(awk '$1 == "merge" { print $2 }' <<<"$submitted")
[[ -n $tune && -n $merge ]] || fail "submit.sh printed no job ids"

# The states of a job (one line per array task).
states() { timeout 10 scontrol --oneliner show job "$1" | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
merge_ended() { [[ $(states "$merge") =~ ^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED)$ ]]; }
await 60 "the merge job $merge ending" merge_ended
tune_states=$(states "$tune" | sort | uniq -c | xargs)
[[ $tune_states == "$shards COMPLETED" ]] || fail "tuning tasks: $tune_states (want $shards COMPLETED)"
[[ $(states "$merge") == COMPLETED ]] || fail "the merge job ended $(states "$merge")"

# Each task tuned its shard ("shard i/n: k of m problem(s)", the first line of its log) and
# published a DB if the shard holds any problem; together the shards hold every problem once.
tuned=0
nonempty=0
for ((i = 0; i < shards; i++)); do
  log=logs/tune_${tune}_${i}.log
  line=$(head -n 1 "$log" 2>/dev/null) || fail "no $log"
  [[ $line =~ ^shard\ $i/$shards:\ ([0-9]+)\ of\ $problems\ problem ]] ||
    fail "$log starts '$line', not 'shard $i/$shards: K of $problems problem(s)'"
  k=${BASH_REMATCH[1]}
  tuned=$((tuned + k))
  if ((k > 0)); then
    nonempty=$((nonempty + 1))
    [[ -f shards/shard_$i.db ]] || fail "shard $i holds $k problems but published no DB"
  else
    [[ ! -e shards/shard_$i.db ]] || fail "shard $i is empty but published a DB"
  fi
done
((tuned == problems)) || fail "the shards hold $tuned problems, the file $problems"
# With these six problems shard 0 is empty (the empty-shard path runs too) and two shards merge.
((nonempty >= 2)) || fail "$nonempty non-empty shard(s): the merge would merge nothing"
shard_dbs=(shards/shard_*.db)
[[ -f merged.db ]] || fail "the merge job wrote no merged.db"

# The winners as `db export` gives them, without their time stamps (when each run recorded them).
winners() {
  "$binary" db --db "$1" export --format json | jq --sort-keys '[.winners[] | del(.updated_at)]'
}
winners whole.db >whole.json
winners merged.db >merged.json
[[ $(jq length whole.json) == "$problems" ]] ||
  fail "the unsharded run has $(jq length whole.json) winners for $problems problems"
diff -u whole.json merged.json || fail "the merged winners differ from the unsharded run's"

# The comparison must see a bad merge: one that loses a shard differs.
for f in "${shard_dbs[@]:1}"; do "$binary" db --db partial.db import "$f" >/dev/null; done
winners partial.db >partial.json
if cmp -s whole.json partial.json; then fail "a merge missing ${shard_dbs[0]} compared equal"; fi

echo "PASS: $shards array tasks on Slurm, merged by the merge job: the $problems winners equal" \
  "the unsharded run's"
