"""Replies handed on while their fragments arrive; uploads sent while they arrive.

:meth:`AsyncClient.request_stream
<dasf_geo.transport.caller.AsyncClient.request_stream>` registers a
:class:`ReplyStream` for one request instead of an asyncio future. The
client's reply consumer hands it every message of that request
(:meth:`ReplyStream.feed`), and the stream decodes each fragment and queues
its bytes in order, so whoever iterates it (the HTTP gateway) writes the
first bytes of a result while the backend still sends the last ones. The
reply is never joined: memory holds the queued bytes only, up to
``memory_limit``; what a slow reader leaves beyond that waits in a
temporary file.

The integrity checks of :class:`~dasf_geo.protocol.fragments.Reassembler`
still hold, but some can only fail late:

- every fragment's ``dasfGeoCrc32`` is checked before its bytes are queued,
  so a corrupt fragment never reaches the reader;
- the announced ``dasfGeoSize`` is checked against ``max_size`` on the
  first fragment, and against the bytes received with every fragment: the
  last fragment's bytes are only queued once the total is right, so a
  reader that got the end of the stream got a whole, checked payload;
  fragments that disagree with the first one fail the stream;
- a stream that fails after its reader took some bytes raises the error
  from the iterator: the reader must then treat what it already passed on
  as broken (the gateway aborts the HTTP response, see docs/http.md).

Fragments normally arrive in order (one broker, one consumer); a fragment
that comes early waits (as base64 text) until the gap before it is filled,
and duplicates (redeliveries) are dropped.

:class:`~dasf_geo.transport.streamed_upload.StreamedUpload` (in its own
module) is the other direction. Both are sent and registered by
:func:`~dasf_geo.transport.streamed_call.open_stream` (its own module too,
importable from here).
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import logging
import os
import tempfile
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import IO, Any

import pybase64

from dasf_geo.exceptions import FragmentError, FragmentTooLarge, RequestTimeout
from dasf_geo.protocol.constants import (
    EXT_CHECKSUM,
    EXT_SIZE,
    EXT_TRANSFER,
    KEY_MESSAGE_TYPE,
    KEY_STATUS,
    MessageType,
    PropertyKeys,
    Status,
)
from dasf_geo.protocol.fragments import (
    crc32_hex,
)
from dasf_geo.protocol.messages import ConsumerMessage, b64decode
from dasf_geo.protocol.options import format_size
from dasf_geo.transport.matching import deliver_progress
from dasf_geo.transport.streamed_upload import StreamedUpload

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "MAX_EARLY_TEXT",
    "ReplyStream",
    "StreamedUpload",
]

logger = logging.getLogger(__name__)

#: Decoded bytes a :class:`ReplyStream` keeps in memory for its reader;
#: more wait in a temporary file.
DEFAULT_MEMORY_LIMIT = 8 * 1024 * 1024
#: Base64 text of fragments that came early, held until the gap is filled.
MAX_EARLY_TEXT = 64 * 1024 * 1024

_FRAGMENT = PropertyKeys.FRAGMENT.value
_NUM_FRAGMENTS = PropertyKeys.NUM_FRAGMENTS.value
_PROGRESS = MessageType.PROGRESS.value
_SUCCESS = Status.SUCCESS.value


def _int_prop(props: Mapping[str, Any], key: str) -> int | None:
    value = props.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        raise FragmentError(f"property {key!r} must be an integer, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise FragmentError(
            f"property {key!r} must be an integer, got {value!r:.40}"
        ) from None


def _check_crc(props: Mapping[str, Any], text: bytes, where: str) -> None:
    expected = props.get(EXT_CHECKSUM)
    if expected is None:
        return
    if not isinstance(expected, str) or crc32_hex(text) != expected.lower():
        raise FragmentError(f"{where} failed its CRC-32 integrity check")


class ReplyStream:
    """The reply to one request, as an async iterator of its decoded bytes.

    Made by :meth:`AsyncClient.request_stream
    <dasf_geo.transport.caller.AsyncClient.request_stream>`, which returns it
    once the first message of the reply came: :attr:`properties` and
    :attr:`status` are then known. Iterate it (``async for chunk in
    stream``) for the payload's bytes in order, or :meth:`join` them; close
    it (:meth:`close`) when done, also after an error.

    Iteration raises :class:`~dasf_geo.exceptions.FragmentError` for a
    corrupt or inconsistent fragment or a total size other than the one
    announced, :class:`~dasf_geo.exceptions.FragmentTooLarge` above
    ``max_size``, :class:`~dasf_geo.exceptions.RequestTimeout` when the rest
    of the reply does not come in time, and what the client fails its calls
    with (:class:`~dasf_geo.exceptions.ReplyLost`, a closed client).

    The client sees it as the request's "future" (``done``,
    ``set_exception``), so its connection bookkeeping fails it like any
    waiting call.

    Args:
        what: how to name the request in errors.
        topic: the backend's topic, for errors.
        max_size: the largest payload accepted, in decoded bytes.
        idle_timeout: seconds without a message after the first one after
            which the stream fails.
        memory_limit: queued bytes kept in memory (more go to a file).
        progress: called with progress information (as ``request``'s).
    """

    def __init__(
        self,
        what: str,
        topic: str,
        *,
        max_size: int,
        idle_timeout: float = 60.0,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.what = what
        self.topic = topic
        self.max_size = max_size
        self.idle_timeout = idle_timeout
        self.memory_limit = memory_limit
        self._progress = progress
        #: the properties of the reply's first message (None until it came)
        self.properties: dict[str, Any] | None = None
        self._head = asyncio.Event()
        self._wake = asyncio.Event()
        self._queue: deque[bytes | tuple[int, int]] = deque()
        self._queued_memory = 0
        self._spill: IO[bytes] | None = None
        self._spill_end = 0
        self._spilled_items = 0
        self._count: int | None = None
        self._total: int | None = None
        self._transfer: Any = None
        self._next = 0
        self._carry = b""
        self._early: dict[int, bytes] = {}
        self._early_text = 0
        self._received = 0
        self._complete = False
        self._error: BaseException | None = None
        self._closed = False
        self._idle: asyncio.TimerHandle | None = None
        self._on_close: list[Callable[[], None]] = []

    # -- what the client's bookkeeping uses --------------------------------

    def done(self) -> bool:
        """True once the whole reply came, or the stream failed."""
        return self._complete or self._error is not None

    def set_exception(self, error: BaseException) -> None:
        """Fail the stream (a reader gets ``error``); ignored once done."""
        if self.done():
            return
        self._error = error
        self._stop_idle()
        self._head.set()
        self._wake.set()

    def set_result(self, reply: Any) -> None:  # pragma: no cover - not used
        """Unused: a stream completes from its messages (see :meth:`feed`)."""

    def cancel(self) -> None:
        """Fail the stream as cancelled."""
        self.set_exception(asyncio.CancelledError())

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, when the stream is closed."""
        self._on_close.append(callback)

    # -- the reply's messages ---------------------------------------------

    @property
    def status(self) -> str:
        """The reply's ``status`` (``success`` or ``error``)."""
        return str((self.properties or {}).get(KEY_STATUS) or _SUCCESS)

    @property
    def message_type(self) -> str:
        """The reply's ``messageType`` (``response``…)."""
        return str((self.properties or {}).get(KEY_MESSAGE_TYPE) or "")

    @property
    def size(self) -> int | None:
        """The payload size the sender announced (``dasfGeoSize``), if any."""
        return self._total

    @property
    def fragmented(self) -> bool:
        """True if the reply comes in more than one message."""
        return self._count is not None and self._count > 1

    def feed(self, msg: ConsumerMessage) -> None:
        """Take one message of this request's reply (on the event loop)."""
        self.receive(msg.properties, msg.payload)

    def receive(self, props: Mapping[str, Any], payload: bytes) -> None:
        """Take one message's properties and payload (on the event loop)."""
        if str(props.get(KEY_MESSAGE_TYPE) or "") == _PROGRESS:
            self._report(payload)
            return
        if self.done():
            return  # a late duplicate
        try:
            self._add(props, payload)
        except FragmentTooLarge as exc:
            self.set_exception(
                FragmentTooLarge(
                    f"the reply to {self.what} from topic {self.topic!r} is above "
                    f"the limit of {format_size(self.max_size)}: "
                    f"{format_size(exc.size or 0)} announced or received",
                    size=exc.size,
                    limit=exc.limit,
                    topic=self.topic,
                )
            )
        except FragmentError as exc:
            self.set_exception(
                FragmentError(
                    f"the reply to {self.what} from topic {self.topic!r} is "
                    f"broken: {exc}"
                )
            )

    def _report(self, payload: bytes) -> None:
        deliver_progress(self._progress, payload)

    def _too_large(self, size: int) -> None:
        if size > self.max_size:
            raise FragmentTooLarge(
                f"the payload has {size} bytes, more than the limit of "
                f"{self.max_size} bytes",
                size=size,
                limit=self.max_size,
            )

    def _add(self, props: Mapping[str, Any], text: bytes) -> None:
        index = _int_prop(props, _FRAGMENT)
        count = _int_prop(props, _NUM_FRAGMENTS)
        total = _int_prop(props, EXT_SIZE)
        if index is None and count is None:
            if self.properties is not None:
                return  # a duplicate of an unfragmented reply
            _check_crc(props, text, "the message")
            self._too_large(total if total is not None else len(text) // 4 * 3)
            data = b64decode(text, "payload")
            if total is not None and len(data) != total:
                raise FragmentError(
                    f"the payload has {len(data)} bytes, but its sender "
                    f"announced {total}"
                )
            self._too_large(len(data))
            self._start(props, 1, len(data))
            self._received = len(data)
            self._push(data)
            self._finish()
            return
        if index is None or count is None:
            raise FragmentError(
                f"a fragment needs both {_FRAGMENT!r} and {_NUM_FRAGMENTS!r} properties"
            )
        where = f"fragment {index} of {count}"
        if count < 1 or not 0 <= index < count:
            raise FragmentError(f"invalid {where}")
        transfer = props.get(EXT_TRANSFER)
        if self.properties is None:
            if total is not None:
                if total < 0:
                    raise FragmentError(f"invalid payload size {total} in {where}")
                self._too_large(total)
            self._transfer = transfer
            self._start(props, count, total)
        elif transfer != self._transfer:
            return  # another copy of the reply (a retried request): not ours
        elif count != self._count or total != self._total:
            raise FragmentError(
                f"{where} disagrees with earlier fragments of the same payload "
                f"(they announced {self._count} fragments and {self._total} bytes)"
            )
        self._touch()
        if index < self._next or index in self._early:
            return  # a duplicate
        _check_crc(props, text, where)
        if index != self._next:
            self._early[index] = text
            self._early_text += len(text)
            if self._early_text > MAX_EARLY_TEXT:
                raise FragmentError(
                    f"{self._early_text} characters of fragments arrived before "
                    f"fragment {self._next}"
                )
            return
        self._take(text, where)
        while self._next in self._early:
            early = self._early.pop(self._next)
            self._early_text -= len(early)
            self._take(early, f"fragment {self._next} of {count}")
        self._transfer_progress()
        if self._next == count:
            self._finish()

    def _start(self, props: Mapping[str, Any], count: int, total: int | None) -> None:
        self.properties = dict(props)
        self._count = count
        self._total = total
        self._head.set()

    def _take(self, text: bytes, where: str) -> None:
        """Decode the next fragment in order and queue its bytes."""
        self._next += 1
        if self._carry or len(text) % 4:
            # a reference peer cut the base64 text at other than multiples
            # of 4 characters: decode what is whole, keep the rest
            text = self._carry + text
            cut = len(text) - len(text) % 4
            text, self._carry = text[:cut], text[cut:]
        try:
            data = pybase64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise FragmentError(f"{where} is not valid base64 text: {exc}") from None
        received = self._received + len(data)
        self._too_large(received)
        # no byte beyond, or short of, the announced size is ever passed on:
        # the last bytes go out only once the whole payload is checked
        if self._total is not None and received > self._total:
            raise FragmentError(
                f"{where} brings the payload to {received} bytes, more than the "
                f"{self._total} its sender announced"
            )
        if self._next == self._count:
            if self._carry:
                raise FragmentError("the joined payload is not valid base64 text")
            if self._total is not None and received != self._total:
                raise FragmentError(
                    f"the joined payload has {received} bytes, but its sender "
                    f"announced {self._total}"
                )
        self._received = received
        if data:
            self._push(data)

    def _push(self, data: bytes) -> None:
        if self._closed:
            return
        if self._queued_memory + len(data) > self.memory_limit and self._queue:
            # a slow reader: keep the bytes in a file, not in memory
            if self._spill is None:
                self._spill = tempfile.TemporaryFile(prefix="dasf-geo-stream-")  # noqa: SIM115
            os.pwrite(self._spill.fileno(), data, self._spill_end)
            self._queue.append((self._spill_end, len(data)))
            self._spill_end += len(data)
            self._spilled_items += 1
        else:
            self._queue.append(data)
            self._queued_memory += len(data)
        self._wake.set()

    def _transfer_progress(self) -> None:
        if self._progress is None:
            return
        with contextlib.suppress(Exception):  # a broken callback must not hurt
            self._progress(
                {
                    "kind": "transfer",
                    "received": self._received,
                    "total": self._total,
                    "done": self._next == self._count,
                }
            )

    def _finish(self) -> None:
        self._complete = True
        self._stop_idle()
        self._wake.set()

    def _touch(self) -> None:
        self._stop_idle()
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(self.idle_timeout, self._idle_expired)

    def _stop_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _idle_expired(self) -> None:
        self.set_exception(
            RequestTimeout(
                f"the reply to {self.what} from topic {self.topic!r} did not arrive "
                f"whole: no fragment for {self.idle_timeout:g} s after "
                f"{self._next} of {self._count}",
                topic=self.topic,
            )
        )

    # -- the reader's side ---------------------------------------------------

    async def wait_head(self) -> None:
        """Wait for the reply's first message.

        Raises:
            Exception: what failed the stream before its first message.
        """
        await self._head.wait()
        if self.properties is None and self._error is not None:
            raise self._error

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.chunks()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The payload's bytes in order, as they arrive.

        Raises:
            Exception: the stream failed (see the class docstring); bytes
                already yielded are then not a whole, checked payload.
        """
        while True:
            if self._error is not None:
                raise self._error
            if self._queue:
                item = self._queue.popleft()
                if isinstance(item, tuple):
                    assert self._spill is not None
                    offset, size = item
                    data = os.pread(self._spill.fileno(), size, offset)
                    self._spilled_items -= 1
                    if not self._spilled_items:
                        self._spill_end = 0  # reuse the file from its start
                else:
                    data = item
                    self._queued_memory -= len(data)
                yield data
                continue
            if self._complete:
                return
            self._wake.clear()
            await self._wake.wait()

    async def join(self, spool_threshold: int | None = None) -> Any:
        """The whole payload: bytes, or a FileBuffer above ``spool_threshold``.

        Closing a returned :class:`~dasf_geo.transport.buffers.FileBuffer`
        is the caller's job.
        """
        from dasf_geo.transport._common import DEFAULT_SPOOL_THRESHOLD, FileBuffer

        threshold = spool_threshold
        if threshold is None:
            threshold = DEFAULT_SPOOL_THRESHOLD
        total = self._total
        if total is not None and total > threshold:
            buffer = FileBuffer(total)
            offset = 0
            try:
                async for chunk in self.chunks():
                    buffer[offset : offset + len(chunk)] = chunk
                    offset += len(chunk)
            except BaseException:
                buffer.close()
                raise
            return buffer
        pieces = [chunk async for chunk in self.chunks()]
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    async def reply(self, spool_threshold: int | None = None) -> Any:
        """The whole reply as a :class:`~dasf_geo.transport.replies.Reply`."""
        from dasf_geo.transport.replies import Reply

        payload = await self.join(spool_threshold)
        return Reply(
            status=self.status,
            payload=payload,
            properties=dict(self.properties or {}),
            message_type=self.message_type,
        )

    def close(self) -> None:
        """Stop taking the reply; remove the temporary file (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.set_exception(FragmentError(f"the reply stream of {self.what} was closed"))
        self._queue.clear()
        self._early.clear()
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        callbacks, self._on_close = self._on_close, []
        for callback in callbacks:
            with contextlib.suppress(Exception):
                callback()


def __getattr__(name: str) -> Any:
    """``open_stream`` lives in :mod:`dasf_geo.transport.streamed_call`."""
    if name == "open_stream":
        from dasf_geo.transport.streamed_call import open_stream

        return open_stream
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
