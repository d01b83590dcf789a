"""Broker benchmark: messages/s and MB/s through ``dasf-geo broker``.

Starts ``dasf-geo broker`` in its own process and pushes messages from one
producer to one consumer (both raw ``websockets`` asyncio connections in this
process, the consumer acking every message, the producer keeping a window
of unacked sends, as dasf_geo's transport does):

- small messages (100 bytes of payload);
- DASF fragments (512,000 base64 characters, 375 kB of data each).

Also streams ``--stream-mb`` MB of fragments on a fresh broker and reports
the broker's peak memory above idle (``VmHWM`` - idle ``VmRSS``), and the
rate of the broker's sans-I/O core alone, to show what the sockets cost.
The broker's CPU time per message (user + system, from ``/proc``) counts
its four frames: the producer's frame, its ack, the delivery and the
consumer's ack. RPC-shaped calls (a request to a backend's topic and the
reply to the caller's response topic, 8 frames, one call in flight per
caller, 1 and 4 callers) give the broker's CPU time per small DASF call.

    python benchmarks/bench_broker.py [--repeat 5] [--small 20000]
        [--fragments 400] [--stream-mb 100] [--persistent] [--rpc-calls 2000]

Prints a Markdown table; throughput columns are medians of ``--repeat`` runs.
MB/s counts payload bytes as sent on the wire (base64 text), 1 MB = 10^6 B.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from dasf_geo.testing import processes

REPO = Path(__file__).resolve().parents[1]
MB = 1_000_000
FRAGMENT_CHARS = 512_000


class BrokerProcess:
    """``dasf-geo broker --port 0`` in a child process (the shared helper)."""

    def __init__(self, store: str | None = None) -> None:
        cmd = [sys.executable, "-m", "dasf_geo.cli.tool", "broker", "--port", "0"]
        cmd += ["--log-level", "WARNING"]
        if store:
            cmd += ["--store", store]
        self.proc = processes.Process(cmd, cwd=REPO)
        self.popen = self.proc.popen
        try:
            match = processes.wait_until(
                lambda: re.search(r"listening on (ws://\S+?) ", self.proc.output()),
                "the broker to listen",
                60,
                self.proc,
            )
        except processes.ProcessError as exc:
            self.stop()
            raise RuntimeError(f"the broker did not start: {exc}") from None
        self.url = match.group(1)

    def memory_kb(self, field: str) -> int:
        """``VmRSS`` or ``VmHWM`` of the broker process, in kB."""
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
        return int(match.group(1)) if match else 0

    def cpu_seconds(self) -> float:
        """User + system CPU time the broker process used so far, in seconds."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2]
        utime, stime = fields.split()[11:13]
        return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """Terminate the broker (SIGKILL after 15 s) and reap it."""
        self.proc.stop()
        self.proc.cleanup()


async def push(url: str, topic: str, payload: bytes, n: int, window: int, domain: str):
    """Send ``n`` messages and receive them; return (seconds, payload bytes)."""
    base = f"{url}/ws/v2/{{}}/{domain}/public/default/{topic}"
    consumer_url = base.format("consumer") + "/bench?receiverQueueSize=64"
    head = b'{"payload":"' + payload + b'","properties":{"i":"'
    async with (
        connect(consumer_url, compression=None, max_size=None) as consumer,
        connect(base.format("producer"), compression=None, max_size=None) as producer,
    ):
        slots = asyncio.Semaphore(window)
        received = 0
        done = asyncio.Event()

        async def read_acks() -> None:
            for _ in range(n):
                ack = await producer.recv(decode=False)
                if not ack.startswith(b'{"result":"ok"'):
                    raise RuntimeError(f"send failed: {ack[:200]!r}")
                slots.release()

        async def consume() -> None:
            nonlocal received
            while received < n:
                frame = await consumer.recv(decode=False)
                # the broker's frames start with {"messageId":"<id>"
                end = frame.index(b'"', 14)
                await consumer.send(
                    b'{"messageId":"' + frame[14:end] + b'"}', text=True
                )
                received += 1
            done.set()

        acks = asyncio.ensure_future(read_acks())
        consuming = asyncio.ensure_future(consume())
        start = time.perf_counter()
        for i in range(n):
            await slots.acquire()
            await producer.send(head + str(i).encode() + b'"}}', text=True)
        await asyncio.wait_for(done.wait(), 600)
        seconds = time.perf_counter() - start
        await acks
        await consuming
    return seconds, n * len(payload)


