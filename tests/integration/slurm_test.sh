#!/usr/bin/env bash
# prunelab under a real Slurm: a single-node cluster from Debian's packages (munged, slurmctld,
# slurmd; its own slurm.conf, ports, state and spool directories and munge key in the test's
# directory) runs the coordinator job (cluster/slurm/prunelab-coordinator.sbatch) and a
# 3-worker job array (cluster/slurm/prunelab-workers.sbatch) with CURVE keys from a path.
# Mid-sweep one array task is scancelled while it prunes a trial (preemption: SIGTERM, then
# SIGKILL after KillWait): its task must be handed out again and every trial recorded once.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ "$(id -u)" -eq 0 ] || skip "the single-node Slurm of this test runs its daemons as root"
for b in munged mungekey slurmctld slurmd sbatch squeue scancel sinfo; do
  command -v "$b" >/dev/null || skip "$b missing (cluster/install-deps.sh installs slurmctld, slurmd, slurm-client, munge)"
done
require_fashion
require_bins

S="$WORK/slurm"; mkdir -p "$S/state" "$S/spool" "$S/munge" "$WORK/jobs"; chmod 700 "$S/munge"
mungekey --create --keyfile="$S/munge/munge.key" >/dev/null 2>&1 || skip "mungekey cannot make a key"
chmod 600 "$S/munge/munge.key"
munged --force --socket="$S/munge/sock" --key-file="$S/munge/munge.key" --pid-file="$S/munge/pid" \
  --log-file="$S/munge/log" --seed-file="$S/munge/seed" || skip "munged does not start here"
cleanup "stop \$(cat $S/munge/pid)"
CTLD_PORT=$(free_port); SLURMD_PORT=$(free_port)
HOST=$(hostname)
cat >"$S/slurm.conf" <<CONF
ClusterName=prunelabtest
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
AuthInfo=socket=$S/munge/sock
CredType=cred/munge
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# 4 CPUs on a 2-core test machine: the coordinator job and three 1-CPU workers.
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=2
NodeName=$HOST CPUs=4 RealMemory=4000 State=UNKNOWN
PartitionName=xeon Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$S/slurm.conf"
slurmctld -c >/dev/null 2>&1 || skip "slurmctld does not start here (see $WORK/slurmctld.log)"
cleanup "stop \$(cat $S/slurmctld.pid)"
slurmd >/dev/null 2>&1 || skip "slurmd does not start here"
cleanup "stop \$(cat $S/slurmd.pid)"
cleanup "scancel --quiet --user=root; sleep 3"
idle() { sinfo -h -o %t | grep -qx idle; }
wait_for 30 "the Slurm node to be idle" idle || skip "the Slurm node never became idle"
log "Slurm up: $(sinfo -h -o '%P %D %t %c')"

# CURVE keys from a path, as a lab keeps them on a shared filesystem.
K="$WORK/keys"; mkdir -p "$K/coordinator" "$K/workers" "$K/client"
"$BIN/prunelab" keygen "$K/coordinator/coordinator" >/dev/null
"$BIN/prunelab" keygen "$K/workers/worker" >/dev/null
"$BIN/prunelab" keygen "$K/client/me" >/dev/null
cp "$K/workers/worker.pub" "$K/coordinator/workers.allow"
cp "$K/client/me.pub" "$K/coordinator/clients.allow"
cp "$K/coordinator/coordinator.pub" "$K/workers/coordinator.pub"

WPORT=$(free_port); CPORT=$(free_port); HPORT=$(free_port)
coord_job=$(sbatch --parsable -D "$WORK/jobs" --export="ALL,PRUNELAB_STATE=$WORK/state,PRUNELAB_BIN=$BIN,PRUNELAB_KEYS=$K/coordinator,PRUNELAB_ADVERTISE_HOST=127.0.0.1,PRUNELAB_WORKER_PORT=$WPORT,PRUNELAB_CLIENT_PORT=$CPORT,PRUNELAB_HTTP_PORT=$HPORT,PRUNELAB_COORDINATOR_FLAGS=--heartbeat-ms 500" \
  "$SRC/cluster/slurm/prunelab-coordinator.sbatch")
