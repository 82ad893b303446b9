#!/usr/bin/env python3
"""How much this machine's speed moves by itself: one frozen torchvision resnet18 (10 classes,
1x3x28x28 input, as the torchvision example) timed single-threaded in windows of 60 queries
every second for --seconds, with the CPU accounting of /proc/stat around it. Prints each
window's p90, their min/median/max and max/min, and the steal and busy shares the guest saw.
A max/min far above 1 with no steal means timings taken at different moments cannot be
compared on this machine (docs/MEASUREMENT.md). Run it on a quiet machine.

Usage: host_drift.py [--seconds 60] [--json]"""
import argparse
import json
import statistics
import time


def cpu_times():
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:9]]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--json", action="store_true", help="print one JSON object of the figures")
    a = p.parse_args()
    import torch
    import torchvision

    torch.set_num_threads(1)
    m = torch.jit.freeze(torch.jit.script(torchvision.models.resnet18(num_classes=10).eval()))
    x = torch.randn(1, 3, 28, 28)
    windows = []
    with torch.no_grad():
        for _ in range(30):
            m(x)
        before = cpu_times()
        end = time.time() + a.seconds
        while time.time() < end:
            lat = []
            for _ in range(60):
                t0 = time.perf_counter()
                m(x)
                lat.append((time.perf_counter() - t0) * 1e3)
            lat.sort()
            windows.append(lat[int(0.9 * len(lat))])
            time.sleep(1)
        after = cpu_times()
    d = [b - c for c, b in zip(before, after)]
    total = sum(d) or 1
    out = {"windows": len(windows), "p90_ms": [round(w, 3) for w in windows], "min_ms": round(min(windows), 3),
           "median_ms": round(statistics.median(windows), 3), "max_ms": round(max(windows), 3),
           "max_over_min": round(max(windows) / min(windows), 3), "steal_pct": round(100 * d[7] / total, 2),
           "busy_pct_all_cores": round(100 * (d[0] + d[1] + d[2]) / total, 1)}
    if a.json:
        print(json.dumps(out))
    else:
        print("p90 per 60-query window (ms): " + " ".join("%.2f" % w for w in windows))
        print("min %.2f  median %.2f  max %.2f ms  max/min %.2f; steal %.2f %% of CPU time; busy %.1f %% of all cores "
              "(ours included)" % (out["min_ms"], out["median_ms"], out["max_ms"], out["max_over_min"],
                                   out["steal_pct"], out["busy_pct_all_cores"]))


if __name__ == "__main__":
    main()
