#!/usr/bin/env bash
# The Kubernetes manifests are validated offline (no cluster is reachable here) by
# cluster/kubernetes/check_manifests.py, with every container flag checked against the built
# binaries; the checker is shown to catch each class of mistake on broken copies; and
# make-secrets.sh turns real `prunelab keygen` keys into the Secrets the pods mount.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
"$PY" -c 'import yaml' 2>/dev/null || skip "python3-yaml missing (cluster/install-deps.sh installs it)"
require_bins
K="$SRC/cluster/kubernetes"
"$PY" "$K/check_manifests.py" --bin "$BIN" || fail "the shipped manifests do not validate"
log "shipped manifests: clean"

# broken SED_EXPR FILE EXPECTED: a copy with one mistake must be refused, naming it.
broken() {
  local expr=$1 file=$2 want=$3 d="$WORK/k$RANDOM"
  cp -r "$K" "$d"
  sed -i "$expr" "$d/$file"
  cmp -s "$K/$file" "$d/$file" && fail "the mutation '$expr' changed nothing in $file"
  local out; out=$("$PY" "$d/check_manifests.py" --bin "$BIN" 2>&1) && fail "not caught: $expr\n$out"
  grep -q -- "$want" <<<"$out" || fail "caught, but not named ('$want' missing):\n$out"
  log "caught: $(head -1 <<<"$out")"
}
broken 's/targetPort: clients/targetPort: client/' coordinator.yaml "targetPort 'client'"
broken 's/--slots=1/--slot=1/' workers.yaml "takes no --slot"
broken 's|--server-key=/etc/prunelab/keys/coordinator.pub|--server-key=/etc/prunelab/keys/server.pub|' workers.yaml "has no key server.pub"
broken 's/serviceName: prunelab-coordinator-headless/serviceName: prunelab-coord/' coordinator.yaml "serviceName"
broken '0,/limits: {cpu: "8", memory: 16Gi}/s//limits: {cpu: "16", memory: 16Gi}/' workers.yaml "Guaranteed QoS"
broken '0,/nodeSelector: {prunelab.io\/target: xeon}/s///' workers.yaml "nodeSelector"
broken 's/secretName: prunelab-worker-keys/secretName: worker-keys/' workers.yaml "does not write"

# Secrets from real keys.
mkdir -p "$WORK/keys/clients"
for k in coordinator worker clients/alice; do "$BIN/prunelab" keygen "$WORK/keys/$k" >/dev/null; done
bash "$K/make-secrets.sh" "$WORK/keys" >"$WORK/secrets.yaml"
"$PY" - "$WORK/secrets.yaml" "$WORK/keys" <<'PY' || fail "make-secrets.sh wrote wrong Secrets"
import base64, sys, yaml
docs = {d["metadata"]["name"]: d for d in yaml.safe_load_all(open(sys.argv[1]))}
k = sys.argv[2]
dec = lambda s, key: base64.b64decode(docs[s]["data"][key]).decode()
assert dec("prunelab-coordinator-keys", "coordinator.key") == open(f"{k}/coordinator.key").read()
assert dec("prunelab-coordinator-keys", "workers.allow").strip() == open(f"{k}/worker.pub").read().strip()
assert dec("prunelab-coordinator-keys", "clients.allow").strip() == open(f"{k}/clients/alice.pub").read().strip()
assert dec("prunelab-worker-keys", "coordinator.pub") == open(f"{k}/coordinator.pub").read()
assert dec("prunelab-worker-keys", "worker.key") == open(f"{k}/worker.key").read()
print("secrets: both Secrets carry the keys prunelab keygen made")
PY
log "PASS: manifests valid, 7 kinds of mistakes caught, Secrets from real keys"
