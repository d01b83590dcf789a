"""No caller or backend goes deaf; hostile requests cost one error reply each.

Each test here reproduces one way a process used to stop answering (or
answered twice, or held memory for nothing) and checks that it now fails
fast, recovers by itself, or answers once with a clear error, while valid
calls go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets

from dasf_geo.broker import EmbeddedBroker
from dasf_geo.exceptions import ConfigurationError, ConnectionFailed, ReplyLost
from dasf_geo.protocol import messages as m
from dasf_geo.protocol.fragments import split_payload
from dasf_geo.transport.client import AsyncClient
from dasf_geo.transport.connection import WebSocketLink, backoff_delays
from tests.conftest import free_port, timeout
from tests.transport.conftest import Config, Handler, running_listener


@contextlib.asynccontextmanager
async def dropping_port(port: int) -> AsyncIterator[list[int]]:
    """A TCP server on ``port`` that accepts and hangs up before any upgrade.

    Yields a list that counts the connections it dropped.
    """
    dropped = [0]

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        dropped[0] += 1
        writer.close()

    server = await asyncio.start_server(drop, "127.0.0.1", port)
    try:
        yield dropped
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def reply_collector(config: Config, topic: str) -> AsyncIterator[list[dict]]:
    """Collect every message published to ``topic`` (acking each)."""
    got: list[dict] = []
    ready = asyncio.Event()

    async def run() -> None:
        url = config.get_topic_url(topic, "collector")
        async with websockets.connect(url) as consumer:
            ready.set()
            async for frame in consumer:
                msg = json.loads(frame)
                got.append(msg)
                await consumer.send(json.dumps({"messageId": msg["messageId"]}))

    task = asyncio.create_task(run())
    await asyncio.wait_for(ready.wait(), timeout(10))
    try:
        yield got
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def publish(config: Config, frames: list[tuple[bytes, dict[str, Any]]]) -> None:
    """Publish ``(payload, properties)`` messages to the backend's topic."""
    async with websockets.connect(config.get_topic_url(config.topic)) as producer:
        for i, (payload, props) in enumerate(frames):
            await producer.send(m.build_producer_frame(payload, props, str(i)).decode())
            ack = json.loads(await asyncio.wait_for(producer.recv(), timeout(10)))
            assert ack["result"] == "ok", ack


async def eventually(check: Any, what: str, seconds: float = 10) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout(seconds)
    while not check():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


# --- 1. a connect that never reached the upgrade ---------------------------------


async def test_a_peer_that_hangs_up_before_the_upgrade_is_a_failed_connect():
    port = free_port()
    async with dropping_port(port) as dropped:
        link = WebSocketLink(f"ws://127.0.0.1:{port}/ws/v2/x", open_timeout=5)
        with pytest.raises(ConnectionFailed) as info:
            await link.connect()
    assert dropped[0] == 1
    assert str(info.value) == (
        f"cannot connect to ws://127.0.0.1:{port}/ws/v2/x: the connection was "
        "closed before the WebSocket handshake completed"
    )
    assert not link.connected
    # nothing to wait for: the link never opened
    await asyncio.wait_for(link.wait_closed(), timeout(1))


def test_backoff_is_capped_exponential_with_jitter():
    import random

    delays = backoff_delays(0.1, 2.0, rng=random.Random(1))
    got = [next(delays) for _ in range(12)]
    ceilings = [min(0.1 * 2**i, 2.0) for i in range(12)]
    assert all(c / 2 <= d <= c for d, c in zip(got, ceilings, strict=True))
    assert len(set(got)) == len(got)  # jittered, not a fixed ladder
    assert max(got) <= 2.0


async def test_caller_and_backend_recover_after_the_port_dropped_connections():
    """The broker goes, the port drops connections before the upgrade for a
    while (a restarting broker behind a proxy), then the broker returns: the
    running backend and caller reconnect by themselves and calls work."""
    port = free_port()
    broker = EmbeddedBroker(host="127.0.0.1", port=port).start()
    config = Config(base=broker.url, topic="rel-drop")
    handler = Handler(config.topic)
    try:
        async with (
            running_listener(handler, config) as listener,
            AsyncClient(config, timeout=timeout(30)) as client,
        ):
            assert await client.call({"op": "echo", "value": 1}) == 1
            await asyncio.to_thread(broker.stop)
            async with dropping_port(port) as dropped:
                await eventually(lambda: dropped[0] >= 4, "reconnect attempts")
            broker = EmbeddedBroker(host="127.0.0.1", port=port).start()
            await asyncio.wait_for(listener.connected.wait(), timeout(30))
            assert await client.call({"op": "echo", "value": 2}) == 2
            async with AsyncClient(config, timeout=timeout(30)) as fresh:
                assert await fresh.call({"op": "echo", "value": 3}) == 3
    finally:
        await asyncio.to_thread(broker.stop)