async def rpc_calls(url: str, calls: int, callers: int) -> float:
    """RPC-shaped traffic: ``callers`` callers, each with one call in flight.

    A call is what a DASF call of a small function sends through the
    broker: the request to the backend's topic (acked), its delivery (acked
    by the backend), the reply to the caller's response topic (acked) and
    its delivery (acked by the caller): 4 frames in and 4 out. Returns the
    seconds ``calls`` calls took in all.
    """
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    base = f"{url}/ws/v2/{{}}/non-persistent/public/default/{{}}"
    service = f"rpc-{tag}"
    props = '"messageType":"{}","requestContext":"{}","response_topic":"{}"'

    async def backend(consumer, producers) -> None:
        while True:
            frame = await consumer.recv(decode=False)
            end = frame.index(b'"', 14)
            await consumer.send(b'{"messageId":"' + frame[14:end] + b'"}', text=True)
            start = frame.index(b'"response_topic":"') + 18
            topic = frame[start : frame.index(b'"', start)].decode()
            context = frame[frame.rindex(b'"context":') + 10 : -1].decode()
            producer = producers.get(topic)
            if producer is None:
                producer = producers[topic] = await connect(
                    base.format("producer", topic), compression=None
                )
            reply = props.format("response", context.strip('"'), "")
            await producer.send(
                f'{{"payload":"b2s=","properties":{{{reply}}},"context":{context}}}',
                text=True,
            )
            await producer.recv(decode=False)

    async def caller(i: int, n: int) -> None:
        topic = f"{service}_{i}"
        async with (
            connect(base.format("consumer", topic) + "/caller", compression=None) as c,
            connect(base.format("producer", service), compression=None) as p,
        ):
            for k in range(n):
                request = props.format("request", k, topic)
                await p.send(
                    f'{{"payload":"aGk=","properties":{{{request}}},"context":"{k}"}}',
                    text=True,
                )
                ack = await p.recv(decode=False)
                if not ack.startswith(b'{"result":"ok"'):
                    raise RuntimeError(f"send failed: {ack[:200]!r}")
                frame = await c.recv(decode=False)
                end = frame.index(b'"', 14)
                await c.send(b'{"messageId":"' + frame[14:end] + b'"}', text=True)

    producers: dict[str, Any] = {}
    consumer_url = base.format("consumer", service) + "/backend?subscriptionType=Shared"
    async with connect(consumer_url, compression=None) as consumer:
        serving = asyncio.ensure_future(backend(consumer, producers))
        try:
            await caller(callers, 50)  # warm up
            start = time.perf_counter()
            await asyncio.gather(*(caller(i, calls // callers) for i in range(callers)))
            return time.perf_counter() - start
        finally:
            serving.cancel()
            for producer in producers.values():
                await producer.close()


def core_rates(payload: bytes, n: int) -> float:
    """Messages/s through ``BrokerCore`` alone: publish, render, ack (no I/O)."""
    from dasf_geo.broker.core import BrokerCore
    from dasf_geo.broker.names import TopicName

    name = TopicName(False, "public", "default", "core")
    core = BrokerCore()
    consumer = core.subscribe(name, "s")
    topic = core.add_producer(name)
    frame = b'{"payload":"' + payload + b'","properties":{"i":"1"},"context":"7"}'
    start = time.perf_counter()
    for _ in range(n):
        core.publish(topic, frame)
        out = core.next_frame(consumer)
        assert out is not None
        end = out.index(b'"', 14)
        core.consumer_frame(consumer, b'{"messageId":"' + out[14:end] + b'"}')
    return n / (time.perf_counter() - start)


def run_case(url: str, payload: bytes, n: int, window: int, domain: str, tag: str):
    topic = f"bench-{tag}-{os.getpid()}-{time.monotonic_ns()}"
    return asyncio.run(push(url, topic, payload, n, window, domain))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--small", type=int, default=20_000, help="small messages")
    parser.add_argument("--fragments", type=int, default=400, help="500 kB messages")
    parser.add_argument("--stream-mb", type=int, default=100)
    parser.add_argument(
        "--persistent", action="store_true", help="also measure persistent topics"
    )
    parser.add_argument(
        "--rpc-calls", type=int, default=2000, help="RPC-shaped calls per run"
    )
    args = parser.parse_args(argv)

    small = base64.b64encode(os.urandom(75))  # 100 characters
    fragment = base64.b64encode(os.urandom(FRAGMENT_CHARS // 4 * 3))
    assert len(fragment) == FRAGMENT_CHARS
    cases = [
        ("small (100 B)", small, args.small, 64, "non-persistent"),
        ("fragment (512,000 B)", fragment, args.fragments, 16, "non-persistent"),
    ]
    if args.persistent:
        cases += [
            ("small, persistent", small, args.small // 4, 64, "persistent"),
            ("fragment, persistent", fragment, args.fragments // 2, 16, "persistent"),
        ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        broker = BrokerProcess(store=os.path.join(tmp, "bench.sqlite"))
        try:
            for name, payload, n, window, domain in cases:
                rates = []
                for r in range(args.repeat):
                    cpu = broker.cpu_seconds()
                    seconds, nbytes = run_case(
                        broker.url, payload, n, window, domain, str(r)
                    )
                    cpu = broker.cpu_seconds() - cpu
                    rates.append((n / seconds, nbytes / seconds / MB, cpu / n * 1e6))
                rows.append(
                    (
                        name,
                        domain,
                        n,
                        statistics.median(x for x, _, _ in rates),
                        statistics.median(y for _, y, _ in rates),
                        statistics.median(z for _, _, z in rates),
                    )
                )
            rpc_rows = []
            for callers in (1, 4):
                rates = []
                for _ in range(args.repeat):
                    cpu = broker.cpu_seconds()
                    seconds = asyncio.run(
                        rpc_calls(broker.url, args.rpc_calls, callers)
                    )
                    cpu = broker.cpu_seconds() - cpu
                    n = args.rpc_calls // callers * callers + 50  # with the warm-up
                    rates.append((args.rpc_calls / seconds, cpu / n * 1e6))
                rpc_rows.append(
                    (
                        callers,
                        statistics.median(x for x, _ in rates),
                        statistics.median(y for _, y in rates),
                    )
                )
        finally:
            broker.stop()

        # bounded memory: stream --stream-mb MB of fragments on a fresh broker
        broker = BrokerProcess()
        try:
            time.sleep(0.5)
            idle = broker.memory_kb("VmRSS")
            stream_n = max(1, args.stream_mb * MB // FRAGMENT_CHARS)
            seconds, nbytes = run_case(
                broker.url, fragment, stream_n, 16, "non-persistent", "s"
            )
            peak = broker.memory_kb("VmHWM")
        finally:
            broker.stop()

    core_small = statistics.median(core_rates(small, args.small) for _ in range(3))
    core_fragment = statistics.median(
        core_rates(fragment, args.fragments) for _ in range(3)
    )
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, medians of "
        f"{args.repeat} runs, one producer -> broker process -> one consumer"
    )
    print()
    print("| messages | topic | count | messages/s | MB/s | broker CPU µs/message |")
    print("|---|---|---:|---:|---:|---:|")
    for name, domain, n, rate, mbps, cpu in rows:
        print(f"| {name} | {domain} | {n} | {rate:,.0f} | {mbps:,.1f} | {cpu:,.0f} |")
    print()
    print("| RPC-shaped calls: callers | calls/s | broker CPU µs/call |")
    print("|---|---:|---:|")
    for callers, rate, cpu in rpc_rows:
        print(f"| {callers} | {rate:,.0f} | {cpu:,.0f} |")
    print()
    print(
        f"Streaming {nbytes / MB:.0f} MB in {stream_n} fragments: "
        f"{nbytes / seconds / MB:.1f} MB/s; broker memory idle "
        f"{idle / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB "
        f"(+{(peak - idle) / 1024:.1f} MiB)"
    )
    print(
        f"BrokerCore alone (publish, render, ack; no sockets): {core_small:,.0f} "
        f"small messages/s, {core_fragment * FRAGMENT_CHARS / MB:,.0f} MB/s of "
        "fragments"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
