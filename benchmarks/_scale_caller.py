"""One bench_scale.py caller process.

Usage: python _scale_caller.py URL TOPIC MODE N [CONCURRENCY]
  MODE io:   N ``io_bound`` calls, CONCURRENCY in flight; prints calls/s.
  MODE mean: one ``mean_over_time(N)`` call; prints seconds.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dasf_geo
from dasf_geo.transport.client import AsyncClient
from dasf_geo.transport.dynamic import messaging_config


async def io(url: str, topic: str, n: int, concurrency: int) -> dict:
    async with AsyncClient(messaging_config(topic, url), timeout=600) as client:
        await client.call({"func_name": "io_bound", "value": -1})  # warm up
        todo = iter(range(n))

        async def worker() -> None:
            for i in todo:
                assert await client.call({"func_name": "io_bound", "value": i}) == i

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    return {"calls_per_s": n / seconds}


def mean(url: str, topic: str, nt: int) -> dict:
    with dasf_geo.connect(topic, url, timeout=1800, progress=False) as svc:
        start = time.perf_counter()
        ds = svc.mean_over_time(nt)
        seconds = time.perf_counter() - start
        value = float(ds["mean"].mean())
    if not 0.45 < value < 0.55:
        raise SystemExit(f"the mean of uniform random numbers came back as {value}")
    return {"seconds": seconds}


def main() -> None:
    url, topic, mode, n = sys.argv[1:5]
    if mode == "io":
        concurrency = int(sys.argv[5]) if len(sys.argv) > 5 else 32
        print(json.dumps(asyncio.run(io(url, topic, int(n), concurrency))))
    else:
        print(json.dumps(mean(url, topic, int(n))))


if __name__ == "__main__":
    main()
