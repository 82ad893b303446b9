#!/usr/bin/env bash
# A real Prometheus (Debian's package) scrapes a real coordinator's /metrics every second while
# a worker runs a small sweep; the test queries Prometheus's HTTP API for the series the
# dashboard and alerts.yml use, and checks that the alert rules were loaded and evaluated.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v prometheus >/dev/null || skip "prometheus is not installed (cluster/install-deps.sh installs it)"
require_fashion
require_bins

WPORT=$(free_port); CPORT=$(free_port); HPORT=$(free_port); PPORT=$(free_port)
CLIENT=tcp://127.0.0.1:$CPORT
"$BIN/prunelab-coordinator" --data-dir "$WORK/data" --worker-endpoint tcp://127.0.0.1:$WPORT \
  --client-endpoint "$CLIENT" --http 127.0.0.1:$HPORT --heartbeat-ms 500 >"$WORK/coordinator.log" 2>&1 &
cleanup "stop $!"
wait_for 30 "the coordinator's /metrics" curl -sf "http://127.0.0.1:$HPORT/metrics"

cat >"$WORK/prometheus.yml" <<YAML
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [$SRC/cluster/prometheus/alerts.yml]
scrape_configs:
  - job_name: prunelab
    static_configs: [{targets: ["127.0.0.1:$HPORT"]}]
YAML
promtool check config "$WORK/prometheus.yml" >/dev/null || fail "promtool rejects the test's config"
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address=127.0.0.1:$PPORT >"$WORK/prometheus.log" 2>&1 &
cleanup "stop $!"
PROM=http://127.0.0.1:$PPORT

# query EXPR: prints the instant vector's result as JSON lines "labels value".
query() {
  curl -sf --get "$PROM/api/v1/query" --data-urlencode "query=$1" |
    "$PY" -c 'import json,sys; d=json.load(sys.stdin); [print(json.dumps(r["metric"], sort_keys=True), r["value"][1]) for r in d["data"]["result"]]'
}
has_series() { [ -n "$(query "$1")" ]; }
value_at_least() { local v; v=$(query "$1" | awk '{print $NF}' | head -1); [ -n "$v" ] && awk -v v="$v" -v m="$2" 'BEGIN{exit !(v>=m)}'; }

wait_for 60 "Prometheus to scrape the coordinator" has_series 'up{job="prunelab"} == 1'
log "Prometheus scrapes the coordinator"

"$BIN/prunelab-worker" --coordinator tcp://127.0.0.1:$WPORT --target local --threads 1 --cache-dir "$WORK/cache" \
  --host-lock "$WORK/host.lock" >"$WORK/worker.log" 2>&1 &
cleanup "stop $!"
tiny_spec "$WORK/spec.yaml" prom
ID=$("$BIN/prunelab" submit "$WORK/spec.yaml" --coordinator "$CLIENT" | head -1)
log "submitted $ID"
wait_for 60 "a live worker in Prometheus" value_at_least 'prunelab_workers{state="alive"}' 1
timeout 600 "$BIN/prunelab" status "$ID" --wait --coordinator "$CLIENT" >/dev/null || fail "the sweep did not finish"
log "sweep finished"

# The series the dashboard and the alert rules read, as Prometheus stored them.
wait_for 30 "3 done result rows for target local" value_at_least 'prunelab_results{target="local"}' 3
wait_for 30 "done tasks" value_at_least 'prunelab_tasks{state="done"}' 5
wait_for 10 "failed results series" has_series 'prunelab_failed_results{target="local"} == 0'
wait_for 10 "dispatch latency histogram" value_at_least 'sum(prunelab_dispatch_latency_seconds_count)' 5
wait_for 10 "dispatch latency buckets" has_series 'histogram_quantile(0.99, sum by (le) (prunelab_dispatch_latency_seconds_bucket))'
wait_for 10 "the sweep's recommendation series" has_series "prunelab_sweep_recommendation{sweep=\"$ID\",target=\"local\"}"
wait_for 10 "the candidate's accuracy drop" has_series "prunelab_candidate_accuracy_drop_points{sweep=\"$ID\"}"
wait_for 10 "the candidate's latency" has_series "prunelab_candidate_latency_p90_seconds{sweep=\"$ID\"} > 0"
for e in 'prunelab_tasks' 'prunelab_workers' 'prunelab_results' "prunelab_candidate_memory_ratio{sweep=\"$ID\"}"; do
  query "$e" | sed "s/^/  $e: /"
