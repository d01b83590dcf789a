"""Reliability figures: recovery after kill -9, isolation, memory under attack.

Runs a ``dasf-geo broker`` process and a backend process
(``tests/e2e/modules/e2e_service.py``) and measures, with default limits:

- **recovery**: the broker is killed with SIGKILL and started again on the
  same port; seconds until the running backend consumes again and until
  the running caller's next call is answered (nothing restarted by hand);
  with ``--store`` and a persistent topic, seconds until 60 requests that
  waited in the store are all answered;
- **isolation**: small-call latency on a service topic while a client that
  reads and never acks fills the broker's 256 MiB budget on 10 topics, and
  seconds until the broker disconnects that client (stall timeout 60 s);
- **hostile fragments**: the backend's resident memory before and after
  hostile first fragments, each announcing 30 MiB.

    python benchmarks/bench_reliability.py [--trials 5] [--skip-isolation]

Prints Markdown tables; medians of ``--trials`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._procs import (
    BENCH,
    PYTHON,
    Process,
    free_port,
    rss_kib,
    wait_until,
)
from dasf_geo.testing import processes
from dasf_geo.testing.calls import call_stored

MIB = 1024 * 1024


def broker(port: int, store: Path | None = None) -> Process:
    proc, _ = processes.start_broker(port, store=store, seconds=60, factory=Process)
    assert isinstance(proc, Process)
    return proc


def kill(proc: Process) -> None:
    proc.popen.send_signal(signal.SIGKILL)
    proc.popen.wait(10)


def backend(port: int, topic: str, persistent: bool = False) -> Process:
    extra = ["--persistent", "persistent"] if persistent else []
    return Process(
        [
            PYTHON,
            str(BENCH.parent / "tests" / "e2e" / "modules" / "e2e_service.py"),
            "-t",
            topic,
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
            *extra,
            "listen",
        ]
    )


def consumers(port: int, topic: str) -> int:
    return processes.broker_consumers(port, topic)


def config(port: int, topic: str, persistent: bool = False) -> Any:
    from dasf_geo.transport.dynamic import messaging_config

    return messaging_config(topic, f"ws://127.0.0.1:{port}", persistent=persistent)


async def recovery(trials: int) -> dict[str, list[float]]:
    from dasf_geo.transport.client import AsyncClient

    port = free_port()
    topic = "bench-recovery"
    brk = broker(port)
    svc = backend(port, topic)
    out: dict[str, list[float]] = {"backend": [], "caller": []}
    try:
        async with AsyncClient(config(port, topic), timeout=120) as client:
            await asyncio.to_thread(
                wait_until, lambda: consumers(port, topic) == 1, "the backend"
            )
            assert await client.call({"func_name": "echo", "value": 0})
            for _ in range(trials):
                kill(brk)
                brk = await asyncio.to_thread(broker, port)
                back = time.monotonic()
                await asyncio.to_thread(
                    wait_until, lambda: consumers(port, topic) == 1, "the backend"
                )
                out["backend"].append(time.monotonic() - back)
                assert await client.call({"func_name": "echo", "value": 1})
                out["caller"].append(time.monotonic() - back)
    finally:
        svc.stop()
        brk.stop()
    return out


async def stored_recovery(trials: int) -> list[float]:
    from dasf_geo.transport.client import AsyncClient

    port = free_port()
    topic = "bench-stored"
    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "broker.sqlite"
        brk = broker(port, store)
        svc = backend(port, topic, persistent=True)
        try:
            cfg = config(port, topic, persistent=True)
            async with AsyncClient(cfg, timeout=300) as client:
                await asyncio.to_thread(
                    wait_until, lambda: consumers(port, topic) == 1, "the backend"
                )
                for _ in range(trials):
                    (busy,) = await call_stored(
                        client, [{"func_name": "sleep", "seconds": 1.0}]
                    )
                    calls = await call_stored(
                        client, [{"func_name": "echo", "value": i} for i in range(60)]
                    )
                    kill(brk)
                    brk = await asyncio.to_thread(broker, port, store)
                    back = time.monotonic()
                    await busy
                    await asyncio.gather(*calls)
                    seconds.append(time.monotonic() - back)
        finally:
            svc.stop()
            brk.stop()
    return seconds


async def isolation() -> dict[str, float]:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    from dasf_geo.transport.client import AsyncClient

    port = free_port()
    topic = "bench-isolation"
    brk = broker(port)
    svc = backend(port, topic)
    result: dict[str, float] = {}
    try:
        async with AsyncClient(config(port, topic), timeout=120) as client:
            await asyncio.to_thread(
                wait_until, lambda: consumers(port, topic) == 1, "the backend"
            )

            async def latencies(n: int) -> list[float]:
                out = []
                for i in range(n):
                    start = time.perf_counter()
                    await client.call({"func_name": "echo", "value": i})
                    out.append(time.perf_counter() - start)
                return out

            result["p50 idle (ms)"] = statistics.median(await latencies(300)) * 1e3
            base = f"ws://127.0.0.1:{port}/ws/v2"
            payload = base64.b64encode(b"h" * 480_000).decode()
            frame = json.dumps({"payload": payload, "properties": {}})
            hogs = []
            feeders = []
            for i in range(10):
                hog = await connect(
                    f"{base}/consumer/non-persistent/public/default/hog{i}/s",
                    max_size=None,
                )
                feeder = await connect(
                    f"{base}/producer/non-persistent/public/default/hog{i}",
                    max_queue=None,
                )
                hogs.append(hog)
                feeders.append(feeder)
            filled = time.monotonic()

            async def feed(feeder: Any) -> None:
                for _ in range(70):  # 45 MB per topic, more than it may hold
                    await feeder.send(frame)

            # each feeder waits once its topic is full: feed them side by side
            feeding = [asyncio.create_task(feed(f)) for f in feeders]

            async def read(ws: Any) -> float:
                try:
                    while True:
                        await ws.recv()
                except ConnectionClosed:
                    return time.monotonic()

            readers = [asyncio.create_task(read(h)) for h in hogs]
            deadline = time.monotonic() + 50  # within the 60 s stall timeout
            while time.monotonic() < deadline:  # until the budget is held
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/health", timeout=5
                ) as response:
                    held = json.load(response).get("held_bytes", 0)
                if held >= 256 * MIB:
                    break
                await asyncio.sleep(0.1)
            result["held by the hog (MiB)"] = held / MIB
            result["p50 while full (ms)"] = (
                statistics.median(await latencies(300)) * 1e3
            )
            closed = await asyncio.gather(*readers)
            result["hog disconnected after (s)"] = max(closed) - filled
            for task in feeding:
                task.cancel()
            for feeder in feeders:
                feeder.transport.abort()
    finally:
        svc.stop()
        brk.stop()
    return result


async def hostile_fragments(count: int) -> dict[str, float]:
    from websockets.asyncio.client import connect

    from dasf_geo.protocol import messages as m

    port = free_port()
    topic = "bench-fragments"
    brk = broker(port)
    svc = backend(port, topic)
    result: dict[str, float] = {}
    try:
        await asyncio.to_thread(
            wait_until, lambda: consumers(port, topic) == 1, "the backend"
        )
        await asyncio.sleep(1.0)
        before = rss_kib(svc.pid)
        url = f"ws://127.0.0.1:{port}/ws/v2/producer/non-persistent/public/default/"
        async with connect(url + topic) as producer:
            for i in range(count):
                props = m.request_properties("bench-nobody", f"h{i}")
                props.update(
                    {"fragment": 0, "num_fragments": 10_000, "dasfGeoSize": 30 * MIB}
                )
                await producer.send(
                    m.build_producer_frame(m.b64encode(b"x" * 3000), props).decode()
                )
                await producer.recv()
        await asyncio.sleep(2.0)
        after = rss_kib(svc.pid)
        result["hostile first fragments"] = count
        result["announced (MiB)"] = count * 30
        result["RSS before (MiB)"] = before / 1024
        result["RSS after (MiB)"] = after / 1024
    finally:
        svc.stop()
        brk.stop()
    return result


def table(rows: dict[str, Any]) -> str:
    lines = ["| measure | value |", "|---|---:|"]
    for key, value in rows.items():
        text = f"{value:.2f}" if isinstance(value, float) else str(value)
        lines.append(f"| {key} | {text} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--skip-isolation", action="store_true")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    rec = asyncio.run(recovery(args.trials))
    figures["backend consumes again after a kill -9 + restart (s, median)"] = (
        statistics.median(rec["backend"])
    )
    figures["backend, worst of the trials (s)"] = max(rec["backend"])
    figures["running caller answered again (s, median)"] = statistics.median(
        rec["caller"]
    )
    stored = asyncio.run(stored_recovery(max(1, args.trials // 2)))
    figures["61 stored requests all answered after restart (s, median)"] = (
        statistics.median(stored)
    )
    print(f"## Recovery ({args.trials} kill -9 trials)\n")
    print(table(figures))
    print()
    print("## Backend memory under hostile first fragments\n")
    print(table(asyncio.run(hostile_fragments(100))))
    print()
    if not args.skip_isolation:
        print("## Isolation from a never-acking client\n")
        print(table(asyncio.run(isolation())))


if __name__ == "__main__":
    main()
