"""Uploads sent into request fragments while their bytes still arrive.

:class:`StreamedUpload` is a multipart request (see
:mod:`dasf_geo.protocol.parts`) whose one binary part comes from an async
iterator of known total size (an HTTP body with a ``Content-Length``):
every fragment carries the total size and count, so the size must be known
before the first is sent. :func:`send_streamed` cuts the payload into the
same fragments :func:`~dasf_geo.protocol.fragments.split_stream` makes,
each sent as soon as its bytes are there, pipelined within the producer's
window. An upload that breaks off half-way (the source fails or ends
early, the caller is cancelled) is ended with an abort marker
(:func:`~dasf_geo.protocol.fragments.abort_marker`), so that the backend
frees what it holds of it at once rather than after its fragment timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from dasf_geo.exceptions import FragmentError
from dasf_geo.protocol.constants import (
    DEFAULT_MAX_PAYLOAD_SIZE,
    EXT_PARTS,
    EXT_TRANSFER,
    JSON_MEDIA_TYPE,
)
from dasf_geo.protocol.fragments import (
    fits_one_message,
    piece_chars,
    split_stream,
)
from dasf_geo.protocol.parts import parts_property
from dasf_geo.transport._common import send_abort
from dasf_geo.transport.connection import AsyncProducer

__all__ = ["StreamedUpload", "send_streamed"]

logger = logging.getLogger(__name__)


@dataclass
class StreamedUpload:
    """A multipart request whose one binary part is still arriving.

    Attributes:
        head: the UTF-8 JSON of the request, the part's placeholder in place.
        source: the part's bytes, chunk by chunk (e.g. an HTTP body).
        part_size: the part's exact size in bytes.
        media_type: the part's media type (``application/x-netcdf;
            xarray=Dataset``).
    """

    head: bytes
    source: AsyncIterator[bytes]
    part_size: int
    media_type: str
    properties: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.properties = {
            EXT_PARTS: parts_property(
                [(len(self.head), JSON_MEDIA_TYPE), (self.part_size, self.media_type)]
            )
        }

    @property
    def size(self) -> int:
        """The payload's size: the JSON head and the part."""
        return len(self.head) + self.part_size


async def send_streamed(
    producer: AsyncProducer,
    upload: StreamedUpload,
    properties: Mapping[str, Any],
    max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE,
) -> int:
    """Send ``upload`` fragment by fragment, each as soon as its bytes came.

    The fragments are those of
    :func:`~dasf_geo.protocol.fragments.split_stream` over the whole
    payload, pipelined within the producer's window like
    :func:`~dasf_geo.transport._common.send_payload`'s.

    Returns:
        The number of messages sent.

    When the upload stops before its last fragment went out — the source
    ended early or raised (an HTTP client that hung up), or the caller was
    cancelled — an abort marker follows the fragments sent so far, so the
    backend drops them (and their temporary file) at once; the error then
    propagates.

    Raises:
        FragmentError: the source ended before (or went on after) the
            announced size.
        SendError, TransportError: as :meth:`AsyncProducer.send`.
    """
    size = upload.size
    props_base = {**properties, **upload.properties}
    buffer = bytearray(upload.head)
    position = 0
    source = upload.source.__aiter__()
    arrived = 0

    async def fill(n: int) -> None:
        nonlocal arrived
        while len(buffer) - position < n:
            try:
                chunk = await source.__anext__()
            except StopAsyncIteration:
                raise FragmentError(
                    f"the upload ended after {arrived} of {upload.part_size} bytes"
                ) from None
            arrived += len(chunk)
            buffer.extend(chunk)

    def read(n: int) -> bytes:
        nonlocal position
        data = bytes(buffer[position : position + n])
        position += len(data)
        if position > 4 * (1 << 20):  # drop what was sent
            del buffer[:position]
            position = 0
        return data

    if fits_one_message(size, max_payload_size):
        wants = [size]
    else:
        piece = piece_chars(max_payload_size) // 4 * 3
        wants = [min(piece, size - start) for start in range(0, size, piece)]
    fragments = split_stream(read, size, max_payload_size)
    futures: list[asyncio.Future[Any]] = []
    first: dict[str, Any] | None = None
    try:
        try:
            for want in wants:
                await fill(want)
                fragment = next(fragments)
                props = dict(props_base)
                props.update(fragment.properties)
                key = fragment.properties.get(EXT_TRANSFER)
                futures.append(await producer.submit(fragment.payload, props, key=key))
                if first is None:
                    first = fragment.properties
        except BaseException as exc:
            if first is not None and len(futures) < len(wants):
                send_abort(producer, props_base, first, exc)
            raise
        async for extra in source:
            if extra:
                raise FragmentError(
                    f"the upload has more bytes than the {size} announced"
                )
        for fut in futures:
            await producer.wait_ack(fut)
    finally:
        for fut in futures:
            if fut.done() and not fut.cancelled():
                fut.exception()  # retrieved: errors are raised above
    return len(futures)
