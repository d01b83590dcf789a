"""Hostile frames, handshakes and requests against a running broker and backend.

Valid calls run beside the hostile traffic the whole time and each of their
results is checked. Afterwards: every valid call was answered correctly,
the broker and the backend still serve, every hostile request that named a
reply topic got exactly one reply, the backend holds no incomplete request
beyond its caps, and nothing wrote a traceback to the log.

The inputs come from a seeded random generator, so a failure can be
replayed (the seed is in the test id). The default run is bounded (about a
couple of thousand inputs per seed, well under a minute on a loaded
machine); set
``DASF_GEO_FUZZ_LONG=1`` for a longer one (see docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import random
import string
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from dasf_geo.broker import Broker
from dasf_geo.protocol import messages as m
from dasf_geo.transport.client import AsyncClient
from tests.conftest import timeout
from tests.transport.conftest import Config, Handler, running_listener

REPLIES = "fuzz-replies"
ANSWER_TYPES = {"response", "pong", "progress", "log"}
MESSAGE_TYPES = ["request", "ping", "info", "api_info", "bogus", "", *ANSWER_TYPES]


@dataclass
class Tally:
    """What the campaign sent and what it expects back."""

    valid_calls: int = 0
    frames: int = 0
    handshakes: int = 0
    requests: int = 0
    #: request contexts that must get exactly one reply
    answerable: set[str] = field(default_factory=set)
    #: requests answered under a context that is not theirs (bad envelope)
    unnamed: int = 0
    closes: dict[int, int] = field(default_factory=dict)


# --- generators -----------------------------------------------------------------


def junk_text(rng: random.Random, size: int = 20) -> str:
    alphabet = string.printable + "é€\u2028\x00\ud800"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, size)))


def junk_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randint(0, 9 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.randint(-(2**70), 2**70)
    if kind == 3:
        return rng.choice([0.5, -1e300, 1e-300, float("nan"), float("inf")])
    if kind in (4, 5):
        return junk_text(rng)
    if kind in (6, 7):
        return [junk_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {
        junk_text(rng, 8): junk_value(rng, depth + 1) for _ in range(rng.randint(0, 3))
    }


def producer_frame(rng: random.Random) -> str | bytes:
    """A frame a hostile producer might send."""
    kind = rng.randint(0, 9)
    payload = base64.b64encode(rng.randbytes(rng.randint(0, 64))).decode()
    if kind == 0:
        return rng.randbytes(rng.randint(0, 200))
    if kind == 1:
        depth = rng.choice([65, 500, 1000, 5000])
        return '{"payload": "", "properties": ' + "[" * depth + "]" * depth + "}"
    if kind == 2:
        return rng.choice(
            [
                '{"payload": "", "properties": {"x": NaN}}',
                '{"payload": "", "context": Infinity}',
                '{"payload": "aGk=", "properties": {"x": 1e999}}',
                '{"payload": "aGk=", "key": -Infinity}',
            ]
        )
    if kind == 3:
        return json.dumps(junk_value(rng), allow_nan=True)
    if kind == 4:
        frame = {"payload": payload, "properties": junk_value(rng)}
        if rng.random() < 0.5:
            frame["context"] = junk_value(rng)
        if rng.random() < 0.3:
            frame["key"] = junk_value(rng)
        return json.dumps(frame)
    if kind == 5:
        return json.dumps({"payload": junk_text(rng), "properties": {}})
    if kind == 6:
        text = json.dumps({"payload": payload, "properties": {"a": 1}, "context": 1})
        cut = rng.randint(0, len(text))
        return text[:cut] + junk_text(rng, 3) + text[cut:]
    if kind == 7:
        return json.dumps({"payload": payload, "properties": {"n": "9" * 5000}})
    if kind == 8:
        return json.dumps(
            {"payload": payload, "properties": {junk_text(rng): junk_text(rng)}}
        )
    return json.dumps({"payload": payload, "properties": {}, "context": "ok"})


def consumer_frame(rng: random.Random, message_id: str | None) -> str | bytes:
    kind = rng.randint(0, 6)
    if kind == 0:
        return rng.randbytes(rng.randint(0, 100))
    if kind == 1:
        return "[" * 3000 + "]" * 3000
    if kind == 2:
        return json.dumps(
            {"type": "permit", "permitMessages": junk_value(rng)}, allow_nan=True
        )
    if kind == 3:
        return json.dumps({"messageId": junk_value(rng), "type": junk_value(rng)})
    if kind == 4:
        return '{"messageId": "x", "type": NaN}'
    if kind == 5 and message_id is not None:
        return json.dumps({"messageId": message_id, "type": "negativeAcknowledge"})
    return json.dumps({"messageId": message_id or junk_text(rng)})


PATH_PARTS = [
    "/ws/v2/consumer",
    "/ws/v2/producer",
    "/ws/v2/reader",
    "/ws/v2/junk",
    "/ws",
    "/health",
    "/topics",
    "/ws/status-ping",
    "/",
]


def handshake(rng: random.Random, port: int) -> bytes:
    """A raw HTTP request, often malformed, for the broker's port."""
    kind = rng.randint(0, 5)
    if kind == 0:
        return rng.randbytes(rng.randint(1, 300))
    path = rng.choice(PATH_PARTS)
    for _ in range(rng.randint(0, 6)):
        path += "/" + rng.choice(
            [
                "persistent",
                "non-persistent",
                "public",
                "default",
                "t",
                "s",
                "..",
                "%00",
                "%2F",
                "a" * rng.choice([1, 300, 5000]),
                junk_text(rng, 5).replace(" ", "").replace("\r", "").replace("\n", ""),
            ]
        )
    if rng.random() < 0.6:
        params = [
            "subscriptionType=" + rng.choice(["Shared", "Exclusive", "Key", "", "é"]),
            "receiverQueueSize=" + rng.choice(["0", "-1", "10", "1e9", "x", ""]),
            "ackTimeoutMillis=" + rng.choice(["0", "-5", "abc", "100000000000"]),
            "pullMode=" + rng.choice(["true", "maybe", ""]),
            "token=" + junk_text(rng, 5),
        ]
        path += "?" + "&".join(rng.sample(params, rng.randint(1, len(params))))
    lines = [
        f"{rng.choice(['GET', 'POST', 'BREW', 'GET'])} {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
    ]
    if rng.random() < 0.8:
        lines += [
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: "
            + rng.choice(["dGhlIHNhbXBsZSBub25jZQ==", "", "short", junk_text(rng)]),
            "Sec-WebSocket-Version: " + rng.choice(["13", "8", "", "x"]),
        ]
    if kind == 1:
        lines += [f"X-{i}: {'v' * 100}" for i in range(rng.randint(10, 200))]
    if kind == 2:
        lines.append("Authorization: Bearer " + junk_text(rng, 40))
    raw = "\r\n".join(lines).encode("utf-8", "surrogatepass") + b"\r\n\r\n"
    if kind == 3:
        raw = raw[: rng.randint(0, len(raw))]  # truncated
    return raw


