#!/usr/bin/env bash
# The systemd units of cluster/systemd are checked offline: `systemd-analyze verify` (every
# warning is a failure: verify itself exits 0 on "ignoring" lines), pointed at the built
# binaries and the shipped environment files, and `systemd-analyze security --offline` under
# an exposure threshold, so a hardening line dropped by mistake is caught.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v systemd-analyze >/dev/null || skip "systemd-analyze missing (Debian package systemd)"
require_bins
U="$WORK/units"; mkdir -p "$U"
for unit in prunelab-coordinator.service prunelab-worker@.service; do
  sed "s|/usr/local/bin/|$BIN/|g; s|/etc/prunelab/|$U/|g" "$SRC/cluster/systemd/$unit" >"$U/$unit"
done
cp "$SRC/cluster/systemd/coordinator.env" "$U/coordinator.env"
cp "$SRC/cluster/systemd/worker.env.example" "$U/worker-xeon.env"
cp "$U/prunelab-worker@.service" "$U/prunelab-worker@xeon.service"
grep -q "ExecStart=$BIN/prunelab-worker" "$U/prunelab-worker@xeon.service" || fail "the worker unit does not start prunelab-worker"

for unit in prunelab-coordinator.service prunelab-worker@xeon.service; do
  out=$(cd "$U" && systemd-analyze verify --man=no "./$unit" 2>&1) || fail "verify $unit: $out"
  [ -z "$out" ] || fail "verify $unit printed warnings:\n$out"
  log "verify $unit: clean"
done
# Hardening the issue asks for, present in both units.
for unit in prunelab-coordinator.service prunelab-worker@xeon.service; do
  for line in User=prunelab ProtectSystem=strict Restart=on-failure NoNewPrivileges=yes ProtectHome=yes; do
    grep -qx "$line" "$U/$unit" || fail "$unit lacks $line"
  done
done
# Exposure (0 = locked down, 10 = none): the coordinator has no need for devices or W^X
# exceptions; the worker keeps the GPU's device nodes and LibTorch's JIT.
check_exposure() {
  local unit=$1 threshold=$2 out
  out=$(cd "$U" && systemd-analyze security --offline=yes --threshold="$threshold" "./$unit" 2>&1) ||
    fail "$unit is more exposed than $threshold:\n$(echo "$out" | tail -5)"
  log "$(echo "$out" | grep 'Overall exposure')"
}
check_exposure prunelab-coordinator.service 25
check_exposure prunelab-worker@xeon.service 40
# The flags each unit passes are flags its binary takes (a renamed flag would make the unit
# crash-loop), including those its environment file's example lines pass.
for pair in "prunelab-coordinator.service:prunelab-coordinator:coordinator.env" "prunelab-worker@xeon.service:prunelab-worker:worker-xeon.env"; do
  IFS=: read -r unit binary env <<<"$pair"
  help=$("$BIN/$binary" --help)
  for f in $(grep -h '^ExecStart=\|^# *[A-Z_]*FLAGS=' "$U/$unit" "$U/$env" | grep -o -- '--[a-z][a-z-]*' | sort -u); do
    grep -q -- "$f" <<<"$help" || fail "$unit passes $f, which $binary does not take"
  done
done
log "PASS: both units verify clean, are hardened, and pass only flags their binaries take"