# --- the reply connection drops with calls in flight -----------------------------


async def test_calls_in_flight_fail_at_once_when_the_reply_connection_drops():
    port = free_port()
    broker = EmbeddedBroker(host="127.0.0.1", port=port).start()
    config = Config(base=broker.url, topic="rel-lost")
    handler = Handler(config.topic)
    handler.release.clear()
    try:
        async with (
            running_listener(handler, config),
            AsyncClient(config, timeout=timeout(600)) as client,
        ):
            call = asyncio.create_task(client.call({"op": "wait"}))
            await eventually(lambda: handler.executed, "the request to run")
            loop = asyncio.get_running_loop()
            start = loop.time()
            await asyncio.to_thread(broker.stop)
            with pytest.raises(ReplyLost) as info:
                await call
            # long before the call's 600 s: at the drop itself
            assert loop.time() - start < timeout(20)
            text = str(info.value)
            assert text.startswith(
                "the reply to the request from topic 'rel-lost' may be lost: the "
                "connection for replies closed while waiting (the connection to "
            )
            assert text.endswith(
                "the request may or may not have run, call again if that is safe"
            )
            handler.release.set()
    finally:
        handler.release.set()
        await asyncio.to_thread(broker.stop)


async def test_a_reply_that_stops_midway_names_topic_and_function(make_config):
    from tests.transport.test_faults import fake_backend

    config = make_config(topic="rel-midway", fragment_timeout=1.0)
    async with (
        fake_backend(config, ["x" * 50_000], lambda f: f[:-1]),
        AsyncClient(config) as client,
    ):
        with pytest.raises(Exception) as info:
            await client.call({"func_name": "compute"}, timeout=timeout(30))
    assert str(info.value).startswith(
        "the reply to compute() from topic 'rel-midway' did not arrive whole: "
        "gave up waiting for fragments after 1 s without one: received "
    )


# --- 2. replies that cannot be sent ----------------------------------------------


class RefusingConfig(Config):
    """Refuses reply topics that start with ``bad-`` (as a strict config does)."""

    def get_topic_url(self, topic: str, subscription: str | None = None) -> str:
        if topic.startswith("bad-"):
            raise ConfigurationError(f"invalid topic name {topic!r}")
        return super().get_topic_url(topic, subscription)


@pytest.mark.parametrize(
    "response_topic",
    [
        pytest.param("bad-topic", id="refused-by-config"),
        pytest.param("not a topic!", id="refused-by-broker"),
    ],
)
async def test_requests_whose_reply_cannot_be_sent_do_not_make_the_backend_deaf(
    broker, response_topic, monkeypatch, caplog
):
    from dasf_geo.transport import backend as backend_module

    monkeypatch.setattr(backend_module, "REPLY_CONNECT_DELAYS", (0.01,))
    config = RefusingConfig(base=broker.url, topic="rel-unsendable", max_workers=1)
    handler = Handler(config.topic)
    async with (
        running_listener(handler, config) as listener,
        AsyncClient(config, timeout=timeout(30)) as client,
    ):
        # more than the backend's receive queue (16 for one worker)
        count = 24
        frames = []
        for i in range(count):
            props = m.request_properties(response_topic, f"{i + 1}")
            frames.append((m.b64encode(b'{"op": "echo", "value": 0}'), props))
        await publish(config, frames)
        await eventually(
            lambda: handler.executed.count(None) == count, "all requests to run"
        )
        assert await client.call({"op": "echo", "value": 7}) == 7
        await eventually(
            lambda: (
                sum(
                    s["unacked"]
                    for t in broker.broker.core.stats()["topics"]
                    if t["name"] == config.topic
                    for s in t["subscriptions"]
                )
                == 0
            ),
            "every request to be acknowledged",
        )
        assert listener.answered == 1  # the valid call
    failures = [
        r.getMessage()
        for r in caplog.records
        if "could not send the reply" in r.getMessage()
    ]
    assert len(failures) == count  # logged once per request
    assert all("acknowledged and dropped" in text for text in failures)
    assert not [r for r in caplog.records if r.exc_info]  # no tracebacks


