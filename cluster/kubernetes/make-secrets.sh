#!/usr/bin/env bash
# Writes the two CURVE key Secrets the manifests mount, as manifests (apply them with
# `kubectl apply -f`), from keys made by `prunelab keygen`:
#   cluster/kubernetes/make-secrets.sh KEYDIR > secrets.yaml
# KEYDIR holds coordinator.key/.pub, worker.key/.pub and client public keys (*.pub: each CLI user's).
set -euo pipefail
dir=${1:?usage: make-secrets.sh KEYDIR (coordinator.key, coordinator.pub, worker.key, worker.pub, clients/*.pub)}
for f in coordinator.key coordinator.pub worker.key worker.pub; do
  [ -f "$dir/$f" ] || { echo "make-secrets.sh: $dir/$f missing (prunelab keygen $dir/${f%.*})" >&2; exit 1; }
done
b64() { base64 -w0 <"$1"; }
clients=$(cat "$dir"/clients/*.pub 2>/dev/null || true)
cat <<YAML
apiVersion: v1
kind: Secret
metadata: {name: prunelab-coordinator-keys, namespace: prunelab}
type: Opaque
data:
  coordinator.key: $(b64 "$dir/coordinator.key")
  workers.allow: $(b64 "$dir/worker.pub")
  clients.allow: $(printf '%s\n' "$clients" | base64 -w0)
---
apiVersion: v1
kind: Secret
metadata: {name: prunelab-worker-keys, namespace: prunelab}
type: Opaque
data:
  worker.key: $(b64 "$dir/worker.key")
  coordinator.pub: $(b64 "$dir/coordinator.pub")
YAML
