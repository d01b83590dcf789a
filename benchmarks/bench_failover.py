"""Failover: seconds until calls are answered again after a front is killed.

Two ``dasf-geo broker --cluster`` fronts over NATS; a backend
(``dasf-geo serve benchmarks/bench_service.py --broker A,B``) and a caller
in this process, both given both fronts. A probe calls ``echo`` in a loop
(one call at a time, each with a short timeout); the front both use is
killed with SIGKILL, and the time from the kill to the first answered call
sent after it is measured. The killed front is then started again on its
port, and the next trial kills the other one (the clients are there now).

- non-persistent topic: the caller moves at once; calls fail (ReplyLost,
  or a request dropped while the backend has not re-subscribed) until
  both are on the other front;
- persistent topic: the caller's reply subscription (``Exclusive``) moves
  once the dead front's lease expires (``--lease``).

    python benchmarks/bench_failover.py [--trials 5] [--lease 6]

Prints a Markdown table: median, min and max of ``--trials`` kills.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._procs import BENCH, PYTHON, Process, wait_until
from dasf_geo.testing.processes import ClusterFront, cluster_fronts

#: seconds one probe call may take before it counts as lost
PROBE_TIMEOUT = 0.5


@contextlib.contextmanager
def two_fronts(nats: str, lease: float) -> Iterator[list[ClusterFront]]:
    """Two fronts of a new cluster; the cluster is deleted afterwards."""
    extra = ("--ack-wait", "3", "--lease", f"{lease:g}")
    name = "failover" + secrets.token_hex(4)
    with cluster_fronts(nats, 2, *extra, name=name, factory=Process) as fronts:
        yield fronts


def serve(topic: str, brokers: str, persistent: bool) -> Process:
    """The backend on both fronts."""
    args = [
        PYTHON,
        "-m",
        "dasf_geo.cli.tool",
        "serve",
        str(BENCH / "bench_service.py"),
        "--topic",
        topic,
        "--broker",
        brokers,
        "--no-http",
        "--log-level",
        "ERROR",
    ]
    return Process(args + (["--persistent"] if persistent else []))


async def recover_times(
    fronts: list[ClusterFront], topic: str, persistent: bool, trials: int
) -> list[float]:
    """Seconds from each kill to the first answered call sent after it."""
    from dasf_geo.exceptions import TransportError
    from dasf_geo.transport.client import AsyncClient
    from dasf_geo.transport.dynamic import messaging_config

    brokers = ",".join(front.url for front in fronts)
    config = messaging_config(topic, brokers, persistent=persistent)
    times: list[float] = []
    async with AsyncClient(config, timeout=60) as client:
        await client.call({"func_name": "echo", "value": 0}, timeout=30)
        for _ in range(trials):
            victim = fronts[client._fronts.index]
            killed = time.perf_counter()
            victim.kill()
            while True:
                sent = time.perf_counter()
                try:
                    await client.call(
                        {"func_name": "echo", "value": 1},
                        timeout=60 if persistent else PROBE_TIMEOUT,
                    )
                except TransportError:
                    # ReplyLost, RequestTimeout, a refused front: again
                    await asyncio.sleep(0.01)
                    continue
                if sent >= killed:
                    break
            times.append(time.perf_counter() - killed)
            await asyncio.to_thread(victim.start)
            # settle: calls answered again for a moment before the next kill
            for _ in range(20):
                await client.call({"func_name": "echo", "value": 2}, timeout=30)
                await asyncio.sleep(0.05)
    return times


def measure(nats: str, trials: int, lease: float) -> list[tuple[str, str]]:
    rows = []
    for persistent in (False, True):
        kind = "persistent" if persistent else "non-persistent"
        topic = f"bench-failover-{kind}-{secrets.token_hex(3)}"
        with two_fronts(nats, lease) as fronts:
            brokers = ",".join(front.url for front in fronts)
            backend = serve(topic, brokers, persistent)
            try:
                from dasf_geo.transport.client import Client
                from dasf_geo.transport.dynamic import messaging_config

                config = messaging_config(topic, brokers, persistent=persistent)

                def ping(config: Any = config) -> bool:
                    with Client(config, timeout=5) as client:
                        client.ping(timeout=5)
                    return True

                wait_until(ping, f"the backend on {topic!r}")
                times = asyncio.run(recover_times(fronts, topic, persistent, trials))
            finally:
                backend.stop()
        rows.append(
            (
                f"{kind} topic",
                f"{statistics.median(times):.2f} s (min {min(times):.2f}, "
                f"max {max(times):.2f}, {len(times)} kills)",
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument(
        "--lease", type=float, default=6.0, help="the fronts' --lease (seconds)"
    )
    args = parser.parse_args(argv)
    rows = measure(args.nats, args.trials, args.lease)
    print("| killed the front in use, on a | time to the first answered call |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
