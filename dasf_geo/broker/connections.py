"""The broker's WebSocket connections: producers, consumers, status pings.

Each accepted connection is a :class:`picows.WSListener` driven by
callbacks, without a task per connection: frames arrive in
``on_ws_frame`` (fragmented messages are joined here, binary frames are
read as text) and go straight into the core; acks and deliveries are
written with one call each. Flow control without unbounded buffers:

- a producer's socket is no longer read while its topic is full
  (:meth:`~dasf_geo.broker.core.BrokerCore.is_full`) or while its acks are
  not being read (the transport holds 1 MiB); frames already read wait in
  the connection, at most one read buffer, which a fixed 1 MiB socket
  receive buffer keeps at a few MiB;
- a consumer is written to while its transport holds less than 1 MiB
  (``pause_writing``/``resume_writing``); the rest of its deliveries wait
  in the core, bounded by ``receiverQueueSize`` and the inflight bytes.

Keepalive: a connection silent for 20 s is pinged and closed (code 1011)
if nothing arrives within 60 s more.

The connections log to ``dasf_geo.broker.server``, as the server does.
The :class:`~dasf_geo.broker.server.Broker` creates them (its
``_listener``) and they use its ``core``, ``auth``, ``max_frame_size``, its
loop and its sets of open connections and waiting producers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections import deque
from typing import TYPE_CHECKING

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

from dasf_geo.broker.auth import Grant
from dasf_geo.broker.core import BrokerCore
from dasf_geo.broker.model import DEFAULT_RECEIVER_QUEUE_SIZE, Consumer, SubscribeError
from dasf_geo.broker.names import Route, TopicName
from dasf_geo.exceptions import ProtocolError

if TYPE_CHECKING:
    from dasf_geo.broker.server import Broker

__all__: list[str] = []

logger = logging.getLogger("dasf_geo.broker.server")

#: outgoing bytes a connection's transport holds before writing pauses
_WRITE_LIMIT = 1024 * 1024
#: seconds of silence before a ping, then seconds to wait for any frame
_PING_INTERVAL = 20.0
_PING_TIMEOUT = 60.0
#: a producer socket's kernel receive buffer (Linux doubles it): bounds
#: what one read takes in, so the broker's read buffer stays a few MiB
_PRODUCER_RCVBUF = 1024 * 1024
#: seconds to wait for the peer's close frame (or for the flush) on close
_CLOSE_TIMEOUT = 5.0

_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CONTINUATION = WSMsgType.CONTINUATION
_CLOSE = WSMsgType.CLOSE


class _Connection(WSListener):
    """An accepted WebSocket connection: frames in, frames out, closing.

    Subclasses handle whole messages in :meth:`message` and set up and tear
    down in :meth:`connected` and :meth:`disconnected`.
    """

    def __init__(self, broker: Broker, route: Route) -> None:
        super().__init__()
        assert broker.core is not None
        self.broker = broker
        self.core: BrokerCore = broker.core
        self.route = route
        self.transport: WSTransport | None = None
        #: True from the handshake until either side starts closing
        self.open = False
        #: writing paused: the transport holds _WRITE_LIMIT bytes
        self.write_blocked = False
        self.read_paused = False
        # keepalive: a frame arrived since the last look; idle since; ping
        self.seen = True
        self.idle_since = 0.0
        self.ping_sent: float | None = None
        # a fragmented message being joined
        self.parts: list[bytes] | None = None
        self.parts_size = 0
        self.abort_timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label}>"

    @property
    def label(self) -> str:
        """The peer's address, for logs and ``/topics``."""
        if self.transport is None:
            return "?"
        address = self.transport.underlying_transport.get_extra_info("peername")
        if isinstance(address, tuple) and len(address) >= 2:
            return f"{address[0]}:{address[1]}"
        return str(address)

    # picows callbacks

    def on_ws_connected(self, transport: WSTransport) -> None:
        """The handshake is done: start serving the connection."""
        self.transport = transport
        self.open = True
        transport.underlying_transport.set_write_buffer_limits(high=_WRITE_LIMIT)
        self.idle_since = self.broker.loop.time()
        self.broker.connection_opened(self)
        self.connected()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        """The TCP connection is gone: release what it held."""
        self.open = False
        self.broker.connection_closed(self)
        if self.abort_timer is not None:
            self.abort_timer.cancel()
            self.abort_timer = None
        self.parts = None
        self.disconnected()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        """One frame: whole text or binary messages go to :meth:`message`."""
        self.seen = True
        if (
            frame.fin
            and self.parts is None
            and self.open
            and not transport.is_close_frame_sent
        ):
            kind = frame.msg_type
            if kind is _TEXT or kind is _BINARY:
                self.message(frame.get_payload_as_bytes())
                return
        self._other_frame(transport, frame)

    def _other_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if self.open and transport.is_close_frame_sent:
            # picows closed the connection itself (an oversize or malformed
            # frame) and hangs up shortly: read nothing more from it; its
            # parser even delivers the rest of an oversize frame
            self.open = False
            self.parts = None
            transport.underlying_transport.pause_reading()
            self.read_paused = True
            self._abort_later()
            return
        kind = frame.msg_type
        if kind is _CLOSE:
            if self.open:  # the peer closes: echo its code, then hang up
                self.open = False
                if frame.payload_size >= 2:
                    transport.send_close(frame.get_close_code())
                else:
                    transport.send(_CLOSE, b"")
            transport.disconnect()
            self._abort_later()
            return
        if not self.open or kind not in (_TEXT, _BINARY, _CONTINUATION):
            return  # closing, or a pong (pings are answered by picows)
        if kind is _CONTINUATION:
            if self.parts is None:
                self.close(
                    WSCloseCode.PROTOCOL_ERROR,
                    "a continuation frame without a message to continue",
                )
                return
        elif self.parts is not None:
            self.close(
                WSCloseCode.PROTOCOL_ERROR,
                "a new message started before the fragmented one ended",
            )
            return
        else:
            self.parts = []
            self.parts_size = 0
        size = self.parts_size + frame.payload_size
        limit = self.broker.max_frame_size
        if size > limit:
            self.parts = None
            self.close(
                WSCloseCode.MESSAGE_TOO_BIG,
                f"fragmented message of at least {size} bytes exceeds limit of "
                f"{limit} bytes",
            )
            return
        assert self.parts is not None
        self.parts.append(frame.get_payload_as_bytes())
        self.parts_size = size
        if frame.fin:
            data = b"".join(self.parts)
            self.parts = None
            self.parts_size = 0
            self.message(data)

    def pause_writing(self) -> None:
        """The transport holds _WRITE_LIMIT bytes: stop adding to it."""
        self.write_blocked = True
        self._update_reading()

    def resume_writing(self) -> None:
        """The transport drained: writing may go on."""
        self.write_blocked = False
        self._update_reading()

    # for subclasses

    def connected(self) -> None:
        """Set up after the handshake."""

    def disconnected(self) -> None:
        """Tear down after the connection is gone."""

    def message(self, data: bytes) -> None:
        """Handle one whole message (text or binary) the peer sent."""

    def wants_pause(self) -> bool:
        """True while the peer's socket must not be read."""
        return self.write_blocked

    # helpers

    def _update_reading(self) -> None:
        pause = self.open and self.wants_pause()
        if pause != self.read_paused and self.transport is not None:
            self.read_paused = pause
            underlying = self.transport.underlying_transport
            if pause:
                underlying.pause_reading()
            else:
                underlying.resume_reading()

    def send(self, frame: bytes) -> None:
        """Send ``frame`` as a text message (ignored once closing)."""
        if self.open and self.transport is not None:
            self.transport.send(_TEXT, frame)

    def close(self, code: WSCloseCode, reason: str) -> None:
        """Start the closing handshake with ``code`` and ``reason``.

        Frames the peer still sends are read and dropped until its close
        frame arrives (then the broker hangs up); after _CLOSE_TIMEOUT the
        connection is aborted.
        """
        transport = self.transport
        if not self.open or transport is None:
            return
        self.open = False
        self.parts = None
        transport.send_close(code, _reason(reason).encode("utf-8"))
        if self.read_paused:  # read on, to see the peer's close frame
            self.read_paused = False
            transport.underlying_transport.resume_reading()
        self._abort_later()

    def _abort_later(self) -> None:
        if self.abort_timer is None and self.transport is not None:
            self.abort_timer = self.broker.loop.call_later(
                _CLOSE_TIMEOUT, self.transport.disconnect, False
            )

    def keepalive(self, now: float) -> None:
        """Ping a silent peer; close if it stays silent (called every second)."""
        if not self.open or self.transport is None:
            return
        if self.seen or self.read_paused:
            # a paused producer cannot answer: its silence is the broker's
            self.seen = False
            self.idle_since = now
            self.ping_sent = None
        elif self.ping_sent is None:
            if now - self.idle_since >= _PING_INTERVAL:
                self.transport.send_ping()
                self.ping_sent = now
        elif now - self.ping_sent >= _PING_TIMEOUT:
            logger.info(
                "closing %r: no answer to a ping within %gs", self, _PING_TIMEOUT
            )
            self.close(WSCloseCode.INTERNAL_ERROR, "keepalive ping timeout")
            self.transport.disconnect(False)


