"""Fragment splitting and reassembly: the law, the reference format, faults."""

from __future__ import annotations

import base64
import json
import random
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dasf_geo.exceptions import FragmentError
from dasf_geo.protocol.constants import EXT_CHECKSUM, EXT_SIZE, EXT_TRANSFER
from dasf_geo.protocol.fragments import (
    Reassembler,
    crc32_hex,
    fits_one_message,
    one_message,
    piece_chars,
    split_payload,
    split_stream,
)


def reference_fragments(payload: bytes, max_payload_size: int) -> list[dict]:
    """What demessaging 0.6.4's MessageConsumer.send_response puts on the wire."""
    pieces = textwrap.wrap(
        text=base64.b64encode(payload).decode("utf-8"), width=max_payload_size
    )
    return [
        {"payload": piece, "properties": {"fragment": i, "num_fragments": len(pieces)}}
        for i, piece in enumerate(pieces)
    ]


def feed(reassembler: Reassembler, fragments, key="k"):
    results = []
    for frag in fragments:
        out = reassembler.add(key, frag.properties, frag.payload)
        if out is not None:
            results.append(bytes(out))
    return results


@given(
    data=st.binary(max_size=5000),
    size=st.integers(min_value=4, max_value=600),
    seed=st.integers(min_value=0, max_value=2**32),
    duplicates=st.integers(min_value=0, max_value=5),
)
@settings(max_examples=200, deadline=None)
def test_law_any_order_any_duplicates(data, size, seed, duplicates):
    fragments = list(split_payload(data, size))
    rng = random.Random(seed)
    if len(fragments) > 1:
        # a whole unfragmented message sent twice is a duplicate *reply*,
        # which the transport drops by request context, not the reassembler
        fragments += [rng.choice(fragments) for _ in range(duplicates)]
    rng.shuffle(fragments)
    assert feed(Reassembler(), fragments) == [data]


@given(data=st.binary(max_size=3000), size=st.integers(min_value=4, max_value=500))
@settings(max_examples=200, deadline=None)
def test_every_message_fits_max_payload_size(data, size):
    for frag in split_payload(data, size):
        assert len(frag.payload) <= size
        assert len(frag.payload) % 4 == 0


@given(
    data=st.binary(min_size=1, max_size=3000),
    size=st.integers(min_value=4, max_value=500),
)
@settings(max_examples=100, deadline=None)
def test_without_extensions_matches_reference_bytes(data, size):
    size -= size % 4  # the reference cuts at exactly max_payload_size
    size = max(size, 4)
    ours = list(split_payload(data, size, extensions=False))
    ref = reference_fragments(data, size)
    if len(ref) == 1:
        # the reference only fragments above max_payload_size *bytes*; a
        # single piece travels without fragment properties either way
        assert len(ours) == 1
        assert ours[0].payload.decode() == ref[0]["payload"]
        return
    assert [f.payload.decode() for f in ours] == [r["payload"] for r in ref]
    assert [f.properties for f in ours] == [r["properties"] for r in ref]


@given(
    data=st.binary(min_size=1, max_size=3000),
    size=st.integers(min_value=5, max_value=500),
    seed=st.integers(min_value=0, max_value=2**32),
)
@settings(max_examples=200, deadline=None)
def test_accepts_reference_fragments_of_any_width(data, size, seed):
    """Reference pieces need not be multiples of 4 characters."""
    ref = reference_fragments(data, size)
    if len(ref) == 1:
        ref[0]["properties"] = {}
    rng = random.Random(seed)
    rng.shuffle(ref)
    r = Reassembler()
    out = [r.add("k", m["properties"], m["payload"].encode()) for m in ref]
    assert [bytes(o) for o in out if o is not None] == [data]


def test_reference_properties_as_strings_are_accepted():
    """Pulsar turns property values into strings."""
    data = bytes(range(256)) * 10
    r = Reassembler()
    results = []
    for frag in split_payload(data, 400):
        props = {k: str(v) for k, v in frag.properties.items()}
        out = r.add("k", props, frag.payload)
        if out is not None:
            results.append(bytes(out))
    assert results == [data]


def test_small_payload_is_one_message_without_fragment_keys():
    (frag,) = split_payload(b"hello", 100)
    assert frag.payload == b"aGVsbG8="
    assert frag.properties == {EXT_CHECKSUM: crc32_hex(b"aGVsbG8="), EXT_SIZE: 5}
    assert Reassembler().add("k", frag.properties, frag.payload) == b"hello"


def test_fits_one_message_at_the_base64_boundary():
    # n bytes take 4 * ceil(n / 3) base64 characters
    assert fits_one_message(0, 0)
    assert fits_one_message(3, 4)
    assert not fits_one_message(4, 4)
    assert fits_one_message(6, 8)
    assert not fits_one_message(7, 8)


