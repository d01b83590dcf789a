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

Errors never go unanswered: a payload that is not base64, not UTF-8 JSON,
or fails validation gets an error reply; validation errors carry
pydantic's structured error list in the ``dasfGeoErrors`` property.

A handler with ``part_media_types`` (such as :class:`ModuleHandler`) also
takes multipart requests (:mod:`dasf_geo.protocol.parts`): the listener
says so in the ``dasfGeoFeatures`` property of its ``pong``, ``info`` and
``api_info`` replies, cuts such a request into its JSON and its binary
parts, and removes the parts' temporary files once it is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from dasf_geo.exceptions import (
    ConnectionFailed,
    DasfGeoError,
    FragmentError,
    PartError,
    ProtocolError,
    TransportError,
)
from dasf_geo.protocol import limits
from dasf_geo.protocol.constants import (
    DEFAULT_MAX_PAYLOAD_SIZE,
    EXT_ACCEPT,
    EXT_ERRORS,
    EXT_FEATURES,
    EXT_PARTS,
    EXT_SIZE,
    KEY_MESSAGE_TYPE,
    KEY_REQUEST_CONTEXT,
    KEY_RESPONSE_TOPIC,
    MessageType,
    PropertyKeys,
    Status,
)
from dasf_geo.protocol.fragments import Reassembler, fits_one_message, one_message
from dasf_geo.protocol.messages import (
    ConsumerMessage,
    RequestHeader,
    parse_request_header,
    reply_properties,
)
from dasf_geo.protocol.options import (
    TOO_LARGE_ERROR,
    TransferOptions,
    format_size,
)
from dasf_geo.protocol.parts import features_property, parse_parts
from dasf_geo.protocol.progress import ReportSender
from dasf_geo.transport._common import (
    DEFAULT_SPOOL_THRESHOLD,
    MessagingSettings,
    OutgoingFile,
    add_query,
    buffer_factory,
    header_of,
    payload_bytes,
    received_parts,
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
from dasf_geo.transport.handler import (
    FunctionReply,
    RequestHandler,
    _over_limit,
    _RequestError,
    _RequestTooLarge,
    default_subscription,
    parse_accept,
    structured_errors,
)

__all__ = [
    "Listener",
    "on_listening",
]

logger = logging.getLogger("dasf_geo.transport.backend")

#: Called with the :class:`Listener` once it consumes its topic (used by
#: ``dasf-geo serve`` to print how to call the service).
on_listening: list[Callable[[Listener], None]] = []

#: Fragmented requests one backend receives at a time (``max_incomplete_requests``).
DEFAULT_MAX_INCOMPLETE = 64
#: Decoded bytes of incomplete requests one backend holds in memory
#: (``max_incomplete_bytes``); larger payloads are spooled to a file.
DEFAULT_MAX_INCOMPLETE_BYTES = 256 * 1024 * 1024
#: How often a request whose reply could not be sent is redelivered (on a
#: persistent topic) before it is acknowledged and given up.
MAX_REPLY_REDELIVERIES = 3
#: Requests that failed while their fragments arrived, remembered so that
#: their later fragments are dropped instead of answered again.
REMEMBER_FAILED = 4096
#: Seconds before the first reconnect attempt, and the longest wait.
RECONNECT_FIRST_DELAY = 0.1
RECONNECT_MAX_DELAY = 10.0

_FRAGMENT = PropertyKeys.FRAGMENT.value
#: message types that answer something: acknowledged, never run or answered
_ANSWERS = frozenset(
    {
        MessageType.PONG.value,
        MessageType.RESPONSE.value,
        MessageType.PROGRESS.value,
        MessageType.LOG.value,
    }
)


@dataclass
class _Incoming:
    header: RequestHeader
    message_ids: list[str] = field(default_factory=list)
    #: media types the caller takes as a raw binary reply (``dasfGeoAccept``)
    accept: frozenset[str] = frozenset()
    #: the raw ``dasfGeoParts`` property of a multipart request, else None
    parts: Any = None
    #: the caller's per-call options (``dasfGeoFragmentSize``, …)
    options: TransferOptions = field(default_factory=TransferOptions)
    #: what is wrong with those properties (answered with an error), if anything
    options_error: str | None = None
    #: the called function's own options (see :class:`FunctionReply`)
    function_options: TransferOptions = field(default_factory=TransferOptions)
    #: ``redeliveryCount`` of the message that completed the request
    redelivery_count: int = 0
    #: decoded bytes of its fragments held in memory so far
    held_bytes: int = 0
    #: its fragments are spooled to a file (announced above the threshold)
    spooled: bool = False


class Listener:
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
        self.consumer_url = add_query(
            config.get_topic_url(self.topic, self.subscription),
            {
                "subscriptionType": self.subscription_type,
                "receiverQueueSize": max(receiver_queue, 16),
            },
        )
        self._consumer = AsyncConsumer(
            self.consumer_url,
            self.header,
            open_timeout=self.open_timeout,
            on_message=self._on_message,
        )
        self.spool_threshold = int(
            setting(config, "spool_threshold", DEFAULT_SPOOL_THRESHOLD)
        )
        self._reassembler = Reassembler(
            max_size=int(setting(config, "max_request_size", limits.MAX_REQUEST_SIZE)),
            timeout=float(
                setting(config, "fragment_timeout", limits.DEFAULT_FRAGMENT_TIMEOUT)
            ),
            buffer_factory=buffer_factory(self.spool_threshold),
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
        #: decoded bytes of incomplete requests held in memory
        self.incomplete_bytes = 0
        #: requests that failed while their fragments arrived (key -> time)
        self._failed: dict[tuple[str, str], float] = {}
        #: the topic is persistent: unsent replies may be negatively acked
        self._persistent = "/persistent/" in self.consumer_url
        self._incoming: dict[tuple[str, str], _Incoming] = {}
        self._producers: dict[str, tuple[AsyncProducer, float]] = {}
        self._producer_locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: one future per request in progress, done once it is answered
        self._running: set[asyncio.Future[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._active = 0
        self._pool = ThreadPoolExecutor(
            max_workers=self.max_workers, thread_name_prefix=f"dasf-geo {self.topic}"
        )
        self._stopping: asyncio.Event | None = None
        self.connected = asyncio.Event()
        #: number of requests answered so far (any status)
        self.answered = 0
        #: what ``pong``, ``info`` and ``api_info`` replies advertise
        self._features: dict[str, Any] = (
            {EXT_FEATURES: features_property()}
            if getattr(handler, "part_media_types", None)
            else {}
        )

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
        await self._consumer.connect()
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
            for producer, _ in list(self._producers.values()):
                await producer.close()
            self._producers.clear()
            self._pool.shutdown(wait=False)

    async def _consume_until_stopped(self) -> None:
        """Wait for the stop signal; reconnect whenever the connection drops.

        Messages are handled by :meth:`_on_message` as they arrive.
        """
        assert self._stopping is not None
        stop_wait = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                closed = asyncio.ensure_future(self._consumer.wait_closed())
                await asyncio.wait(
                    {closed, stop_wait}, return_when=asyncio.FIRST_COMPLETED
                )
                closed.cancel()
                if self._stopping.is_set():
                    break
                self.connected.clear()
                logger.warning(
                    "lost the connection to the broker: %s",
                    self._consumer._closed_error(),
                )
                if not await self._reconnect():
                    break
        finally:
            stop_wait.cancel()

    async def _reconnect(self) -> bool:
        """Open the consumer again; retry with backoff until stopped.

        Every failure (a refused handshake, a peer that hangs up before the
        upgrade, a timeout) is retried after a capped, jittered exponential
        delay (:func:`~dasf_geo.transport.connection.backoff_delays`).
        """
        assert self._stopping is not None
        delays = backoff_delays(RECONNECT_FIRST_DELAY, RECONNECT_MAX_DELAY)
        attempt = 1
        while not self._stopping.is_set():
            await self._consumer.close()
            attempt += 1
            try:
                await self._consumer.connect()
            except TransportError as exc:
                logger.warning("connection attempt %d failed: %s", attempt, exc)
            else:
                logger.info(
                    "connection attempt %d: reconnected to %s",
                    attempt,
                    redact_url(self.consumer_url),
                )
                self.connected.set()
                return True
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), next(delays))
        return False

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for key, error in self._reassembler.expire(now):
                incoming = self._drop_incoming(key, now)  # type: ignore[arg-type]
                if incoming is not None:
                    self._spawn(
                        self._reply_error(incoming, f"error receiving request: {error}")
                    )
            horizon = now - 2 * self._reassembler.timeout
            for key, failed_at in list(self._failed.items()):
                if failed_at >= horizon:
                    break  # in order of failure
                del self._failed[key]
            for topic, (producer, used) in list(self._producers.items()):
                if self.keep_alive and now - used > self.keep_alive:
                    self._producers.pop(topic, None)
                    await producer.close()

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

    def _drop_incoming(
        self, key: tuple[str, str], now: float | None = None
    ) -> _Incoming | None:
        """Forget an incomplete request; with ``now``, as failed at that time."""
        incoming = self._incoming.pop(key, None)
        if incoming is not None:
            self.incomplete_bytes -= incoming.held_bytes
            incoming.held_bytes = 0
        self._reassembler.discard(key)
        if now is not None:
            self._failed[key] = now
            if len(self._failed) > REMEMBER_FAILED:
                del self._failed[next(iter(self._failed))]
        return incoming

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
        try:
            header = parse_request_header(msg.properties)
        except ProtocolError as exc:
            self._ack([msg.message_id])
            self._refuse_envelope(msg, exc)
            return
        if header.message_type in _ANSWERS:
            # an answer on a request topic (another backend's pong, a
            # misrouted reply): nothing to run and never answered
            self._ack([msg.message_id])
            return
        key = (header.request_context, header.response_topic)
        props = msg.properties
        fragment = props.get(_FRAGMENT) is not None
        if fragment and key in self._failed:
            # the rest of a request that was answered with an error already
            self._ack([msg.message_id])
            return
        incoming = self._incoming.get(key)
        if incoming is None:
            incoming = _Incoming(
                header,
                accept=parse_accept(props.get(EXT_ACCEPT)),
                parts=props.get(EXT_PARTS),
            )
            try:
                incoming.options = TransferOptions.from_properties(props)
            except ProtocolError as exc:
                incoming.options_error = str(exc)
            if fragment:
                if len(self._incoming) >= self.max_incomplete:
                    self._refuse_fragments(
                        key,
                        incoming,
                        msg,
                        "error receiving request: the backend on topic "
                        f"{self.topic!r} is receiving "
                        f"{len(self._incoming)} fragmented requests already (the "
                        f"limit is {self.max_incomplete}); try again later",
                    )
                    return
                total = props.get(EXT_SIZE)
                incoming.spooled = (
                    isinstance(total, int) and total > self.spool_threshold
                )
            self._incoming[key] = incoming
        try:
            data = self._reassembler.add(key, props, msg.payload, time.monotonic())
        except FragmentError as exc:
            text = f"error receiving request: {exc}"
            if incoming.parts is not None and "more than the limit" in text:
                text += _parts_over(incoming.parts, self._reassembler.max_size)
            self._refuse_fragments(key, incoming, msg, text)
            return
        if data is None:
            if not incoming.spooled:
                size = len(msg.payload) // 4 * 3
                incoming.held_bytes += size
                self.incomplete_bytes += size
                if self.incomplete_bytes > self.max_incomplete_bytes:
                    self._refuse_fragments(
                        key,
                        incoming,
                        msg,
                        "error receiving request: the backend on topic "
                        f"{self.topic!r} holds "
                        f"{format_size(self.incomplete_bytes)} of incomplete "
                        "requests, above its limit of "
                        f"{format_size(self.max_incomplete_bytes)}; try again later",
                    )
                    return
            # A fragment of a larger request: acknowledged at once, because a
            # broker holds only so many unacknowledged bytes per consumer
            # (32 MiB on dasf-geo broker) and a larger request would never
            # complete. The message that completes the request is acked
            # after the reply, so a request that fits one message is
            # redelivered if this backend dies; a fragmented one is not.
            self._ack([msg.message_id])
            return
        incoming.message_ids.append(msg.message_id)
        incoming.redelivery_count = msg.redelivery_count
        if self._incoming.get(key) is incoming:
            self._drop_incoming(key)
        self._dispatch(incoming, data)

    def _refuse_fragments(
        self,
        key: tuple[str, str],
        incoming: _Incoming,
        msg: ConsumerMessage,
        text: str,
    ) -> None:
        """Answer a request whose fragments cannot be taken, once.

        Its later fragments are acknowledged and dropped (see
        :data:`REMEMBER_FAILED`), so the caller gets exactly one error.
        """
        self._drop_incoming(key, time.monotonic())
        incoming.message_ids.append(msg.message_id)
        self._spawn(self._reply_error(incoming, text))

    def _refuse_envelope(self, msg: ConsumerMessage, error: ProtocolError) -> None:
        """Answer a message that names a reply topic but is no valid request.

        A message without a usable ``response_topic`` cannot be answered and
        is only logged.
        """
        props = msg.properties
        topic = props.get(KEY_RESPONSE_TOPIC)
        if not isinstance(topic, str) or not topic:
            logger.warning("dropping message %s: %s", msg.message_id, error)
            return
        context = props.get(KEY_REQUEST_CONTEXT)
        if props.get(KEY_MESSAGE_TYPE) in _ANSWERS:
            return  # never answer an answer
        logger.warning("answering message %s with an error: %s", msg.message_id, error)
        header = RequestHeader(
            response_topic=topic,
            request_context=(
                str(context)[:100]
                if isinstance(context, (str, int)) and not isinstance(context, bool)
                else ""
            ),
            message_type=MessageType.REQUEST.value,
        )
        self._spawn(
            self._reply_error(
                _Incoming(header), f"error in the request's properties: {error}"
            )
        )

    def _dispatch(self, incoming: _Incoming, data: bytes | bytearray) -> None:
        header = incoming.header
        mtype = header.message_type
        if mtype == MessageType.PING.value:
            self._spawn(self._reply(incoming, b"", MessageType.PONG, **self._features))
        elif mtype == MessageType.INFO.value:
            self._spawn(
                self._reply(incoming, b"", info=self.handler.info(), **self._features)
            )
        elif mtype == MessageType.API_INFO.value:
            self._spawn(
                self._reply(
                    incoming, b"", api_info=self.handler.api_info(), **self._features
                )
            )
        elif mtype == MessageType.REQUEST.value:
            if incoming.options_error is not None:
                self._spawn(
                    self._reply_error(
                        incoming,
                        f"error in the request's options: {incoming.options_error}",
                    )
                )
                return
            if self.queue_size is not None and self._active >= self.queue_size:
                self._spawn(
                    self._reply_error(
                        incoming,
                        f"request rejected: the backend's queue of {self.queue_size} "
                        "requests is full, try again later",
                    )
                )
                return
            self._start_request(incoming, data)
        elif mtype in _ANSWERS:  # pragma: no cover - dropped on arrival
            self._ack(incoming.message_ids)
        else:
            self._spawn(
                self._reply_error(incoming, f"unsupported message type {mtype!r}")
            )

    def _execute(
        self,
        data: bytes | bytearray,
        progress: ReportSender | None = None,
        accept: frozenset[str] = frozenset(),
        parts: Any = None,
        compression: int | None = None,
    ) -> bytes | OutgoingFile | FunctionReply:
        """Runs in a worker thread."""
        # only handlers asked for compression need to know the keyword
        extra = {} if compression is None else {"compression": compression}
        try:
            if parts is None:
                return self.handler.handle(
                    payload_bytes(data), progress, accept, **extra
                )
            return self._execute_parts(data, progress, accept, parts, extra)
        except ValidationError as exc:
            raise _RequestError(
                f"error validating request: {exc}", structured_errors(exc)
            ) from exc
        except PartError as exc:
            raise _RequestError(f"error reading the request's parts: {exc}") from exc
        except _RequestTooLarge as exc:
            assert exc.size is not None and exc.limit is not None
            raise _too_large(str(exc), exc.size, exc.limit, "request") from exc
        except ValueError as exc:
            # pydantic raises ValueError for JSON it cannot parse at all
            if isinstance(exc, DasfGeoError) or not _is_json_error(exc):
                raise
            raise _RequestError(f"error validating request: {exc}") from exc

    def _execute_parts(
        self,
        data: Any,
        progress: ReportSender | None,
        accept: frozenset[str],
        parts: Any,
        extra: dict[str, Any],
    ) -> bytes | OutgoingFile | FunctionReply:
        """Run a multipart request: cut it, hand the parts to the handler.

        The parts' temporary files (and a reassembly file) are removed once
        the handler returned, whatever happened.

        Raises:
            PartError: the handler takes no parts, or ``dasfGeoParts`` does
                not fit the payload.
        """
        media_types = getattr(self.handler, "part_media_types", None)
        try:
            if not media_types:
                raise PartError(
                    f"the backend on topic {self.topic!r} does not take multipart "
                    f"requests ({EXT_PARTS})"
                )
            specs = parse_parts(parts, len(data), media_types)
        except BaseException:
            close = getattr(data, "close", None)
            if close is not None:
                close()
            raise
        with received_parts(data, specs) as (head, binary):
            return self.handler.handle(  # type: ignore[call-arg]
                head, progress, accept, parts=binary, **extra
            )

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
        limits: list[tuple[int | None, str | None]] = [
            (incoming.options.max_size, None)
        ]
        if isinstance(result, FunctionReply):
            incoming.function_options = result.options
            limits.append((result.options.max_size, result.label))
            result = result.payload
        if result is not None:
            size = result.size if isinstance(result, OutgoingFile) else len(result)
            # the smallest limit the reply is above is the one to name
            over = [(lim, by) for lim, by in limits if lim is not None and size > lim]
            if over:
                if isinstance(result, OutgoingFile):
                    result.close()
                limit, by = min(over, key=lambda item: item[0])
                text = _over_limit("reply", size, limit, by)
                result, error = None, _too_large(text, size, limit, "reply")
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
        entry = self._producers.get(header.response_topic)
        if entry is None or not fits_one_message(
            len(result), self._fragment_size(incoming)
        ):
            return False
        producer = entry[0]
        if not producer.connected or not producer.has_room:
            return False
        props = reply_properties(
            header, self.topic, MessageType.RESPONSE, Status.SUCCESS
        )
        message = one_message(result)
        props.update(message.properties)
        try:
            ack = producer.submit_now(message.payload, props)
        except TransportError:
            return False
        self._producers[header.response_topic] = (producer, time.monotonic())
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
            if isinstance(error, _RequestError):
                await self._reply_error(incoming, error.text, error.errors)
            elif error is not None:
                logger.error(
                    "request %s failed",
                    incoming.header.request_context,
                    exc_info=(type(error), error, error.__traceback__),
                )
                if self.handler.debug:
                    detail = "".join(traceback.format_exception(error))
                else:
                    detail = str(error)
                text = f"error executing request: {type(error).__name__}: {detail}"
                await self._reply_error(incoming, text)
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
    ) -> None:
        extra: dict[str, Any] = {EXT_ERRORS: json.dumps(errors)} if errors else {}
        await self._reply(incoming, text.encode("utf-8"), status=Status.ERROR, **extra)

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
        props = reply_properties(header, self.topic, message_type, status, **extra)
        try:
            producer = await self._producer_for(header.response_topic)
            await send_payload(producer, payload, props, self._fragment_size(incoming))
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
        retry = (
            self._persistent
            and incoming.redelivery_count < MAX_REPLY_REDELIVERIES
            and len(incoming.message_ids) == 1
        )
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

    def _fragment_size(self, incoming: _Incoming) -> int:
        """The fragment size of a reply: the smallest of ours, the caller's
        and the function's."""
        size = self.max_payload_size
        for asked in (
            incoming.options.fragment_size,
            incoming.function_options.fragment_size,
        ):
            if asked is not None and asked < size:
                size = asked
        return size

    async def _producer_for(self, topic: str) -> AsyncProducer:
        lock = self._producer_locks.setdefault(topic, asyncio.Lock())
        async with lock:
            entry = self._producers.get(topic)
            if entry is not None and entry[0].connected:
                producer = entry[0]
            else:
                if entry is not None:
                    await entry[0].close()
                producer = await self._connect_producer(topic)
            self._producers[topic] = (producer, time.monotonic())
            return producer

    async def _connect_producer(self, topic: str) -> AsyncProducer:
        """A producer on ``topic``, trying again after a failed handshake.

        A reply whose producer cannot connect is lost to its caller (the
        request stays unacknowledged), so a failure that may be passing (a
        handshake that broke off on a busy machine) gets
        :data:`~dasf_geo.transport.backend.REPLY_CONNECT_DELAYS` more attempts.

        Raises:
            ConnectionFailed: the last attempt failed too.
        """
        # the delays are a setting of dasf_geo.transport.backend, read there
        from dasf_geo.transport import backend

        for delay in (*backend.REPLY_CONNECT_DELAYS, None):
            producer = AsyncProducer(
                self.config.get_topic_url(topic),
                self.header,
                open_timeout=self.open_timeout,
            )
            try:
                await producer.connect()
                return producer
            except ConnectionFailed as exc:
                if delay is None:
                    raise
                logger.warning("%s; trying again in %g s", exc, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


def _too_large(text: str, size: int, limit: int, what: str) -> _RequestError:
    """The error answering a ``what`` ("request"/"reply") above a max_size."""
    return _RequestError(
        text,
        [
            {
                "type": TOO_LARGE_ERROR,
                "loc": [what],
                "msg": text,
                "ctx": {"size": size, "limit": limit},
            }
        ],
    )


def _parts_over(parts: Any, limit: int) -> str:
    """Which parts of a multipart request that is too large are the cause.

    Returns ``"; part 1 (…) is above the limit of N bytes"`` (or, when no
    part alone is, the largest part), to append to the error.
    """
    try:
        specs = parse_parts(parts, None)
    except PartError as exc:
        return f"; {exc}"
    over = [spec for spec in specs if spec.size > limit]
    if over:
        names = ", ".join(spec.describe() for spec in over)
        verb = "is" if len(over) == 1 else "are"
        return f"; {names} {verb} above the limit of {limit} bytes"
    largest = max(specs[1:] or specs, key=lambda spec: spec.size)
    return f"; the largest part is {largest.describe()}"


def _is_json_error(exc: ValueError) -> bool:
    text = str(exc).lower()
    return "json" in text or "utf-8" in text or "utf8" in text