class _Producer(_Connection):
    """A producer: each message is published and acked on the same socket."""

    def connected(self) -> None:
        """Register the producer; wait at once if its topic is full."""
        assert self.route.topic is not None
        # picows reads whatever the kernel holds into one buffer that grows
        # to fit (and never shrinks): a fixed receive buffer bounds it, and
        # with it what is read while the topic is full
        assert self.transport is not None
        sock = self.transport.underlying_transport.get_extra_info("socket")
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _PRODUCER_RCVBUF)
        self.topic = self.core.add_producer(self.route.topic)
        #: messages read while the topic was full, published when it drains
        self.pending: deque[bytes] = deque()
        self.full = False
        if self.core.is_full(self.topic):
            self._wait_for_room()

    def disconnected(self) -> None:
        """Forget the producer and anything it sent that was not accepted."""
        self.broker.stop_waiting(self)
        self.pending.clear()
        self.core.remove_producer(self.topic)

    def message(self, data: bytes) -> None:
        """Publish ``data`` and send the ack (or keep it while the topic is full)."""
        if self.full:
            self.pending.append(data)
        else:
            self._publish(data)

    def wants_pause(self) -> bool:
        """Stop reading while the topic is full or the acks are not read."""
        return self.full or self.write_blocked

    def _publish(self, data: bytes) -> None:
        core = self.core
        try:
            ack = core.publish(self.topic, data)
        except Exception as exc:  # a bug must not cost other clients
            logger.exception("error publishing to %s", self.topic.name)
            ack = _unknown_error(exc)
        self.send(ack)
        if core.is_full(self.topic):
            self._wait_for_room()

    def _wait_for_room(self) -> None:
        # stop reading this socket until consumers ack: the producer's own
        # window of unacked sends then stops it (backpressure)
        self.full = True
        self.broker.wait_for_room(self)
        self._update_reading()

    def room(self) -> None:
        """The topic has room again: publish what waited, then read on."""
        if not self.open:
            self.broker.stop_waiting(self)
            return
        self.full = False
        while self.pending and not self.full and self.open:
            self._publish(self.pending.popleft())
        if not self.full:
            self.broker.stop_waiting(self)
        self._update_reading()