# --- 4. memory under hostile first fragments -------------------------------------


def hostile_first_fragment(
    context: str, response_topic: str, announced: int
) -> tuple[bytes, dict]:
    """The first fragment of a request announcing ``announced`` bytes."""
    piece = b"x" * 3000
    props = m.request_properties(response_topic, context)
    props.update(
        {
            "fragment": 0,
            "num_fragments": 1 + announced // 3000,
            "dasfGeoSize": announced,
        }
    )
    return m.b64encode(piece), props


async def test_hostile_first_fragments_reserve_no_memory_and_are_capped(make_config):
    config = make_config(topic="rel-memory", max_incomplete_requests=8)
    handler = Handler(config.topic)
    announced = 30 * 1024 * 1024  # below the 32 MiB spool threshold
    async with (
        running_listener(handler, config) as listener,
        reply_collector(config, "rel-memory-replies") as replies,
        AsyncClient(config, timeout=timeout(30)) as client,
    ):
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            frames = [
                hostile_first_fragment(str(i + 1), "rel-memory-replies", announced)
                for i in range(12)
            ]
            await publish(config, frames)
            await eventually(lambda: len(replies) == 4, "the refusals of 4 requests")
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        # 8 transfers of 30 MiB announced: a few kB each, not 240 MiB
        assert grown < 2 * 1024 * 1024, grown
        assert listener.incomplete_bytes == 8 * 3000
        texts = sorted(m.b64decode(r["payload"]).decode() for r in replies)
        assert set(texts) == {
            "error receiving request: the backend on topic 'rel-memory' is "
            "receiving 8 fragmented requests already (the limit is 8); try "
            "again later"
        }
        assert {r["properties"]["status"] for r in replies} == {"error"}
        assert await client.call({"op": "echo", "value": "still"}) == "still"


async def test_incomplete_bytes_above_the_cap_are_refused_once(make_config):
    config = make_config(
        topic="rel-bytes", max_incomplete_bytes=100_000, fragment_timeout=1.0
    )
    handler = Handler(config.topic)
    data = json.dumps({"op": "size", "value": "y" * 300_000}).encode()
    fragments = list(split_payload(data, 20_000))
    frames = []
    for frag in fragments:
        props = m.request_properties("rel-bytes-replies", "77")
        props.update(frag.properties)
        frames.append((frag.payload, props))
    async with (
        running_listener(handler, config) as listener,
        reply_collector(config, "rel-bytes-replies") as replies,
        AsyncClient(config, timeout=timeout(30)) as client,
    ):
        await publish(config, frames)
        await eventually(lambda: replies, "the refusal")
        await asyncio.sleep(2.5)  # past the 1 s fragment timeout and its check
        assert len(replies) == 1
        assert m.b64decode(replies[0]["payload"]).decode() == (
            "error receiving request: the backend on topic 'rel-bytes' holds "
            f"{_held(fragments)} of incomplete requests, above its limit of "
            "100,000 bytes (100 kB); try again later"
        )
        assert listener.incomplete_bytes == 0
        # the same request, small enough, is answered
        assert await client.call({"op": "size", "value": "y" * 1000}) == 1000


def _held(fragments: list) -> str:
    from dasf_geo.protocol.options import format_size

    size = 0
    for frag in fragments:
        size += len(frag.payload) // 4 * 3
        if size > 100_000:
            return format_size(size)
    raise AssertionError("never above the cap")


# --- 7. one error reply per request ----------------------------------------------


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param({"dasfGeoCrc32": "00000000"}, id="crc"),
        pytest.param({"dasfGeoSize": -5}, id="size"),
    ],
)
async def test_a_broken_first_fragment_gets_exactly_one_error_reply(
    make_config, corrupt
):
    config = make_config(topic="rel-once", fragment_timeout=1.0)
    handler = Handler(config.topic)
    data = json.dumps({"op": "size", "value": "z" * 50_000}).encode()
    frames = []
    for frag in split_payload(data, 10_000):
        props = m.request_properties("rel-once-replies", "5")
        props.update(frag.properties)
        if frag.properties["fragment"] == 0:
            props.update(corrupt)
        frames.append((frag.payload, props))
    async with (
        running_listener(handler, config) as listener,
        reply_collector(config, "rel-once-replies") as replies,
    ):
        await publish(config, frames)
        await eventually(lambda: replies, "the error reply")
        await asyncio.sleep(2.5)  # past the 1 s fragment timeout and its check
        assert len(replies) == 1, [m.b64decode(r["payload"]) for r in replies]
        assert replies[0]["properties"]["status"] == "error"
        assert listener._reassembler.pending == 0
        assert not listener._incoming


