#!/usr/bin/env bash
# `srun` checks of distributed training on a one-node Slurm cluster started here (Debian's
# slurmctld, slurmd and munge; as root; a development check like tests/reference/check_*.py, not
# part of `make test`, since it runs daemons): with a vit built with MPI (-DVIT_MPI=ON),
#   - `srun -n 2 --mpi=pmix` and `srun -n 4 --overcommit --mpi=pmix` leave the checkpoints of one
#     process, byte for byte;
#   - `srun -n 2` without an MPI plugin (Slurm's default, MpiDefault=none) is refused on every task
#     (exit 1) before a run directory is made;
#   - `scancel --signal=INT JOB` stops a run: rank 0 saves once, every task exits 130 and so does
#     srun; plain `scancel JOB` (SIGTERM) the same with 143;
#   - the stopped run resumes on 3 tasks.
# The cluster's files live in a temporary directory (SLURM_CONF points there); the daemons are
# stopped at the end.
#   scripts/check-slurm.sh [BUILD_DIR]   (default build; data: scripts/setup-data.sh mnist)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
vit=$(realpath "$build/vit")
data=$(realpath data/mnist)
"$vit" train --help > /dev/null
[ -f "$data/train-images-idx3-ubyte" ] || { echo "no MNIST in $data: scripts/setup-data.sh mnist"; exit 1; }
for tool in slurmctld slurmd srun munged; do
  command -v "$tool" > /dev/null || command -v "/usr/sbin/$tool" > /dev/null || {
    echo "$tool is missing: apt-get install slurmctld slurmd slurm-client munge"
    exit 1
  }
done

work=$(mktemp -d /tmp/vitcpp-slurm.XXXXXX)
export SLURM_CONF=$work/slurm.conf
stop() {
  [ -f "$work/slurmd.pid" ] && kill "$(cat "$work/slurmd.pid")" 2> /dev/null || true
  [ -f "$work/slurmctld.pid" ] && kill "$(cat "$work/slurmctld.pid")" 2> /dev/null || true
  sleep 1
  rm -rf "$work"
}
trap stop EXIT
host=$(hostname -s)
cores=$(nproc)
mkdir -p "$work/state" "$work/spool"
cat > "$SLURM_CONF" << EOF
ClusterName=vitcpp-check
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmdSpoolDir=$work/spool
StateSaveLocation=$work/state
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
NodeName=$host CPUs=$cores State=UNKNOWN
PartitionName=check Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
if ! pgrep -x munged > /dev/null; then
  mkdir -p /run/munge && chown munge: /run/munge
  su -s /bin/sh munge -c /usr/sbin/munged
fi
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 50); do sinfo -h -o %t 2> /dev/null | grep -q idle && break; sleep 0.2; done
sinfo

fail=0
check() {  # check WHAT CONDITION...
  local what=$1
  shift
  if "$@"; then echo "ok: $what"; else echo "FAILED: $what"; fail=1; fi
}
same_run() {  # the checkpoints of runs $1 and $2 are the same bytes
  for f in last.safetensors last.train.safetensors best.safetensors; do
    cmp -s "$1/$f" "$2/$f" || return 1
  done
}
small=(train --data mnist --data-dir "$data" --image-size 28 --patch 7 --dim 32 --depth 2 --heads 2
  --batch 32 --micro-batch 8 --threads 1)

# (Each outcome is checked below, so a failing command does not end the script.)
"$vit" "${small[@]}" --epochs 2 --val-split 0.1 --out "$work/one" > "$work/one.txt" 2>&1
srun -n 2 --mpi=pmix "$vit" "${small[@]}" --epochs 2 --val-split 0.1 --out "$work/two" \
  > "$work/two.txt" 2>&1 || true
srun -n 4 --overcommit --mpi=pmix "$vit" "${small[@]}" --epochs 2 --val-split 0.1 \
  --out "$work/four" > "$work/four.txt" 2>&1 || true
check "srun -n 2 --mpi=pmix: 2 ranks" grep -q ", 2 ranks$" "$work/two.txt"
check "srun -n 2 --mpi=pmix: the bytes of one process" same_run "$work/one" "$work/two"
check "srun -n 4 --mpi=pmix: the bytes of one process" same_run "$work/one" "$work/four"

code=0
srun -n 2 "$vit" "${small[@]}" --epochs 2 --out "$work/alone" > "$work/alone.txt" 2>&1 || code=$?
check "srun -n 2 without --mpi=pmix: exit 1 (got $code)" test "$code" = 1
check "srun -n 2 without --mpi=pmix: told why, on both tasks" \
  test "$(grep -c "this process is one of 2 started together" "$work/alone.txt")" = 2
check "srun -n 2 without --mpi=pmix: no run directory" test ! -e "$work/alone"

# A long run, stopped with scancel once its first epoch is saved: srun's exit code.
stopped_run() {  # stopped_run NAME [SIGNAL]
  local name=$1 code=0
  srun -n 2 --mpi=pmix "$vit" "${small[@]}" --epochs 300 --out "$work/$name" \
    > "$work/$name.txt" 2>&1 &
  local pid=$!
  for _ in $(seq 600); do [ -f "$work/$name/metrics.jsonl" ] && break; sleep 0.1; done
  local job
  job=$(squeue -h -o %i | head -1)
  if [ $# -gt 1 ]; then scancel --signal="$2" "$job" || true; else scancel "$job" || true; fi
  wait "$pid" || code=$?
  echo "$code"
}
code=$(stopped_run int INT)
check "scancel --signal=INT: srun exits 130 (got $code)" test "$code" = 130
check "scancel --signal=INT: saved once" \
  test "$(grep -c "stopped by SIGINT after step" "$work/int.txt")" = 1
check "scancel --signal=INT: the resume command names srun" \
  grep -q "srun -n 2 --mpi=pmix .* train --resume" "$work/int.txt"
code=$(stopped_run term)
check "scancel: srun exits 143 (got $code)" test "$code" = 143
check "scancel: saved once" test "$(grep -c "stopped by SIGTERM after step" "$work/term.txt")" = 1

srun -n 3 --overcommit --mpi=pmix "$vit" train --resume "$work/int" > "$work/resume.txt" 2>&1 &
pid=$!
for _ in $(seq 600); do grep -q "^epoch" "$work/resume.txt" && break; sleep 0.1; done
scancel --signal=INT "$(squeue -h -o %i | head -1)" || true
code=0
wait "$pid" || code=$?
check "resumed on 3 ranks" grep -q "^resuming .* at epoch" "$work/resume.txt"
check "resumed on 3 ranks, stopped again: exit 130 (got $code)" test "$code" = 130

if [ "$fail" != 0 ]; then
  echo "some checks failed; outputs kept in $work.kept"
  cp -r "$work" "$work.kept"
  exit 1
fi
echo "all srun checks passed"