def hostile_request(rng: random.Random, n: int) -> tuple[str, str, str | None]:
    """A message for the backend's topic, its context, and the reply it needs.

    The last item is "named" (exactly one reply under its context),
    "unnamed" (one error reply, its context unusable) or None (no reply).
    """
    context = f"fz{n}"
    props: dict[str, Any] = m.request_properties(REPLIES, context)
    mtype = rng.choice(MESSAGE_TYPES)
    props["messageType"] = mtype
    bad_envelope = False
    roll = rng.random()
    if roll < 0.1:
        del props["requestContext"]
        bad_envelope = True
    elif roll < 0.15:
        props["requestContext"] = rng.choice(["", [1], {"a": 1}, True, 1.5])
        bad_envelope = True
    elif roll < 0.2:
        del props["messageType"]
        bad_envelope, mtype = True, ""
    elif roll < 0.25:
        props["response_topic"] = rng.choice(["", None, 5])
        if props["response_topic"] is None:
            del props["response_topic"]
    if rng.random() < 0.3:  # a lone fragment, sometimes announcing a lot
        count = rng.choice([1, 2, 5, 10**9, 0, -1])
        props["fragment"] = rng.choice([0, 1, count - 1, -1, "0"])
        props["num_fragments"] = count
        if rng.random() < 0.5:
            props["dasfGeoSize"] = rng.choice([30 * 1024 * 1024, 10**12, -5, 3, "x"])
        if rng.random() < 0.3:
            props["dasfGeoCrc32"] = rng.choice(["00000000", 5, ""])
    if rng.random() < 0.2:
        props[
            rng.choice(["dasfGeoFragmentSize", "dasfGeoMaxSize", "dasfGeoCompression"])
        ] = junk_value(rng)
    op = rng.choice(["echo", "size", "fail", "validate", "nope"])
    body = rng.choice(
        [
            json.dumps({"op": op, "value": junk_value(rng), "args": junk_value(rng)}),
            json.dumps(junk_value(rng)),
            junk_text(rng, 40),
            "[" * 2000 + "]" * 2000,
        ]
    )
    payload = base64.b64encode(body.encode("utf-8", "surrogatepass")).decode()
    named = isinstance(props.get("response_topic"), str) and props["response_topic"]
    expect = None
    if named and mtype not in ANSWER_TYPES:
        expect = "unnamed" if bad_envelope else "named"
    frame = json.dumps({"payload": payload, "properties": props}, allow_nan=True)
    return frame, context, expect


