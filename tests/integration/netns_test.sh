#!/usr/bin/env bash
# Multi-host: the coordinator, three workers and a client each in their own network namespace
# ("hosts" on a bridge, cluster/netns/lab.sh), real TCP between them, CURVE on. Faults:
# 50 ms delay and 5 % loss on every worker's link for the whole sweep (tc netem, or netfault
# through NFQUEUE where the kernel lacks sch_netem), and one worker's cable pulled while it
# prunes a trial, for longer than the dead-worker interval, then plugged back in.
# Asserts: the sweep finishes; every trial is recorded exactly once; the cut-off worker's task
# is requeued, then handed out again (or, when no worker was free before the heal, given back
# to it by its first heartbeat); its late result, if it sends one, is acknowledged as a
# duplicate and discarded (the coordinator's rule: the first result recorded wins); the healed
# worker comes back by itself (same process). Prints the recovery times measured from the
# coordinator's event log (and writes them as JSON to $PRUNELAB_RECOVERY_JSON if set).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$SRC/cluster/netns/lab.sh"
[ "$(id -u)" -eq 0 ] || skip "network namespaces need root"
command -v ip >/dev/null || skip "ip (iproute2) missing"
require_fashion
require_bins
P="pl$(($$ % 10000))"
ip netns add "$P-probe" 2>/dev/null || skip "cannot make a network namespace here"
ip netns del "$P-probe"
cleanup "lab_down $P"
export LAB_LOG_DIR="$WORK" NETFAULT="$BIN/netfault"
lab_up "$P" 5 || skip "cannot build the namespace lab (veth/bridge)"
# h1 coordinator, h2-h4 workers, h5 the user's CLI.
on() { local h=$1; shift; ip netns exec "$P-h$h" "$@"; }
C=$(lab_addr "$P" 1)
log "lab: coordinator $C, workers $(lab_addr $P 2)-$(lab_addr $P 4), client $(lab_addr $P 5)"

K="$WORK/keys"; mkdir -p "$K"
for k in coordinator w2 w3 w4 client; do "$BIN/prunelab" keygen "$K/$k" >/dev/null; done
cat "$K"/w[234].pub >"$K/workers.allow"
cp "$K/client.pub" "$K/clients.allow"
WPORT=5555; CPORT=5556
on 1 "$BIN/prunelab-coordinator" --data-dir "$WORK/data" --worker-endpoint "tcp://$C:$WPORT" \
  --client-endpoint "tcp://$C:$CPORT" --http off --heartbeat-ms 500 --dead-after-heartbeats 4 \
  --curve-key "$K/coordinator.key" --allow-workers "$K/workers.allow" --allow-clients "$K/clients.allow" \
  >"$WORK/coordinator.log" 2>&1 &
cleanup "stop $!"
CLOG="$WORK/coordinator.log"
wait_for 30 "the coordinator" grep -q "CURVE on" "$CLOG"
export PRUNELAB_CURVE_KEY="$K/client.key" PRUNELAB_SERVER_KEY="$K/coordinator.pub"
CLIENT="tcp://$C:$CPORT"
cli() { on 5 "$BIN/prunelab" "$@" --coordinator "$CLIENT"; }

declare -A WPID
for h in 2 3 4; do
  method=$(lab_fault "$P" "$h" 50 5) || fail "cannot inject delay/loss on host $h"
  on "$h" "$BIN/prunelab-worker" --coordinator "tcp://$C:$WPORT" --target local --threads 1 --worker-id "w$h" \
    --cache-dir "$WORK/cache$h" --host-lock "$WORK/host$h.lock" --rpc-timeout-ms 3000 \
    --curve-key "$K/w$h.key" --server-key "$K/coordinator.pub" >"$WORK/worker$h.log" 2>&1 &
  WPID[$h]=$!
  cleanup "stop ${WPID[$h]}"
done
log "faults on every worker's link: 50 ms delay, 5 % loss, by $method"
alive3() { [ "$(cli workers --json | "$PY" -c 'import json,sys; print(sum(w["alive"] for w in json.load(sys.stdin)))')" = 3 ]; }
wait_for 60 "three workers over the lossy links" alive3

