"""Faults in large transfers: each ends with a clear error, nothing is left behind.

A fake backend made of raw WebSocket connections (no dasf_geo code) answers
the caller's requests through the real broker with hand-made fragments:
lost, duplicated, reordered, corrupted, too large, or a sender that stops
mid-stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import pytest
import websockets

from dasf_geo.exceptions import FragmentError, PayloadTooLarge
from dasf_geo.protocol import messages as m
from dasf_geo.protocol.fragments import Fragment, split_payload
from dasf_geo.transport._common import FileBuffer
from dasf_geo.transport.client import AsyncClient
from tests.conftest import timeout
from tests.transport.conftest import Handler, running_listener

Respond = Callable[[list[Fragment]], list[Fragment]]


def reply_fragments(value: Any, piece: int = 4000) -> list[Fragment]:
    """The fragments of the JSON reply ``value`` (dasf_geo's own format)."""
    return list(split_payload(json.dumps(value).encode(), piece))


@contextlib.asynccontextmanager
async def fake_backend(config: Any, value: Any, respond: Respond):
    """Answer every request on ``config.topic`` with ``respond(fragments)``."""

    subscribed = asyncio.Event()

    async def serve() -> None:
        url = config.get_topic_url(config.topic, "fake-backend")
        async with websockets.connect(url) as consumer:
            subscribed.set()  # the handshake is done: the broker has the consumer
            while True:
                msg = json.loads(await consumer.recv())
                await consumer.send(json.dumps({"messageId": msg["messageId"]}))
                header = m.parse_request_header(msg["properties"])
                base = m.reply_properties(header, config.topic, status="success")
                url = config.get_topic_url(header.response_topic)
                async with websockets.connect(url) as producer:
                    for i, frag in enumerate(respond(reply_fragments(value))):
                        props = {**base, **frag.properties}
                        frame = m.build_producer_frame(frag.payload, props, str(i))
                        await producer.send(frame.decode())
                        await producer.recv()  # the broker's ack

    task = asyncio.create_task(serve())
    await asyncio.wait_for(subscribed.wait(), timeout(10))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def leftover_files() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "dasf-geo-*.part")))


