"""ReplyStream: a reply's bytes in order while its fragments arrive, checked."""

from __future__ import annotations

import random
from typing import Any

import pytest

from dasf_geo.exceptions import FragmentError, FragmentTooLarge
from dasf_geo.protocol.fragments import split_payload
from dasf_geo.protocol.messages import ConsumerMessage, b64encode
from dasf_geo.transport.streamed import ReplyStream

DATA = bytes(random.Random(1).randbytes(50_000))
BASE = {"requestContext": "7", "messageType": "response", "status": "success"}


def messages(data: bytes = DATA, size: int = 4_000) -> list[ConsumerMessage]:
    return [
        ConsumerMessage(f"m{i}", f.payload, {**BASE, **f.properties})
        for i, f in enumerate(split_payload(data, size))
    ]


def stream(**kws: Any) -> ReplyStream:
    kws.setdefault("max_size", 1 << 20)
    return ReplyStream("make()", "topic", **kws)


async def read(s: ReplyStream) -> bytes:
    return b"".join([chunk async for chunk in s])


async def test_in_order_the_bytes_come_as_they_arrive() -> None:
    s = stream()
    msgs = messages()
    s.feed(msgs[0])
    await s.wait_head()
    assert s.status == "success" and s.fragmented and s.size == len(DATA)
    chunks = s.chunks()
    assert await chunks.__anext__() == DATA[:3000]  # before the rest arrived
    for msg in msgs[1:]:
        s.feed(msg)
    assert DATA[:3000] + b"".join([c async for c in chunks]) == DATA
    s.close()


async def test_any_order_and_duplicates() -> None:
    s = stream()
    msgs = messages()
    shuffled = msgs[1:] + msgs[:3]
    random.Random(2).shuffle(shuffled)
    for msg in [msgs[0], *shuffled]:
        s.feed(msg)
    assert await read(s) == DATA
    assert (await s.reply()).payload == b""  # all read already


async def test_a_slow_reader_makes_it_spill_to_a_file() -> None:
    s = stream(memory_limit=10_000)
    for msg in messages():
        s.feed(msg)
    assert s._spill is not None and s._queued_memory <= 10_000
    assert await s.join() == DATA
    s.close()
    assert s._spill is None


async def test_a_corrupt_fragment_stops_the_bytes_before_it() -> None:
    s = stream()
    msgs = messages()
    bad = msgs[4]
    msgs[4] = ConsumerMessage(bad.message_id, bad.payload[::-1], bad.properties)
    for msg in msgs:
        s.feed(msg)
    got = bytearray()
    with pytest.raises(FragmentError, match="fragment 4 of 17 failed its CRC-32"):
        async for chunk in s:
            got += chunk
    assert len(got) <= 4 * 3000


async def test_more_or_fewer_bytes_than_announced_fail_before_the_last() -> None:
    s = stream()
    msgs = messages()
    for msg in msgs:
        msg.properties["dasfGeoSize"] = len(DATA) + 1
    for msg in msgs:
        s.feed(msg)
    got = bytearray()
    with pytest.raises(FragmentError, match="50000 bytes, but its sender announced"):
        async for chunk in s:
            got += chunk
    assert len(got) < len(DATA)


async def test_pieces_of_a_reference_peer_cut_anywhere() -> None:
    text = b64encode(DATA)
    pieces = [text[i : i + 1001] for i in range(0, len(text), 1001)]
    s = stream()
    for i, piece in enumerate(pieces):
        props = {**BASE, "fragment": i, "num_fragments": len(pieces)}
        s.feed(ConsumerMessage(f"m{i}", piece, props))
    assert await read(s) == DATA


async def test_above_the_limit_fails_at_the_first_fragment() -> None:
    s = stream(max_size=10_000)
    s.feed(messages()[0])
    with pytest.raises(FragmentTooLarge, match="above the limit"):
        await s.wait_head()


async def test_an_unfragmented_error_reply() -> None:
    s = stream()
    props = {**BASE, "status": "error"}
    s.feed(ConsumerMessage("m", b64encode(b"it failed"), props))
    await s.wait_head()
    assert not s.fragmented
    reply = await s.reply()
    assert (reply.status, bytes(reply.payload)) == ("error", b"it failed")
