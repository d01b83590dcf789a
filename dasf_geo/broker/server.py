"""The broker's asyncio server: a thin layer over :class:`BrokerCore`.

One port serves the WebSocket routes (both URL layouts, see
:mod:`dasf_geo.broker.names`) and two HTTP routes:

- ``GET /health``: ``{"status": "ok", "topics": …, "producers": …, …}``;
- ``GET /topics``: topics, subscriptions, consumers and backlogs (needs a
  valid token when the broker runs with an auth file).

The server is built on ``picows`` (a Cython WebSocket library): its
listener factory sees every HTTP request, upgrade or not, before anything
is answered, so :meth:`Broker._accept` answers the HTTP routes and refuses
everything decided at connection time (unknown path, invalid name, missing
or refused token, busy ``Exclusive`` subscription) with an HTTP status and
a one-line text reason, as Pulsar's WebSocket proxy does. A plain HTTP
request to a WebSocket route gets 426.

Each accepted connection is a :class:`picows.WSListener` driven by
callbacks, without a task per connection: frames arrive in
``on_ws_frame`` (fragmented messages are joined here, binary frames are
read as text) and go straight into the core; acks and deliveries are
written with one call each. Flow control without unbounded buffers:

- a producer's socket is no longer read while its topic is full
  (:meth:`BrokerCore.is_full`) or while its acks are not being read (the
  transport holds 1 MiB); frames already read wait in the connection, at
  most one read buffer, which a fixed 1 MiB socket receive buffer keeps at
  a few MiB;
- a consumer is written to while its transport holds less than 1 MiB
  (``pause_writing``/``resume_writing``); the rest of its deliveries wait
  in the core, bounded by ``receiverQueueSize`` and the inflight bytes.

Keepalive: a connection silent for 20 s is pinged and closed (code 1011)
if nothing arrives within 60 s more. Compression is off because base64
hardly compresses and deflate would cap the throughput.

:class:`Broker` runs inside a running event loop; :class:`EmbeddedBroker`
runs one in a background thread for synchronous code and tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import json
import logging
import os
import socket
import threading
import time
from collections import deque
from typing import Any

from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from dasf_geo._loop import new_event_loop
from dasf_geo.broker.auth import AuthConfig, Grant, token_from_request
from dasf_geo.broker.core import (
    DEFAULT_MAX_CLIENT_BYTES,
    DEFAULT_MAX_INFLIGHT_BYTES,
    DEFAULT_MAX_TOPIC_BYTES,
    DEFAULT_MAX_TOTAL_BYTES,
    DEFAULT_RECEIVER_QUEUE_SIZE,
    DEFAULT_STALL_TIMEOUT,
    BrokerCore,
    Consumer,
    SubscribeError,
    Topic,
)
from dasf_geo.broker.names import Route, TopicName, parse_path
from dasf_geo.broker.store import MessageStore
from dasf_geo.exceptions import BrokerError, ConfigurationError, ProtocolError

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_PORT",
    "Broker",
    "EmbeddedBroker",
    "is_loopback",
]

logger = logging.getLogger(__name__)


class _PicowsLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """picows' log, as the broker wants it.

    picows logs every connection and disconnection at INFO, and a peer's
    protocol violation (an oversize or malformed frame) at ERROR; the
    first is noise in the broker's log and the second is the peer's
    problem, not the broker's: both go to DEBUG of
    ``dasf_geo.broker.server.picows``.
    """

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        """Log ``msg``, at DEBUG if it is one of picows' routine messages."""
        if level < logging.WARNING or (
            isinstance(msg, str) and msg.startswith("WS parser error")
        ):
            level = logging.DEBUG
        super().log(level, msg, *args, **kwargs)


_picows_log = _PicowsLog(logging.getLogger(f"{__name__}.picows"), {})

#: Largest frame a client may send: DASF's 500 kB fragments fit 16 times.
DEFAULT_MAX_FRAME_SIZE = 8 * 1024 * 1024
#: Pulsar's (and so DASF's) default port.
DEFAULT_PORT = 8080

