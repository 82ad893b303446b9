#!/usr/bin/env bash
# Coordinator dispatch across "hosts" next to loopback, measured in one run: dispatch_scale on
# loopback, then with the coordinator in one network namespace and the simulated workers in
# another (veth pairs on a bridge, cluster/netns/lab.sh). Needs root. Prints both side by side
# and their ratio; with --json, one JSON object.
# Usage: bench/dispatch_netns.sh [--json] [--tasks N] [--workers 10,100,200]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${PRUNELAB_BIN_DIR:-$ROOT/build/bin}"
json=0; tasks=20000; workers="10,100,200"
while [ $# -gt 0 ]; do
  case "$1" in
    --json) json=1 ;;
    --tasks) tasks=${2:?--tasks N}; shift ;;
    --workers) workers=${2:?--workers 10,100,200}; shift ;;
    *) echo "dispatch_netns.sh: unknown flag '$1' (--json, --tasks N, --workers LIST)" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" -eq 0 ] || { echo "dispatch_netns.sh: network namespaces need root" >&2; exit 2; }
source "$ROOT/cluster/netns/lab.sh"
P="dn$(($$ % 10000))"
trap 'lab_down $P' EXIT
lab_up "$P" 2
WORK=$(mktemp -d); trap 'lab_down $P; rm -rf "$WORK"' EXIT
[ $json = 1 ] || echo "dispatch_netns: $tasks trials per run, workers $workers; loopback first, then across namespaces" >&2
"$BIN/dispatch_scale" --json --no-dask --tasks "$tasks" --workers "$workers" >"$WORK/loopback.json"
ip netns exec "$P-h1" "$BIN/dispatch_scale" --json --no-dask --tasks "$tasks" --workers "$workers" \
  --bind "$(lab_addr "$P" 1)" --workers-netns "$P-h2" >"$WORK/netns.json"
/usr/bin/python3 - "$WORK/loopback.json" "$WORK/netns.json" "$json" <<'PY'
import json, sys
lo, ns, as_json = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3] == "1"
rows = []
for a, b in zip(lo["runs"], ns["runs"]):
    sa, sb, ha, hb = a["saturated"], b["saturated"], a["half_load"], b["half_load"]
    rows.append({"workers": a["workers"],
                 "loopback": {"tasks_per_s": sa["tasks_per_s"], "half_load_dispatch_p50_ms": ha["dispatch_p50_ms"],
                              "half_load_dispatch_p99_ms": ha["dispatch_p99_ms"], "coordinator_dispatch_p99_ms": sa["coordinator_dispatch_p99_ms"]},
                 "netns": {"tasks_per_s": sb["tasks_per_s"], "half_load_dispatch_p50_ms": hb["dispatch_p50_ms"],
                           "half_load_dispatch_p99_ms": hb["dispatch_p99_ms"], "coordinator_dispatch_p99_ms": sb["coordinator_dispatch_p99_ms"]},
                 "netns_over_loopback_tasks_per_s": sb["tasks_per_s"] / sa["tasks_per_s"] if sa["tasks_per_s"] else 0})
out = {"trials_per_run": lo["trials_per_run"], "cores": lo["cores"], "path": "veth pair + bridge (network namespaces)",
       "runs": rows}
if as_json:
    print(json.dumps(out))
else:
    print("%8s | %28s | %28s | %s" % ("workers", "loopback: tasks/s, half p50/p99 ms", "netns: tasks/s, half p50/p99 ms", "netns/loopback"))
    for r in rows:
        l, n = r["loopback"], r["netns"]
        print("%8d | %9.0f  %7.3f / %7.3f | %9.0f  %7.3f / %7.3f | %.2fx" % (
            r["workers"], l["tasks_per_s"], l["half_load_dispatch_p50_ms"], l["half_load_dispatch_p99_ms"],
            n["tasks_per_s"], n["half_load_dispatch_p50_ms"], n["half_load_dispatch_p99_ms"], r["netns_over_loopback_tasks_per_s"]))
PY
