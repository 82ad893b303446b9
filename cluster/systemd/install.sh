#!/usr/bin/env bash
# Installs prunelab as system services on this machine (run as root after cluster/build.sh):
# binaries into /usr/local/bin, a dedicated system user `prunelab`, the units into
# /etc/systemd/system and the environment files into /etc/prunelab (kept if present).
# Usage: cluster/systemd/install.sh [coordinator] [worker INSTANCE...]
#   e.g. cluster/systemd/install.sh coordinator worker xeon
# Then edit /etc/prunelab/*.env and `systemctl enable --now prunelab-coordinator prunelab-worker@xeon`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/cluster/systemd"
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
for b in prunelab prunelab-coordinator prunelab-worker; do
  [ -x "$ROOT/build/bin/$b" ] || { echo "install.sh: $ROOT/build/bin/$b missing: run cluster/build.sh first" >&2; exit 1; }
  install -m 0755 "$ROOT/build/bin/$b" /usr/local/bin/
done
id prunelab >/dev/null 2>&1 || useradd --system --home-dir /var/lib/prunelab --shell /usr/sbin/nologin prunelab
install -d -m 0750 -o root -g prunelab /etc/prunelab /etc/prunelab/keys
install -d /usr/local/share/doc/prunelab && install -m 0644 "$ROOT/README.md" /usr/local/share/doc/prunelab/
install -m 0644 "$HERE/prunelab-coordinator.service" "$HERE/prunelab-worker@.service" /etc/systemd/system/
what=""
for arg in "$@"; do
  case "$what:$arg" in
    *:coordinator) what=""; [ -f /etc/prunelab/coordinator.env ] || install -m 0640 -g prunelab "$HERE/coordinator.env" /etc/prunelab/ ;;
    *:worker) what=worker ;;
    worker:*) [ -f "/etc/prunelab/worker-$arg.env" ] || install -m 0640 -g prunelab "$HERE/worker.env.example" "/etc/prunelab/worker-$arg.env" ;;
    *) echo "install.sh: unknown argument '$arg' (coordinator | worker INSTANCE...)" >&2; exit 2 ;;
  esac
done
if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
echo "install.sh: installed; edit /etc/prunelab/*.env, then: systemctl enable --now prunelab-coordinator prunelab-worker@INSTANCE"
