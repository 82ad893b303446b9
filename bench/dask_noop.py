#!/usr/bin/env python3
"""The same no-op workload as bench/dispatch_scale, through Dask distributed's LocalCluster
on this machine: N tasks that do nothing, submitted at once, results gathered. Prints one
JSON object: {"workers", "tasks", "seconds", "tasks_per_s", "dask_version"}.
Usage: dask_noop.py TASKS WORKERS"""
import json
import sys
import time


def noop(i):
    return i


def main():
    tasks, workers = int(sys.argv[1]), int(sys.argv[2])
    import dask
    from dask.distributed import Client, LocalCluster

    # One thread per worker process, like prunelab workers; no dashboard (no network needed).
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.gather(client.map(noop, range(100), pure=False))  # warm up the workers
        t0 = time.perf_counter()
        futures = client.map(noop, range(tasks), pure=False)
        client.gather(futures)
        seconds = time.perf_counter() - t0
    print(json.dumps({"workers": workers, "tasks": tasks, "seconds": seconds, "tasks_per_s": tasks / seconds,
                      "dask_version": dask.__version__}))


if __name__ == "__main__":
    main()
