#!/usr/bin/python3
"""Offline validation of the Kubernetes manifests in this directory (no cluster is needed).

What a dry run against an API server would catch and more, checked by hand:
  * every document has apiVersion/kind/metadata.name, a known kind at the right apiVersion,
    and only the namespace `prunelab`;
  * workload selectors match their pod template labels; every Service selects some pod
    template, and its targetPorts name ports those containers declare; probes name declared ports;
  * the StatefulSet's serviceName is a headless Service of the manifests, and its volume claim
    templates are mounted;
  * every volumeMount names a volume of the pod; every Secret a pod mounts is one
    make-secrets.sh writes; every key file a flag names is a key of that Secret;
  * every container requests CPU and memory; workers request what they limit (Guaranteed QoS,
    so benchmarks do not share CPUs) and have a nodeSelector on prunelab.io/target;
  * every flag in a container's args is a flag its binary takes (`BINARY --help` of the
    built binaries, passed with --bin DIR).
Exit 0 when clean; otherwise one line per problem, naming the document and field.
"""
import argparse
import os
import re
import subprocess
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
KINDS = {"Namespace": "v1", "Service": "v1", "Secret": "v1", "StatefulSet": "apps/v1", "Deployment": "apps/v1"}


def secrets_written():
    """Secret name -> keys, read from make-secrets.sh's heredoc."""
    text = open(os.path.join(HERE, "make-secrets.sh")).read()
    out, current = {}, None
    for line in text.splitlines():
        m = re.search(r"name: ([a-z0-9-]+), namespace", line)
        if m:
            current = m.group(1)
            out[current] = set()
        m = re.match(r"\s+([A-Za-z0-9._-]+): \$\(", line)
        if m and current:
            out[current].add(m.group(1))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", help="directory of the built prunelab binaries (checks every flag)")
    args = ap.parse_args()
    kustom = yaml.safe_load(open(os.path.join(HERE, "kustomization.yaml")))
    docs = []
    for f in kustom["resources"]:
        for d in yaml.safe_load_all(open(os.path.join(HERE, f))):
            if d:
                docs.append((f, d))
    problems = []

    def bad(where, msg):
        problems.append(f"{where}: {msg}")

    secrets = secrets_written()
    services, templates = [], []
    for f, d in docs:
        kind = d.get("kind")
        name = (d.get("metadata") or {}).get("name")
        where = f"{f} {kind}/{name}"
        if kind not in KINDS:
            bad(where, f"kind {kind!r} is not one of {sorted(KINDS)}")
            continue
        if d.get("apiVersion") != KINDS[kind]:
            bad(where, f"apiVersion {d.get('apiVersion')!r}, want {KINDS[kind]}")
        if not name:
            bad(where, "metadata.name missing")
        if kind != "Namespace" and d["metadata"].get("namespace") != "prunelab":
            bad(where, "metadata.namespace must be prunelab")
        if kind == "Service":
            services.append((where, d))
        if kind in ("StatefulSet", "Deployment"):
            spec = d["spec"]
            tmpl = spec["template"]
            labels = tmpl["metadata"].get("labels", {})
            for k, v in spec["selector"]["matchLabels"].items():
                if labels.get(k) != v:
                    bad(where, f"spec.selector.matchLabels.{k}={v} does not match the pod template's labels")
            templates.append((where, d, labels, tmpl["spec"]))
            pod = tmpl["spec"]
            volumes = {v["name"]: v for v in pod.get("volumes", [])}
            for c in spec.get("volumeClaimTemplates", []):
                volumes[c["metadata"]["name"]] = {"claim": True}
            component = labels.get("app.kubernetes.io/component")
            if component == "worker" and "prunelab.io/target" not in (pod.get("nodeSelector") or {}):
                bad(where, "a worker needs spec.template.spec.nodeSelector prunelab.io/target")
            for c in pod["containers"]:
                cw = f"{where} container {c['name']}"
                ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
                for probe in ("readinessProbe", "livenessProbe"):
                    p = c.get(probe)
                    if p:
                        port = (p.get("httpGet") or p.get("tcpSocket") or {}).get("port")
                        if isinstance(port, str) and port not in ports:
                            bad(cw, f"{probe} names port {port!r}, not one of {sorted(ports)}")
                res = c.get("resources", {})
                for r in ("cpu", "memory"):
                    if r not in res.get("requests", {}):
                        bad(cw, f"resources.requests.{r} missing")
                if component == "worker" and res.get("requests") != res.get("limits"):
                    bad(cw, "worker requests must equal limits (Guaranteed QoS: benchmarks must not share CPUs)")
                mounts = {}
                for m in c.get("volumeMounts", []):
                    if m["name"] not in volumes:
                        bad(cw, f"volumeMount {m['name']!r} names no volume of the pod")
                    mounts[m["mountPath"]] = volumes.get(m["name"], {})
                for vname, v in volumes.items():
                    sec = v.get("secret")
                    if sec and sec["secretName"] not in secrets:
                        bad(where, f"volume {vname} mounts Secret {sec['secretName']!r}, which make-secrets.sh does not write")
                for a in c.get("args", []):
                    m = re.match(r"--[a-z-]+=(/etc/prunelab/keys)/(.+)$", a)
                    if m:
                        v = mounts.get(m.group(1), {})
                        sec = (v.get("secret") or {}).get("secretName")
                        if not sec:
                            bad(cw, f"{a}: no Secret is mounted at {m.group(1)}")
                        elif m.group(2) not in secrets.get(sec, set()):
                            bad(cw, f"{a}: Secret {sec} has no key {m.group(2)} (it has {sorted(secrets.get(sec, []))})")
                if args.bin:
                    binary = os.path.basename(c["command"][0])
                    path = os.path.join(args.bin, binary)
                    if not os.access(path, os.X_OK):
                        bad(cw, f"command {c['command'][0]}: {path} is not built")
                        continue
                    help_text = subprocess.run([path, "--help"], capture_output=True, text=True).stdout
                    for a in c.get("args", []):
                        flag = a.split("=", 1)[0]
                        if not re.search(re.escape(flag) + r"\b", help_text):
                            bad(cw, f"arg {a}: {binary} takes no {flag}")
            if kind == "StatefulSet":
                headless = [w for w, s in services if s["metadata"]["name"] == spec.get("serviceName")]
                if not headless:
                    bad(where, f"serviceName {spec.get('serviceName')!r} is no Service of the manifests")
                for c in spec.get("volumeClaimTemplates", []):
                    n = c["metadata"]["name"]
                    if not any(m["name"] == n for ct in pod["containers"] for m in ct.get("volumeMounts", [])):
                        bad(where, f"volumeClaimTemplate {n} is mounted by no container")
    for where, s in services:
        sel = s["spec"].get("selector", {})
        matches = [t for t in templates if all(t[2].get(k) == v for k, v in sel.items())]
        if not matches:
            bad(where, f"selector {sel} selects no pod template")
            continue
        declared = {p["name"] for t in matches for c in t[3]["containers"] for p in c.get("ports", [])}
        for p in s["spec"]["ports"]:
            tp = p.get("targetPort")
            if isinstance(tp, str) and tp not in declared:
                bad(where, f"port {p['name']}: targetPort {tp!r} is not declared by the selected containers ({sorted(declared)})")
        if s["spec"].get("clusterIP") == "None" and not any(
                d["kind"] == "StatefulSet" and d["spec"].get("serviceName") == s["metadata"]["name"] for _, d in docs):
            bad(where, "a headless Service no StatefulSet uses")
    for p in problems:
        print(p)
    n = len(docs)
    print(f"check_manifests: {n} documents, {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