def test_one_message_is_what_split_payload_sends_for_a_small_payload():
    for data in (b"", b"x", b"hello world" * 10):
        (frag,) = split_payload(data, 10_000)
        assert one_message(data) == frag
    assert one_message(b"hello", extensions=False).properties == {}


def test_empty_payload():
    (frag,) = split_payload(b"", 8)
    assert frag.payload == b""
    assert Reassembler().add("k", frag.properties, frag.payload) == b""


def test_fragments_of_two_transfers_with_one_key_do_not_mix():
    a, b = b"a" * 1000, b"b" * 1000
    fa, fb = list(split_payload(a, 100)), list(split_payload(b, 100))
    interleaved = [x for pair in zip(fa, fb, strict=True) for x in pair]
    assert sorted(feed(Reassembler(), interleaved)) == [a, b]


def test_late_duplicate_after_completion_is_ignored():
    frags = list(split_payload(b"x" * 1000, 100))
    r = Reassembler()
    assert feed(r, frags) == [b"x" * 1000]
    assert r.add("k", frags[3].properties, frags[3].payload) is None
    assert r.pending == 0


def test_corrupt_fragment_is_named_and_dropped():
    frags = list(split_payload(b"y" * 1000, 100))
    bad = bytearray(frags[2].payload)
    bad[0] = ord("A") if bad[0] != ord("A") else ord("B")
    r = Reassembler()
    r.add("k", frags[0].properties, frags[0].payload)
    with pytest.raises(FragmentError, match=r"fragment 2 of 14 failed its CRC-32"):
        r.add("k", frags[2].properties, bytes(bad))
    assert r.pending == 0


def test_corrupt_reference_fragment_without_checksum_is_invalid_base64():
    frags = reference_fragments(b"z" * 1000, 100)
    r = Reassembler()
    with pytest.raises(FragmentError, match="not valid base64"):
        r.add("k", frags[0]["properties"], b"!!!!" + frags[0]["payload"][4:].encode())


def test_size_limit_announced_up_front():
    frags = list(split_payload(b"q" * 5000, 400))
    r = Reassembler(max_size=4096)
    with pytest.raises(FragmentError, match="5000 bytes, more than the limit of 4096"):
        r.add("k", frags[0].properties, frags[0].payload)


def test_size_limit_without_announced_size():
    frags = list(split_payload(b"q" * 5000, 400, extensions=False))
    r = Reassembler(max_size=1000)
    with pytest.raises(FragmentError, match="more than the limit of 1000 bytes"):
        for f in frags:
            r.add("k", f.properties, f.payload)
    assert r.pending == 0


def test_hostile_fragment_count_reserves_nothing():
    r = Reassembler(max_size=1000)
    with pytest.raises(FragmentError, match="limit of 1000"):
        r.add("k", {"fragment": 0, "num_fragments": 10**12}, b"AAAA")


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"fragment": 0}, "needs both"),
        ({"num_fragments": 2}, "needs both"),
        ({"fragment": 2, "num_fragments": 2}, "invalid fragment 2 of 2"),
        ({"fragment": -1, "num_fragments": 2}, "invalid fragment -1 of 2"),
        ({"fragment": 0, "num_fragments": 0}, "invalid fragment 0 of 0"),
        ({"fragment": "zero", "num_fragments": 2}, "must be an integer"),
        ({"fragment": True, "num_fragments": 2}, "must be an integer"),
        ({"fragment": [0], "num_fragments": 2}, "must be an integer"),
        ({"fragment": 0, "num_fragments": 2, EXT_SIZE: -5}, "invalid payload size"),
    ],
)
def test_malformed_fragment_properties(props, message):
    with pytest.raises(FragmentError, match=message):
        Reassembler().add("k", props, b"AAAA")


def test_inconsistent_fragment_count():
    r = Reassembler()
    r.add("k", {"fragment": 0, "num_fragments": 3}, b"AAAA")
    with pytest.raises(FragmentError, match="disagrees with earlier fragments"):
        r.add("k", {"fragment": 1, "num_fragments": 4}, b"AAAA")
    assert r.pending == 0


def test_inconsistent_piece_lengths():
    r = Reassembler()
    r.add("k", {"fragment": 0, "num_fragments": 3}, b"AAAA")
    with pytest.raises(FragmentError, match="fragment 1 of 3 has 6 bytes"):
        r.add("k", {"fragment": 1, "num_fragments": 3}, b"AAAAAAAA")