class _Consumer(_Connection):
    """A consumer: deliveries out as long as the socket takes them, acks in."""

    consumer: Consumer | None = None

    def __init__(self, broker: Broker, route: Route, grant: Grant | None) -> None:
        super().__init__(broker, route)
        #: the consumers of one token share a byte quota (with auth only:
        #: without tokens every connection is on its own)
        self.quota = None if broker.auth is None or grant is None else grant.name

    def connected(self) -> None:
        """Join the subscription and send what is waiting."""
        route = self.route
        assert route.topic is not None and route.subscription is not None
        sub_type, queue_size, pull = _consumer_params(route.params)
        subscription = route.subscription
        if _broadcast(route):
            # dasf-broker-django sends every message to every connected
            # consumer of a topic, whatever the subscription name: give
            # each connection its own subscription
            number = self.broker.next_broadcast_number()
            subscription = f"{subscription}.{number}"
        try:
            self.consumer = self.core.subscribe(
                route.topic,
                subscription,
                sub_type,
                receiver_queue_size=queue_size,
                pull_mode=pull,
                notify=self._notify,
                label=self.label,
                ack_timeout=_ack_timeout(route.params),
                quota=self.quota,
                disconnect=self._stalled,
            )
        except SubscribeError as exc:  # pragma: no cover - checked in the handshake
            self.close(WSCloseCode.POLICY_VIOLATION, exc.reason)
            return
        self._flush()

    def disconnected(self) -> None:
        """Leave the subscription; unacked messages go back to it."""
        if self.consumer is not None:
            self.core.unsubscribe(self.consumer)

    def _stalled(self, reason: str) -> None:
        # the core has unsubscribed this consumer already
        logger.warning("disconnecting consumer %s: %s", self.label, reason)
        self.close(WSCloseCode.POLICY_VIOLATION, reason)

    def message(self, data: bytes) -> None:
        """An ack, negative ack or permit."""
        assert self.consumer is not None
        try:
            self.core.consumer_frame(self.consumer, data)
        except ProtocolError as exc:
            self.close(WSCloseCode.POLICY_VIOLATION, str(exc))
        except Exception:  # a bug: close this consumer only
            logger.exception("error handling a frame of %s", self.consumer.name)
            self.close(WSCloseCode.INTERNAL_ERROR, "internal error of the broker")

    def wants_pause(self) -> bool:
        """Always read a consumer: its acks are what frees room."""
        return False

    def resume_writing(self) -> None:
        """The transport drained: send what waited."""
        self.write_blocked = False
        self._flush()

    def _notify(self) -> None:
        # called by the core (inside publish, an ack…) when the outbox
        # became non-empty: send right away if the socket takes it
        if self.consumer is not None and self.open and not self.write_blocked:
            try:
                self._flush()
            except Exception:  # pragma: no cover - never break the core's work
                logger.exception("error sending to %r", self)

    def _flush(self) -> None:
        consumer = self.consumer
        transport = self.transport
        if consumer is None or transport is None:
            return
        next_frame = self.core.next_frame
        send = transport.send
        outbox = consumer.outbox
        while outbox and self.open and not self.write_blocked:
            send(_TEXT, next_frame(consumer))


