"""Bodies that never sit whole in the gateway's memory.

A reply reassembled by the caller is a ``bytes``-like object (small) or a
:class:`~dasf_geo.transport._common.FileBuffer` (above the spool
threshold, on disk); :func:`payload_chunks` reads either one chunk at a
time and closes the file at the end, so the response streams from disk.
:func:`base64_json_chunks` turns the JSON string of a base64 NetCDF
(what demessaging backends send for a Dataset) into raw bytes, one chunk
at a time.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pybase64

from dasf_geo.transport._common import FileBuffer

__all__ = ["CHUNK", "base64_json_chunks", "close_payload", "payload_chunks"]

#: Bytes read (and written to the socket) at a time.
CHUNK = 1 << 20


def close_payload(payload: Any) -> None:
    """Remove the temporary file of a spooled payload (idempotent)."""
    if isinstance(payload, FileBuffer):
        with contextlib.suppress(Exception):
            payload.close()


async def payload_chunks(payload: Any, chunk: int = CHUNK) -> AsyncIterator[bytes]:
    """The bytes of a reply payload, ``chunk`` at a time; closes it at the end."""
    try:
        if isinstance(payload, FileBuffer):
            size = len(payload)
            offset = 0
            loop = asyncio.get_running_loop()
            while offset < size:
                end = min(size, offset + chunk)
                if end - offset > 64 * 1024:
                    data = await loop.run_in_executor(
                        None, payload.__getitem__, slice(offset, end)
                    )
                else:
                    data = payload[offset:end]
                offset = end
                yield data
        else:
            view = memoryview(payload)
            for start in range(0, len(view), chunk):
                yield bytes(view[start : start + chunk])
    finally:
        close_payload(payload)


def _slice(payload: Any, start: int, end: int) -> bytes:
    if isinstance(payload, FileBuffer):
        return payload[start:end]
    return bytes(memoryview(payload)[start:end])


def json_string_bounds(payload: Any) -> tuple[int, int]:
    """Where the text of a JSON string payload (``"…"``) starts and ends.

    Raises:
        ValueError: the payload is not a JSON string.
    """
    size = len(payload)
    head_raw = _slice(payload, 0, min(size, 64))
    head = head_raw.lstrip()
    lead = len(head_raw) - len(head)
    tail_raw = _slice(payload, max(0, size - 64), size)
    tail = tail_raw.rstrip()
    trail = len(tail_raw) - len(tail)
    if size - lead - trail < 2 or not head.startswith(b'"') or not tail.endswith(b'"'):
        raise ValueError("the result is not a JSON string")
    return lead + 1, size - trail - 1


async def base64_json_chunks(payload: Any, chunk: int = CHUNK) -> AsyncIterator[bytes]:
    """Decode a JSON string of base64 text into bytes, chunk by chunk.

    The payload is closed at the end.

    Raises:
        ValueError: the payload is not a JSON string of base64 text (raised
            before anything is yielded when the framing is wrong).
    """
    try:
        start, end = json_string_bounds(payload)
        step = chunk // 4 * 4
        offset = start
        while offset < end:
            stop = min(end, offset + step)
            text = _slice(payload, offset, stop)
            offset = stop
            try:
                yield pybase64.b64decode(text, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError(f"the result is not base64 text: {exc}") from None
    finally:
        close_payload(payload)