log "coordinator job $coord_job"
wait_for 60 "the coordinator job to write its endpoints" test -s "$WORK/state/coordinator.env"
CLIENT=$(sed -n 's/^PRUNELAB_CLIENT=//p' "$WORK/state/coordinator.env")
export PRUNELAB_CURVE_KEY="$K/client/me.key" PRUNELAB_SERVER_KEY="$K/coordinator/coordinator.pub"

array_job=$(sbatch --parsable -D "$WORK/jobs" --array=0-2 --cpus-per-task=1 \
  --export="ALL,PRUNELAB_COORDINATOR_FILE=$WORK/state/coordinator.env,PRUNELAB_BIN=$BIN,PRUNELAB_KEYS=$K/workers,PRUNELAB_CACHE=$WORK/cache,PRUNELAB_HOST_LOCK=$WORK/host.lock" \
  "$SRC/cluster/slurm/prunelab-workers.sbatch")
log "worker array job $array_job"
three_workers() { [ "$("$BIN/prunelab" workers --json --coordinator "$CLIENT" | "$PY" -c 'import json,sys; print(sum(w["alive"] for w in json.load(sys.stdin)))')" = 3 ]; }
wait_for 120 "three workers of the array to register" three_workers
"$BIN/prunelab" workers --coordinator "$CLIENT" | cut -c1-80 | sed 's/^/  /'
# Target and threads came from the allocation: partition xeon, --cpus-per-task=1.
"$BIN/prunelab" workers --json --coordinator "$CLIENT" | "$PY" -c '
import json, sys
ws = json.load(sys.stdin)
assert all(w["target"] == "xeon" and w["worker"].startswith("slurm-") for w in ws), ws
' || fail "workers did not take their target and id from the Slurm job"

# Four trials, each about 16 s of fine-tuning; the cancel lands in the first 30 % of one, so
# the worker cannot finish it within the grace Slurm gives (KillWait 2 s, about 4 s in all).
tiny_spec "$WORK/spec.yaml" slurm "[0.3, 0.6]" 40
sed -i 's/targets: \[local\]/targets: [xeon]/' "$WORK/spec.yaml"
ID=$("$BIN/prunelab" submit "$WORK/spec.yaml" --coordinator "$CLIENT" | head -1)
log "submitted $ID"
pruning() { # a worker fine-tuning a trial, less than 30 % done
  "$BIN/prunelab" workers --json --coordinator "$CLIENT" | early_fine_tuner 0.3 >"$WORK/task"
}
wait_for 300 "an array task's worker to prune a trial" pruning
read -r victim task <"$WORK/task"
index=${victim##*_}
log "scancel ${array_job}_$index while $victim prunes $task"
scancel "${array_job}_$index"
gone() { ! squeue -h -j "${array_job}_$index" 2>/dev/null | grep -q .; }
wait_for 60 "array task $index to leave the queue" gone
[ "$(squeue -h -j "$array_job" | wc -l)" -eq 2 ] || fail "the other two array tasks should still run"

timeout 600 "$BIN/prunelab" status "$ID" --wait --coordinator "$CLIENT" >/dev/null || fail "the sweep did not finish"
"$BIN/prunelab" results "$ID" --json --coordinator "$CLIENT" >"$WORK/results.jsonl"
check_each_trial_once "$WORK/results.jsonl" 5 || fail "a trial was lost or recorded twice"
clog=$(ls "$WORK"/jobs/prunelab-coordinator-*.log)
cp "$clog" "$WORK/coordinator.log"
grep -q "task $ID/$task requeued: worker $victim" "$clog" || fail "$task of $victim was not requeued"
grep -q "task $ID/$task handed out again to worker slurm-${array_job}_[0-2]" "$clog" || fail "$task was not handed out again"
grep -q "task $ID/$task handed out again to worker $victim" "$clog" && fail "$task went back to the cancelled worker"
grep "$victim\|$ID/$task" "$clog" | sed 's/^/  /'
log "PASS: the sweep finished under Slurm; $task of the cancelled worker was handed out again; each of 5 trials recorded once"
