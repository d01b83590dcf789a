"""The asyncio caller: send DASF requests to a backend topic, match the replies.

One :class:`AsyncClient` holds two connections: a producer on the backend's
topic and a consumer on a private response topic (128 random bits, so
nobody can guess it). Any number of requests may be in flight at once; each
carries its own ``requestContext`` and replies are matched by it, so they
can never be mixed up. Fragmented replies are reassembled; fragmented
requests are sent when a request exceeds ``max_payload_size``.

Matching and request properties have no I/O: they live in
:mod:`dasf_geo.transport.matching`; this module adds the connections,
the timeouts and the sending. Their reconnects, and resending through
another broker front, are in :mod:`dasf_geo.transport.caller_failover`.

Blocking callers (:mod:`dasf_geo.transport.blocking`) hand their requests
to the same client and wait on a lock instead of an asyncio future.

The module stays a little above 600 lines by choice: it is the one class
:class:`AsyncClient`, whose public calls and the small internal API that the
blocking bridge and the streamed call share with it (``settle``,
``prepare_send``, ``send_at_once``, ``no_reply``, ``result_of``) belong
together; what has no I/O is already elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from dasf_geo.exceptions import (
    RequestTimeout,
    TransportError,
)
from dasf_geo.protocol import limits
from dasf_geo.protocol.constants import (
    DEFAULT_MAX_PAYLOAD_SIZE,
    EXT_FEATURES,
    FEATURE_PARTS,
    MessageType,
)
from dasf_geo.protocol.fragments import Reassembler, fits_one_message, one_message
from dasf_geo.protocol.messages import (
    ConsumerMessage,
    RequestContexts,
    new_response_topic,
)
from dasf_geo.protocol.options import (
    TransferOptions,
    current_transfer_options,
)
from dasf_geo.protocol.parts import parse_features
from dasf_geo.transport._common import (
    DEFAULT_SPOOL_THRESHOLD,
    MessagingSettings,
    OutgoingParts,
    buffer_factory,
    header_of,
    send_payload,
    setting,
)
from dasf_geo.transport.caller_failover import (  # noqa: F401  (re-exported)
    RECONNECT_FIRST_DELAY,
    RECONNECT_MAX_DELAY,
    RESPONSE_SUBSCRIPTION,
    CallerFailover,
)
from dasf_geo.transport.connection import (
    AsyncConsumer,
    AsyncProducer,
    redact_url,
)
from dasf_geo.transport.failover import Fronts, connect_first, front_urls
from dasf_geo.transport.matching import (
    ProgressCallback,
    ReplyMatcher,
    _Pending,
    _request_payload,
    _upload_progress,
    call_properties,
    check_request_size,
    describe_request,
)
from dasf_geo.transport.replies import (
    Reply,
    _json_property,
    raise_for_status,
    warn_findings,
)
from dasf_geo.transport.streamed import ReplyStream, StreamedUpload
from dasf_geo.transport.streamed_call import open_stream

__all__ = [
    "DEFAULT_TIMEOUT",
    "AsyncClient",
    "describe_request",
]

logger = logging.getLogger("dasf_geo.transport.client")

#: Seconds :meth:`AsyncClient.close` waits for its background tasks to stop.
_CLOSE_TIMEOUT = 5.0

#: Default seconds to wait for a reply; per call and per client adjustable.
DEFAULT_TIMEOUT = 600.0


class AsyncClient(CallerFailover):
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
        self,
        config: MessagingSettings,
        topic: str | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        self.config = config
        self.topic = topic or config.topic
        if not self.topic:
            raise TransportError("no topic given: pass topic=… or set it in the config")
        self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        self.max_payload_size: int = setting(
            config, "max_payload_size", DEFAULT_MAX_PAYLOAD_SIZE
        )
        self.response_topic = new_response_topic(self.topic)
        self._contexts = RequestContexts()
        header = header_of(config)
        open_timeout = float(
            setting(
                config, "producer_connection_timeout", limits.DEFAULT_CONNECTION_TIMEOUT
            )
        )
        # one URL per broker front; both connections move together
        self._producer_urls = front_urls(config, self.topic)
        self._consumer_urls = self._reply_urls()
        self._fronts = Fronts(
            len(self._producer_urls), f"the caller of topic {self.topic!r}"
        )
        self._producer = AsyncProducer(
            self._producer_urls[0], header, open_timeout=open_timeout
        )
        self._consumer = AsyncConsumer(
            self._consumer_urls[0],
            header,
            open_timeout=open_timeout,
            on_message=self._on_reply_message,
        )
        #: the calls waiting for replies (sans-I/O, see :mod:`.matching`)
        self._matcher = ReplyMatcher(
            self.topic,
            Reassembler(
                max_size=int(
                    setting(config, "max_request_size", limits.MAX_REQUEST_SIZE)
                ),
                timeout=float(
                    setting(config, "fragment_timeout", limits.DEFAULT_FRAGMENT_TIMEOUT)
                ),
                buffer_factory=buffer_factory(
                    int(setting(config, "spool_threshold", DEFAULT_SPOOL_THRESHOLD))
                ),
            ),
        )
        #: replies come on a persistent topic: the broker keeps them for us
        #: while the reply connection is down
        self._replies_persistent = "/persistent/" in self._consumer.url
        self._tasks: list[asyncio.Task[None]] = []
        #: requests being sent again through another front (see _may_resend)
        self._resends = set()
        #: the protocol extensions the backend advertised (``dasfGeoFeatures``
        #: of its last ``pong``, ``info`` or ``api_info`` reply); None until
        #: one came
        self.features: frozenset[str] | None = None
        self._started = False
        self._closed = False
        self._producer_lock = None
        #: the reply of the last successful :meth:`call` (its
        #: :meth:`Reply.findings`, its properties), or None
        self.last_reply: Reply | None = None
        #: set while the reply connection is open: a request is only sent
        #: then, so that its reply never comes to a topic nobody listens on
        self._replies_ready = None

    @property
    def url(self) -> str:
        """The producer URL of the backend's topic (token hidden)."""
        return redact_url(self._producer.url)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

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
        await connect_first(self._consumer, self._consumer_urls, self._fronts)
        self._replies_ready.set()
        try:
            await connect_first(self._producer, self._producer_urls, self._fronts)
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
        for task in [*self._tasks, *self._resends]:
            task.cancel()
        # the connections close first: a task that lost its cancellation
        # (asyncio.wait_for in Python 3.11 can swallow one that arrives as
        # a connect completes) then finds them closed instead of waiting on
        # an open one for ever; the wait for the tasks is bounded as well
        await self._producer.close()
        await self._consumer.close()
        tasks, self._tasks = self._tasks, []
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=_CLOSE_TIMEOUT)
            for task in stuck:
                logger.warning(
                    "a task of the client for topic %r did not stop within "
                    "%g s of closing: %r",
                    self.topic,
                    _CLOSE_TIMEOUT,
                    task,
                )
            for task in tasks:
                if task.done() and not task.cancelled():
                    task.exception()  # retrieved: not raised at close
        self._matcher.fail_all(
            TransportError(f"the client for topic {self.topic!r} was closed")
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
        self._matcher.receive(msg.properties, msg.payload, time.monotonic())

    @property
    def _pending(self) -> dict[str, _Pending]:
        """The calls waiting for a reply, by context (the matcher's)."""
        return self._matcher.pending

    async def _expire_fragments(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._matcher.expire(time.monotonic())

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
        timeout, what, opts = self.settle(payload, message_type, timeout, what, options)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = loop.create_future()
        # the common case: one message, sent at once; its ack is checked when
        # it comes, the reply is awaited meanwhile
        context = self.send_at_once(
            payload, message_type, what, progress, accept, future, opts
        )
        sent = context is not None
        if context is None:
            context = self._contexts.next()
            self._matcher.expect(context, future, what, progress, opts.max_size)
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
                producer, props, size = await self.prepare_send(
                    context, message_type, accept, opts
                )
                on_acked = _upload_progress(progress)
                await self._across_fronts(
                    producer,
                    lambda p: send_payload(p, payload, props, size, on_acked),
                )
            return await future
        except asyncio.CancelledError:
            if not timed_out:
                raise
            uncancel = getattr(task, "uncancel", None)
            if uncancel is not None:
                uncancel()
            raise self.no_reply(what, timeout) from None
        finally:
            timer.cancel()
            self.forget(context)
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

    def check_size(
        self,
        payload: bytes | bytearray | memoryview | OutgoingParts,
        options: TransferOptions,
        what: str,
    ) -> None:
        """Refuse to send a request above the call's ``max_size``.

        Part of the internal API of the blocking bridge, like
        :meth:`settle`, :meth:`no_reply`, :meth:`result_of`,
        :meth:`prepare_send` (with the streamed call),
        :meth:`send_at_once`, :meth:`forget` and :attr:`closed`.

        Raises:
            PayloadTooLarge: naming the sizes; nothing was sent.
        """
        check_request_size(payload, options, what, self.topic)

    def settle(
        self,
        payload: bytes | bytearray | memoryview | OutgoingParts | StreamedUpload,
        message_type: MessageType | str,
        timeout: float | None,
        what: str | None,
        options: TransferOptions | None,
    ) -> tuple[float, str, TransferOptions]:
        """A request's seconds to wait, its name in errors and its options.

        The defaults of :meth:`request` filled in: the client's timeout, the
        message type's name, the enclosing
        :func:`~dasf_geo.protocol.options.transfer_options` under
        ``options``. A payload of known size is checked against the call's
        ``max_size`` (a :class:`StreamedUpload` is checked as it is sent).

        Raises:
            PayloadTooLarge: naming the sizes; nothing was sent.
        """
        timeout = self.timeout if timeout is None else timeout
        what = what or f"a {MessageType(message_type).value} message"
        opts = current_transfer_options().merge(options)
        if not isinstance(payload, StreamedUpload):
            self.check_size(payload, opts, what)
        return timeout, what, opts

    async def prepare_send(
        self,
        context: str,
        message_type: MessageType | str,
        accept: Iterable[str] | None,
        options: TransferOptions,
    ) -> tuple[AsyncProducer, dict[str, Any], int]:
        """Get ready to send request ``context`` the slow way.

        Waits while the reply connection is being reopened (a client closed
        meanwhile raises), opens the producer if it is not connected, and
        returns it with the request's properties and its fragment size.

        Raises:
            TransportError: the client was closed, or no broker front
                could be reached.
        """
        ready = self._replies_ready
        if ready is not None and not ready.is_set():
            await ready.wait()  # the reply connection is being reopened
            if self._closed:
                raise TransportError(f"the client for topic {self.topic!r} was closed")
        producer = self._producer
        if not producer.connected:
            producer = await self._ensure_producer()
        props = call_properties(
            self.response_topic, context, message_type, accept, options
        )
        return producer, props, options.fragment_size or self.max_payload_size

    def no_reply(self, what: str, timeout: float) -> RequestTimeout:
        """The error of a request ``what`` that got no reply in ``timeout`` s."""
        return RequestTimeout(
            f"no reply from topic {self.topic!r} to {what} within {timeout:g} s",
            url=self.url,
            topic=self.topic,
        )

    def result_of(self, reply: Reply) -> Any:
        """The result of :meth:`call` from its ``reply``.

        Warns of the reply's findings (an error reply's too, before its
        error), raises the error of an error reply, keeps the reply as
        :attr:`last_reply` and returns its value.
        """
        warn_findings(reply)
        raise_for_status(reply, self.topic)
        self.last_reply = reply
        return reply.value()

    def send_at_once(
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

        On the event loop. Registers ``future`` (an asyncio future, or any
        waiter with ``done``, ``set_result`` and ``set_exception``) for the
        reply and returns the request's context; returns None (nothing
        sent, nothing registered) when the request needs the slow path (a
        connection to open, a full window, fragments: :meth:`request`).
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
        props = call_properties(
            self.response_topic, context, message_type, accept, options
        )
        message = one_message(payload)
        props.update(message.properties)
        self._matcher.expect(context, future, what, progress, options.max_size)
        try:
            ack = producer.submit_now(message.payload, props)
        except TransportError:
            self._matcher.forget(context)
            return None
        ack.add_done_callback(
            lambda fut: self._check_ack(
                fut, context, producer.url, (message.payload, props)
            )
        )
        # the acks of earlier replies go out now, with the request, instead
        # of waking the loop (and the broker) once more when their timer fires
        self._consumer.flush_acks()
        return context

    def forget(self, context: str) -> None:
        """On the event loop: stop waiting for the reply to ``context``."""
        self._matcher.forget(context)

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
        return self.result_of(reply)

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