# Two trials for three workers: when one is cut off, another worker is free to take its task.
tiny_spec "$WORK/spec.yaml" netns "[0.5]" 15
ID=$(cli submit "$WORK/spec.yaml" | head -1)
log "submitted $ID"
pruning() { # a worker fine-tuning a trial, less than half done
  cli workers --json | early_fine_tuner 0.5 >"$WORK/task"
}
wait_for 300 "a worker to prune a trial" pruning
read -r victim task <"$WORK/task"
vh=${victim#w}  # its host
now_ms() { date +%s%3N; }
t_cut=$(now_ms)
lab_link "$P" "$vh" down
log "cable of $victim pulled while it prunes $task"
wait_for 60 "$victim declared dead" grep -q "worker $victim declared dead" "$CLOG"
wait_for 10 "$task requeued" grep -q "task $ID/$task requeued: worker $victim silent" "$CLOG"
# Cut off for 4x the dead-worker interval (2 s) in all.
while [ $(($(now_ms) - t_cut)) -lt 8000 ]; do sleep 0.2; done
t_heal=$(now_ms)
lab_link "$P" "$vh" up
log "$victim's cable back in"
wait_for 120 "$victim back" grep -Eq "worker $victim (is back|registered again)" "$CLOG"
kill -0 "${WPID[$vh]}" || fail "$victim's process died: it should have come back by itself"

timeout 600 ip netns exec "$P-h5" "$BIN/prunelab" status "$ID" --wait --coordinator "$CLIENT" >/dev/null ||
  fail "the sweep did not finish"
cli results "$ID" --json >"$WORK/results.jsonl"
check_each_trial_once "$WORK/results.jsonl" 3 || fail "a trial was lost or recorded twice"
# Who recorded the cut-off trial: the first result to arrive wins, whatever its attempt. The
# other one, when it comes, is acknowledged as a duplicate and discarded (give it 60 s).
winner=$("$PY" -c '
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["trial"] == sys.argv[2] + "@local": print(r.get("pruned_by", "?"))' "$WORK/results.jsonl" "$task")
log "$task recorded from $winner's result"
loser_sent() { grep -q "late result for $ID/$task from worker" "$CLOG"; }
if ! grep -q "task $ID/$task handed out again" "$CLOG"; then
  log "late result: none possible: $task was given back to $victim and ran once"
elif wait_for_quietly 60 loser_sent; then
  log "late result: $(grep "late result for $ID/$task" "$CLOG" | head -1 | cut -d' ' -f3-)"
else
  log "late result: none within 60 s of the end (the other worker abandoned $task or is still uploading it)"
fi
cli results "$ID" --json >"$WORK/results-after.jsonl"
check_each_trial_once "$WORK/results-after.jsonl" 3 || fail "the late result changed the record"
grep -E "$victim|$ID/$task" "$CLOG" | sed 's/^/  /'

"$PY" - "$CLOG" "$t_cut" "$t_heal" "$ID/$task" "$victim" <<'PY'
import datetime, json, os, re, sys
log, t_cut, t_heal, task, victim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
def first(pattern, after_ms):
    for line in open(log):
        m = re.match(r"(\S+)Z \w+ coordinator: (.*)", line)  # common/base/log.h: UTC time, level, text
        if not m or not re.search(pattern, m.group(2)):
            continue
        t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc)
        ms = int(t.timestamp() * 1000)
        if ms >= after_ms:
            return ms
    raise SystemExit(f"no '{pattern}' in {log} after {after_ms}")
dead = first(f"worker {victim} declared dead", t_cut)
requeued = first(re.escape(f"task {task} requeued"), t_cut)
try:  # only when another worker was free before the victim came back
    again = first(re.escape(f"task {task} handed out again"), t_cut)
except SystemExit:
    again = None
try:  # else the victim's first heartbeat after the heal gives the task back to it
    readopted = first(re.escape(f"task {task} is worker {victim}'s again"), t_heal)
except SystemExit:
    readopted = None
if not again and not readopted:
    raise SystemExit(f"{task} was neither handed out again nor given back to {victim}")
back = first(f"worker {victim} (is back|registered again)", t_heal)
figures = {"dead_worker_interval_s": 2.0, "declared_dead_after_cut_s": (dead - t_cut) / 1e3,
           "requeued_after_cut_s": (requeued - t_cut) / 1e3,
           "redispatched_after_cut_s": (again - t_cut) / 1e3 if again else None, "back_after_heal_s": (back - t_heal) / 1e3,
           "cut_s": (t_heal - t_cut) / 1e3}
figures["given_back_after_heal_s"] = (readopted - t_heal) / 1e3 if readopted else None
again_text = ("handed out again %.2f s after it (when a worker was free)" % figures["redispatched_after_cut_s"]
              if again else "given back to " + victim + " %.2f s after the heal (no other worker was free before; not run twice)"
              % figures["given_back_after_heal_s"])
print("RECOVERY (50 ms delay, 5 %% loss on every worker link): worker declared dead %.2f s after the cut "
      "(interval 2 s), its task requeued %.2f s after it and %s; worker back %.2f s after the heal (cut %.1f s)" %
      (figures["declared_dead_after_cut_s"], figures["requeued_after_cut_s"], again_text,
       figures["back_after_heal_s"], figures["cut_s"]))
if os.environ.get("PRUNELAB_RECOVERY_JSON"):
    json.dump(figures, open(os.environ["PRUNELAB_RECOVERY_JSON"], "w"))
PY
log "PASS: sweep finished across namespaces under delay, loss and a partition; each of 3 trials recorded once"