# --- the campaign -----------------------------------------------------------------


async def send_all(
    url: str, frames: list[str | bytes], tally: Tally, reply: bool
) -> list[str | None]:
    """Send frames on one connection (reconnecting if the broker closes it).

    Returns the broker's ``result`` for each frame (None if not read).
    """
    results: list[str | None] = []
    ws = await connect(url, max_size=None)
    try:
        for frame in frames:
            results.append(None)
            if isinstance(frame, str):
                try:
                    frame.encode("utf-8")
                except UnicodeEncodeError:  # a lone surrogate: send the bytes
                    frame = frame.encode("utf-8", "surrogatepass")
            try:
                await ws.send(frame)
                tally.frames += 1
                if reply:
                    answer = json.loads(
                        await asyncio.wait_for(ws.recv(), timeout(10)),
                        parse_constant=lambda name: pytest.fail(f"{name} in an ack"),
                    )
                    assert isinstance(answer.get("result"), str), answer
                    results[-1] = answer["result"]
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else 1006
                tally.closes[code] = tally.closes.get(code, 0) + 1
                assert code in (1002, 1003, 1007, 1008, 1009), exc
                await ws.close()
                ws = await connect(url, max_size=None)
    finally:
        await ws.close()
    return results


async def poke(port: int, raw: bytes, tally: Tally) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        if not raw.endswith(b"\r\n\r\n"):
            return  # junk or truncated: the broker times it out
        head = await asyncio.wait_for(reader.read(200), timeout(15))
        assert head == b"" or head.startswith(b"HTTP/1.1 "), head[:80]
        tally.handshakes += 1
    except (ConnectionError, OSError):
        pass  # the broker hung up on garbage
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def campaign(n: int, seed: int, caplog: pytest.LogCaptureFixture) -> Tally:
    rng = random.Random(seed)
    tally = Tally()
    caplog.set_level(logging.WARNING)
    async with Broker(port=0, max_frame_size=1024 * 1024) as broker:
        config = Config(
            base=broker.url,
            topic="fuzz-svc",
            fragment_timeout=1.0,
            max_incomplete_requests=16,
            max_incomplete_bytes=4 * 1024 * 1024,
        )
        handler = Handler(config.topic)
        replies: list[dict] = []
        collector_ready = asyncio.Event()

        async def collect() -> None:
            url = config.get_topic_url(REPLIES, "collector")
            async with connect(url, max_size=None) as consumer:
                collector_ready.set()
                async for frame in consumer:
                    msg = json.loads(frame)
                    replies.append(msg)
                    await consumer.send(json.dumps({"messageId": msg["messageId"]}))

        collecting = asyncio.create_task(collect())
        await asyncio.wait_for(collector_ready.wait(), timeout(10))
        done = asyncio.Event()

        async def valid_calls(client: AsyncClient) -> None:
            i = 0
            while not done.is_set():
                i += 1
                value = {"i": i, "text": f"call {i}"}
                assert await client.call({"op": "echo", "value": value}) == value
                tally.valid_calls += 1

        async with (
            running_listener(handler, config) as listener,
            AsyncClient(config, timeout=timeout(60)) as client,
        ):
            callers = [asyncio.create_task(valid_calls(client)) for _ in range(2)]
            junk = config.get_topic_url("fuzz-junk")
            junk_sub = config.get_topic_url("fuzz-junk", "s")
            requests = [hostile_request(rng, i) for i in range(n)]
            tally.requests = len(requests)
            *_, accepted, _ = await asyncio.gather(
                send_all(junk, [producer_frame(rng) for _ in range(n)], tally, True),
                send_all(
                    junk_sub,
                    [consumer_frame(rng, None) for _ in range(n)],
                    tally,
                    False,
                ),
                send_all(
                    broker.websocket_url + "/status-ping",
                    [producer_frame(rng) for _ in range(n // 2)],
                    tally,
                    True,
                ),
                send_all(
                    config.get_topic_url(config.topic),
                    [frame for frame, _, _ in requests],
                    tally,
                    True,
                ),
                _pokes(broker.port, rng, n // 2, tally),
            )
            for (_, context, expect), result in zip(requests, accepted, strict=True):
                if result == "ok" and expect == "named":
                    tally.answerable.add(context)
                elif result == "ok" and expect == "unnamed":
                    tally.unnamed += 1
            # every answerable hostile request gets its one reply (lone
            # fragments after the 1 s fragment timeout)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout(30)
            expected = len(tally.answerable) + tally.unnamed
            while len(replies) < expected and loop.time() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(2.5)  # time for duplicates to show, if any
            done.set()
            await asyncio.wait_for(asyncio.gather(*callers), timeout(60))
            # the backend still answers, and holds nothing for the hostile ones
            assert await client.ping(timeout=timeout(10)) > 0
            assert listener.incomplete_bytes <= listener.max_incomplete_bytes
            assert len(listener._incoming) <= listener.max_incomplete
        collecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collecting
        assert broker.core is not None
        assert broker.core.counts()["topics"] >= 0
    contexts: dict[str, int] = {}
    for reply in replies:
        context = str(reply["properties"].get("requestContext"))
        contexts[context] = contexts.get(context, 0) + 1
    named = {c: k for c, k in contexts.items() if c in tally.answerable}
    assert set(named) == tally.answerable, tally.answerable - set(named)
    assert all(k == 1 for k in named.values()), {
        c: k for c, k in named.items() if k > 1
    }
    assert sum(k for c, k in contexts.items() if c not in tally.answerable) == (
        tally.unnamed
    ), [
        (r["properties"], base64.b64decode(r["payload"])[:100])
        for r in replies
        if str(r["properties"].get("requestContext")) not in tally.answerable
    ]
    assert tally.valid_calls > 0
    # tracebacks only for the functions that failed on purpose (the backend
    # logs a function's exception for its developer), never for anything else
    assert not [
        r.getMessage()
        for r in caplog.records
        if r.exc_info and not r.getMessage().startswith("request fz")
    ]
    return tally


async def _pokes(port: int, rng: random.Random, count: int, tally: Tally) -> None:
    for _ in range(count):
        await poke(port, handshake(rng, port), tally)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_fuzz_broker_and_backend_with_valid_calls_beside(seed, caplog):
    tally = await campaign(500, seed, caplog)
    assert tally.frames >= 1750 and tally.handshakes > 0
    assert tally.answerable and tally.unnamed


@pytest.mark.fuzz_long
@pytest.mark.skipif(
    not os.environ.get("DASF_GEO_FUZZ_LONG"),
    reason="the long fuzz run is for local use: set DASF_GEO_FUZZ_LONG=1",
)
@pytest.mark.parametrize("seed", range(10, 20))
async def test_fuzz_long(seed, caplog):
    await campaign(5000, seed, caplog)