done

# A release and an evaluation: their series appear with the evaluation's level.
"$BIN/prunelab" release "$ID" base --target local --coordinator "$CLIENT" --force --reason "scrape test" --wait \
  >"$WORK/release.txt" 2>&1 || { cat "$WORK/release.txt"; fail "release with its reference run"; }
wait_for 20 "the current release's version" value_at_least 'prunelab_release_current_version{target="local"}' 1
wait_for 20 "the release's evaluation level" has_series 'prunelab_evaluation_level{target="local",release="v1",current="true"}'
wait_for 10 "the release's drift series" has_series 'prunelab_evaluation_psi{target="local",release="v1",kind="input"}'
query 'prunelab_evaluation_level' | sed 's/^/  prunelab_evaluation_level: /'

# The release-threshold alerts fire exactly for the candidates over their thresholds (which
# variants those are depends on this tiny sweep's training; the agreement does not).
count() { query "count($1) or vector(0)" | awk '{print $NF}'; }
alerts_agree() {
  [ "$(count 'prunelab_candidate_memory_ratio > 0.5')" = "$(count 'ALERTS{alertname="PrunelabCandidateMemoryOverHalf",alertstate="firing"}')" ] &&
  [ "$(count 'prunelab_candidate_accuracy_drop_points > 2')" = "$(count 'ALERTS{alertname="PrunelabCandidateAccuracyDrop",alertstate="firing"}')" ]
}
wait_for 20 "the release-threshold alerts to match the candidates" alerts_agree
log "alerts: memory over half $(count 'ALERTS{alertname="PrunelabCandidateMemoryOverHalf",alertstate="firing"}'), accuracy drop over 2 pt $(count 'ALERTS{alertname="PrunelabCandidateAccuracyDrop",alertstate="firing"}') (firing, as the candidates' series say)"

# The rules are loaded and evaluated without error.
curl -sf "$PROM/api/v1/rules" | "$PY" -c '
import json, sys
groups = json.load(sys.stdin)["data"]["groups"]
rules = [r for g in groups for r in g["rules"]]
names = sorted(r["name"] for r in rules)
print("rules loaded:", ", ".join(names))
bad = [(r["name"], r.get("lastError")) for r in rules if r.get("health") not in ("ok", "unknown")]
assert len(rules) == 12, names
assert not bad, bad
' || fail "alert rules not loaded or unhealthy"
wait_for 20 "an evaluation of the rules" curl -sf "$PROM/api/v1/rules" -o "$WORK/rules.json"
"$PY" - "$WORK/rules.json" <<'PY' || fail "rules not evaluated"
import json, sys, time
rules = [r for g in json.load(open(sys.argv[1]))["data"]["groups"] for r in g["rules"]]
assert all(r.get("lastEvaluation", "").startswith("20") for r in rules), rules
PY
# The Grafana dashboard's queries are valid PromQL on this Prometheus, and every metric the
# alert rules read is on the dashboard.
"$PY" - "$SRC/cluster/grafana/prunelab-dashboard.json" "$SRC/cluster/prometheus/alerts.yml" "$PROM" <<'PY' || fail "dashboard queries"
import json, re, sys, urllib.parse, urllib.request, yaml
dash, rules, prom = json.load(open(sys.argv[1])), yaml.safe_load(open(sys.argv[2])), sys.argv[3]
exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
for e in exprs:
    url = prom + "/api/v1/query?" + urllib.parse.urlencode({"query": e})
    reply = json.load(urllib.request.urlopen(url))
    assert reply["status"] == "success", (e, reply)
metrics = lambda text: set(re.findall(r"\b(prunelab_[a-z_]+?)(?:_bucket|_count|_sum)?\b", text))
on_dash = metrics(" ".join(exprs))
in_rules = metrics(" ".join(r["expr"] for g in rules["groups"] for r in g["rules"]))
missing = in_rules - on_dash
assert not missing, f"alerted on but not on the dashboard: {missing}"
print(f"dashboard: {len(exprs)} queries valid; it shows all {len(in_rules)} metrics the alerts read")
PY
log "PASS: Prometheus scraped every series (releases and evaluations too); 12 alert rules loaded and evaluated; the dashboard's queries run"