_SERVER_HEADER = ("Server", "dasf-geo-broker")
_NO_STORE = ("Cache-Control", "no-store")
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
#: seconds a client has to send its HTTP request after connecting
_HANDSHAKE_TIMEOUT = 10.0

_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CONTINUATION = WSMsgType.CONTINUATION
_CLOSE = WSMsgType.CLOSE


class _PortInUse(BrokerError):
    """The port is taken (so :meth:`EmbeddedBroker.start_on_free_port` tries on)."""


def is_loopback(host: str) -> bool:
    """True if ``host`` is a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _validate_options(
    host: Any, port: Any, max_frame_size: Any, auth: Any, insecure: bool
) -> None:
    if not isinstance(host, str) or not host:
        raise ConfigurationError(
            f"the broker host must be a non-empty string such as '127.0.0.1', got "
            f"{host!r:.60}"
        )
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigurationError(
            f"the broker port must be an integer between 0 and 65535 (0 picks a "
            f"free port), got {port!r:.60}"
        )
    if (
        isinstance(max_frame_size, bool)
        or not isinstance(max_frame_size, int)
        or max_frame_size < 1024
    ):
        raise ConfigurationError(
            "max_frame_size must be an integer of at least 1024 bytes, got "
            f"{max_frame_size!r:.60}"
        )
    if auth is None and not insecure and not is_loopback(host):
        raise ConfigurationError(
            f"refusing to serve on the non-loopback address {host!r} without "
            "authentication: give an auth file (--auth FILE), bind 127.0.0.1, "
            "or pass --insecure if the network is trusted"
        )


def _json_response(data: Any) -> WSUpgradeResponseWithListener:
    """``200 OK`` with ``data`` as JSON; picows closes the connection after it."""
    body = (json.dumps(data, indent=1) + "\n").encode("utf-8")
    response = WSUpgradeResponse.create_ok_response(
        body,
        [_SERVER_HEADER, ("Content-Type", "application/json"), _NO_STORE],
    )
    return WSUpgradeResponseWithListener(response, None)


def _refuse(
    status: int, reason: str, *headers: tuple[str, str]
) -> WSUpgradeResponseWithListener:
    """Refuse a request with ``status`` and a one-line text reason."""
    response = WSUpgradeResponse.create_error_response(
        status,
        (reason + "\n").encode("utf-8"),
        [
            _SERVER_HEADER,
            ("Content-Type", "text/plain; charset=utf-8"),
            _NO_STORE,
            *headers,
        ],
    )
    return WSUpgradeResponseWithListener(response, None)


def _is_upgrade(request: WSUpgradeRequest) -> bool:
    """True if the request asks for a WebSocket (``Upgrade: websocket``)."""
    upgrade = request.headers.get("Upgrade", "")
    return "websocket" in (part.strip().lower() for part in upgrade.split(","))


class Broker:
    """The embedded DASF/Pulsar WebSocket broker, for a running event loop.

    Args:
        host: address to bind; non-loopback addresses need ``auth`` or
            ``insecure=True``.
        port: TCP port; 0 picks a free one (see :attr:`port` after start).
        store: SQLite file (or an open :class:`MessageStore`) for persistent
            topics; without it persistent topics are kept in memory only.
        auth: an auth file path, or an :class:`AuthConfig`; None means
            every client may do everything.
        max_frame_size: largest frame (and message) a client may send, in
            bytes; larger ones close the connection with code 1009.
        insecure: allow a non-loopback ``host`` without ``auth``.
        max_topic_bytes: unacked bytes per topic before producers pause.
        max_total_bytes: unacked bytes in the broker before producers pause.
        max_inflight_bytes: unacked bytes per consumer.
        max_client_bytes: unacked bytes of all consumers of one token (with
            ``auth``).
        stall_timeout: seconds a consumer may hold ``max_inflight_bytes``
            without acknowledging anything; then it is disconnected (code
            1008, with the reason) and its messages go back to the
            subscription. None: never.
        subscription_expiry: seconds after which a durable subscription
            without consumers is deleted; None (default) keeps it.

    Raises:
        ConfigurationError: an option is invalid, the auth file is wrong, or
            a non-loopback host is given without auth or ``insecure``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        store: str | os.PathLike[str] | MessageStore | None = None,
        auth: str | os.PathLike[str] | AuthConfig | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        insecure: bool = False,
        max_topic_bytes: int = DEFAULT_MAX_TOPIC_BYTES,
        max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
        max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES,
        max_client_bytes: int = DEFAULT_MAX_CLIENT_BYTES,
        stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
        subscription_expiry: float | None = None,
    ) -> None:
        _validate_options(host, port, max_frame_size, auth, insecure)
        if subscription_expiry is not None and not (
            isinstance(subscription_expiry, (int, float))
            and not isinstance(subscription_expiry, bool)
            and subscription_expiry > 0
        ):
            raise ConfigurationError(
                "subscription_expiry must be a number of seconds > 0 (or None for "
                f"never), got {subscription_expiry!r:.60}"
            )
        if auth is not None and not isinstance(auth, AuthConfig):
            auth = AuthConfig.load(auth)
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self.store_path = store
        self.auth: AuthConfig | None = auth
        self.max_frame_size = max_frame_size
        self.limits: dict[str, Any] = {
            "max_topic_bytes": max_topic_bytes,
            "max_total_bytes": max_total_bytes,
            "max_inflight_bytes": max_inflight_bytes,
            "max_client_bytes": max_client_bytes,
            "stall_timeout": stall_timeout,
            "subscription_expiry": subscription_expiry,
        }
        self._ticker: asyncio.Task[None] | None = None
        self.core: BrokerCore | None = None
        self._store: MessageStore | None = None
        self._server: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: open WebSocket connections (keepalive, stop)
        self._open: set[_Connection] = set()
        #: producers waiting for room in their topic
        self._waiting: set[_Producer] = set()
        self._resume_scheduled = False
        self._started_at = 0.0
        self._connections = 0

    # --- addresses ------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the broker listens on (the real one when 0 was asked).

        Raises:
            BrokerError: the broker was asked for port 0 and has not started.
        """
        if self._port is not None:
            return self._port
        if self._requested_port == 0:
            raise BrokerError("the broker has not started yet, so its port is unknown")
        return self._requested_port

    @property
    def _netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """``ws://HOST:PORT`` (no trailing slash)."""
        return f"ws://{self._netloc}"

    @property
    def http_url(self) -> str:
        """``http://HOST:PORT`` for ``/health`` and ``/topics``."""
        return f"http://{self._netloc}"

    @property
    def websocket_url(self) -> str:
        """The dasf-broker-django style ``websocket_url``: ``ws://HOST:PORT/ws``."""
        return f"{self.url}/ws"

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._server is not None

    # --- life cycle -----------------------------------------------------------

    async def start(self) -> None:
        """Open the store and start listening.

        Raises:
            BrokerError: the port is taken, the address cannot be bound, or
                the store cannot be opened; the message says which.
        """
        if self._server is not None:
            return
        if isinstance(self.store_path, MessageStore):
            self._store = self.store_path
        elif self.store_path is not None:
            self._store = MessageStore(self.store_path)
        core = self._make_core()
        core.on_drain = self._on_drain
        self.core = core
        self._loop = asyncio.get_running_loop()
        try:
            self._server = await ws_create_server(
                self._accept,
                self.host,
                self._requested_port,
                max_frame_size=self.max_frame_size,
                websocket_handshake_timeout=_HANDSHAKE_TIMEOUT,
                # keepalive is the broker's own (see _Connection.keepalive):
                # picows' would drop producers whose reading is paused
                enable_auto_ping=False,
                enable_auto_pong=True,
                logger_name=_picows_log,
            )
        except OSError as exc:
            self._close_store()
            where = f"{self.host}:{self._requested_port}"
            if exc.errno == errno.EADDRINUSE:
                raise _PortInUse(
                    f"cannot start the broker: port {self._requested_port} on "
                    f"{self.host} is already in use; stop the other server, pick "
                    "another port (--port), or use port 0 for a free one"
                ) from exc
            raise BrokerError(
                f"cannot start the broker on {where}: {exc.strerror or exc}"
            ) from exc
        sockets = list(getattr(self._server, "sockets", ()))
        self._port = int(sockets[0].getsockname()[1])
        self._ticker = self._loop.create_task(self._tick())
        self._started_at = time.time()
        logger.info("dasf-geo broker listening on %s", self.url)

    async def stop(self) -> None:
        """Close every connection (code 1001) and the store (idempotent)."""
        server, self._server = self._server, None
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        if server is not None:
            server.close()
            for connection in list(self._open):
                connection.close(WSCloseCode.GOING_AWAY, "the broker is stopping")
            loop = asyncio.get_running_loop()
            # each connection aborts itself after _CLOSE_TIMEOUT at the latest
            deadline = loop.time() + _CLOSE_TIMEOUT + 1.0
            while self._open and loop.time() < deadline:
                await asyncio.sleep(0.01)
            abort = getattr(server, "abort_clients", None)
            if abort is not None:  # connections still in their handshake
                abort()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        self._waiting.clear()
        self._close_store()

    def _close_store(self) -> None:
        store, self._store = self._store, None
        if store is not None and not isinstance(self.store_path, MessageStore):
            store.close()

    async def serve_forever(self) -> None:
        """Start (if needed) and serve until cancelled; then stop."""
        await self.start()
        try:
            await asyncio.Future()
        finally:
            await self.stop()

    async def __aenter__(self) -> Broker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _tick(self) -> None:
        """Ack timeouts, subscription expiry and keepalive, once a second."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            if self.core is not None:
                try:
                    self.core.tick()
                except Exception:  # keep ticking; a bug must not stop the broker
                    logger.exception("error in the broker's periodic work")
            now = loop.time()
            for connection in list(self._open):
                try:
                    connection.keepalive(now)
                except Exception:
                    logger.exception("error in the keepalive of %s", connection)

    def _on_drain(self, topic: Topic) -> None:
        # called from inside the core (an ack freed room): resume the
        # waiting producers once the core is done with that ack
        if self._waiting and not self._resume_scheduled and self._loop is not None:
            self._resume_scheduled = True
            self._loop.call_soon(self._resume_producers)

    def _resume_producers(self) -> None:
        self._resume_scheduled = False
        core = self.core
        if core is None:
            return
        for producer in list(self._waiting):
            if not core.is_full(producer.topic):
                try:
                    producer.room()
                except Exception:  # pragma: no cover - a bug; keep the others
                    logger.exception("error resuming %s", producer)

    # --- HTTP and handshake ---------------------------------------------------

    def _accept(self, request: WSUpgradeRequest) -> Any:
        """picows' listener factory: answer HTTP, refuse, or accept a WebSocket."""
        try:
            return self._route(request)
        except Exception:
            logger.exception("error handling a request for %r", request.path[:200])
            return _refuse(500, "internal error of the broker")

    def _route(self, request: WSUpgradeRequest) -> Any:
        path = request.path.decode("ascii", "replace")
        plain = path.partition("?")[0]
        if plain in ("/health", "/health/"):
            assert self.core is not None
            return _json_response(
                {
                    "status": "ok",
                    "uptime_s": round(time.time() - self._started_at, 3),
                    **self.core.counts(),
                },
            )
        try:
            route = parse_path(path)
        except ProtocolError as exc:
            return _refuse(400, str(exc))
        if plain in ("/topics", "/topics/"):
            return self._topics(request, path)
        if route is None:
            return _refuse(
                404,
                f"no route {plain[:200]!r} on this dasf-geo broker: connect to "
                "/ws/v2/producer/{persistent|non-persistent}/TENANT/NAMESPACE/TOPIC, "
                "/ws/v2/consumer/…/TOPIC/SUBSCRIPTION, /ws/TOPIC, "
                "/ws/TOPIC/SUBSCRIPTION or /ws/status-ping; or GET /health, "
                "/topics",
            )
        grant: Grant | None = None
        if self.auth is not None:
            token = token_from_request(request.headers, route.params)
            grant = self.auth.identify(token)
            if grant is None:
                if token is None:
                    reason = (
                        "this broker requires a token: pass ?token=… or an "
                        "'Authorization: Bearer …' header"
                    )
                else:
                    reason = "the token is not known to this broker"
                return _refuse(401, reason)
            action = "produce" if route.kind == "producer" else "consume"
            if route.topic is not None and not grant.allows(action, route.topic):
                return _refuse(
                    403, f"{grant.name!r} may not {action} topic {route.topic.local!r}"
                )
        if route.kind == "consumer":
            assert route.topic is not None and route.subscription is not None
            try:
                sub_type, queue_size, _ = _consumer_params(route.params)
                _ack_timeout(route.params)
                assert self.core is not None
                # a broadcast consumer gets a subscription of its own
                name = route.subscription + ("." if _broadcast(route) else "")
                self.core.check_subscribe(route.topic, name, sub_type, queue_size)
            except SubscribeError as exc:
                return _refuse(exc.status, exc.reason)
        if not _is_upgrade(request):
            return _refuse(
                426,
                f"{plain[:200]!r} is a WebSocket route: connect with a WebSocket "
                "client (the request has no 'Upgrade: websocket' header)",
                ("Upgrade", "websocket"),
            )
        listener = self._listener(route, grant)
        response = WSUpgradeResponse.create_101_response([_SERVER_HEADER])
        return WSUpgradeResponseWithListener(response, listener)

    # --- I/O bindings (a broker front over another engine overrides these) ---

    def _make_core(self) -> BrokerCore:
        """The core this server routes through (called by :meth:`start`)."""
        return BrokerCore(self._store, **self.limits)

    def _listener(self, route: Route, grant: Grant | None) -> _Connection:
        """The connection object for an accepted WebSocket on ``route``."""
        if route.kind == "producer":
            return _Producer(self, route)
        if route.kind == "consumer":
            return _Consumer(self, route, grant)
        return _StatusPing(self, route, grant)

    def _topics(self, request: WSUpgradeRequest, path: str) -> Any:
        if self.auth is not None:
            _, _, query = path.partition("?")
            from urllib.parse import parse_qsl

            token = token_from_request(request.headers, dict(parse_qsl(query)))
            grant = None if token is None else self.auth.identify(token)
            if grant is None:
                return _refuse(401, "GET /topics on this broker requires a valid token")
        assert self.core is not None
        return _json_response(self.core.stats())


