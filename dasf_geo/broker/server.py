"""The broker's asyncio server: a thin layer over :class:`BrokerCore`.

One port serves the WebSocket routes (both URL layouts, see
:mod:`dasf_geo.broker.names`) and two HTTP routes, answered in the
``process_request`` hook of the ``websockets`` server before any
handshake:

- ``GET /health``: ``{"status": "ok", "topics": …, "producers": …, …}``;
- ``GET /topics``: topics, subscriptions, consumers and backlogs (needs a
  valid token when the broker runs with an auth file).

Everything decided at connection time (unknown path, invalid name, missing
or refused token, busy ``Exclusive`` subscription) refuses the handshake
with an HTTP status and a one-line text reason, as Pulsar's WebSocket proxy
does. Frames are read as ``bytes`` (no UTF-8 decoding of large payloads)
and sent with ``send(frame, text=True)``; compression is off because
base64 hardly compresses and deflate would cap the throughput.

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
import threading
import time
import weakref
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from dasf_geo.broker.auth import AuthConfig, Grant, token_from_request
from dasf_geo.broker.core import (
    DEFAULT_MAX_INFLIGHT_BYTES,
    DEFAULT_MAX_TOPIC_BYTES,
    DEFAULT_MAX_TOTAL_BYTES,
    DEFAULT_RECEIVER_QUEUE_SIZE,
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

#: Largest frame a client may send: DASF's 500 kB fragments fit 16 times.
DEFAULT_MAX_FRAME_SIZE = 8 * 1024 * 1024
#: Pulsar's (and so DASF's) default port.
DEFAULT_PORT = 8080


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


def _json_response(status: int, data: Any) -> Response:
    body = (json.dumps(data, indent=1) + "\n").encode("utf-8")
    headers = Headers(
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ]
    )
    return Response(status, HTTPStatus(status).phrase, headers, body)


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
        max_frame_size: largest frame a client may send, in bytes; larger
            ones close the connection with code 1009.
        insecure: allow a non-loopback ``host`` without ``auth``.
        max_topic_bytes: unacked bytes per topic before producers pause.
        max_total_bytes: unacked bytes in the broker before producers pause.
        max_inflight_bytes: unacked bytes per consumer.
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
            "subscription_expiry": subscription_expiry,
        }
        self._ticker: asyncio.Task[None] | None = None
        self.core: BrokerCore | None = None
        self._store: MessageStore | None = None
        self._server: Server | None = None
        # weak: a handshake can still fail after process_request
        self._routes: weakref.WeakKeyDictionary[
            ServerConnection, tuple[Route, Grant | None]
        ] = weakref.WeakKeyDictionary()
        self._drained: asyncio.Event | None = None
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
        core = BrokerCore(self._store, **self.limits)
        self._drained = asyncio.Event()
        core.on_drain = self._on_drain
        self.core = core
        try:
            self._server = await serve(
                self._handler,
                self.host,
                self._requested_port,
                process_request=self._process_request,
                max_size=self.max_frame_size,
                compression=None,
                # few frames queued per connection: memory stays bounded
                # while a producer is paused
                max_queue=4,
                write_limit=1024 * 1024,
                ping_interval=20,
                ping_timeout=60,
                close_timeout=5,
                server_header="dasf-geo-broker",
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
        sockets = list(self._server.sockets)
        self._port = int(sockets[0].getsockname()[1])
        self._ticker = asyncio.get_running_loop().create_task(self._tick())
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
            if self._drained is not None:
                self._drained.set()
            await server.wait_closed()
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
        """Ack timeouts and subscription expiry, once a second."""
        while True:
            await asyncio.sleep(1.0)
            if self.core is not None:
                try:
                    self.core.tick()
                except Exception:  # keep ticking; a bug must not stop the broker
                    logger.exception("error in the broker's periodic work")

    def _on_drain(self, topic: Topic) -> None:
        drained, self._drained = self._drained, asyncio.Event()
        if drained is not None:
            drained.set()

    # --- HTTP and handshake ---------------------------------------------------

    def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        path = request.path
        plain = path.partition("?")[0]
        if plain in ("/health", "/health/"):
            assert self.core is not None
            return _json_response(
                200,
                {
                    "status": "ok",
                    "uptime_s": round(time.time() - self._started_at, 3),
                    **self.core.counts(),
                },
            )
        try:
            route = parse_path(path)
        except ProtocolError as exc:
            return connection.respond(400, f"{exc}\n")
        if plain in ("/topics", "/topics/"):
            return self._topics(connection, request)
        if route is None:
            return connection.respond(
                404,
                f"no route {plain[:200]!r} on this dasf-geo broker: connect to "
                "/ws/v2/producer/{persistent|non-persistent}/TENANT/NAMESPACE/TOPIC, "
                "/ws/v2/consumer/…/TOPIC/SUBSCRIPTION, /ws/TOPIC, "
                "/ws/TOPIC/SUBSCRIPTION or /ws/status-ping; or GET /health, "
                "/topics\n",
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
                return connection.respond(401, reason + "\n")
            action = "produce" if route.kind == "producer" else "consume"
            if route.topic is not None and not grant.allows(action, route.topic):
                return connection.respond(
                    403,
                    f"{grant.name!r} may not {action} topic {route.topic.local!r}\n",
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
                return connection.respond(exc.status, exc.reason + "\n")
        self._routes[connection] = (route, grant)
        return None

    def _topics(self, connection: ServerConnection, request: Request) -> Response:
        if self.auth is not None:
            _, _, query = request.path.partition("?")
            from urllib.parse import parse_qsl

            token = token_from_request(request.headers, dict(parse_qsl(query)))
            grant = None if token is None else self.auth.identify(token)
            if grant is None:
                return connection.respond(
                    401, "GET /topics on this broker requires a valid token\n"
                )
        assert self.core is not None
        return _json_response(200, self.core.stats())

    # --- connections ----------------------------------------------------------

    async def _handler(self, ws: ServerConnection) -> None:
        entry = self._routes.pop(ws, None)
        if entry is None:  # pragma: no cover - process_request always sets it
            await ws.close(1011, "internal error: unknown route")
            return
        route, grant = entry
        try:
            if route.kind == "producer":
                await self._producer(ws, route)
            elif route.kind == "consumer":
                await self._consumer(ws, route)
            else:
                await self._status_ping(ws, grant)
        except ConnectionClosed:
            pass

    async def _wait_for_room(self, ws: ServerConnection, topic: Topic) -> None:
        assert self.core is not None
        while self.core.is_full(topic) and self._server is not None:
            assert self._drained is not None
            drained = asyncio.ensure_future(self._drained.wait())
            closed = asyncio.ensure_future(ws.wait_closed())
            try:
                await asyncio.wait(
                    {drained, closed}, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                drained.cancel()
                closed.cancel()
            if closed.done() and not closed.cancelled():
                return

    async def _producer(self, ws: ServerConnection, route: Route) -> None:
        core = self.core
        assert core is not None and route.topic is not None
        topic = core.add_producer(route.topic)
        try:
            while True:
                if core.is_full(topic):
                    # stop reading this socket until consumers ack: the
                    # producer's own window then stops it (backpressure)
                    await self._wait_for_room(ws, topic)
                frame = await ws.recv(decode=False)
                try:
                    ack = core.publish(topic, frame)
                except Exception as exc:  # a bug must not cost other clients
                    logger.exception("error publishing to %s", topic.name)
                    ack = _unknown_error(exc)
                await ws.send(ack, text=True)
        finally:
            core.remove_producer(topic)

    async def _consumer(self, ws: ServerConnection, route: Route) -> None:
        core = self.core
        assert core is not None and route.topic is not None
        assert route.subscription is not None
        sub_type, queue_size, pull = _consumer_params(route.params)
        ack_timeout = _ack_timeout(route.params)
        subscription = route.subscription
        if _broadcast(route):
            # dasf-broker-django sends every message to every connected
            # consumer of a topic, whatever the subscription name: give
            # each connection its own subscription
            self._connections += 1
            subscription = f"{subscription}.{self._connections}"
        wake = asyncio.Event()
        try:
            consumer = core.subscribe(
                route.topic,
                subscription,
                sub_type,
                receiver_queue_size=queue_size,
                pull_mode=pull,
                notify=wake.set,
                label=_peer(ws),
                ack_timeout=ack_timeout,
            )
        except SubscribeError as exc:
            # lost a race with another consumer after the handshake check
            await ws.close(1008, _reason(exc.reason))
            return
        reader = asyncio.ensure_future(self._read_acks(ws, consumer, wake))
        try:
            while True:
                frame = core.next_frame(consumer)
                if frame is None:
                    if reader.done():
                        break
                    wake.clear()
                    await wake.wait()
                    continue
                await ws.send(frame, text=True)
        except ConnectionClosed:
            pass
        finally:
            core.unsubscribe(consumer)
            if not reader.done():
                reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _read_acks(
        self, ws: ServerConnection, consumer: Consumer, wake: asyncio.Event
    ) -> None:
        core = self.core
        assert core is not None
        try:
            while True:
                frame = await ws.recv(decode=False)
                try:
                    core.consumer_frame(consumer, frame)
                except ProtocolError as exc:
                    await ws.close(1008, _reason(str(exc)))
                    return
                except Exception:  # a bug: close this consumer only
                    logger.exception("error handling a frame of %s", consumer.name)
                    await ws.close(1011, "internal error of the broker")
                    return
        except ConnectionClosed:
            pass
        finally:
            wake.set()

    async def _status_ping(self, ws: ServerConnection, grant: Grant | None) -> None:
        core = self.core
        assert core is not None

        def may_consume(name: TopicName) -> bool:
            return self.auth is None or (
                grant is not None and grant.allows("consume", name)
            )

        while True:
            frame = await ws.recv(decode=False)
            await ws.send(core.status_ping(frame, may_consume), text=True)


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


def _peer(ws: ServerConnection) -> str:
    address = ws.remote_address
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


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
            loop = asyncio.new_event_loop()
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
