#!/usr/bin/env python3
"""Stability of recommendations, measured: runs the same sweep N times with `prunelab run`
(fresh data dirs, the same seed, the same machine) and prints, per run, the recommendation,
the front, the baseline's and the recommended variant's recorded p90 and the recommended
variant's ratio in the confirmation round; then how often the recommendation and the front
were the same and how far the recorded latencies strayed from their median.

Goal (issue 25): the same recommendation in 10 of 10 runs; the baseline's and the
recommended variant's recorded p90 within +-10 % of their median across the runs.
Measure on a quiet machine: anything else running moves the figures.

Usage:
  bench/stability.py SPEC.yaml [--runs 10] [--workers 2] [--prunelab build/bin/prunelab]
                     [--keep DIR] [--reread DIR] [--json]
Exit status 0 when every run finished (the goal is reported, not enforced)."""
import argparse
import collections
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def one_run(args, i, base):
    data = os.path.join(base, "run-%02d" % (i + 1))
    seconds, rc = 0.0, 0
    if not args.reread:
        shutil.rmtree(data, ignore_errors=True)
        t0 = time.monotonic()
        with open(data + ".log", "w") as log:
            rc = subprocess.call([args.prunelab, "run", args.spec, "--workers", str(args.workers), "--data-dir", data],
                                 stdout=log, stderr=subprocess.STDOUT, timeout=args.timeout_s)
        seconds = time.monotonic() - t0
    elif not os.path.isdir(data):
        return {"run": i + 1, "ok": False, "error": "--reread: no %s" % data, "seconds": 0}
    if rc != 0:
        return {"run": i + 1, "ok": False, "error": "prunelab run exited %d; see %s.log" % (rc, data), "seconds": seconds}
    out = subprocess.run([args.prunelab, "pareto", "sw-0001", "--data-dir", data, "--json"], capture_output=True,
                         text=True, timeout=120)
    if out.returncode != 0:
        return {"run": i + 1, "ok": False, "error": "prunelab pareto: " + out.stderr.strip()[:300], "seconds": seconds}
    doc = json.loads(out.stdout)
    decisions = doc.get("decisions", doc)
    target = decisions["targets"][0]
    by = {v["trial"]: v for v in target["variants"]}
    rec = target.get("recommended")
    base = next((v for v in target["variants"] if v["trial"].startswith("base@")), None)
    conf = target.get("confirmation") or {}
    ratio = None
    for m in conf.get("models", []):
        if m.get("trial") == rec:
            ratio = m.get("median_ratio")
    return {
        "run": i + 1,
        "ok": True,
        "seconds": round(seconds, 1),
        "recommended": rec,
        "front": sorted(v["trial"] for v in target["variants"] if v["rank"] == 1),
        "baseline_p90_ms": base["latency_p90_ms"] if base else None,
        "baseline_measured_p90_ms": base["measured_latency_p90_ms"] if base else None,
        "recommended_p90_ms": by[rec]["latency_p90_ms"] if rec in by else None,
        "recommended_measured_p90_ms": by[rec]["measured_latency_p90_ms"] if rec in by else None,
        "recommended_ratio_in_round": ratio,
        "within_noise": target.get("within_noise", []),
        "confirmation_rounds": conf.get("rounds"),
        "why": target.get("why", ""),
    }


def spread(values):
    """max/min and the largest deviation from the median, in percent."""
    values = [v for v in values if v]
    if len(values) < 2:
        return {"n": len(values)}
    med = statistics.median(values)
    return {"n": len(values), "median_ms": round(med, 4), "min_ms": round(min(values), 4),
            "max_ms": round(max(values), 4), "max_over_min": round(max(values) / min(values), 3),
            "max_dev_from_median_pct": round(100 * max(abs(v - med) / med for v in values), 1)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--prunelab", default=os.path.join(ROOT, "build", "bin", "prunelab"))
    p.add_argument("--keep", help="keep every run's data dir and log under this directory")
    p.add_argument("--timeout-s", type=float, default=3600, help="limit per run (seconds)")
    p.add_argument("--reread", help="decide again from the runs kept under this directory (run-01, ...) without "
                                    "running them: the same measurements through the current decision code")
    p.add_argument("--json", action="store_true", help="print one JSON object of the figures")
    args = p.parse_args()
    if args.runs < 1:
        p.error("--runs must be at least 1")
    if not os.access(args.prunelab, os.X_OK):
        p.error("no prunelab binary at %s (build it: bash cluster/build.sh)" % args.prunelab)
    base = args.reread or args.keep or tempfile.mkdtemp(prefix="prunelab-stability-")
    os.makedirs(base, exist_ok=True)
    runs = []
    for i in range(args.runs):
        r = one_run(args, i, base)
        runs.append(r)
        if not args.json:
            if r["ok"]:
                print("run %2d: %6.1f s  recommended %-12s base p90 %.3f ms  recommended p90 %.3f ms (own run %.3f ms, "
                      "%s x dense in the round)  front %s" %
                      (r["run"], r["seconds"], r["recommended"], r["baseline_p90_ms"] or 0, r["recommended_p90_ms"] or 0,
                       r["recommended_measured_p90_ms"] or 0,
                       "%.3f" % r["recommended_ratio_in_round"] if r["recommended_ratio_in_round"] else "-",
                       ",".join(r["front"])), flush=True)
            else:
                print("run %2d: FAILED %s" % (r["run"], r["error"]), flush=True)
    ok = [r for r in runs if r["ok"]]
    recs = collections.Counter(r["recommended"] for r in ok)
    fronts = collections.Counter(",".join(r["front"]) for r in ok)
    top_rec, top_rec_n = recs.most_common(1)[0] if recs else (None, 0)
    top_front_n = fronts.most_common(1)[0][1] if fronts else 0
    same_rec = [r for r in ok if r["recommended"] == top_rec]
    summary = {
        "spec": args.spec,
        "runs": args.runs,
        "finished": len(ok),
        "same_recommendation": "%d of %d" % (top_rec_n, args.runs),
        "recommendation": top_rec,
        "recommendations": dict(recs),
        "same_front": "%d of %d" % (top_front_n, args.runs),
        "baseline_p90": spread([r["baseline_p90_ms"] for r in ok]),
        "baseline_own_run_p90": spread([r["baseline_measured_p90_ms"] for r in ok]),
        "recommended_p90": spread([r["recommended_p90_ms"] for r in same_rec]),
        "recommended_own_run_p90": spread([r["recommended_measured_p90_ms"] for r in same_rec]),
        "recommended_ratio_in_round": spread([r["recommended_ratio_in_round"] for r in same_rec]),
        "machine_quiet_note": "figures are only comparable within one run of this program on one quiet machine",
        "per_run": runs,
        "data": base,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print("\nsame recommendation: %s (%s); same front: %s" % (summary["same_recommendation"], top_rec,
                                                                 summary["same_front"]))
        for k in ("baseline_p90", "baseline_own_run_p90", "recommended_p90", "recommended_own_run_p90",
                  "recommended_ratio_in_round"):
            s = summary[k]
            if s.get("n", 0) >= 2:
                print("%-28s median %.4f  min %.4f  max %.4f  max/min %.3f  max deviation from median %.1f %%" %
                      (k, s["median_ms"], s["min_ms"], s["max_ms"], s["max_over_min"], s["max_dev_from_median_pct"]))
        print("(latencies in ms; the ratio is the recommended variant's p90 over the baseline's in the same rounds)")
    if not args.keep and not args.reread:
        shutil.rmtree(base, ignore_errors=True)
    return 0 if len(ok) == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