# --- 8. requests that name a reply topic but are no valid request ----------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            {"requestContext": None},
            "property 'requestContext' is missing or not a non-empty string",
            id="no-context",
        ),
        pytest.param(
            {"requestContext": ""},
            "property 'requestContext' is missing or not a non-empty string",
            id="empty-context",
        ),
        pytest.param(
            {"requestContext": [1]},
            "property 'requestContext' is missing or not a non-empty string",
            id="list-context",
        ),
        pytest.param(
            {"messageType": None},
            "property 'messageType' is missing or not a non-empty string",
            id="no-type",
        ),
        pytest.param(
            {"messageType": 5},
            "property 'messageType' is missing or not a non-empty string",
            id="int-type",
        ),
    ],
)
async def test_an_incomplete_envelope_with_a_reply_topic_is_answered(
    make_config, change, message
):
    config = make_config(topic="rel-envelope")
    handler = Handler(config.topic)
    props = m.request_properties("rel-envelope-replies", "9")
    for key, value in change.items():
        if value is None:
            del props[key]
        else:
            props[key] = value
    async with (
        running_listener(handler, config),
        reply_collector(config, "rel-envelope-replies") as replies,
        AsyncClient(config, timeout=timeout(30)) as client,
    ):
        await publish(config, [(m.b64encode(b'{"op": "echo", "value": 1}'), props)])
        await eventually(lambda: replies, "the error reply")
        assert await client.call({"op": "echo", "value": 2}) == 2
    (reply,) = replies
    assert reply["properties"]["status"] == "error"
    assert reply["properties"]["messageType"] == "response"
    assert m.b64decode(reply["payload"]).decode() == (
        f"error in the request's properties: not a DASF request: {message}"
    )
    assert len(handler.executed) == 1  # only the valid call ran


async def test_calls_waiting_for_the_reply_connection_fail_when_the_client_closes():
    port = free_port()
    broker = EmbeddedBroker(host="127.0.0.1", port=port).start()
    config = Config(base=broker.url, topic="rel-closing")
    try:
        client = AsyncClient(config, timeout=timeout(600))
        await client.start()
        await asyncio.to_thread(broker.stop)
        await eventually(
            lambda: not client._replies_ready.is_set(),  # type: ignore[union-attr]
            "the reply connection to drop",
        )
        call = asyncio.create_task(client.call({"op": "echo", "value": 1}))
        await asyncio.sleep(0.2)
        assert not call.done()  # waiting for the reply connection
        await client.close()
        with pytest.raises(Exception) as info:
            await asyncio.wait_for(call, timeout(5))
        assert str(info.value) == "the client for topic 'rel-closing' was closed"
    finally:
        await asyncio.to_thread(broker.stop)


async def test_close_ends_although_a_task_swallowed_its_cancellation(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    # asyncio.wait_for in Python 3.11 can lose a cancellation that arrives as
    # the awaited connect completes; such a task must not hold close() for ever
    import dasf_geo.transport.caller as caller

    monkeypatch.setattr(caller, "_CLOSE_TIMEOUT", 0.3)
    port = free_port()
    broker = EmbeddedBroker(host="127.0.0.1", port=port).start()
    config = Config(base=broker.url, topic="rel-stuck")
    never = asyncio.Event()

    async def stubborn() -> None:
        while not never.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await never.wait()

    try:
        client = AsyncClient(config, timeout=timeout(600))
        await client.start()
        stuck = asyncio.create_task(stubborn())
        client._tasks.append(stuck)
        await asyncio.sleep(0)
        # on the logger itself: an earlier logging config (dictConfig) may
        # have stopped its propagation, raised its level or disabled it
        log = logging.getLogger("dasf_geo.transport.client")
        monkeypatch.setattr(log, "disabled", False)
        caplog.set_level(logging.WARNING, logger=log.name)
        log.addHandler(caplog.handler)
        try:
            await asyncio.wait_for(client.close(), timeout(10))
        finally:
            log.removeHandler(caplog.handler)
        assert "did not stop within 0.3 s of closing" in caplog.text
    finally:
        never.set()
        await asyncio.to_thread(broker.stop)
