"""Pieces shared by the caller and the backend side of the transport."""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Protocol
from urllib.parse import urlencode

from dasf_geo.protocol.constants import DEFAULT_MAX_PAYLOAD_SIZE, EXT_TRANSFER
from dasf_geo.protocol.fragments import Fragment, split_payload, split_stream
from dasf_geo.transport.connection import AsyncProducer

__all__ = [
    "DEFAULT_SPOOL_THRESHOLD",
    "FileBuffer",
    "MessagingSettings",
    "OutgoingFile",
    "add_query",
    "buffer_factory",
    "payload_bytes",
    "send_payload",
    "setting",
    "shorten_switch_interval",
]

#: Payloads larger than this many bytes are reassembled in a temporary file
#: instead of memory (see :class:`FileBuffer`).
DEFAULT_SPOOL_THRESHOLD = 32 * 1024 * 1024

logger = logging.getLogger(__name__)


class MessagingSettings(Protocol):
    """What the transport reads from a messaging config.

    :class:`dasf_geo.config.PulsarConfig` and
    :class:`dasf_geo.config.WebsocketURLConfig` provide it.
    """

    topic: str
    header: dict[str, str]

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


def _fragments(
    data: bytes | bytearray | memoryview | OutgoingFile, max_payload_size: int
) -> Any:
    if isinstance(data, OutgoingFile):
        data.file.seek(0)
        return split_stream(data.file.read, data.size, max_payload_size)
    return split_payload(data, max_payload_size)


async def send_payload(
    producer: AsyncProducer,
    data: bytes | bytearray | memoryview | OutgoingFile,
    properties: Mapping[str, Any],
    max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE,
) -> int:
    """Send ``data`` as one message, or as fragments if it is too large.

    Fragments are pipelined within the producer's window (so the sender
    never runs ahead of the broker by more than the window) and share a
    message key, so a broker that dispatches by key keeps them on one
    consumer. An :class:`OutgoingFile` is read one fragment at a time and
    its properties are added to every message.

    Returns:
        The number of messages sent.

    Raises:
        SendError, TransportError: as :meth:`AsyncProducer.send`.
    """
    if isinstance(data, OutgoingFile) and data.properties:
        properties = {**properties, **data.properties}
    futures = []
    fragment: Fragment
    try:
        for fragment in _fragments(data, max_payload_size):
            props = dict(properties)
            props.update(fragment.properties)
            key = fragment.properties.get(EXT_TRANSFER)
            futures.append(await producer.submit(fragment.payload, props, key=key))
        for fut in futures:
            await producer.wait_ack(fut)
    finally:
        for fut in futures:
            if fut.done() and not fut.cancelled():
                fut.exception()  # retrieved: errors are raised above
    return len(futures)


class FileBuffer:
    """A fixed-size byte buffer kept in an anonymous temporary file.

    It supports what :class:`~dasf_geo.protocol.fragments.Reassembler` needs
    (``len()``, slice assignment and slice reading) with ``os.pwrite`` and
    ``os.pread``, so a large payload is reassembled on disk (the page cache)
    rather than in the process's memory. The file disappears when the buffer
    is closed or garbage-collected.

    Args:
        size: the buffer's size in bytes.
        dir: where to create the temporary file (default: the system's).
    """

    def __init__(self, size: int, dir: str | None = None) -> None:
        # a named file, so that readers that need a path (netCDF4) can open
        # it; it is removed on close()
        self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115  # see close()
            prefix="dasf-geo-", suffix=".part", dir=dir
        )
        self._file.truncate(size)
        self._size = size

    def __len__(self) -> int:
        return self._size

    def _range(self, key: slice) -> tuple[int, int]:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("FileBuffer only supports contiguous slices")
        start, stop, _ = key.indices(self._size)
        return start, max(start, stop)

    def __setitem__(self, key: slice, data: bytes | bytearray | memoryview) -> None:
        start, stop = self._range(key)
        view = memoryview(data).cast("B")
        if len(view) != stop - start:
            raise ValueError("FileBuffer slices cannot change the buffer's size")
        fd = self._file.fileno()
        while view:
            written = os.pwrite(fd, view, start)
            view = view[written:]
            start += written

    def __getitem__(self, key: slice) -> bytes:
        start, stop = self._range(key)
        return os.pread(self._file.fileno(), stop - start, start)

    def __bytes__(self) -> bytes:
        return self[:]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (bytes, bytearray, memoryview)):
            return len(other) == self._size and bytes(self) == bytes(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like bytearray

    @property
    def file(self) -> Any:
        """The underlying binary file (seek before reading)."""
        return self._file

    @property
    def path(self) -> str:
        """The temporary file's path (valid until :meth:`close`)."""
        return str(self._file.name)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return bool(self._file.closed)

    def close(self) -> None:
        """Close and remove the temporary file (idempotent)."""
        self._file.close()

    def __repr__(self) -> str:
        return f"<FileBuffer {self._size} bytes>"


def buffer_factory(threshold: int = DEFAULT_SPOOL_THRESHOLD) -> Callable[[int], Any]:
    """A Reassembler buffer factory: memory up to ``threshold`` bytes, else a file."""

    def make(size: int) -> Any:
        return bytearray(size) if size <= threshold else FileBuffer(size)

    return make


def payload_bytes(payload: Any) -> bytes | bytearray:
    """The bytes of a reassembled payload (reads a :class:`FileBuffer` whole)."""
    if isinstance(payload, (bytes, bytearray)):
        return payload
    return bytes(payload)
