"""Bodies that never sit whole in the gateway's memory.

A reply reassembled by the caller is a ``bytes``-like object (small) or a
:class:`~dasf_geo.transport.buffers.FileBuffer` (above the spool
threshold, on disk); :func:`payload_chunks` reads either one chunk at a
time and closes the file at the end, so the response streams from disk.
:func:`base64_json_chunks` turns the JSON string of a base64 NetCDF
(what demessaging backends send for a Dataset) into raw bytes, one chunk
at a time. :class:`StreamedReplyResponse` passes a reply on while its
fragments still arrive (the raw NetCDF path) and aborts the response if
the reply turns out broken after its first bytes went out.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pybase64
from starlette.responses import Response

from dasf_geo.transport._common import FileBuffer

__all__ = [
    "CHUNK",
    "StreamedReplyResponse",
    "base64_json_chunks",
    "close_payload",
    "payload_chunks",
]

logger = logging.getLogger(__name__)

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


class StreamedReplyResponse(Response):
    """An HTTP response whose body is a DASF reply, passed on as it arrives.

    The 200 status and the headers go out once the reply's first fragment
    said it is a successful data reply; each fragment's bytes then go out
    as soon as they are checked. The ``Content-Length`` is the size the
    backend announced (``dasfGeoSize``; chunked transfer encoding when it
    announced none), and the last bytes only go out once the whole reply
    is checked. When the reply fails after the headers — a fragment that
    fails its CRC-32, fragments that disagree, more or fewer bytes than
    announced, a backend that stops sending — the response is aborted: the
    ASGI call returns without its last body message, so the server closes
    the connection, and the HTTP client sees a body shorter than its
    Content-Length (or without its terminating chunk): a failed transfer
    (``curl`` exit code 18, httpx ``RemoteProtocolError``), never a
    complete-looking corrupt file. A client that disconnects stops the
    stream (and removes its temporary file).

    Args:
        stream: the reply (:class:`~dasf_geo.transport.streamed.ReplyStream`).
        media_type: the response's Content-Type.
        headers: further response headers.
        label: how to name the call in the log.
    """

    def __init__(
        self, stream: Any, media_type: str, headers: dict[str, str], label: str
    ) -> None:
        super().__init__(None, 200, media_type=media_type)
        self.stream = stream
        self.label = label
        if stream.size is not None:
            # the announced size: a client sees an aborted body as shorter
            # than announced, and can show progress
            headers = {**headers, "Content-Length": str(stream.size)}
        # else chunked transfer encoding: an abort lacks the last chunk
        self.raw_headers = [
            (b"content-type", media_type.encode("latin-1")),
            *(
                (k.lower().encode("latin-1"), v.encode("latin-1"))
                for k, v in headers.items()
            ),
        ]
        self.disconnected = False
        self.sent = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Send the reply's bytes; abort the response if the reply fails."""
        stream = self.stream

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    self.disconnected = True
                    stream.close()
                    return

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            async for chunk in stream:
                if self.disconnected:
                    return
                await send(
                    {"type": "http.response.body", "body": chunk, "more_body": True}
                )
                self.sent += len(chunk)
        except Exception as exc:
            if not self.disconnected:
                # returning without the last body message makes the server
                # close the connection: the client sees a truncated body
                logger.warning(
                    "aborted the response of %s after %d bytes: %s",
                    self.label,
                    self.sent,
                    exc,
                )
            return
        finally:
            watcher.cancel()
            stream.close()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