# --- connections ------------------------------------------------------------------


class _Connection(WSListener):
    """An accepted WebSocket connection: frames in, frames out, closing.

    Subclasses handle whole messages in :meth:`message` and set up and tear
    down in :meth:`connected` and :meth:`disconnected`.
    """

    def __init__(self, broker: Broker, route: Route) -> None:
        super().__init__()
        assert broker.core is not None and broker._loop is not None
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
        assert self.broker._loop is not None
        self.idle_since = self.broker._loop.time()
        self.broker._open.add(self)
        self.connected()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        """The TCP connection is gone: release what it held."""
        self.open = False
        self.broker._open.discard(self)
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
            assert self.broker._loop is not None
            self.abort_timer = self.broker._loop.call_later(
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
        self.broker._waiting.discard(self)
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
        self.broker._waiting.add(self)
        self._update_reading()

    def room(self) -> None:
        """The topic has room again: publish what waited, then read on."""
        if not self.open:
            self.broker._waiting.discard(self)
            return
        self.full = False
        while self.pending and not self.full and self.open:
            self._publish(self.pending.popleft())
        if not self.full:
            self.broker._waiting.discard(self)
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
            self.broker._connections += 1
            subscription = f"{subscription}.{self.broker._connections}"
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


class EmbeddedBroker:
    """A :class:`Broker` running in a background thread with its own loop.

    Usable as a context manager or with :meth:`start` / :meth:`stop`; takes
    the same arguments as :class:`Broker`. ``port=0`` picks a free port;
    :meth:`start_on_free_port` tries 8080 and the following ports, which is
    what ``dasf-geo serve`` uses.

    Example:
        >>> with EmbeddedBroker(port=0) as broker:  # doctest: +SKIP
        ...     url = f"{broker.url}/ws/v2/producer/non-persistent/public/default/t"

    Raises:
        ConfigurationError: an option is invalid (see :class:`Broker`).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        store: str | os.PathLike[str] | MessageStore | None = None,
        auth: str | os.PathLike[str] | AuthConfig | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        insecure: bool = False,
        **limits: Any,
    ) -> None:
        self.broker = Broker(
            host,
            port,
            store=store,
            auth=auth,
            max_frame_size=max_frame_size,
            insecure=insecure,
            **limits,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    @classmethod
    def start_on_free_port(
        cls, preferred: int = DEFAULT_PORT, *, attempts: int = 20, **kwargs: Any
    ) -> EmbeddedBroker:
        """Start a broker on ``preferred`` or the next free port after it.

        Args:
            preferred: the first port to try (Pulsar's 8080 by default).
            attempts: how many consecutive ports to try.
            kwargs: further :class:`EmbeddedBroker` arguments (host, store…).

        Returns:
            The started broker; see its :attr:`port` and :attr:`url`.

        Raises:
            BrokerError: none of the ports is free, or the broker cannot start.
        """
        last: BrokerError | None = None
        for port in range(preferred, min(preferred + attempts, 65536)):
            broker = cls(port=port, **kwargs)
            try:
                broker.start()
            except _PortInUse as exc:
                last = exc
                continue
            return broker
        raise BrokerError(
            f"cannot start the broker: ports {preferred} to "
            f"{preferred + attempts - 1} are all in use ({last})"
        )

    @property
    def host(self) -> str:
        """The bound address."""
        return self.broker.host

    @property
    def port(self) -> int:
        """The port (the real one once started with port 0)."""
        return self.broker.port

    @property
    def url(self) -> str:
        """``ws://HOST:PORT`` (no trailing slash)."""
        return self.broker.url

    @property
    def http_url(self) -> str:
        """``http://HOST:PORT``."""
        return self.broker.http_url

    @property
    def websocket_url(self) -> str:
        """``ws://HOST:PORT/ws``, the plain layout's ``websocket_url``."""
        return self.broker.websocket_url

    @property
    def running(self) -> bool:
        """True while the background thread serves."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        """Start serving in a background thread; return ``self``.

        Raises:
            BrokerError: the broker cannot start (e.g. the port is taken) or
                did not start within ``timeout`` seconds.
        """
        if self.running:
            return self
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            # uvloop where available, as for dasf-geo broker (dasf_geo._loop)
            loop = new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def main() -> None:
                self._stopped = asyncio.Event()
                try:
                    await self.broker.start()
                except BaseException as exc:
                    failure.append(exc)
                    started.set()
                    return
                started.set()
                try:
                    await self._stopped.wait()
                finally:
                    await self.broker.stop()

            try:
                loop.run_until_complete(main())
            finally:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(
            target=run, name=f"dasf-geo broker {self.broker.host}", daemon=True
        )
        self._thread.start()
        if not started.wait(timeout):
            raise BrokerError(f"the broker did not start within {timeout:g} s")
        if failure:
            self._thread.join(timeout)
            self._thread = None
            exc = failure[0]
            if isinstance(exc, BrokerError):
                raise exc
            raise BrokerError(f"cannot start the broker: {exc}") from exc
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Close every connection and stop the thread (idempotent)."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if self._stopped is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._stopped.set)
        thread.join(timeout)
        self._thread = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<EmbeddedBroker {self.broker.host}:{self.broker._port} {state}>"