class _StatusPing(_Connection):
    """``/ws/status-ping``: pongs and API descriptions of backends."""

    def __init__(self, broker: Broker, route: Route, grant: Grant | None) -> None:
        super().__init__(broker, route)
        self.grant = grant

    def _may_consume(self, name: TopicName) -> bool:
        return self.broker.auth is None or (
            self.grant is not None and self.grant.allows("consume", name)
        )

    def message(self, data: bytes) -> None:
        """Record the pong or API description; send the ack."""
        self.send(self.core.status_ping(data, self._may_consume))


def _unknown_error(exc: Exception) -> bytes:
    text = f"the broker failed to handle the message: {type(exc).__name__}: {exc}"
    return json.dumps({"result": "send-error:8", "errorMsg": text[:500]}).encode()


def _broadcast(route: Route) -> bool:
    """True for a plain-layout consumer that asked for no subscription type."""
    return route.plain and "subscriptionType" not in route.params


def _reason(text: str) -> str:
    """A close reason: at most 123 UTF-8 bytes (RFC 6455, section 5.5)."""
    data = text.encode("utf-8")
    if len(data) <= 123:
        return text
    return data[:120].decode("utf-8", "ignore") + "..."


def _ack_timeout(params: dict[str, str]) -> float | None:
    """``ackTimeoutMillis`` in seconds (None for 0 or absent).

    Raises:
        SubscribeError: not a non-negative integer (status 400).
    """
    raw = params.get("ackTimeoutMillis")
    if not raw:
        return None
    try:
        millis = int(raw)
    except ValueError:
        millis = -1
    if millis < 0:
        raise SubscribeError(
            400, f"ackTimeoutMillis must be a non-negative integer, got {raw[:40]!r}"
        )
    return millis / 1000 if millis else None


def _consumer_params(params: dict[str, str]) -> tuple[str, int, bool]:
    """``subscriptionType``, ``receiverQueueSize`` and ``pullMode`` of a consumer.

    Raises:
        SubscribeError: a value is invalid (status 400).
    """
    sub_type = params.get("subscriptionType") or "Exclusive"
    raw = params.get("receiverQueueSize")
    queue_size = DEFAULT_RECEIVER_QUEUE_SIZE
    if raw:
        try:
            queue_size = int(raw)
        except ValueError:
            raise SubscribeError(
                400, f"receiverQueueSize must be an integer, got {raw[:40]!r}"
            ) from None
    pull = params.get("pullMode", "false").lower()
    if pull not in ("true", "false"):
        raise SubscribeError(400, f"pullMode must be true or false, got {pull[:20]!r}")
    return sub_type, queue_size, pull == "true"
