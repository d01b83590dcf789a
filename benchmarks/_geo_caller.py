"""One streaming-benchmark caller process.

Usage: python _geo_caller.py URL TOPIC MODE NX NY NT
  MODE reply:   call make_dataset and check every value
  MODE lazy:    call lazy_dataset and check every value
  MODE request: send a Dataset argument to dataset_sum and check the sum
  MODE lazy-request: the same with a dask-backed Dataset argument
Prints one JSON line: seconds, this process's CPU seconds in the call
(``cpu``), its idle and peak RSS in KiB.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

import dasf_geo
from benchmarks._procs import rss_kib, rss_peak_kib
from benchmarks.bench_geo_service import (
    expected_sum,
    lazy_dataset,
    make_dataset,
    values,
)


def check_values(ds, nx: int, ny: int, nt: int) -> None:
    """Every value is 0, 1, 2, … in order (one time step at a time)."""
    step = nx * ny
    for t in range(nt):
        got = np.asarray(ds["t2m"][t].values)
        want = values(t * step, (t + 1) * step).reshape(ny, nx)
        if not np.array_equal(got, want):
            raise SystemExit(f"time step {t} arrived altered")


def main() -> None:
    url, topic, mode = sys.argv[1:4]
    nx, ny, nt = (int(v) for v in sys.argv[4:7])
    with dasf_geo.connect(topic, url, timeout=1800, progress=False) as svc:
        svc.dataset_sum(make_dataset(2, 2, 1))  # warm up connections and caches
        expected = expected_sum(nx * ny * nt)
        idle = rss_kib(os.getpid())
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM)
        argument = None
        if mode == "request":
            argument = make_dataset(nx, ny, nt)
        elif mode == "lazy-request":
            argument = lazy_dataset(nx, ny, nt)
        start = time.perf_counter()
        cpu_start = time.process_time()
        if argument is not None:
            total = svc.dataset_sum(argument)
            seconds = time.perf_counter() - start
            cpu = time.process_time() - cpu_start
            if total != expected:
                raise SystemExit("the Dataset argument arrived altered")
        else:
            func = svc.make_dataset if mode == "reply" else svc.lazy_dataset
            ds = func(nx, ny, nt)
            seconds = time.perf_counter() - start
            cpu = time.process_time() - cpu_start
            check_values(ds, nx, ny, nt)
        peak = rss_peak_kib(os.getpid())
    print(
        json.dumps({"seconds": seconds, "cpu": cpu, "idle_kib": idle, "peak_kib": peak})
    )


if __name__ == "__main__":
    main()
