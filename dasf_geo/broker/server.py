"""The broker's asyncio server: a thin layer over :class:`BrokerCore`.

One port serves the WebSocket routes (both URL layouts, see
:mod:`dasf_geo.broker.names`) and two HTTP routes, ``GET /health`` and
``GET /topics``.

The server is built on ``picows`` (a Cython WebSocket library): its
listener factory sees every HTTP request, upgrade or not, before anything
is answered, so :meth:`Broker._accept` answers the HTTP routes and refuses
everything decided at connection time with an HTTP status and a one-line
reason (:mod:`dasf_geo.broker.http_routes`). Each accepted WebSocket is a
connection object of :mod:`dasf_geo.broker.connections`, driven by
picows' callbacks, that feeds the core and writes what it answers.

This module holds the life cycle: options, start and stop, the periodic
work (ack timeouts, expiry, keepalive) and waking producers when their
topic drains. Compression is off because base64 hardly compresses and
deflate would cap the throughput.

:class:`Broker` runs inside a running event loop;
:class:`~dasf_geo.broker.embedded.EmbeddedBroker` runs one in a background
thread for synchronous code and tests (importable from here too, as are the
connection classes the cluster fronts build on).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from picows import WSCloseCode, WSUpgradeRequest, ws_create_server
from typing_extensions import Unpack

from dasf_geo.broker.auth import AuthConfig, Grant
from dasf_geo.broker.connections import (
    _CLOSE_TIMEOUT,
    _Connection,
    _Consumer,
    _Producer,
    _StatusPing,
)
from dasf_geo.broker.connections import _broadcast as _broadcast  # for cluster.py
from dasf_geo.broker.core import BrokerCore
from dasf_geo.broker.http_routes import _refuse, route_request
from dasf_geo.broker.model import DEFAULT_LIMITS, Limits, Topic
from dasf_geo.broker.names import Route
from dasf_geo.broker.store import MessageStore
from dasf_geo.exceptions import BrokerError, ConfigurationError

if TYPE_CHECKING:
    from dasf_geo.broker.embedded import EmbeddedBroker

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
#: seconds a client has to send its HTTP request after connecting
_HANDSHAKE_TIMEOUT = 10.0


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


def _validate_limits(limits: Mapping[str, Any]) -> dict[str, Any]:
    """Every limit: those given, checked, and the defaults of the others.

    Raises:
        TypeError: a name is no limit (as for an unknown keyword argument).
        ConfigurationError: a size is no positive integer, or a time no
            number of seconds > 0 (or None).
    """
    unknown = sorted(set(limits) - set(DEFAULT_LIMITS))
    if unknown:
        raise TypeError(f"Broker() got an unexpected keyword argument {unknown[0]!r}")
    checked: dict[str, Any] = {**DEFAULT_LIMITS, **limits}
    for name, value in checked.items():
        if name.endswith("_bytes"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(
                    f"{name} must be a positive integer number of bytes, got "
                    f"{value!r:.60}"
                )
        elif value is not None and not (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and value > 0
        ):
            raise ConfigurationError(
                f"{name} must be a number of seconds > 0 (or None for never), "
                f"got {value!r:.60}"
            )
    return checked


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

    The connection objects (:mod:`dasf_geo.broker.connections`) and the
    HTTP routes (:mod:`dasf_geo.broker.http_routes`) use the broker only
    through this internal API (public by convention, not for callers of
    the broker): :attr:`core`, :attr:`auth`, :attr:`loop`;
    :meth:`connection_opened` and :meth:`connection_closed` (the open
    connections, for keepalive and stop); :meth:`wait_for_room` and
    :meth:`stop_waiting` (the producers waiting for room in their topic);
    :meth:`next_broadcast_number` (the subscription of each broadcast
    consumer); :meth:`listener_for` (the connection object of an accepted
    WebSocket).
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
        **limits: Unpack[Limits],
    ) -> None:
        _validate_options(host, port, max_frame_size, auth, insecure)
        all_limits = _validate_limits(limits)
        if auth is not None and not isinstance(auth, AuthConfig):
            auth = AuthConfig.load(auth)
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self.store_path = store
        self.auth: AuthConfig | None = auth
        self.max_frame_size = max_frame_size
        #: the :class:`BrokerCore` limits, by argument name (all of them)
        self.limits = all_limits
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
        #: ``time.time()`` when the broker started (for ``/health``)
        self.started_at = 0.0
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

    # --- internal API of the connections and routes ----------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the broker runs in.

        Raises:
            BrokerError: the broker has not started.
        """
        if self._loop is None:
            raise BrokerError("the broker has not started yet, so it has no loop")
        return self._loop

    def connection_opened(self, connection: _Connection) -> None:
        """Count ``connection`` among the open ones (keepalive, stop)."""
        self._open.add(connection)

    def connection_closed(self, connection: _Connection) -> None:
        """``connection`` is gone (no error if it was never counted)."""
        self._open.discard(connection)

    def wait_for_room(self, producer: _Producer) -> None:
        """``producer`` waits for room in its topic; see :meth:`_on_drain`."""
        self._waiting.add(producer)

    def stop_waiting(self, producer: _Producer) -> None:
        """``producer`` waits for room no longer (no error if it did not)."""
        self._waiting.discard(producer)

    def next_broadcast_number(self) -> int:
        """A new number for the subscription of a broadcast consumer."""
        self._connections += 1
        return self._connections

    def listener_for(self, route: Route, grant: Grant | None) -> _Connection:
        """The connection object for an accepted WebSocket on ``route``.

        Subclasses choose it by overriding :meth:`_listener`.
        """
        return self._listener(route, grant)

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
        self.started_at = time.time()
        # DEBUG: whoever started the broker tells its user where it is
        # (dasf-geo broker prints it); an INFO line said it a second time
        logger.debug("dasf-geo broker listening on %s", self.url)

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
            return route_request(self, request)
        except Exception:
            logger.exception("error handling a request for %r", request.path[:200])
            return _refuse(500, "internal error of the broker")

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


def __getattr__(name: str) -> Any:
    """``EmbeddedBroker``, imported when asked for (it imports this module)."""
    if name == "EmbeddedBroker":
        from dasf_geo.broker.embedded import EmbeddedBroker

        return EmbeddedBroker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
