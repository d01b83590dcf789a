"""Callers for the multi-host test: N calls, C in flight, one JSON line out.

Usage: python netns_caller.py URL TOPIC N CONCURRENCY
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from dasf_geo.transport.client import AsyncClient
from dasf_geo.transport.dynamic import messaging_config


async def run(url: str, topic: str, n: int, concurrency: int) -> dict:
    config = messaging_config(topic, url, persistent=True)
    answers: dict[str, int] = {}
    failures: dict[str, str] = {}
    latencies: list[float] = []
    async with AsyncClient(config, timeout=120) as client:
        todo = iter(range(n))

        async def worker() -> None:
            for i in todo:
                token = f"n{i}"
                start = time.perf_counter()
                try:
                    answers[token] = await client.call(
                        {"func_name": "slow_record", "token": token}
                    )
                except Exception as exc:
                    failures[token] = f"{type(exc).__name__}: {exc}"
                latencies.append(time.perf_counter() - start)

        begin = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - begin
    return {
        "answers": answers,
        "failures": failures,
        "seconds": seconds,
        "max_latency": max(latencies),
    }


if __name__ == "__main__":
    url, topic, n, concurrency = sys.argv[1:5]
    print(json.dumps(asyncio.run(run(url, topic, int(n), int(concurrency)))))
