"""The caller's side: send DASF requests to a backend topic and wait for replies.

One :class:`AsyncClient` holds two connections: a producer on the backend's
topic and a consumer on a private response topic (128 random bits, so
nobody can guess it). Any number of requests may be in flight at once; each
carries its own ``requestContext`` and replies are matched by it, so they
can never be mixed up. Fragmented replies are reassembled; fragmented
requests are sent when a request exceeds ``max_payload_size``.

:class:`Client` is the blocking counterpart: it runs the asyncio client on
one background event loop shared by all blocking clients of the process.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dasf_geo._loop import new_event_loop
from dasf_geo.exceptions import (
    FragmentError,
    FragmentTooLarge,
    PayloadTooLarge,
    RemoteError,
    RemoteValidationError,
    ReplyLost,
    RequestTimeout,
    SendError,
    TransportError,
)
from dasf_geo.protocol.constants import (
    DEFAULT_MAX_PAYLOAD_SIZE,
    EXT_ACCEPT,
    EXT_ENCODING,
    EXT_ERRORS,
    EXT_FEATURES,
    EXT_FINDINGS,
    EXT_SIZE,
    FEATURE_PARTS,
    KEY_MESSAGE_TYPE,
    KEY_REQUEST_CONTEXT,
    KEY_STATUS,
    MessageType,
    PropertyKeys,
    Status,
)
from dasf_geo.protocol.fragments import Reassembler, fits_one_message, one_message
from dasf_geo.protocol.messages import (
    ConsumerMessage,
    ProducerAck,
    RequestContexts,
    b64decode,
    b64encode,
    new_response_topic,
    request_properties,
)
from dasf_geo.protocol.options import (
    TOO_LARGE_ERROR,
    TransferOptions,
    current_transfer_options,
    format_size,
)
from dasf_geo.protocol.parts import parse_features
from dasf_geo.transport._common import (
    DEFAULT_SPOOL_THRESHOLD,
    FileBuffer,
    OutgoingParts,
    add_query,
    buffer_factory,
    header_of,
    payload_bytes,
    send_payload,
    setting,
    shorten_switch_interval,
)
from dasf_geo.transport.connection import (
    AsyncConsumer,
    AsyncProducer,
    backoff_delays,
    check_ack,
    redact_url,
)

__all__ = [
    "AsyncClient",
    "BinaryValue",
    "Client",
    "Reply",
    "close_clients",
    "get_client",
    "raise_for_status",
    "send_request",
]

logger = logging.getLogger(__name__)

#: Default seconds to wait for a reply; per call and per client adjustable.
DEFAULT_TIMEOUT = 600.0
#: Subscription name on the private response topic.
RESPONSE_SUBSCRIPTION = "dasf-geo-caller"
#: Seconds before the first attempt to reopen a lost reply connection, and
#: the longest wait between attempts (see :func:`backoff_delays`).
RECONNECT_FIRST_DELAY = 0.05
RECONNECT_MAX_DELAY = 5.0

T = TypeVar("T")

# enum values as plain strings for the per-reply code (``.value`` of an enum
# member costs about half a microsecond each time)
_PROGRESS = MessageType.PROGRESS.value
_RESPONSE = MessageType.RESPONSE.value
_SUCCESS = Status.SUCCESS.value
_ERROR = Status.ERROR.value
ProgressCallback = Callable[[dict[str, Any]], None]


@dataclass
class Reply:
    """A complete reply from a backend.

    Attributes:
        status: ``success``, ``error`` or ``running``.
        payload: the decoded payload bytes (JSON text for results); a large
            payload is a :class:`~dasf_geo.transport._common.FileBuffer`
            (use :meth:`text`, :meth:`json` or ``bytes()``).
        properties: the properties of the reply (of its last fragment).
        message_type: ``response``, ``pong``…
    """

    status: str
    payload: bytes | bytearray
    properties: dict[str, Any]
    message_type: str

    def value(self) -> Any:
        """The result: a :class:`BinaryValue` for a binary reply, else the JSON.

        Raises:
            RemoteError: the payload is not JSON.
        """
        encoding = self.properties.get(EXT_ENCODING)
        if isinstance(encoding, str) and encoding:
            return BinaryValue(encoding, self.payload)
        return self.json()

    def findings(self) -> list[Any]:
        """The CF/crs findings the backend sent with the reply.

        Those of ``warn``/``optional`` checks of the call's arguments and
        result (``dasfGeoFindings``), as
        :class:`~dasf_geo.data.FindingReport` objects; empty when there are
        none (or the backend is no dasf_geo backend). Malformed entries are
        left out.
        """
        raw = self.properties.get(EXT_FINDINGS)
        if raw is None:
            return []
        from dasf_geo.data import decode_reports

        return decode_reports(raw)

    def text(self) -> str:
        """The payload as UTF-8 text."""
        return bytes(payload_bytes(self.payload)).decode("utf-8", "replace")

    def json(self) -> Any:
        """The payload parsed as JSON.

        Raises:
            RemoteError: the payload is not JSON.
        """
        try:
            return json.loads(payload_bytes(self.payload))
        except ValueError as exc:
            raise RemoteError(
                f"the backend's reply is not JSON: {self.text()[:200]!r}"
            ) from exc


@dataclass
class BinaryValue:
    """A result sent as raw bytes (e.g. the NetCDF of a Dataset).

    Attributes:
        media_type: what the bytes are (the reply's ``dasfGeoEncoding``).
        data: the bytes; a large reply is a temporary file
            (:class:`~dasf_geo.transport._common.FileBuffer`).
    """

    media_type: str
    data: Any

    def decode(self) -> Any:
        """The Python object (an ``xr.Dataset`` or ``xr.DataArray``).

        A reply smaller than :data:`LAZY_THRESHOLD` is loaded into memory. A
        larger one stays in its temporary file and is opened lazily (values
        are read when used; dask-backed when dask is installed); the file is
        removed when the returned object is garbage-collected or closed.

        Raises:
            DataError: the bytes are not what the media type says.
        """
        from dasf_geo.data import open_reply, read_reply

        data = self.data
        if isinstance(data, FileBuffer) and len(data) > LAZY_THRESHOLD:
            value = open_reply(self.media_type, data.path)
            value.set_close(_closer(value, data))
            # the file outlives this BinaryValue: it belongs to the object now
            weakref.finalize(value, data.close)
            return value
        source = data.path if isinstance(data, FileBuffer) else data
        return read_reply(self.media_type, source)

    def to_json(self) -> str:
        """The JSON form of the value, as a caller of a JSON reply sees it.

        That is the base64 text of the bytes (what demessaging callers and
        the DASF web map read).
        """
        return b64encode(payload_bytes(self.data)).decode("ascii")

    def __len__(self) -> int:
        return len(self.data)


#: Binary replies larger than this many bytes are opened lazily from their
#: temporary file instead of being loaded (see :meth:`BinaryValue.decode`).
LAZY_THRESHOLD = 256 * 1024 * 1024


def _closer(value: Any, buffer: FileBuffer) -> Callable[[], None]:
    close_backend = getattr(value, "_close", None)

    def close() -> None:
        if close_backend is not None:
            close_backend()
        buffer.close()

    return close


def warn_findings(reply: Reply, stacklevel: int = 4) -> list[Any]:
    """Raise the findings that came with ``reply`` as warnings; return them.

    Each report becomes a :class:`~dasf_geo.data.CFConventionWarning` or
    :class:`~dasf_geo.data.CRSWarning` with the text the backend logged.
    """
    reports = reply.findings()
    if reports:
        from dasf_geo.data import warn_reports

        warn_reports(reports, stacklevel=stacklevel)
    return reports


def raise_for_status(reply: Reply, topic: str | None = None) -> Reply:
    """Return ``reply`` if it succeeded, else raise the backend's error.

    Raises:
        PayloadTooLarge: the backend did not send a reply above the call's
            ``max_size`` (see :class:`~dasf_geo.protocol.options.TransferOptions`).
        RemoteValidationError: the backend rejected the arguments; its
            ``errors`` list says which and why.
        RemoteError: any other error reply.
    """
    if reply.status != _ERROR:
        return reply
    message = reply.text()
    raw = reply.properties.get(EXT_ERRORS)
    errors: list[dict[str, Any]] = []
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            parsed = json.loads(raw)
            if isinstance(parsed, list):
                errors = [e for e in parsed if isinstance(e, dict)]
    too_large = next((e for e in errors if e.get("type") == TOO_LARGE_ERROR), None)
    if too_large is not None:
        ctx = too_large.get("ctx")
        ctx = ctx if isinstance(ctx, dict) else {}
        where = f"the backend on topic {topic!r}" if topic else "the backend"
        refused = (
            "refused the request"
            if too_large.get("loc") == ["request"]
            else "did not send its reply"
        )
        raise PayloadTooLarge(
            f"{where} {refused}: {message}",
            size=ctx.get("size") if isinstance(ctx.get("size"), int) else None,
            limit=ctx.get("limit") if isinstance(ctx.get("limit"), int) else None,
            topic=topic,
        )
    if errors:
        raise RemoteValidationError(message, errors=errors, topic=topic)
    raise RemoteError(message, topic=topic)


@dataclass
class _Pending:
    #: an asyncio future, or a :class:`_ThreadWaiter` of a blocking caller
    future: Any
    what: str
    progress: ProgressCallback | None = None
    received: int = field(default=0)
    #: the call's ``max_size`` (None: the client's ``max_request_size``)
    max_size: int | None = None


class _ThreadWaiter:
    """A reply a blocking thread waits for; completed on the event loop.

    It offers the few methods of an asyncio future that the client uses
    (``done``, ``set_result``, ``set_exception``, ``cancel``), and a lock
    the waiting thread blocks on — the cheapest hand-over between threads.
    """

    __slots__ = (
        "_done",
        "_lock",
        "abandoned",
        "context",
        "error",
        "reply",
        "task",
        "timeout",
    )

    def __init__(self, timeout: float) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._done = False
        self.timeout = timeout
        self.reply: Reply | None = None
        self.error: BaseException | None = None
        self.context: str | None = None
        self.task: asyncio.Task[None] | None = None
        self.abandoned = False

    def done(self) -> bool:
        return self._done

    def set_result(self, reply: Reply) -> None:
        if not self._done:
            self._done = True
            self.reply = reply
            self._lock.release()

    def set_exception(self, error: BaseException) -> None:
        if not self._done:
            self._done = True
            self.error = error
            self._lock.release()

    def cancel(self) -> None:
        self.set_exception(asyncio.CancelledError())

    def wait(self, timeout: float) -> bool:
        """Block until completed or ``timeout`` seconds passed."""
        return self._lock.acquire(True, timeout)


class AsyncClient:
    """Asyncio client for one backend topic.

    Args:
        config: a messaging config (:class:`dasf_geo.config.PulsarConfig`
            or :class:`dasf_geo.config.WebsocketURLConfig`).
        topic: the backend's topic (default: ``config.topic``).
        timeout: default seconds to wait for each reply.

    Use ``async with AsyncClient(config) as client: ...`` or call
    :meth:`start` and :meth:`close`.
    """

    def __init__(
        self, config: Any, topic: str | None = None, *, timeout: float | None = None
    ) -> None:
        self.config = config
        self.topic: str = topic or config.topic
        if not self.topic:
            raise TransportError("no topic given: pass topic=… or set it in the config")
        self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        self.max_payload_size: int = setting(
            config, "max_payload_size", DEFAULT_MAX_PAYLOAD_SIZE
        )
        self.response_topic = new_response_topic(self.topic)
        self._contexts = RequestContexts()
        header = header_of(config)
        open_timeout = float(setting(config, "producer_connection_timeout", 30.0))
        self._producer = AsyncProducer(
            config.get_topic_url(self.topic), header, open_timeout=open_timeout
        )
        self._consumer = AsyncConsumer(
            add_query(
                config.get_topic_url(self.response_topic, RESPONSE_SUBSCRIPTION),
                {"subscriptionType": "Exclusive"},
            ),
            header,
            open_timeout=open_timeout,
            on_message=self._on_reply_message,
        )
        self._reassembler = Reassembler(
            max_size=int(setting(config, "max_request_size", 1 << 30)),
            timeout=float(setting(config, "fragment_timeout", 60.0)),
            buffer_factory=buffer_factory(
                int(setting(config, "spool_threshold", DEFAULT_SPOOL_THRESHOLD))
            ),
        )
        #: replies come on a persistent topic: the broker keeps them for us
        #: while the reply connection is down
        self._replies_persistent = "/persistent/" in self._consumer.url
        self._pending: dict[str, _Pending] = {}
        self._tasks: list[asyncio.Task[None]] = []
        #: the protocol extensions the backend advertised (``dasfGeoFeatures``
        #: of its last ``pong``, ``info`` or ``api_info`` reply); None until
        #: one came
        self.features: frozenset[str] | None = None
        self._started = False
        self._closed = False
        self._producer_lock: asyncio.Lock | None = None
        #: the reply of the last successful :meth:`call` (its
        #: :meth:`Reply.findings`, its properties), or None
        self.last_reply: Reply | None = None
        #: set while the reply connection is open: a request is only sent
        #: then, so that its reply never comes to a topic nobody listens on
        self._replies_ready: asyncio.Event | None = None

    @property
    def url(self) -> str:
        """The producer URL of the backend's topic (token hidden)."""
        return redact_url(self._producer.url)

    @property
    def supports_parts(self) -> bool:
        """True once the backend said it takes multipart requests.

        Learned from the ``dasfGeoFeatures`` property of its ``pong``,
        ``info`` or ``api_info`` replies (see :meth:`ping`); False while
        unknown, so that other DASF backends keep getting JSON requests.
        """
        features = self.features
        return features is not None and FEATURE_PARTS in features

    def _learn(self, reply: Reply) -> None:
        """Remember what the backend advertised in a metadata reply."""
        self.features = parse_features(reply.properties.get(EXT_FEATURES))

    async def __aenter__(self) -> AsyncClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect to the broker.

        The response topic is subscribed before anything is sent, so that
        no reply can arrive before somebody listens for it.

        Raises:
            ConnectionFailed: the broker cannot be reached; names the URL.
        """
        if self._started:
            return
        self._producer_lock = asyncio.Lock()
        self._replies_ready = asyncio.Event()
        await self._consumer.connect()
        self._replies_ready.set()
        try:
            await self._producer.connect()
        except BaseException:
            await self._consumer.close()
            raise
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._watch_replies(), name="dasf-geo replies"),
            loop.create_task(self._expire_fragments(), name="dasf-geo expiry"),
        ]
        self._started = True

    async def close(self) -> None:
        """Close both connections; requests still waiting fail."""
        self._closed = True
        if self._replies_ready is not None:
            self._replies_ready.set()  # calls waiting for it fail below
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        await self._producer.close()
        await self._consumer.close()
        self._fail_all(
            TransportError(f"the client for topic {self.topic!r} was closed")
        )

    def _fail_all(self, error: Exception) -> None:
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(error)
        self._pending.clear()

    async def _reconnect_consumer(self) -> bool:
        """Open the reply connection again; retry with backoff until closed.

        Every failure (a refused handshake, a peer that hangs up before the
        upgrade, a timeout) is retried after a capped, jittered exponential
        delay (:func:`~dasf_geo.transport.connection.backoff_delays`).
        """
        delays = backoff_delays(RECONNECT_FIRST_DELAY, RECONNECT_MAX_DELAY)
        attempt = 0
        while not self._closed:
            attempt += 1
            await self._consumer.close()
            try:
                await self._consumer.connect()
                logger.info(
                    "reconnected to %s (attempt %d)",
                    redact_url(self._consumer.url),
                    attempt,
                )
                return True
            except TransportError as exc:
                logger.warning(
                    "reconnecting to the broker (attempt %d): %s", attempt, exc
                )
            await asyncio.sleep(next(delays))
        return False

    async def _watch_replies(self) -> None:
        """Reconnect the reply consumer whenever its connection closes."""
        while not self._closed:
            await self._consumer.wait_closed()
            if self._closed:
                return
            assert self._replies_ready is not None
            self._replies_ready.clear()
            reason = self._consumer._closed_error()
            logger.warning("lost the reply connection: %s", reason)
            if not self._replies_persistent:
                # the broker forgets a non-persistent subscription with its
                # consumer: replies on the way now are gone, so the calls
                # waiting for them learn it now, not at their timeout
                self._fail_in_flight(reason)
            # on a persistent topic the broker redelivers what we missed, so
            # the calls keep waiting until their own timeout
            if not await self._reconnect_consumer():
                return
            self._replies_ready.set()

    def _fail_in_flight(self, reason: Exception) -> None:
        """Fail every call waiting for a reply: its reply may be lost."""
        pending, self._pending = self._pending, {}
        for context, call in pending.items():
            self._reassembler.discard((context, _RESPONSE))
            if not call.future.done():
                call.future.set_exception(
                    ReplyLost(
                        f"the reply to {call.what} from topic {self.topic!r} may be "
                        f"lost: the connection for replies closed while waiting "
                        f"({reason}); the request may or may not have run, call "
                        "again if that is safe",
                        url=self.url,
                        topic=self.topic,
                    )
                )

    def _on_reply_message(self, msg: ConsumerMessage) -> None:
        """Called by the consumer for every message on the response topic."""
        # if the ack fails the message is redelivered; duplicates are dropped
        self._consumer.ack_soon(msg.message_id)
        try:
            self._handle_reply(msg)
        except Exception:  # never let one reply break the connection
            logger.exception("error handling a reply on %s", self.response_topic)

    def _handle_reply(self, msg: ConsumerMessage) -> None:
        props = msg.properties
        context = props.get(KEY_REQUEST_CONTEXT)
        pending = self._pending.get(str(context)) if context is not None else None
        if pending is None:
            logger.debug("dropping a reply for no waiting request: %r", context)
            return
        mtype = str(props.get(KEY_MESSAGE_TYPE) or "")
        if mtype == _PROGRESS:
            self._handle_progress(pending, msg)
            return
        try:
            data = self._reassembler.add(
                (str(context), mtype),
                props,
                msg.payload,
                time.monotonic(),
                pending.max_size,
            )
        except FragmentTooLarge as exc:
            self._finish(str(context), error=self._reply_too_large(pending, exc))
            return
        except FragmentError as exc:
            self._finish(
                str(context),
                error=FragmentError(
                    f"the reply to {pending.what} from topic {self.topic!r} is "
                    f"broken: {exc}"
                ),
            )
            return
        pending.received += len(msg.payload) // 4 * 3
        if pending.progress is not None and (
            data is None or props.get(PropertyKeys.NUM_FRAGMENTS.value) is not None
        ):
            total = props.get(EXT_SIZE)
            with contextlib.suppress(Exception):  # a broken callback must not hurt
                pending.progress(
                    {
                        "kind": "transfer",
                        "received": len(data) if data is not None else pending.received,
                        "total": total if isinstance(total, int) else None,
                        "done": data is not None,
                    }
                )
        if data is None:
            return
        status = str(props.get(KEY_STATUS) or _SUCCESS)
        self._finish(
            str(context),
            reply=Reply(
                status=status, payload=data, properties=props, message_type=mtype
            ),
        )

    def _reply_too_large(
        self, pending: _Pending, exc: FragmentTooLarge
    ) -> FragmentTooLarge:
        """The error for a reply announced or grown above the size limit.

        A :class:`FragmentTooLarge`: both a
        :class:`~dasf_geo.exceptions.PayloadTooLarge` and a
        :class:`~dasf_geo.exceptions.FragmentError`.
        """
        limit = exc.limit if exc.limit is not None else 0
        name = (
            "max_size"
            if pending.max_size is not None
            else "the client's max_request_size"
        )
        size = exc.size if exc.size is not None else 0
        return FragmentTooLarge(
            f"the reply to {pending.what} from topic {self.topic!r} is above the "
            f"limit of {format_size(limit)} ({name}): {format_size(size)} "
            "announced or received; it was not kept",
            size=exc.size,
            limit=exc.limit,
            topic=self.topic,
        )

    def _handle_progress(self, pending: _Pending, msg: ConsumerMessage) -> None:
        if pending.progress is None:
            return
        try:
            report = json.loads(b64decode(msg.payload, "progress report"))
        except Exception as exc:  # a broken report must not break the reply
            logger.warning("ignoring a broken progress report: %s", exc)
            return
        with contextlib.suppress(Exception):
            pending.progress({"kind": "report", "report": report})

    def _finish(
        self,
        context: str,
        *,
        reply: Reply | None = None,
        error: BaseException | None = None,
    ) -> None:
        pending = self._pending.pop(context, None)
        if pending is None or pending.future.done():
            return
        if error is not None:
            pending.future.set_exception(error)
        else:
            pending.future.set_result(reply)  # type: ignore[arg-type]

    async def _expire_fragments(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            for key, error in self._reassembler.expire(time.monotonic()):
                context = str(key[0] if isinstance(key, tuple) else key)
                pending = self._pending.get(context)
                what = pending.what if pending is not None else "a request"
                self._finish(
                    context,
                    error=FragmentError(
                        f"the reply to {what} from topic {self.topic!r} did not "
                        f"arrive whole: {error}"
                    ),
                )

    async def _ensure_producer(self) -> AsyncProducer:
        assert self._producer_lock is not None
        async with self._producer_lock:
            if not self._producer.connected:
                await self._producer.close()
                await self._producer.connect()
        return self._producer

    async def request(
        self,
        payload: bytes | bytearray | memoryview | OutgoingParts,
        *,
        message_type: MessageType | str = MessageType.REQUEST,
        timeout: float | None = None,
        what: str | None = None,
        progress: ProgressCallback | None = None,
        accept: Iterable[str] | None = None,
        options: TransferOptions | None = None,
    ) -> Reply:
        """Send one request and wait for its complete reply.

        Args:
            payload: the raw request bytes (UTF-8 JSON for ``request``), or
                a multipart request (:class:`OutgoingParts`, only for a
                backend that :attr:`supports_parts`).
            message_type: ``request``, ``ping``, ``info`` or ``api_info``.
            timeout: seconds to wait (default: the client's timeout).
            what: how to name the request in errors (e.g. ``hello_world()``).
            progress: called with progress information while waiting.
            accept: media types this caller takes as a raw binary reply
                (``dasfGeoAccept``); such a reply carries its type in the
                ``dasfGeoEncoding`` property.
            options: fragment size, compression and size limit of this call
                (over those of an enclosing
                :func:`~dasf_geo.protocol.options.transfer_options` block).

        Returns:
            The reply, whatever its status (see :func:`raise_for_status`).

        Raises:
            PayloadTooLarge: the request, or the reply as it arrives, is
                above the call's ``max_size``.
            RequestTimeout: no complete reply within ``timeout`` seconds; the
                message names the topic, the request and the seconds.
            FragmentError: the reply's fragments could not be joined.
            TransportError, SendError: sending failed.
        """
        if not self._started:
            await self.start()
        timeout = self.timeout if timeout is None else timeout
        what = what or f"a {MessageType(message_type).value} message"
        opts = current_transfer_options().merge(options)
        self._check_size(payload, opts, what)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = loop.create_future()
        # the common case: one message, sent at once; its ack is checked when
        # it comes, the reply is awaited meanwhile
        context = self._send_at_once(
            payload, message_type, what, progress, accept, future, opts
        )
        sent = context is not None
        if context is None:
            context = self._contexts.next()
            self._pending[context] = _Pending(
                future, what, progress, max_size=opts.max_size
            )
        # one timer instead of asyncio.wait_for (no extra task per call)
        task = asyncio.current_task()
        timed_out = False

        def on_timeout() -> None:
            nonlocal timed_out
            timed_out = True
            if task is not None:
                task.cancel()

        timer = loop.call_later(timeout, on_timeout)
        try:
            if not sent:
                ready = self._replies_ready
                if ready is not None and not ready.is_set():
                    await ready.wait()  # the reply connection is being reopened
                    if self._closed:
                        raise TransportError(
                            f"the client for topic {self.topic!r} was closed"
                        )
                producer = self._producer
                if not producer.connected:
                    producer = await self._ensure_producer()
                props = self._request_props(context, message_type, accept, opts)
                await send_payload(
                    producer,
                    payload,
                    props,
                    opts.fragment_size or self.max_payload_size,
                    _upload_progress(progress),
                )
            return await future
        except asyncio.CancelledError:
            if not timed_out:
                raise
            uncancel = getattr(task, "uncancel", None)
            if uncancel is not None:
                uncancel()
            raise RequestTimeout(
                f"no reply from topic {self.topic!r} to {what} within {timeout:g} s",
                url=self.url,
                topic=self.topic,
            ) from None
        finally:
            timer.cancel()
            self._forget(context)
            if not future.done():
                future.cancel()

    def _request_props(
        self,
        context: str,
        message_type: MessageType | str,
        accept: Iterable[str] | None,
        options: TransferOptions,
    ) -> dict[str, Any]:
        props = request_properties(self.response_topic, context, message_type)
        if accept:
            props[EXT_ACCEPT] = ",".join(accept)
        if options:
            props.update(options.properties())
        return props

    def _check_size(
        self,
        payload: bytes | bytearray | memoryview | OutgoingParts,
        options: TransferOptions,
        what: str,
    ) -> None:
        """Refuse to send a request above the call's ``max_size``."""
        limit = options.max_size
        if limit is None:
            return
        size = payload.size if isinstance(payload, OutgoingParts) else len(payload)
        if size > limit:
            raise PayloadTooLarge(
                f"the request to {what} for topic {self.topic!r} is "
                f"{format_size(size)}, above the limit of {format_size(limit)} "
                "(max_size); it was not sent",
                size=size,
                limit=limit,
                topic=self.topic,
            )

    def _send_at_once(
        self,
        payload: bytes | bytearray | memoryview | OutgoingParts,
        message_type: MessageType | str,
        what: str,
        progress: ProgressCallback | None,
        accept: Iterable[str] | None,
        future: Any,
        options: TransferOptions,
    ) -> str | None:
        """Send a request that fits one message now, if the producer has room.

        Registers ``future`` for the reply and returns the request's
        context; returns None (nothing sent, nothing registered) when the
        request needs the slow path (a connection to open, a full window,
        fragments).
        """
        producer = self._producer
        ready = self._replies_ready
        if not (
            self._started
            and ready is not None
            and ready.is_set()
            and producer.connected
            and producer.has_room
            and not isinstance(payload, OutgoingParts)
            and fits_one_message(
                len(payload), options.fragment_size or self.max_payload_size
            )
        ):
            return None
        context = self._contexts.next()
        props = self._request_props(context, message_type, accept, options)
        message = one_message(payload)
        props.update(message.properties)
        self._pending[context] = _Pending(
            future, what, progress, max_size=options.max_size
        )
        try:
            ack = producer.submit_now(message.payload, props)
        except TransportError:
            self._pending.pop(context, None)
            return None
        ack.add_done_callback(lambda fut: self._check_ack(fut, context, producer.url))
        # the acks of earlier replies go out now, with the request, instead
        # of waking the loop (and the broker) once more when their timer fires
        self._consumer.flush_acks()
        return context

    def _forget(self, context: str) -> None:
        """Stop waiting for the reply to ``context``."""
        self._pending.pop(context, None)
        self._reassembler.discard((context, _RESPONSE))

    def _start_for_thread(
        self,
        waiter: _ThreadWaiter,
        payload: bytes | OutgoingParts,
        message_type: MessageType | str,
        what: str,
        progress: ProgressCallback | None,
        accept: Iterable[str] | None,
        options: TransferOptions,
    ) -> None:
        """On the event loop: start a request a blocking thread waits for.

        A small request is sent at once and its reply completes ``waiter``
        directly (no task, no asyncio future); anything else runs
        :meth:`request` in a task. The blocking thread times out by itself
        and then calls :meth:`_abandon`.
        """
        if waiter.abandoned:
            return
        try:
            context = self._send_at_once(
                payload, message_type, what, progress, accept, waiter, options
            )
        except Exception as exc:
            waiter.set_exception(exc)
            return
        if context is not None:
            waiter.context = context
            return

        async def slow() -> None:
            try:
                reply = await self.request(
                    payload,
                    message_type=message_type,
                    timeout=waiter.timeout,
                    what=what,
                    progress=progress,
                    accept=accept,
                    options=options,
                )
            except BaseException as exc:  # handed to the waiting thread
                waiter.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                waiter.set_result(reply)

        waiter.task = asyncio.get_running_loop().create_task(slow())

    def _abandon(self, waiter: _ThreadWaiter) -> None:
        """On the event loop: the blocking thread stopped waiting."""
        waiter.abandoned = True
        if waiter.context is not None:
            self._forget(waiter.context)
        if waiter.task is not None:
            waiter.task.cancel()

    def _check_ack(
        self, fut: asyncio.Future[ProducerAck], context: str, url: str
    ) -> None:
        """Fail request ``context`` if the broker did not accept it."""
        if fut.cancelled():
            return
        error = fut.exception()
        if error is None:
            try:
                check_ack(fut.result(), url)
            except SendError as exc:
                error = exc
        if error is not None:
            self._finish(context, error=error)

    async def call(
        self,
        request: dict[str, Any],
        *,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
        accept: Iterable[str] | None = None,
        parts: Any = None,
        options: TransferOptions | None = None,
    ) -> Any:
        """Send a request object and return the JSON result.

        With ``accept`` (see :meth:`request`), a result the backend sends in
        binary form comes back as a :class:`BinaryValue`. With ``parts`` (a
        :class:`~dasf_geo.data.PartWriter` whose placeholders are in
        ``request``), the request is sent in multipart form; only do that
        when the backend :attr:`supports_parts`. ``options``: see
        :meth:`request`.

        Raises:
            PayloadTooLarge: the request or the reply is above ``max_size``.
            RemoteValidationError: the backend rejected the arguments.
            RemoteError: the backend answered with an error.
            RequestTimeout, TransportError: see :meth:`request`.
        """
        payload = _request_payload(request, parts)
        reply = await self.request(
            payload,
            timeout=timeout,
            what=describe_request(request),
            progress=progress,
            accept=accept,
            options=options,
        )
        raise_for_status(reply, self.topic)
        self.last_reply = reply
        warn_findings(reply)
        return reply.value()

    async def ping(self, timeout: float | None = None) -> float:
        """Ping the backend; return the round-trip time in seconds.

        The ``pong`` also tells which protocol extensions the backend
        understands (see :attr:`features`).
        """
        start = time.perf_counter()
        reply = await self.request(
            b"", message_type=MessageType.PING, timeout=timeout, what="ping"
        )
        elapsed = time.perf_counter() - start
        self._learn(reply)
        return elapsed

    async def api_info(self, timeout: float | None = None) -> dict[str, Any]:
        """Ask the backend for its API (classes, functions, schemas)."""
        reply = await self.request(
            b"", message_type=MessageType.API_INFO, timeout=timeout, what="api_info"
        )
        self._learn(reply)
        return _json_property(
            raise_for_status(reply, self.topic), "api_info", self.topic
        )

    async def info(self, timeout: float | None = None) -> dict[str, Any]:
        """Ask the backend for its JSON schema."""
        reply = await self.request(
            b"", message_type=MessageType.INFO, timeout=timeout, what="info"
        )
        self._learn(reply)
        return _json_property(raise_for_status(reply, self.topic), "info", self.topic)


def _upload_progress(
    progress: ProgressCallback | None,
) -> Callable[[int, int], None] | None:
    """``send_payload``'s ``on_acked`` giving ``upload`` events to ``progress``."""
    if progress is None:
        return None

    def on_acked(sent: int, total: int) -> None:
        progress(
            {"kind": "upload", "sent": sent, "total": total, "done": sent >= total}
        )

    return on_acked


def _request_payload(request: dict[str, Any], parts: Any) -> bytes | OutgoingParts:
    """The payload of ``request``: its JSON, followed by any binary parts."""
    payload = json.dumps(request).encode("utf-8")
    if parts is not None and parts.parts:
        return OutgoingParts(payload, parts.parts)
    return payload


def _json_property(reply: Reply, key: str, topic: str) -> dict[str, Any]:
    raw = reply.properties.get(key)
    if raw is None:
        raise RemoteError(
            f"the backend on topic {topic!r} sent no {key!r}", topic=topic
        )
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise RemoteError(
            f"the backend on topic {topic!r} sent {key!r} that is not JSON: "
            f"{raw!r:.200}",
            topic=topic,
        ) from None
    if not isinstance(value, dict):
        raise RemoteError(f"the backend's {key!r} is not a JSON object", topic=topic)
    return value


def describe_request(request: Any) -> str:
    """How to name a request in messages: ``func()`` or ``Class.method()``."""
    if isinstance(request, dict):
        if "func_name" in request:
            return f"{request['func_name']}()"
        if "class_name" in request:
            func = request.get("function")
            method = func.get("func_name") if isinstance(func, dict) else None
            return f"{request['class_name']}.{method or '?'}()"
    return "the request"


# --- blocking API ----------------------------------------------------------


class _LoopThread:
    """One daemon thread running the event loop of all blocking clients."""

    def __init__(self) -> None:
        shorten_switch_interval()
        self.loop = new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name="dasf-geo-client", daemon=True
        )
        self.thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except BaseException:
            fut.cancel()
            raise


_loop_lock = threading.Lock()
_loop_thread: _LoopThread | None = None
_loop_pid: int | None = None


def _background() -> _LoopThread:
    global _loop_thread, _loop_pid
    with _loop_lock:
        if _loop_thread is None or _loop_pid != os.getpid():
            _loop_thread = _LoopThread()
            _loop_pid = os.getpid()
        return _loop_thread


class Client:
    """Blocking client for one backend topic (see :class:`AsyncClient`).

    Safe to use from several threads at once; all requests share one pair of
    connections.
    """

    def __init__(
        self, config: Any, topic: str | None = None, *, timeout: float | None = None
    ) -> None:
        self._bg = _background()
        self._async = AsyncClient(config, topic, timeout=timeout)
        self._run(self._async.start())

    @property
    def topic(self) -> str:
        """The backend's topic."""
        return self._async.topic

    @property
    def timeout(self) -> float:
        """Default seconds to wait for a reply."""
        return self._async.timeout

    @property
    def features(self) -> frozenset[str] | None:
        """See :attr:`AsyncClient.features`."""
        return self._async.features

    @property
    def supports_parts(self) -> bool:
        """See :attr:`AsyncClient.supports_parts`."""
        return self._async.supports_parts

    def _run(self, coro: Awaitable[T]) -> T:
        return self._bg.run(coro)  # type: ignore[arg-type]

    def request(
        self,
        payload: bytes | OutgoingParts,
        *,
        message_type: MessageType | str = MessageType.REQUEST,
        timeout: float | None = None,
        what: str | None = None,
        progress: ProgressCallback | None = None,
        accept: Iterable[str] | None = None,
        options: TransferOptions | None = None,
    ) -> Reply:
        """Blocking :meth:`AsyncClient.request`.

        The calling thread hands the request to the event loop thread and
        waits on a lock that the reply releases.
        """
        client = self._async
        timeout = client.timeout if timeout is None else timeout
        what = what or f"a {MessageType(message_type).value} message"
        opts = current_transfer_options().merge(options)
        client._check_size(payload, opts, what)
        waiter = _ThreadWaiter(timeout)
        loop = self._bg.loop
        loop.call_soon_threadsafe(
            client._start_for_thread,
            waiter,
            payload,
            message_type,
            what,
            progress,
            accept,
            opts,
        )
        try:
            completed = waiter.wait(timeout)
            if not completed and waiter.task is not None:
                # the slow path's own timer raises a moment later
                completed = waiter.wait(1.0)
        except BaseException:  # e.g. KeyboardInterrupt
            loop.call_soon_threadsafe(client._abandon, waiter)
            raise
        if not completed:
            loop.call_soon_threadsafe(client._abandon, waiter)
            raise RequestTimeout(
                f"no reply from topic {client.topic!r} to {what} within "
                f"{timeout:g} s",
                url=client.url,
                topic=client.topic,
            )
        if waiter.error is not None:
            raise waiter.error
        assert waiter.reply is not None
        return waiter.reply

    def call(
        self,
        request: dict[str, Any],
        *,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
        accept: Iterable[str] | None = None,
        parts: Any = None,
        options: TransferOptions | None = None,
    ) -> Any:
        """Blocking :meth:`AsyncClient.call`."""
        payload = _request_payload(request, parts)
        reply = self.request(
            payload,
            timeout=timeout,
            what=describe_request(request),
            progress=progress,
            accept=accept,
            options=options,
        )
        raise_for_status(reply, self.topic)
        self._async.last_reply = reply
        warn_findings(reply)
        return reply.value()

    @property
    def last_reply(self) -> Reply | None:
        """See :attr:`AsyncClient.last_reply`."""
        return self._async.last_reply

    def ping(self, timeout: float | None = None) -> float:
        """Blocking :meth:`AsyncClient.ping`."""
        return self._run(self._async.ping(timeout))

    def api_info(self, timeout: float | None = None) -> dict[str, Any]:
        """Blocking :meth:`AsyncClient.api_info`."""
        return self._run(self._async.api_info(timeout))

    def info(self, timeout: float | None = None) -> dict[str, Any]:
        """Blocking :meth:`AsyncClient.info`."""
        return self._run(self._async.info(timeout))

    def close(self) -> None:
        """Close the connections."""
        with contextlib.suppress(Exception):
            self._run(self._async.close())

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_clients: dict[tuple[Any, ...], Client] = {}
_clients_lock = threading.Lock()


def _client_key(config: Any, topic: str) -> tuple[Any, ...]:
    return (
        os.getpid(),
        config.get_topic_url(topic),
        tuple(sorted(header_of(config).items())),
        setting(config, "max_payload_size", DEFAULT_MAX_PAYLOAD_SIZE),
    )


def get_client(config: Any, topic: str | None = None) -> Client:
    """A shared blocking client for ``topic`` (connections are reused).

    Raises:
        ConnectionFailed: the broker cannot be reached.
    """
    topic = topic or config.topic
    key = _client_key(config, topic)
    with _clients_lock:
        client = _clients.get(key)
        if client is None or client._async._closed:
            client = _clients[key] = Client(config, topic)
        return client


@atexit.register
def close_clients() -> None:
    """Close every shared client of :func:`get_client` (they reconnect lazily).

    Call it when the broker they talk to goes away for good (e.g. in tests),
    so that they stop trying to reconnect.
    """
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()


def send_request(
    module_cls: Any,
    request: Any,
    *,
    timeout: float | None = None,
    options: TransferOptions | None = None,
    **kwargs: Any,
) -> Any:
    """Send ``request`` to the backend of ``module_cls`` and return the result.

    The request is validated locally first (so bad arguments fail before
    anything is sent), sent to the module's topic, and the JSON reply is
    validated with the request's return model. Dataset and DataArray
    arguments travel as binary parts of a multipart request (raw NetCDF,
    base64-encoded once) when the backend takes them: the shared client
    asks it once, with a ping, the first time a request has such an
    argument; other backends get the JSON form.

    Args:
        module_cls: a :class:`dasf_geo.backend.BackendModule` subclass.
        request: a dict, a module instance, or a file-like object with JSON.
        timeout: seconds to wait for the reply.
        options: fragment size, compression and size limit of this call
            (over those of an enclosing
            :func:`~dasf_geo.protocol.options.transfer_options` block).
        **kwargs: further arguments of :meth:`Client.request`.

    Raises:
        pydantic.ValidationError: the request is invalid locally.
        PayloadTooLarge: the request or the reply is above ``max_size``.
        RemoteError: the backend answered with an error.
        RequestTimeout, TransportError: see :meth:`AsyncClient.request`.
    """
    opts = current_transfer_options().merge(options)
    if hasattr(request, "read"):
        model = module_cls.model_validate_json(request.read())
    elif isinstance(request, module_cls):
        model = request
    elif hasattr(request, "root") and not isinstance(request, dict):
        model = module_cls.model_validate(request.root)
    else:
        model = module_cls.model_validate(request)
    config = module_cls.backend_config.messaging_config
    client = get_client(config)
    return_model = model.root.return_model
    writer = _part_writer(client, model, timeout, opts.compression)
    try:
        from dasf_geo.data import COMPRESSION_CONTEXT, PARTS_CONTEXT, original_errors

        context: dict[str, Any] = {COMPRESSION_CONTEXT: opts.compression}
        if writer is not None:
            context[PARTS_CONTEXT] = writer
        with original_errors():  # e.g. a CF error of an argument, as itself
            head = model.model_dump_json(context=context).encode()
        has_parts = writer is not None and writer.parts
        payload: bytes | OutgoingParts = (
            OutgoingParts(head, writer.parts) if has_parts else head
        )
        reply = client.request(
            payload,
            timeout=timeout,
            what=describe_request(json.loads(head)),
            accept=binary_accept(return_model),
            options=opts,
            **kwargs,
        )
    finally:
        if writer is not None:
            writer.close()
    raise_for_status(reply, client.topic)
    return _validate_result(reply, return_model)


def _validate_result(reply: Reply, return_model: Any) -> Any:
    """The reply's result validated with ``return_model``; findings warned.

    The backend's findings on the result are warned, and those of the
    local check that it did not report. Its findings on the arguments are
    not: the arguments were checked (and warned) here before they were sent.
    """
    from dasf_geo.data import collect_findings, warn_reports

    remote = reply.findings()
    with collect_findings() as local:
        value = reply.value()
        if isinstance(value, BinaryValue):
            result = return_model.model_validate(value.decode())
        else:
            result = return_model.model_validate_json(payload_bytes(reply.payload))
    known = {r.message for r in remote}
    warn_reports(
        [r for r in remote if r.label == "result"]
        + [r for r in local if r.message not in known],
        stacklevel=4,
    )
    return result


#: Longest wait for the ``pong`` that tells whether a backend takes
#: multipart requests (see :func:`send_request`).
PROBE_TIMEOUT = 10.0


def _part_writer(
    client: Client, model: Any, timeout: float | None, compression: int | None
) -> Any:
    """A :class:`~dasf_geo.data.PartWriter` if ``model`` goes multipart, else None.

    That is when it has a Dataset or DataArray argument and the backend
    takes multipart requests. A shared client that does not know yet asks
    once, with a ping (a backend that does not answer within
    :data:`PROBE_TIMEOUT` seconds gets JSON requests from this client).
    """
    if client.features is not None and not client.supports_parts:
        return None
    if not _has_xarray_argument(model):
        return None
    if client.features is None:
        wait = min(PROBE_TIMEOUT, client.timeout if timeout is None else timeout)
        try:
            client.ping(wait)
        except TransportError as exc:
            logger.info("JSON requests for topic %r: %s", client.topic, exc)
            client._async.features = frozenset()
    if not client.supports_parts:
        return None
    from dasf_geo.data import PartWriter

    return PartWriter(compression=compression)


def _has_xarray_argument(model: Any) -> bool:
    """True if an argument of the request ``model`` is a Dataset or DataArray."""
    xr = sys.modules.get("xarray")
    if xr is None:  # never imported: no argument can be one
        return False
    kinds = (xr.Dataset, xr.DataArray)
    member = getattr(model, "root", model)
    for obj in (member, getattr(member, "function", None)):
        if obj is None or not hasattr(type(obj), "model_fields"):
            continue
        if any(
            isinstance(getattr(obj, name, None), kinds)
            for name in type(obj).model_fields
        ):
            return True
    return False


def binary_accept(return_model: Any) -> tuple[str, ...] | None:
    """The binary media types to accept for a reply of ``return_model``.

    Those of the data registry when the return value itself is a Dataset or
    DataArray, else None (a JSON reply).
    """
    from dasf_geo.data import BINARY_MEDIA_TYPES, RegistryType

    field = getattr(return_model, "model_fields", {}).get("root")
    if field is None:
        return None
    for meta in field.metadata:
        if isinstance(meta, RegistryType) and meta.entry.name.startswith("xarray."):
            return BINARY_MEDIA_TYPES
    return None