def test_leftover_files_sees_this_runs_spool_files_only():
    """The run's own TMPDIR (tests/conftest.py) holds the spool files.

    A reply's spool file (a :class:`FileBuffer`, as the reassembly of a
    large reply makes) is found by :func:`leftover_files` while it is open
    and gone once closed; a spool file of another run elsewhere in the
    machine's temporary directory is not looked at; child processes get
    the same directory.
    """
    run_dir = tempfile.gettempdir()
    assert os.path.basename(run_dir).startswith("dasf-geo-tests-")
    assert os.environ["TMPDIR"] == run_dir
    before = leftover_files()
    buffer = FileBuffer(100)
    try:
        assert leftover_files() - before == {buffer._file.name}
    finally:
        buffer.close()
    assert leftover_files() == before
    outer = os.path.dirname(run_dir)
    with tempfile.NamedTemporaryFile(prefix="dasf-geo-", suffix=".part", dir=outer):
        assert leftover_files() == before  # another run's file
    child = subprocess.run(
        [sys.executable, "-c", "import tempfile; print(tempfile.gettempdir())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == run_dir


VALUE = ["x" * 50_000, list(range(1000))]


@pytest.mark.parametrize(
    "respond",
    [
        pytest.param(lambda f: f[::-1], id="reordered"),
        pytest.param(lambda f: f + f[:3] + [f[-1]], id="duplicated"),
        pytest.param(
            lambda f: random.Random(7).sample(f + f, 2 * len(f)), id="shuffled-twice"
        ),
    ],
)
async def test_reordered_and_duplicated_fragments_give_the_reply(make_config, respond):
    config = make_config(topic="faults-ok")
    async with fake_backend(config, VALUE, respond), AsyncClient(config) as client:
        assert await client.call({"op": "any"}, timeout=timeout(10)) == VALUE


def _corrupt(frags: list[Fragment]) -> list[Fragment]:
    bad = frags[2]
    flipped = b"A" if bad.payload[:1] != b"A" else b"B"
    payload = flipped + bad.payload[1:]  # still base64, but not what was sent
    return [*frags[:2], Fragment(payload, bad.properties), *frags[3:]]


def _mismatched_count(frags: list[Fragment]) -> list[Fragment]:
    wrong = dict(frags[1].properties, num_fragments=len(frags) + 5)
    return [frags[0], Fragment(frags[1].payload, wrong), *frags[2:]]


@pytest.mark.parametrize(
    ("respond", "message"),
    [
        (_corrupt, "fragment 2 of .* failed its CRC-32 integrity check"),
        (_mismatched_count, "disagrees with earlier fragments"),
    ],
    ids=["corrupted", "inconsistent"],
)
async def test_broken_fragments_fail_the_call_at_once(make_config, respond, message):
    config = make_config(topic="faults-bad")
    before = leftover_files()
    async with fake_backend(config, VALUE, respond), AsyncClient(config) as client:
        with pytest.raises(FragmentError, match=message) as info:
            await client.call({"func_name": "any"}, timeout=timeout(30))
        assert "the reply to any() from topic 'faults-bad' is broken" in str(info.value)
    assert leftover_files() <= before


async def test_a_sender_that_stops_mid_stream_is_given_up(make_config):
    """A lost fragment (or a backend that dies mid-reply) ends with an error
    after ``fragment_timeout``, before the call's own timeout."""
    config = make_config(topic="faults-lost", fragment_timeout=1.0)
    async with (
        fake_backend(config, VALUE, lambda f: f[:-1]),
        AsyncClient(config) as client,
    ):
        with pytest.raises(FragmentError, match="gave up waiting for fragments"):
            await client.call({"op": "any"}, timeout=timeout(30))


async def test_a_reply_above_the_limit_is_refused_and_spooled_files_removed(
    make_config,
):
    # a small spool threshold puts the reassembly into a temporary file
    config = make_config(
        topic="faults-big", max_request_size=30_000, spool_threshold=1000
    )
    before = leftover_files()
    async with fake_backend(config, VALUE, lambda f: f), AsyncClient(config) as client:
        with pytest.raises(FragmentError) as caught:
            await client.call({"op": "any"}, timeout=timeout(30))
    assert isinstance(caught.value, PayloadTooLarge)
    assert (caught.value.limit, caught.value.size) == (30_000, 54_896)
    assert str(caught.value) == (
        "the reply to the request from topic 'faults-big' is above the limit of "
        "30,000 bytes (30 kB) (the client's max_request_size): 54,896 bytes "
        "(54.9 kB) announced or received; it was not kept"
    )
    assert leftover_files() <= before


async def test_a_caller_that_leaves_mid_stream_does_not_hurt_the_backend(make_config):
    config = make_config(topic="faults-leave", max_payload_size=100_000)
    handler = Handler(config.topic)
    async with running_listener(handler, config):
        client = AsyncClient(config)
        await client.start()
        streaming = asyncio.Event()

        def on_progress(info: dict) -> None:
            if info.get("kind") == "transfer" and not info.get("done"):
                streaming.set()

        big = asyncio.create_task(
            client.call({"op": "blob", "n": 50_000_000}, progress=on_progress)
        )
        await asyncio.wait_for(streaming.wait(), timeout(30))
        await client.close()  # gone while the reply streams
        with pytest.raises(Exception):  # noqa: B017  # closed under it
            await big
        async with AsyncClient(config) as other:
            assert await other.call({"op": "echo", "value": 5}) == 5


async def test_a_reply_producer_that_fails_to_connect_once_is_tried_again(
    make_config, monkeypatch
):
    """A handshake that breaks off once (seen on a busy machine) costs no reply."""
    from dasf_geo.exceptions import ConnectionFailed
    from dasf_geo.transport import backend as backend_module
    from tests.transport.conftest import Handler, running_listener

    connect = backend_module.AsyncProducer.connect
    failures = [1]

    async def flaky_connect(self):  # type: ignore[no-untyped-def]
        if failures[0]:
            failures[0] -= 1
            raise ConnectionFailed(f"cannot connect to {self.url}: broke off")
        await connect(self)

    monkeypatch.setattr(backend_module, "REPLY_CONNECT_DELAYS", (0.01,))
    config = make_config(topic="faults-handshake")
    async with (
        running_listener(Handler(config.topic), config),
        AsyncClient(config) as client,
    ):
        # connected already: only the backend's reply producer is flaky
        monkeypatch.setattr(backend_module.AsyncProducer, "connect", flaky_connect)
        assert await client.call({"op": "echo", "value": 3}, timeout=timeout(20)) == 3
    assert failures == [0]
