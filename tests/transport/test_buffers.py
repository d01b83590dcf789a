"""Large payloads are reassembled in a temporary file, not in memory."""

from __future__ import annotations

import os
import random

import pytest

from dasf_geo.protocol.fragments import Reassembler, split_payload
from dasf_geo.transport._common import (
    FileBuffer,
    GrowingBuffer,
    buffer_factory,
    payload_bytes,
)


def test_file_buffer_behaves_like_a_fixed_bytearray():
    buf = FileBuffer(10)
    assert len(buf) == 10 and bytes(buf) == b"\0" * 10
    buf[2:5] = b"abc"
    buf[8:] = memoryview(b"yz")
    assert buf[:] == b"\0\0abc\0\0\0yz"
    assert buf == b"\0\0abc\0\0\0yz" and buf != b"other"
    with pytest.raises(ValueError, match="cannot change the buffer's size"):
        buf[0:2] = b"toolong"
    with pytest.raises(TypeError, match="contiguous slices"):
        buf[::2] = b"ab"
    path = buf.path
    assert os.path.getsize(path) == 10
    buf.close()
    assert buf.closed
    assert not os.path.exists(path)


def test_large_payloads_go_to_a_file_small_ones_stay_in_memory():
    make = buffer_factory(threshold=1000)
    # in memory, a buffer that grows as data arrives (not the announced size)
    small = make(1000)
    assert isinstance(small, GrowingBuffer)
    assert len(small) == 1000 and small.held == 0
    assert isinstance(make(1001), FileBuffer)


def test_an_announced_size_reserves_no_memory_until_data_arrives():
    """A hostile first fragment announcing megabytes costs only its own bytes."""
    data = random.randbytes(30_000)
    fragments = list(split_payload(data, 4_000))
    r = Reassembler(buffer_factory=buffer_factory(threshold=64 * 1024 * 1024))
    assert r.add("k", fragments[0].properties, fragments[0].payload) is None
    (transfer,) = r._transfers.values()
    assert isinstance(transfer.buffer, GrowingBuffer)
    assert len(transfer.buffer) == 30_000
    assert transfer.buffer.held == len(fragments[0].payload) // 4 * 3
    # out of order: the last piece first, then the rest; the payload is whole
    rest = fragments[1:]
    out = [r.add("k", f.properties, f.payload) for f in reversed(rest)]
    assert bytes(out[-1]) == data
    assert isinstance(out[-1], bytearray)


def test_growing_buffer_handles_early_pieces_and_rewrites():
    buf = GrowingBuffer(10)
    buf[6:10] = b"6789"
    assert buf.held == 4 and buf[6:10] == b"6789"
    buf[0:3] = b"012"
    buf[0:3] = b"012"  # a duplicate rewrite
    buf[3:6] = b"345"
    assert buf.held == 10
    assert buf[0:10] == b"0123456789"
    with pytest.raises(ValueError, match="cannot change the buffer's size"):
        buf[0:2] = b"x"
    assert buf.finish() == bytearray(b"0123456789")


def test_reassembly_into_a_file_buffer_gives_the_payload():
    data = random.randbytes(300_000)
    r = Reassembler(buffer_factory=buffer_factory(threshold=1000))
    fragments = list(split_payload(data, 40_000))
    random.shuffle(fragments)
    results = [r.add("k", f.properties, f.payload) for f in fragments]
    out = next(x for x in results if x is not None)
    assert isinstance(out, FileBuffer)
    assert payload_bytes(out) == data
    out.close()


def test_switch_interval_is_shortened_only_from_the_default(monkeypatch):
    import sys

    from dasf_geo.transport._common import SWITCH_INTERVAL, shorten_switch_interval

    before = sys.getswitchinterval()
    try:
        monkeypatch.delenv("DASF_GEO_KEEP_SWITCH_INTERVAL", raising=False)
        sys.setswitchinterval(0.005)
        shorten_switch_interval()
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
        sys.setswitchinterval(0.002)  # a user's own choice stays
        shorten_switch_interval()
        assert sys.getswitchinterval() == pytest.approx(0.002)
        monkeypatch.setenv("DASF_GEO_KEEP_SWITCH_INTERVAL", "1")
        sys.setswitchinterval(0.005)
        shorten_switch_interval()
        assert sys.getswitchinterval() == pytest.approx(0.005)
    finally:
        sys.setswitchinterval(before)


def test_large_binary_replies_are_opened_lazily_and_their_file_removed(monkeypatch):
    import gc
    import io

    import numpy as np
    import xarray as xr

    from dasf_geo.transport import client as client_module
    from dasf_geo.transport.client import BinaryValue

    ds = xr.Dataset({"t": ("x", np.arange(1000.0))}, attrs={"crs": "EPSG:4326"})
    raw = io.BytesIO()
    ds.to_netcdf(raw, engine="scipy")
    data = raw.getvalue()
    media = "application/x-netcdf; xarray=Dataset"

    small = BinaryValue(media, data).decode()  # bytes: loaded
    xr.testing.assert_identical(small, ds)

    monkeypatch.setattr(client_module, "LAZY_THRESHOLD", 100)
    buffer = FileBuffer(len(data))
    buffer[:] = data
    path = buffer.path
    lazy = BinaryValue(media, buffer).decode()
    assert not lazy["t"].variable._in_memory
    xr.testing.assert_identical(lazy.load(), ds)
    del lazy, buffer
    gc.collect()
    assert not os.path.exists(path)  # the file went with the object
