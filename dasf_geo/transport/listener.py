"""The listener: consume a backend topic and answer its requests.

:class:`Listener` consumes the backend's topic on a *stable* subscription
name with the ``Shared`` subscription type by default, so that N processes
listening on one topic share the work and every request runs once. (Set
``subscription_type="Exclusive"`` or a per-process ``subscription_name`` in
the messaging config to opt out: with distinct subscription names every
process gets every request, which is what the reference does.)

Requests run in a thread pool of ``max_workers``; at most ``queue_size``
requests are accepted at a time and further ones get a "queue full" error
reply at once. A request is acknowledged only after its reply has been
sent, so a request whose backend dies mid-way is redelivered to another
consumer of the subscription (at-least-once execution; the caller keeps
the first reply). Fragments of a request too large for one message are
acknowledged as they arrive (a broker bounds the unacknowledged bytes per
consumer), so such a request is not redelivered: its caller gets an error
or its timeout instead.

Errors never go unanswered, once per request: what to do with each
message is decided without I/O in :mod:`dasf_geo.transport.dispatch`, the
replies (error replies with pydantic's structured errors in
``dasfGeoErrors``) are built in :mod:`dasf_geo.transport.answers`. A
handler with ``part_media_types`` (such as :class:`ModuleHandler`) also
takes multipart requests, advertised in the ``dasfGeoFeatures`` property
of ``pong``, ``info`` and ``api_info`` replies. Reconnecting when the
connection drops is in :mod:`dasf_geo.transport.listener_reconnect`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from dasf_geo.exceptions import (
    DasfGeoError,
    TransportError,
)
from dasf_geo.protocol import limits
from dasf_geo.protocol.constants import (
    DEFAULT_MAX_PAYLOAD_SIZE,
    EXT_FEATURES,
    MessageType,
    Status,
)
from dasf_geo.protocol.fragments import Reassembler, fits_one_message, one_message
from dasf_geo.protocol.messages import (
    ConsumerMessage,
)
from dasf_geo.protocol.parts import features_property
from dasf_geo.protocol.progress import ReportSender
from dasf_geo.transport._common import (
    DEFAULT_SPOOL_THRESHOLD,
    MessagingSettings,
    OutgoingFile,
    buffer_factory,
    header_of,
    send_payload,
    setting,
)
from dasf_geo.transport.answers import (
    answer_properties,
    checked_result,
    error_findings,
    error_reply,
    execute,
    failure_reply,
    fragment_size,
)
from dasf_geo.transport.connection import (
    AsyncConsumer,
    check_ack,
    redact_url,
)
from dasf_geo.transport.dispatch import (
    DEFAULT_MAX_INCOMPLETE,
    DEFAULT_MAX_INCOMPLETE_BYTES,
    Acknowledge,
    Answer,
    Deliver,
    Refuse,
    RequestIntake,
    Run,
    _Incoming,
    redeliverable,
)
from dasf_geo.transport.failover import Fronts, connect_first, front_urls
from dasf_geo.transport.handler import (
    FunctionReply,
    RequestHandler,
    default_subscription,
)
from dasf_geo.transport.listener_reconnect import (  # noqa: F401  (re-exported)
    RECONNECT_FIRST_DELAY,
    RECONNECT_MAX_DELAY,
    ListenerReconnect,
)
from dasf_geo.transport.producers import ReplyProducers

__all__ = [
    "Listener",
    "on_listening",
]

logger = logging.getLogger("dasf_geo.transport.backend")

#: Called with the :class:`Listener` once it consumes its topic (used by
#: ``dasf-geo serve`` to print how to call the service).
on_listening: list[Callable[[Listener], None]] = []

#: How often a request whose reply could not be sent is redelivered (on a
#: persistent topic) before it is acknowledged and given up.
MAX_REPLY_REDELIVERIES = 3


class Listener(ListenerReconnect):
    """Consumes a backend topic and answers its requests.

    Args:
        handler: runs requests (see :class:`ModuleHandler`).
        config: the messaging config.
    """

    def __init__(self, handler: RequestHandler, config: MessagingSettings) -> None:
        self.handler = handler
        self.config = config
        self.topic: str = handler.topic
        self.max_workers: int = int(setting(config, "max_workers", 1) or 1)
        queue_size = setting(config, "queue_size", None)
        self.queue_size: int | None = None if queue_size is None else int(queue_size)
        self.max_payload_size: int = int(
            setting(config, "max_payload_size", DEFAULT_MAX_PAYLOAD_SIZE)
        )
        self.keep_alive: float = float(
            setting(config, "producer_keep_alive", limits.DEFAULT_PRODUCER_KEEP_ALIVE)
        )
        self.open_timeout: float = float(
            setting(
                config, "producer_connection_timeout", limits.DEFAULT_CONNECTION_TIMEOUT
            )
        )
        self.subscription: str = setting(
            config, "subscription_name", default_subscription(self.topic)
        )
        self.subscription_type: str = setting(config, "subscription_type", "Shared")
        self.header = header_of(config)
        receiver_queue = max(self.max_workers, self.queue_size or 0, 1) * 2
        # one URL per broker front; the consumer and the reply producers
        # move together (see transport/failover.py)
        self._consumer_urls = front_urls(
            config,
            self.topic,
            self.subscription,
            {
                "subscriptionType": self.subscription_type,
                "receiverQueueSize": max(receiver_queue, 16),
            },
        )
        self._fronts = Fronts(
            len(self._consumer_urls), f"the backend of topic {self.topic!r}"
        )
        #: the consumer's URL on the front in use
        self.consumer_url = self._consumer_urls[0]
        #: the consumer's URL on each broker front, in the configured order
        self.consumer_urls: tuple[str, ...] = tuple(self._consumer_urls)
        self._consumer = AsyncConsumer(
            self.consumer_url,
            self.header,
            open_timeout=self.open_timeout,
            on_message=self._on_message,
        )
        self.spool_threshold = int(
            setting(config, "spool_threshold", DEFAULT_SPOOL_THRESHOLD)
        )
        #: most fragmented requests received at a time, and most decoded
        #: bytes of them held in memory; beyond, requests get an error reply
        self.max_incomplete: int = int(
            setting(config, "max_incomplete_requests", DEFAULT_MAX_INCOMPLETE)
            or DEFAULT_MAX_INCOMPLETE
        )
        self.max_incomplete_bytes: int = int(
            setting(config, "max_incomplete_bytes", DEFAULT_MAX_INCOMPLETE_BYTES)
            or DEFAULT_MAX_INCOMPLETE_BYTES
        )
        #: what to do with each message (sans-I/O, see :mod:`.dispatch`)
        self._intake = RequestIntake(
            self.topic,
            Reassembler(
                max_size=int(
                    setting(config, "max_request_size", limits.MAX_REQUEST_SIZE)
                ),
                timeout=float(
                    setting(config, "fragment_timeout", limits.DEFAULT_FRAGMENT_TIMEOUT)
                ),
                buffer_factory=buffer_factory(self.spool_threshold),
            ),
            max_incomplete=self.max_incomplete,
            max_incomplete_bytes=self.max_incomplete_bytes,
            spool_threshold=self.spool_threshold,
            queue_size=self.queue_size,
        )
        #: the topic is persistent: unsent replies may be negatively acked
        self._persistent = "/persistent/" in self.consumer_url
        #: producers on the callers' response topics
        self._producers = ReplyProducers(
            config, self.header, self.open_timeout, self.keep_alive, self._fronts
        )
        self._tasks: set[asyncio.Task[None]] = set()
        #: one future per request in progress, done once it is answered
        self._running: set[asyncio.Future[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._active = 0
        self._pool = ThreadPoolExecutor(
            max_workers=self.max_workers, thread_name_prefix=f"dasf-geo {self.topic}"
        )
        self._stopping = None
        self.connected = asyncio.Event()
        #: number of requests answered so far (any status)
        self.answered = 0
        #: what ``pong``, ``info`` and ``api_info`` replies advertise
        self._features: dict[str, Any] = (
            {EXT_FEATURES: features_property()}
            if getattr(handler, "part_media_types", None)
            else {}
        )

    @property
    def incomplete_bytes(self) -> int:
        """Decoded bytes of incomplete requests held in memory now."""
        return self._intake.incomplete_bytes

    @property
    def _incoming(self) -> dict[tuple[str, str], _Incoming]:
        return self._intake.incoming

    @property
    def _reassembler(self) -> Reassembler:
        return self._intake.reassembler

    # --- life cycle ---------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Consume until ``stop`` is set, then finish in-flight work and return.

        Reconnects with exponential backoff when the broker goes away.

        Raises:
            ConnectionFailed: the very first connection fails (so that a
                wrong URL is reported at once instead of retried forever).
        """
        self._stopping = stop or asyncio.Event()
        self._loop = asyncio.get_running_loop()
        await connect_first(self._consumer, self._consumer_urls, self._fronts)
        self.consumer_url = self._consumer.url
        logger.info("connection to %s established", redact_url(self.consumer_url))
        self.connected.set()
        for callback in list(on_listening):
            callback(self)
        housekeeping = asyncio.get_running_loop().create_task(self._housekeeping())
        try:
            await self._consume_until_stopped()
        finally:
            housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await housekeeping
            # messages that arrive from now on are left unacknowledged (the
            # broker gives them to another backend once this one is gone);
            # requests in progress are answered and acknowledged first
            if self._running or self._tasks:
                logger.info(
                    "finishing %d request(s) in progress",
                    len(self._running) + len(self._tasks),
                )
            while self._running or self._tasks:
                await asyncio.gather(
                    *self._running, *self._tasks, return_exceptions=True
                )
            await self._consumer.close()
            await self._producers.close()
            self._pool.shutdown(wait=False)

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for refusal in self._intake.expire(now):
                self._act(refusal)
            await self._producers.close_idle(now)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:  # a bug: say so once, keep serving
            logger.error(
                "error answering a request",
                exc_info=(type(error), error, error.__traceback__),
            )

    # --- message handling ---------------------------------------------------

    def _ack(self, message_ids: list[str]) -> None:
        # sent together with other acks due within a few milliseconds
        for message_id in message_ids:
            self._consumer.ack_soon(message_id)

    def _on_message(self, msg: ConsumerMessage) -> None:
        """Called by the consumer for every message, on the event loop."""
        if self._stopping is not None and self._stopping.is_set():
            return  # left unacked: redelivered to another backend
        try:
            self._handle_message(msg)
        except Exception:  # a bug must not cost the connection
            logger.exception("error handling message %s", msg.message_id)

    def _handle_message(self, msg: ConsumerMessage) -> None:
        event = self._intake.receive(msg, time.monotonic())
        if isinstance(event, Deliver):
            self._dispatch(event.incoming, event.data)
        elif event is not None:
            self._act(event)

    def _act(self, event: Acknowledge | Refuse) -> None:
        """Do what the intake decided: acknowledge, or answer with an error."""
        if isinstance(event, Acknowledge):
            self._ack(event.message_ids)
            return
        if event.ack_first:
            self._ack(list(event.ack_first))
        self._spawn(self._reply_error(event.incoming, event.text, event.errors))

    def _dispatch(self, incoming: _Incoming, data: bytes | bytearray) -> None:
        event = self._intake.dispatch(incoming, data, self._active)
        if isinstance(event, Run):
            self._start_request(incoming, data)
        elif isinstance(event, Answer):
            if event.kind == MessageType.PING.value:
                reply = self._reply(incoming, b"", MessageType.PONG, **self._features)
            elif event.kind == MessageType.INFO.value:
                reply = self._reply(
                    incoming, b"", info=self.handler.info(), **self._features
                )
            else:
                reply = self._reply(
                    incoming, b"", api_info=self.handler.api_info(), **self._features
                )
            self._spawn(reply)
        else:
            self._act(event)

    def _execute(
        self,
        data: bytes | bytearray,
        progress: ReportSender | None = None,
        accept: frozenset[str] = frozenset(),
        parts: Any = None,
        compression: int | None = None,
    ) -> bytes | OutgoingFile | FunctionReply:
        """Runs in a worker thread (see :func:`~.answers.execute`)."""
        return execute(self.handler, data, progress, accept, parts, compression)

    def _start_request(self, incoming: _Incoming, data: bytes | bytearray) -> None:
        """Run a request in the worker pool; answer it when it is done.

        No task is created per request: the pool's future hands the result
        back to the event loop, where a small reply is sent at once (see
        :meth:`_request_done`).
        """
        loop = self._loop
        assert loop is not None
        self._active += 1
        done: asyncio.Future[None] = loop.create_future()
        self._running.add(done)
        done.add_done_callback(self._running.discard)
        try:
            work = self._pool.submit(
                self._execute,
                data,
                self._progress_sender(incoming),
                incoming.accept,
                incoming.parts,
                incoming.options.compression,
            )
        except RuntimeError as exc:  # the pool is shut down
            self._active -= 1
            done.set_result(None)
            self._spawn(self._reply_error(incoming, f"error executing request: {exc}"))
            return
        work.add_done_callback(
            lambda w: loop.call_soon_threadsafe(self._request_done, incoming, w, done)
        )

    def _request_done(
        self, incoming: _Incoming, work: Future[Any], done: asyncio.Future[None]
    ) -> None:
        """On the event loop: answer a request whose function returned."""
        self._active -= 1
        error = work.exception()
        result = None if error is not None else work.result()
        result, error = checked_result(incoming, result, error)
        if isinstance(result, (bytes, bytearray)) and self._reply_now(
            incoming, result, done
        ):
            return
        self._spawn(self._finish_request(incoming, result, error, done))

    def _reply_now(
        self,
        incoming: _Incoming,
        result: bytes | bytearray,
        done: asyncio.Future[None],
    ) -> bool:
        """Send a small successful reply at once, if a producer is ready.

        The request is acknowledged when the broker acknowledges the reply.
        Returns False (nothing sent) when the slow path must do it.
        """
        header = incoming.header
        if not fits_one_message(
            len(result), fragment_size(incoming, self.max_payload_size)
        ):
            return False
        producer = self._producers.ready(header.response_topic)
        if producer is None:
            return False
        props = answer_properties(
            incoming, self.topic, MessageType.RESPONSE, Status.SUCCESS
        )
        message = one_message(result)
        props.update(message.properties)
        try:
            ack = producer.submit_now(message.payload, props)
        except TransportError:
            return False
        self._producers.used(header.response_topic, producer)
        # the acks of earlier requests go out now, with the reply, instead of
        # waking the loop (and the broker) once more when their timer fires
        self._consumer.flush_acks()

        def acked(fut: asyncio.Future[Any]) -> None:
            try:
                check_ack(fut.result(), producer.url)
            except Exception as exc:
                self._reply_failed(incoming, exc)
            else:
                self.answered += 1
                self._ack(incoming.message_ids)
            finally:
                if not done.done():
                    done.set_result(None)

        ack.add_done_callback(acked)
        return True

    async def _finish_request(
        self,
        incoming: _Incoming,
        result: Any,
        error: BaseException | None,
        done: asyncio.Future[None],
    ) -> None:
        """Answer a request the slow way (errors, large or file replies)."""
        try:
            if error is not None:
                text, errors = failure_reply(
                    error, incoming.header.request_context, self.handler.debug
                )
                await self._reply_error(incoming, text, errors, error_findings(error))
            else:
                try:
                    await self._reply(incoming, result, status=Status.SUCCESS)
                finally:
                    if isinstance(result, OutgoingFile):
                        result.close()
        finally:
            if not done.done():
                done.set_result(None)

    def _progress_sender(self, incoming: _Incoming) -> ReportSender:
        """A sender for progress reports of one request (called from a worker)."""
        loop = asyncio.get_running_loop()

        def send(report_json: str, status: str) -> None:
            try:
                state: Status | None = Status(status)
            except ValueError:
                state = None
            future = asyncio.run_coroutine_threadsafe(
                self._reply(
                    incoming,
                    report_json.encode("utf-8"),
                    MessageType.PROGRESS,
                    state,
                    _final=False,
                ),
                loop,
            )
            try:
                # wait, so that reports arrive in order and before the reply
                future.result(self.open_timeout)
            except Exception as exc:  # a lost report must not fail the request
                logger.warning("could not send a progress report: %s", exc)

        return send

    async def _reply_error(
        self,
        incoming: _Incoming,
        text: str,
        errors: list[dict[str, Any]] | None = None,
        findings: str | None = None,
    ) -> None:
        payload, extra = error_reply(text, errors, findings)
        await self._reply(incoming, payload, status=Status.ERROR, **extra)

    async def _reply(
        self,
        incoming: _Incoming,
        payload: bytes | OutgoingFile,
        message_type: MessageType = MessageType.RESPONSE,
        status: Status | None = None,
        _final: bool = True,
        **extra: Any,
    ) -> None:
        header = incoming.header
        props = answer_properties(incoming, self.topic, message_type, status, **extra)
        try:
            producer = await self._producers.get(header.response_topic)
            await send_payload(
                producer, payload, props, fragment_size(incoming, self.max_payload_size)
            )
        except (DasfGeoError, OSError) as exc:
            # a reply topic the config or the broker refuses, a broker gone
            if not _final:
                raise TransportError(str(exc)) from exc  # a progress report
            self._reply_failed(incoming, exc)
            return
        if not _final:
            return  # a progress report: the request is still running
        self.answered += 1
        self._ack(incoming.message_ids)

    def _reply_failed(self, incoming: _Incoming, error: BaseException) -> None:
        """Log a reply that could not be sent, once, and settle its request.

        The request is acknowledged, so that it does not hold a place of
        the receive queue for good; on a persistent topic it is negatively
        acknowledged instead (redelivered, perhaps to another backend) up to
        :data:`MAX_REPLY_REDELIVERIES` times. If the consumer's connection
        is gone too, the (negative) ack is not sent and the broker
        redelivers the request anyway.
        """
        header = incoming.header
        retry = self._persistent and redeliverable(incoming, MAX_REPLY_REDELIVERIES)
        logger.error(
            "could not send the reply to request %s on topic %r: %s; the request is %s",
            header.request_context[:100],
            header.response_topic[:200],
            error,
            "given back for redelivery" if retry else "acknowledged and dropped",
        )
        if retry:
            with contextlib.suppress(TransportError):
                self._consumer.nack_now(incoming.message_ids[0])
        else:
            self._ack(incoming.message_ids)
