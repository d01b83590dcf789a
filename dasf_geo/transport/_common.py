"""Pieces shared by the caller and the backend side of the transport."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Protocol
from urllib.parse import urlencode

from dasf_geo.exceptions import TransportError
from dasf_geo.protocol.constants import (
    DEFAULT_MAX_PAYLOAD_SIZE,
    EXT_PARTS,
    EXT_TRANSFER,
    JSON_MEDIA_TYPE,
    PropertyKeys,
)
from dasf_geo.protocol.fragments import (
    Fragment,
    abort_marker,
    split_payload,
    split_stream,
)
from dasf_geo.protocol.limits import DEFAULT_SPOOL_THRESHOLD
from dasf_geo.protocol.parts import parts_property
from dasf_geo.transport.connection import AsyncProducer

__all__ = [
    "DEFAULT_SPOOL_THRESHOLD",
    "FileBuffer",
    "GrowingBuffer",
    "MessagingSettings",
    "OutgoingFile",
    "OutgoingParts",
    "ReceivedPart",
    "add_query",
    "buffer_factory",
    "payload_bytes",
    "received_parts",
    "send_abort",
    "send_payload",
    "setting",
    "shorten_switch_interval",
]


logger = logging.getLogger(__name__)

_NUM_FRAGMENTS = PropertyKeys.NUM_FRAGMENTS.value


class MessagingSettings(Protocol):
    """What the transport reads from a messaging config.

    :class:`dasf_geo.config.PulsarConfig` and
    :class:`dasf_geo.config.WebsocketURLConfig` provide it (and
    :class:`dasf_geo.testing.config.FakeMessagingConfig` for tests). The
    transport reads the options through :func:`setting`, whose fallbacks are
    the configs' own defaults (:mod:`dasf_geo.protocol.limits`), so that an
    option left ``None`` means its default. The options are read-only here.
    """

    topic: str
    header: dict[str, str]

    @property
    def max_payload_size(self) -> int:
        """Largest base64 payload per message (the fragment size)."""
        ...

    @property
    def max_request_size(self) -> int:
        """Largest reassembled request or reply, in bytes."""
        ...

    @property
    def fragment_timeout(self) -> float:
        """Seconds to wait for the next fragment."""
        ...

    @property
    def spool_threshold(self) -> int:
        """Payloads larger than this many bytes are reassembled on disk."""
        ...

    @property
    def producer_keep_alive(self) -> float:
        """Seconds an idle producer connection stays open."""
        ...

    @property
    def producer_connection_timeout(self) -> float:
        """Seconds granted to a producer to connect."""
        ...

    def get_topic_url(self, topic: str, subscription: str | None = None) -> str:
        """Producer URL (no subscription) or consumer URL of ``topic``."""
        ...


#: The GIL switch interval dasf_geo uses where an event loop thread hands
#: messages to other threads (see :func:`shorten_switch_interval`).
SWITCH_INTERVAL = 0.001


def shorten_switch_interval() -> None:
    """Lower Python's GIL switch interval from its default 5 ms to 1 ms.

    Backends run requests in worker threads and blocking clients wait on an
    event loop thread: each call hands a result from one thread to another.
    Measured on the reference 2-core machine, the thread that gets the
    result then often waits for the GIL for most of the default 5 ms
    interval: benchmarks/bench_rpc.py measured a median small-call latency
    of 8.3 ms with the default and 3.7 ms with 1 ms. The interval is only
    lowered if it is still Python's default, and not at all with
    ``DASF_GEO_KEEP_SWITCH_INTERVAL=1``.
    """
    if os.environ.get("DASF_GEO_KEEP_SWITCH_INTERVAL", "") not in ("", "0"):
        return
    if abs(sys.getswitchinterval() - 0.005) < 1e-9:
        sys.setswitchinterval(SWITCH_INTERVAL)


def setting(config: Any, name: str, default: Any) -> Any:
    """``config.name`` if set (not None), else ``default``."""
    value = getattr(config, name, None)
    return default if value is None else value


def header_of(config: Any) -> dict[str, str]:
    """The handshake headers of ``config`` as a dict of strings."""
    header = getattr(config, "header", None) or {}
    if isinstance(header, str):
        header = json.loads(header)
    return {str(k): str(v) for k, v in dict(header).items()}


def add_query(url: str, params: Mapping[str, Any]) -> str:
    """Append query parameters to ``url`` (keeping any it has)."""
    if not params:
        return url
    sep = "&" if "?" in url else "?"
    return url + sep + urlencode({k: str(v) for k, v in params.items()})


@dataclass
class OutgoingFile:
    """A payload in a (temporary) file, sent fragment by fragment.

    Only one fragment of it is in memory at a time, so a large reply
    written to a file never becomes one big Python object.

    Attributes:
        file: a binary file positioned anywhere; it is read from the start.
        size: the number of payload bytes in it.
        properties: extra message properties (e.g. ``dasfGeoEncoding``).
    """

    file: IO[bytes]
    size: int
    properties: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        """Close the file (a temporary file disappears)."""
        self.file.close()


class _PartFile(Protocol):
    file: IO[bytes]
    size: int
    media_type: str


class OutgoingParts:
    """A multipart request payload: its JSON text, then each part's file.

    The payload is read one fragment at a time across the JSON bytes and
    the files (see :mod:`dasf_geo.protocol.parts`), so neither the parts'
    bytes nor their base64 text nor the whole payload is ever in memory.
    Its ``dasfGeoParts`` property is in :attr:`properties`. Closing it
    leaves the files to their owner (e.g. a
    :class:`~dasf_geo.data.PartWriter`).

    Args:
        head: the UTF-8 JSON of the request, placeholders in place.
        parts: the binary parts (``file``, ``size``, ``media_type``), in
            the order of their placeholders' numbers.
    """

    def __init__(self, head: bytes, parts: Sequence[_PartFile]) -> None:
        self.head = head
        self.parts = list(parts)
        self.size = len(head) + sum(part.size for part in self.parts)
        self.properties: dict[str, Any] = {
            EXT_PARTS: parts_property(
                [(len(head), JSON_MEDIA_TYPE)]
                + [(part.size, part.media_type) for part in self.parts]
            )
        }

    def reader(self) -> Callable[[int], bytes]:
        """A ``read(n)`` over the whole payload, from its start."""
        segments: list[Any] = [memoryview(self.head)]
        for part in self.parts:
            part.file.seek(0)
            segments.append(part)
        index = 0
        offset = 0  # within the JSON text
        left = [part.size for part in self.parts]

        def read(n: int) -> bytes:
            nonlocal index, offset
            chunks = []
            while n > 0 and index < len(segments):
                segment = segments[index]
                if index == 0:
                    chunk = bytes(segment[offset : offset + n])
                    offset += len(chunk)
                    done = offset >= len(segment)
                else:
                    want = min(n, left[index - 1])
                    chunk = segment.file.read(want) if want else b""
                    left[index - 1] -= len(chunk)
                    done = left[index - 1] <= 0 or len(chunk) < want
                chunks.append(chunk)
                n -= len(chunk)
                if done:
                    index += 1
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)

        return read


def _fragments(
    data: bytes | bytearray | memoryview | OutgoingFile | OutgoingParts,
    max_payload_size: int,
) -> Any:
    if isinstance(data, OutgoingFile):
        data.file.seek(0)
        return split_stream(data.file.read, data.size, max_payload_size)
    if isinstance(data, OutgoingParts):
        return split_stream(data.reader(), data.size, max_payload_size)
    return split_payload(data, max_payload_size)


async def send_payload(
    producer: AsyncProducer,
    data: bytes | bytearray | memoryview | OutgoingFile | OutgoingParts,
    properties: Mapping[str, Any],
    max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE,
    on_acked: Callable[[int, int], None] | None = None,
) -> int:
    """Send ``data`` as one message, or as fragments if it is too large.

    Fragments are pipelined within the producer's window (so the sender
    never runs ahead of the broker by more than the window) and share a
    message key, so a broker that dispatches by key keeps them on one
    consumer. An :class:`OutgoingFile` or :class:`OutgoingParts` is read
    one fragment at a time and its properties are added to every message.

    ``on_acked(done, total)`` is called each time the broker acknowledged a
    fragment of a fragmented payload, with the payload bytes (decoded)
    acknowledged so far and in all.

    Returns:
        The number of messages sent.

    Raises:
        SendError, TransportError: as :meth:`AsyncProducer.send`.
    """
    if isinstance(data, (OutgoingFile, OutgoingParts)) and data.properties:
        properties = {**properties, **data.properties}
    futures = []
    fragment: Fragment
    total = data.size if isinstance(data, (OutgoingFile, OutgoingParts)) else len(data)
    acked = [0]

    def count(size: int) -> Callable[[Any], None]:
        def done(fut: Any) -> None:
            if on_acked is not None and not fut.cancelled() and not fut.exception():
                acked[0] = min(total, acked[0] + size)
                with contextlib.suppress(Exception):  # a broken callback
                    on_acked(acked[0], total)

        return done

    first: Mapping[str, Any] | None = None
    try:
        try:
            for fragment in _fragments(data, max_payload_size):
                props = dict(properties)
                props.update(fragment.properties)
                key = fragment.properties.get(EXT_TRANSFER)
                fut = await producer.submit(fragment.payload, props, key=key)
                if _NUM_FRAGMENTS in fragment.properties:
                    if first is None:
                        first = fragment.properties
                    if on_acked is not None:
                        fut.add_done_callback(count(len(fragment.payload) // 4 * 3))
                futures.append(fut)
        except BaseException as exc:
            # given up half-way (cancelled, a fragment refused, a file that
            # could not be read): the receiver frees what it holds at once
            if first is not None and len(futures) < first[_NUM_FRAGMENTS]:
                send_abort(producer, properties, first, exc)
            raise
        for fut in futures:
            await producer.wait_ack(fut)
    finally:
        for fut in futures:
            if fut.done() and not fut.cancelled():
                fut.exception()  # retrieved: errors are raised above
    return len(futures)


def send_abort(
    producer: AsyncProducer,
    props_base: Mapping[str, Any],
    first: Mapping[str, Any],
    error: BaseException,
) -> None:
    """Tell the receiver that the fragmented payload begun with ``first`` stops here.

    Sent at once (no await, so it also goes out while the caller is being
    cancelled), after the fragments already sent on the same connection;
    its ack is not waited for. A connection that is gone sends nothing: the
    backend then gives the fragments up after its fragment timeout.
    """
    if isinstance(error, asyncio.CancelledError):
        reason = "the sending was cancelled"
    else:
        reason = f"the sending broke off: {type(error).__name__}: {error}"
    marker = abort_marker(first, reason)
    props = dict(props_base)
    props.update(marker.properties)
    try:
        ack = producer.submit_now(
            marker.payload, props, key=marker.properties.get(EXT_TRANSFER)
        )
    except TransportError as exc:
        logger.debug("could not end an abandoned upload: %s", exc)
        return

    def settled(fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled():
            with contextlib.suppress(Exception):
                fut.result()  # retrieved: the marker is best effort

    ack.add_done_callback(settled)


# where received payloads land: their own module, importable from here
from dasf_geo.transport.buffers import (  # noqa: E402
    FileBuffer,
    GrowingBuffer,
    ReceivedPart,
    buffer_factory,
    payload_bytes,
    received_parts,
)
