"""An upload given up half-way: the backend frees its fragments at once.

A sender that stops a fragmented request before its last fragment (its
source broke off, its caller was cancelled) ends it with the
``dasfGeoAbort`` marker (docs/protocol.md, "Abandoned uploads"). The
sans-I/O part is fed messages; the live part cancels and breaks real
streamed uploads against a real Listener, whose partial request (and its
temporary file) must be gone within a couple of seconds, not after the
60 s fragment timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import xarray as xr

from dasf_geo import BackendModule
from dasf_geo.exceptions import FragmentError
from dasf_geo.protocol.constants import EXT_ABORT, EXT_SIZE, EXT_TRANSFER
from dasf_geo.protocol.fragments import Reassembler, abort_marker, split_payload
from dasf_geo.protocol.messages import ConsumerMessage
from dasf_geo.protocol.parts import placeholder
from dasf_geo.transport._common import buffer_factory
from dasf_geo.transport.backend import ModuleHandler
from dasf_geo.transport.caller import AsyncClient
from dasf_geo.transport.dispatch import Acknowledge, Deliver, RequestIntake
from dasf_geo.transport.streamed_upload import StreamedUpload
from tests.conftest import timeout
from tests.transport.conftest import running_listener

pytestmark = pytest.mark.timeout(120)

DATA = bytes(range(256)) * 400  # 102,400 bytes
ENVELOPE = {"response_topic": "caller", "requestContext": "5", "messageType": "request"}


def fragments(data: bytes = DATA, size: int = 8_000) -> list[Any]:
    return list(split_payload(data, size))


# --- sans-I/O ---------------------------------------------------------------


def test_the_marker_repeats_fragment_0_numbering_with_an_empty_payload() -> None:
    frags = fragments()
    marker = abort_marker(frags[0].properties, "the client hung up")
    assert marker.payload == b""
    assert marker.properties == {
        "fragment": 0,
        "num_fragments": len(frags),
        EXT_SIZE: len(DATA),
        EXT_TRANSFER: frags[0].properties[EXT_TRANSFER],
        EXT_ABORT: "the client hung up",
    }
    assert (
        len(abort_marker(frags[0].properties, "x" * 1000).properties[EXT_ABORT]) == 200
    )
    with pytest.raises(FragmentError, match="fragment 0 of a fragmented payload"):
        abort_marker(frags[1].properties, "no")


def test_the_reassembler_drops_the_transfer_and_later_duplicates() -> None:
    closed: list[int] = []

    class Buffer(bytearray):
        def close(self) -> None:
            closed.append(len(self))

    r = Reassembler(buffer_factory=lambda n: Buffer(n))
    frags = fragments()
    for f in frags[:5]:
        assert r.add("k", f.properties, f.payload) is None
    assert r.pending == 1 and r.pending_bytes() > 0
    marker = abort_marker(frags[0].properties, "gone")
    assert r.add("k", marker.properties, marker.payload) is None
    assert r.pending == 0 and r.pending_bytes() == 0
    assert closed == [len(DATA)]
    # a straggler of the abandoned transfer does not begin it again
    assert r.add("k", frags[6].properties, frags[6].payload) is None
    assert r.pending == 0
    # another transfer of the same key is not touched by an unrelated marker
    other = fragments(DATA[::-1])
    r.add("k", other[0].properties, other[0].payload)
    assert r.add("k", marker.properties, marker.payload) is None
    assert r.pending == 1


def test_a_receiver_that_does_not_know_the_marker_sees_a_duplicate() -> None:
    # what a dasf_geo backend before the marker does with it: fragment 0
    # again, dropped as a duplicate; the transfer waits for its timeout
    r = Reassembler()
    frags = fragments()
    for f in frags[:3]:
        r.add("k", f.properties, f.payload)
    held = r.pending_bytes()
    marker = abort_marker(frags[0].properties, "gone")
    unknown = {k: v for k, v in marker.properties.items() if k != EXT_ABORT}
    assert r.add("k", unknown, marker.payload) is None
    assert r.pending == 1 and r.pending_bytes() == held
    # and the rest of the payload would still complete it
    for f in frags[3:]:
        result = r.add("k", f.properties, f.payload)
    assert bytes(result) == DATA  # type: ignore[arg-type]


def test_the_intake_forgets_the_request_and_its_temporary_file() -> None:
    intake = RequestIntake(
        "backend",
        Reassembler(buffer_factory=buffer_factory(1000)),
        spool_threshold=1000,
    )
    frags = fragments()
    for i, f in enumerate(frags[:4]):
        msg = ConsumerMessage(f"m{i}", f.payload, {**ENVELOPE, **f.properties})
        assert isinstance(intake.receive(msg, 0.0), Acknowledge)
    (transfer,) = intake.reassembler._transfers.values()
    path = transfer.buffer.file.name
    assert os.path.exists(path)
    marker = abort_marker(frags[0].properties, "gone")
    msg = ConsumerMessage("abort", b"", {**ENVELOPE, **marker.properties})
    assert intake.receive(msg, 0.0) == Acknowledge(["abort"])
    assert intake.incoming == {} and intake.reassembler.pending == 0
    assert intake.incomplete_bytes == 0
    assert not os.path.exists(path)
    # not remembered as failed: the same context may be sent again, whole
    again = [
        ConsumerMessage(f"n{i}", f.payload, {**ENVELOPE, **f.properties})
        for i, f in enumerate(fragments())
    ]
    events = [intake.receive(m, 1.0) for m in again]
    assert isinstance(events[-1], Deliver) and bytes(events[-1].data) == DATA
    events[-1].data.close()  # type: ignore[union-attr]


def test_a_marker_for_a_transfer_not_held_is_only_acknowledged() -> None:
    intake = RequestIntake("backend", Reassembler())
    marker = abort_marker(fragments()[0].properties, "gone")
    msg = ConsumerMessage("abort", b"", {**ENVELOPE, **marker.properties})
    assert intake.receive(msg, 0.0) == Acknowledge(["abort"])
    assert intake.incoming == {} and intake.failed == {}


# --- live: a real Listener, a real streamed upload ----------------------------


async def eventually(check: Any, what: str, seconds: float) -> float:
    """Poll ``check`` until true; return the seconds it took."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > seconds:
            raise AssertionError(f"not within {seconds:g} s: {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def partial_files(listener: Any) -> list[str]:
    return [
        t.buffer.file.name
        for t in listener._reassembler._transfers.values()
        if t.buffer is not None and hasattr(t.buffer, "file")
    ]


def held_nothing(listener: Any, paths: list[str]) -> bool:
    return (
        not listener._incoming
        and listener._reassembler.pending == 0
        and listener.incomplete_bytes == 0
        and not any(os.path.exists(p) for p in paths)
    )


NC = "application/x-netcdf; xarray=Dataset"


def total(ds: xr.Dataset) -> float:
    """The sum of variable ``t``."""
    return float(ds["t"].sum())


def netcdf(n: int = 50_000) -> tuple[bytes, float]:
    ds = xr.Dataset({"t": ("x", np.arange(n, dtype="float64"))})
    return bytes(ds.to_netcdf()), float(ds["t"].sum())


def upload(size: int, source: AsyncIterator[bytes]) -> StreamedUpload:
    head = json.dumps({"func_name": "total", "ds": placeholder(1)}).encode()
    return StreamedUpload(head, source, size, NC)


async def half_then_wait(data: bytes, gate: asyncio.Event) -> AsyncIterator[bytes]:
    yield data[: len(data) // 2]
    await gate.wait()  # never set: the upload stalls half-way
    yield data[len(data) // 2 :]


async def half_then_end(data: bytes, gate: asyncio.Event) -> AsyncIterator[bytes]:
    yield data[: len(data) // 2]
    await gate.wait()  # then ends, half-way


async def whole(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 100_000):
        yield data[start : start + 100_000]


async def uploads_whole(client: AsyncClient, data: bytes, expected: float) -> None:
    """The whole upload of ``data`` succeeds and sums to ``expected``."""
    stream = await client.request_stream(upload(len(data), whole(data)))
    try:
        reply = await stream.reply()
    finally:
        stream.close()
    assert reply.status == "success", bytes(reply.payload)
    assert json.loads(bytes(reply.payload)) == expected


@contextlib.asynccontextmanager
async def backend_and_caller(
    config: Any, broker: Any
) -> AsyncIterator[tuple[Any, AsyncClient]]:
    """A Listener serving ``total`` and a caller, on ``config``'s topic."""
    module = BackendModule.create_model(
        members=[total],
        messaging_config=dict(topic=config.topic, host="127.0.0.1", port=broker.port),
    )
    async with (
        running_listener(ModuleHandler(module), config) as listener,
        AsyncClient(config, timeout=timeout(30)) as client,
    ):
        yield listener, client


@pytest.mark.parametrize("how", ["cancelled", "source-ends-early"])
async def test_an_abandoned_streamed_upload_is_freed_at_once(make_config, broker, how):
    # a fragment timeout far beyond the test: only the marker can free it
    config = make_config(
        topic=f"abort-{how}",
        max_payload_size=20_000,
        spool_threshold=1000,
        fragment_timeout=600.0,
    )
    data, expected = netcdf()
    async with backend_and_caller(config, broker) as (listener, client):
        gate = asyncio.Event()
        source = (
            half_then_wait(data, gate)
            if how == "cancelled"
            else half_then_end(data, gate)
        )
        call = asyncio.create_task(client.request_stream(upload(len(data), source)))
        paths: list[str] = []

        def holding() -> bool:
            paths[:] = partial_files(listener) or paths
            return bool(paths) and listener._reassembler.pending_bytes() > 0

        # the first half reaches the backend, into a temporary file
        await eventually(holding, "the backend holds the first half", 30)
        if how == "cancelled":
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
        else:
            gate.set()
            with pytest.raises(FragmentError, match="ended after"):
                await call
        await eventually(
            lambda: held_nothing(listener, paths), "the partial request freed", 3
        )
        assert listener.answered == 0  # nobody is waiting for an answer
        # the backend goes on serving: the same upload, whole, succeeds
        await uploads_whole(client, data, expected)


async def test_a_large_request_cancelled_while_sent_is_freed_at_once(
    make_config, broker
):
    # the plain fragmented send path (AsyncClient.request), not the streamed
    # upload: cancelled after some fragments, it ends them with the marker
    config = make_config(
        topic="abort-plain", max_payload_size=4_000, fragment_timeout=600.0
    )
    data, expected = netcdf()
    async with backend_and_caller(config, broker) as (listener, client):
        payload = b" " * 2_000_000  # hundreds of fragments; never joined
        call = asyncio.create_task(client.request(payload))
        await eventually(
            lambda: listener._reassembler.pending_bytes() > 0,
            "the backend holds the first fragments",
            30,
        )
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await eventually(
            lambda: held_nothing(listener, []), "the partial request freed", 3
        )
        assert listener.answered == 0
        await uploads_whole(client, data, expected)  # and it goes on serving