def test_wrong_announced_total():
    frags = list(split_payload(b"w" * 1000, 100))
    r = Reassembler()
    with pytest.raises(FragmentError):
        for f in frags:
            props = dict(f.properties, **{EXT_SIZE: 999})
            r.add("k", props, f.payload)


def test_expire_names_progress():
    frags = list(split_payload(b"e" * 1000, 100))
    r = Reassembler(timeout=5)
    r.add("req-1", frags[0].properties, frags[0].payload, now=100.0)
    r.add("req-1", frags[1].properties, frags[1].payload, now=101.0)
    assert r.expire(now=105.0) == []
    [(key, error)] = r.expire(now=106.5)
    assert key == "req-1"
    assert "received 2 of 14 fragments" in str(error)
    assert r.pending == 0


def test_discard():
    frags = list(split_payload(b"d" * 1000, 100))
    r = Reassembler()
    r.add("req-1", frags[0].properties, frags[0].payload)
    assert r.pending == 1 and r.pending_bytes() == 75
    r.discard("req-1")
    assert r.pending == 0


def test_split_stream_reads_bounded_pieces():
    data = bytes(random.Random(1).randbytes(100_000))
    reads = []
    pos = 0

    def read(n):
        nonlocal pos
        reads.append(n)
        chunk = data[pos : pos + n]
        pos += len(chunk)
        return chunk

    frags = list(split_stream(read, len(data), 4000))
    assert max(reads) == 3000
    assert len({f.properties[EXT_TRANSFER] for f in frags}) == 1
    assert feed(Reassembler(), frags) == [data]


def test_split_stream_short_source():
    with pytest.raises(FragmentError, match="ended after 10 of 5000 bytes"):
        list(split_stream(lambda n, d=[b"x" * 10]: d.pop() if d else b"", 5000, 400))


@pytest.mark.parametrize("bad", [0, 3, -1, 2.5, "512000", True])
def test_piece_chars_rejects_bad_sizes(bad):
    with pytest.raises(FragmentError, match="max_payload_size"):
        piece_chars(bad)


def test_fragment_frames_are_json_serialisable():
    for frag in split_payload(b"\x00\xff" * 600, 200):
        json.dumps({"payload": frag.payload.decode(), "properties": frag.properties})


class RecordingBuffer(bytearray):
    """A buffer that records whether it was closed (like a temp-file buffer)."""

    made: list[RecordingBuffer] = []

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.closed = False
        RecordingBuffer.made.append(self)

    def close(self) -> None:
        self.closed = True


def test_buffer_factory_receives_the_payload():
    RecordingBuffer.made = []
    data = random.randbytes(50_000)
    r = Reassembler(buffer_factory=RecordingBuffer)
    outs = [r.add("k", f.properties, f.payload) for f in split_payload(data, 4000)]
    out = outs[-1]
    assert out == data
    assert out is RecordingBuffer.made[0]
    assert not out.closed  # the caller owns a completed payload


def test_buffer_of_a_broken_transfer_is_closed():
    RecordingBuffer.made = []
    frags = list(split_payload(random.randbytes(50_000), 4000))
    r = Reassembler(buffer_factory=RecordingBuffer)
    r.add("k", frags[0].properties, frags[0].payload)
    bad = frags[1].payload[:-4] + b"AAAA"
    with pytest.raises(FragmentError, match="CRC-32"):
        r.add("k", frags[1].properties, bad)
    assert RecordingBuffer.made[0].closed


def test_buffer_of_an_expired_or_discarded_transfer_is_closed():
    RecordingBuffer.made = []
    frags = list(split_payload(random.randbytes(50_000), 4000))
    r = Reassembler(timeout=5, buffer_factory=RecordingBuffer)
    r.add("a", frags[0].properties, frags[0].payload, now=0)
    r.add("b", frags[0].properties, frags[0].payload, now=0)
    assert [key for key, _ in r.expire(now=1)] == []
    r.discard("a")
    assert [b.closed for b in RecordingBuffer.made] == [True, False]
    assert [key for key, _ in r.expire(now=10)] == ["b"]
    assert [b.closed for b in RecordingBuffer.made] == [True, True]
    assert r.pending == 0


@given(st.binary(max_size=5000), st.integers(0, 7))
def test_crc32_hex_is_zlibs_crc32(data: bytes, offset: int) -> None:
    """The fast CRC-32 (ISA-L) gives zlib's checksum, for any buffer type."""
    import zlib

    from dasf_geo.protocol.fragments import crc32_hex

    want = f"{zlib.crc32(data[offset:]) & 0xFFFFFFFF:08x}"
    assert crc32_hex(data[offset:]) == want
    assert crc32_hex(memoryview(data)[offset:]) == want
    assert crc32_hex(bytearray(data)[offset:]) == want
