"""The asyncio caller: send DASF requests to a backend topic, match the replies.

One :class:`AsyncClient` holds two connections: a producer on the backend's
topic and a consumer on a private response topic (128 random bits, so
nobody can guess it). Any number of requests may be in flight at once; each
carries its own ``requestContext`` and replies are matched by it, so they
can never be mixed up. Fragmented replies are reassembled; fragmented
requests are sent when a request exceeds ``max_payload_size``.

Blocking callers (:mod:`dasf_geo.transport.blocking`) hand their requests
to the same client and wait on a lock instead of an asyncio future.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dasf_geo.exceptions import (
    FragmentError,
    FragmentTooLarge,
    PayloadTooLarge,
    RemoteError,
    ReplyLost,
    RequestTimeout,
    SendError,
    TransportError,
)
from dasf_geo.protocol.constants import (
    DEFAULT_MAX_PAYLOAD_SIZE,
    EXT_ACCEPT,
    EXT_FEATURES,
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
    new_response_topic,
    request_properties,
)
from dasf_geo.protocol.options import (
    TransferOptions,
    current_transfer_options,
    format_size,
)
from dasf_geo.protocol.parts import parse_features
from dasf_geo.transport._common import (
    DEFAULT_SPOOL_THRESHOLD,
    OutgoingParts,
    add_query,
    buffer_factory,
    header_of,
    send_payload,
    setting,
)
from dasf_geo.transport.connection import (
    AsyncConsumer,
    AsyncProducer,
    backoff_delays,
    check_ack,
    redact_url,
)
from dasf_geo.transport.replies import (
    Reply,
    raise_for_status,
    warn_findings,
)
from dasf_geo.transport.streamed import ReplyStream, StreamedUpload, open_stream

__all__ = [
    "DEFAULT_TIMEOUT",
    "AsyncClient",
    "describe_request",
]

logger = logging.getLogger("dasf_geo.transport.client")

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
class _Pending:
    #: an asyncio future, or a :class:`_ThreadWaiter` of a blocking caller
    future: Any
    what: str
    progress: ProgressCallback | None = None
    received: int = field(default=0)
    #: the call's ``max_size`` (None: the client's ``max_request_size``)
    max_size: int | None = None
    #: takes every message of a streamed call's reply (see ``request_stream``)
    sink: Callable[[ConsumerMessage], None] | None = None


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
        if pending.sink is not None:  # a streamed call takes its messages as is
            pending.sink(msg)
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

    async def request_stream(
        self,
        payload: bytes | bytearray | memoryview | OutgoingParts | StreamedUpload,
        *,
        timeout: float | None = None,
        what: str | None = None,
        progress: ProgressCallback | None = None,
        accept: Iterable[str] | None = None,
        options: TransferOptions | None = None,
    ) -> ReplyStream:
        """Send one request; return its reply as it arrives, fragment by fragment.

        Like :meth:`request`, but returns as soon as the reply's first
        message came (its properties tell its status and encoding) with a
        :class:`~dasf_geo.transport.streamed.ReplyStream` over the payload's
        bytes, which are never joined. ``payload`` may also be a
        :class:`~dasf_geo.transport.streamed.StreamedUpload`, sent while its
        bytes arrive (the timeout then starts once it is sent). Close the
        stream when done with it.

        Raises:
            RequestTimeout: no reply within ``timeout`` seconds.
            PayloadTooLarge: the request or the announced reply is above
                ``max_size``.
            FragmentError, TransportError, SendError: as :meth:`request`.
        """
        return await open_stream(
            self,
            payload,
            timeout=timeout,
            what=what,
            progress=progress,
            accept=accept,
            options=options,
        )

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
