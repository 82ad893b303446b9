#!/usr/bin/env bash
# bench/dispatch_netns.sh in small: both placements run and its --json is one object with
# the figures side by side (the full run and its figures are in the README).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ "$(id -u)" -eq 0 ] || skip "network namespaces need root"
ip netns add "ds$$-probe" 2>/dev/null || skip "cannot make a network namespace here"
ip netns del "ds$$-probe"
[ -x "$BIN/dispatch_scale" ] || fail "$BIN/dispatch_scale not built"
PRUNELAB_BIN_DIR="$BIN" bash "$SRC/bench/dispatch_netns.sh" --json --tasks 300 --workers 10 >"$WORK/out.json"
"$PY" - "$WORK/out.json" <<'PY' || fail "dispatch_netns.sh --json"
import json, sys
lines = open(sys.argv[1]).read().strip().splitlines()
assert len(lines) == 1, lines
j = json.loads(lines[0])
(run,) = j["runs"]
assert run["workers"] == 10
for side in ("loopback", "netns"):
    assert run[side]["tasks_per_s"] > 0, run
assert run["netns_over_loopback_tasks_per_s"] > 0
print("dispatch_netns: 10 workers, %.0f tasks/s on loopback, %.0f across namespaces" %
      (run["loopback"]["tasks_per_s"], run["netns"]["tasks_per_s"]))
PY
log "PASS"
