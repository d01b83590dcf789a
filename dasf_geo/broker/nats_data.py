"""A broker front's core-NATS data plane: one lean NATS connection.

A cluster front (:mod:`dasf_geo.broker.cluster`) sends every message it
takes from a producer to NATS and receives every non-persistent message
its consumers get from NATS. On the 2-core development machine a 100 MB
Dataset reply across two fronts is CPU-bound, and nats-py spent about
half of the receiving front's CPU and 40 % of the sending front's copying
fragments (see :mod:`dasf_geo.broker.nats_wire`). :class:`DataConnection`
carries that traffic on a connection of its own:

- reads go through an ``asyncio.BufferedProtocol`` into the
  :class:`~dasf_geo.broker.nats_wire.Parser`'s memory: a large payload is
  received straight into one buffer allocated for it;
- a ``PUB`` is written as its control line, the body pieces and CRLF, one
  after the other (a large payload is never joined with anything);
  publishing waits while the socket's write buffer is above its high-water
  mark (``pause_writing``/``resume_writing``), so a producer is paused
  rather than NATS' pending data growing without bound;
- subscriptions (with queue groups) call their callback in order of
  arrival; a callback may return an awaitable, and the subscription's
  later messages wait for it (nats-py runs a subscription's callbacks one
  after the other too: the key router relies on it);
- the handshake reads ``INFO`` (``max_payload``), sends ``CONNECT`` with
  the user and password or token of the URL and waits for ``PONG`` (or
  ``-ERR``); ``tls://`` URLs (or a server that requires TLS) upgrade the
  socket after ``INFO``; the server's ``PING`` is answered, and ours every
  :data:`PING_INTERVAL` seconds find a dead connection;
- a lost connection is reopened on the next URL of the list (round robin,
  :data:`RECONNECT_WAIT` seconds between rounds) and every subscription is
  sent again before anything else. The list also holds the servers a NATS
  cluster announces (``connect_urls`` of ``INFO``, with the scheme and
  credentials of the URL that announced them, at most
  :data:`MAX_DISCOVERED`), as nats-py does: a front given one server of a
  NATS cluster moves to another when that one goes. While it is down, :meth:`publish`
  raises :class:`~dasf_geo.exceptions.BrokerError` naming the URLs (the
  producer gets a ``send-error``), and ``on_disconnect`` lets the owner
  fail what waited for an answer.

JetStream management, pull consumers, acks and the key-value buckets stay
on nats-py (:mod:`dasf_geo.broker.cluster_nats`): they are small messages,
and their API is not worth writing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from dasf_geo.broker.nats_wire import (
    CRLF,
    Err,
    Info,
    Msg,
    Parser,
    Ping,
    Pong,
    connect_command,
    headers_block,
    pub_header,
    sub_command,
    unsub_command,
)
from dasf_geo.exceptions import BrokerError, ProtocolError

__all__ = ["DataConnection", "Subscription", "redact_credentials"]

logger = logging.getLogger(__name__)

#: seconds between two PINGs of ours; two unanswered ones drop the connection
PING_INTERVAL = 20.0
#: seconds between two rounds of reconnect attempts over all URLs
RECONNECT_WAIT = 0.5
#: servers learnt from a NATS cluster's announcements, at most
MAX_DISCOVERED = 32
#: bytes written and not yet taken by the socket before publishers wait
WRITE_HIGH_WATER = 1024 * 1024
#: bodies below this many bytes are joined with their control line (one
#: write); larger ones are written piece by piece, never copied
_JOIN_BELOW = 64 * 1024
_PONG_LINE = b"PONG\r\n"
#: asyncio's own transports write a list without joining it from 3.12 on
_GATHERING_WRITES = sys.version_info >= (3, 12)
_PING_LINE = b"PING\r\n"

Callback = Callable[[Msg], "Awaitable[Any] | None"]


class Subscription:
    """One subscription of a :class:`DataConnection`.

    Attributes:
        subject: the subject (wildcards allowed).
        queue: the queue group ("" for none).
        sid: its id on the connection.
    """

    def __init__(
        self, conn: DataConnection, subject: str, queue: str, sid: int, cb: Callback
    ) -> None:
        self.conn = conn
        self.subject = subject
        self.queue = queue
        self.sid = sid
        self.cb = cb
        self._waiting: deque[Msg] = deque()
        self._busy = False
        self._drainer: asyncio.Future[None] | None = None

    async def unsubscribe(self) -> None:
        """Stop receiving (messages already received are dropped)."""
        self.conn._unsubscribe(self)

    def _deliver(self, msg: Msg) -> None:
        if self._busy:
            self._waiting.append(msg)
            return
        pending = self._call(msg)
        if pending is not None:
            self._busy = True
            self._drainer = asyncio.ensure_future(self._drain(pending))

    def _call(self, msg: Msg) -> Awaitable[Any] | None:
        try:
            return self.cb(msg)
        except Exception:  # one bad message must not stop the others
            logger.exception("error handling a NATS message on %s", self.subject)
            return None

    async def _drain(self, pending: Awaitable[Any] | None) -> None:
        try:
            while True:
                if pending is not None:
                    try:
                        await pending
                    except Exception:
                        logger.exception(
                            "error handling a NATS message on %s", self.subject
                        )
                if not self._waiting:
                    return
                pending = self._call(self._waiting.popleft())
        finally:
            self._busy = False


class _Protocol(asyncio.BufferedProtocol):
    """The socket side of one connection attempt."""

    def __init__(self, conn: DataConnection, url: str) -> None:
        self.conn = conn
        #: the URL connected to, and as messages show it
        self.target = url
        self.url = redact_credentials(url)
        self.parser = Parser()
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.info: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.writable = asyncio.Event()
        self.writable.set()
        #: futures of our PINGs, in order (None: the keepalive's)
        self.pongs: deque[asyncio.Future[None] | None] = deque()
        self.pings_out = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.parser.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        try:
            events = self.parser.buffer_updated(nbytes)
        except ProtocolError as exc:
            self._fail(BrokerError(f"NATS at {self.url}: {exc}"))
            return
        for event in events:
            if type(event) is Msg:
                self.conn._dispatch(event)
            elif type(event) is Ping:
                self.write(_PONG_LINE)
            elif type(event) is Pong:
                self.pings_out = 0
                if self.pongs:
                    waiter = self.pongs.popleft()
                    if waiter is not None and not waiter.done():
                        waiter.set_result(None)
                elif not self.ready.done():
                    self.ready.set_result(None)
            elif isinstance(event, Info):
                if not self.info.done():
                    self.info.set_result(event.fields)
                else:
                    self.conn._update_info(event.fields, self.target)
            elif isinstance(event, Err):
                error = BrokerError(f"NATS at {self.url} answered -ERR '{event.text}'")
                if not self.ready.done():
                    self._fail(error)
                    return
                # permission errors keep the connection, others end it
                # (the server closes it; we reconnect)
                logger.warning("%s", error)

    def _fail(self, error: BrokerError) -> None:
        for fut in (self.info, self.ready):
            if not fut.done():
                fut.set_exception(error)
                fut.exception()  # seen, whoever waits
        if self.ready.done() and not self.closed.done():
            logger.error("%s; dropping the connection", error)
        if self.transport is not None:
            self.transport.abort()

    def eof_received(self) -> bool:
        return False  # close

    def connection_lost(self, exc: Exception | None) -> None:
        error = BrokerError(
            f"NATS at {self.url} closed the connection" + (f": {exc}" if exc else "")
        )
        for fut in (self.info, self.ready):
            if not fut.done():
                fut.set_exception(error)
                fut.exception()
        for waiter in self.pongs:
            if waiter is not None and not waiter.done():
                waiter.set_exception(error)
        self.pongs.clear()
        self.writable.set()  # wake publishers: they find the connection gone
        if not self.closed.done():
            self.closed.set_result(None)
        self.conn._lost(self)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def write_pieces(self, pieces: tuple[bytes | bytearray | memoryview, ...]) -> None:
        """Write ``pieces`` as one message, joining none of them.

        uvloop (the broker's loop) and Python 3.12's selector transports
        send a list with one ``writev``/``sendmsg``; on older asyncio
        ``writelines`` joins the list, so the pieces go one by one (as
        separate segments: the server reads a payload in smaller chunks).
        """
        transport = self.transport
        if transport is None:
            return
        if _GATHERING_WRITES or type(transport).__module__.startswith("uvloop"):
            transport.writelines(pieces)
        else:
            for piece in pieces:
                transport.write(piece)


def _options(url: str, name: str, info: dict[str, Any]) -> dict[str, Any]:
    parts = urlsplit(url)
    options: dict[str, Any] = {
        "verbose": False,
        "pedantic": False,
        "tls_required": parts.scheme == "tls",
        "name": name,
        "lang": "python3",
        "version": "dasf_geo",
        "protocol": 1,
        "headers": True,
        "no_responders": True,
    }
    if parts.username and parts.password is not None:
        options["user"] = unquote(parts.username)
        options["pass"] = unquote(parts.password)
    elif parts.username:
        options["auth_token"] = unquote(parts.username)
    return options


def redact_credentials(url: str) -> str:
    """``url`` with the password or token of its user part hidden."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    hidden = f"{user}:***" if colon else "***"
    return parts._replace(netloc=f"{hidden}@{host}").geturl()


def _announced_url(template: str, address: object) -> str | None:
    """A server a NATS cluster announced (``host:port``) as a URL like
    ``template`` (its scheme and credentials), or None if it is not one."""
    if not isinstance(address, str) or not address or len(address) > 300:
        return None
    parts = urlsplit(template)
    userinfo = parts.netloc.rpartition("@")[0]
    url = f"{parts.scheme}://{userinfo + '@' if userinfo else ''}{address}"
    try:
        announced = urlsplit(url)
        if not announced.hostname or announced.port is None:
            return None
    except ValueError:
        return None
    if announced.path or announced.query or announced.fragment:
        return None
    return url


class DataConnection:
    """A lean core-NATS connection (see the module docstring).

    Args:
        servers: NATS URLs (``nats://[USER:PASSWORD@|TOKEN@]HOST:PORT`` or
            ``tls://``), tried in order.
        name: the connection's name in NATS' monitoring.
        connect_timeout: seconds one connection attempt may take.
        on_disconnect: called when the connection is lost (before any
            reconnect).
        on_reconnect: called when it is back (subscriptions sent again).
    """

    def __init__(
        self,
        servers: list[str],
        *,
        name: str = "dasf-geo",
        connect_timeout: float = 2.0,
        on_disconnect: Callable[[], None] | None = None,
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        if not servers:
            raise BrokerError("a NATS connection needs at least one URL")
        self.servers = list(servers)
        self.name = name
        self.connect_timeout = connect_timeout
        self.on_disconnect = on_disconnect
        self.on_reconnect = on_reconnect
        self.max_payload = 1024 * 1024
        self.connected_url = ""
        self._proto: _Protocol | None = None
        self._subs: dict[int, Subscription] = {}
        self._next_sid = 0
        self._next_server = 0
        #: servers a NATS cluster announced (see :meth:`_learn`)
        self.discovered: list[str] = []
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """The NATS URLs as given, passwords and tokens hidden (for messages)."""
        return ",".join(redact_credentials(server) for server in self.servers)

    @property
    def is_connected(self) -> bool:
        """True while a connection is up (handshake done)."""
        return self._proto is not None

    # --- life cycle ---------------------------------------------------------

    async def connect(self) -> None:
        """Connect to the first URL that answers (each tried once).

        Raises:
            BrokerError: none answered, or one refused us; names the URL(s).
        """
        errors = []
        for _ in range(len(self._pool())):
            url = self._take_url()
            try:
                await self._open(url)
            except BrokerError as exc:
                errors.append(str(exc))
                continue
            self._spawn(self._keepalive())
            return
        raise BrokerError("; ".join(errors))

    def _pool(self) -> list[str]:
        """The URLs to try: those given, then those announced."""
        return self.servers + self.discovered

    def _take_url(self) -> str:
        pool = self._pool()
        url = pool[self._next_server % len(pool)]
        self._next_server += 1
        return url

    def _learn(self, fields: dict[str, Any], url: str) -> None:
        """Add the servers an ``INFO`` from ``url`` announces to the pool."""
        announced = fields.get("connect_urls")
        if not isinstance(announced, list):
            return
        for address in announced:
            server = _announced_url(url, address)
            if server is None or server in self.servers or server in self.discovered:
                continue
            if len(self.discovered) >= MAX_DISCOVERED:
                logger.warning(
                    "NATS at %s announced more than %d servers; the others are "
                    "not tried when the connection is lost",
                    redact_credentials(url),
                    MAX_DISCOVERED,
                )
                return
            self.discovered.append(server)
            logger.info(
                "NATS at %s announced the server %s: the data connection "
                "moves there if it loses its own",
                redact_credentials(url),
                redact_credentials(server),
            )

    async def _open(self, url: str) -> None:
        loop = asyncio.get_running_loop()
        parts = urlsplit(url)
        host = parts.hostname or "127.0.0.1"
        port = parts.port or 4222
        proto = _Protocol(self, url)
        shown = redact_credentials(url)

        async def handshake() -> dict[str, Any]:
            transport, _ = await loop.create_connection(lambda: proto, host, port)
            info = await proto.info
            if parts.scheme == "tls" or info.get("tls_required"):
                context = ssl.create_default_context()
                upgraded = await loop.start_tls(
                    transport, proto, context, server_hostname=host
                )
                if upgraded is None:
                    raise BrokerError(f"NATS at {shown}: the TLS handshake failed")
                proto.transport = upgraded  # type: ignore[assignment]
            proto.write(connect_command(_options(url, self.name, info)))
            await proto.ready
            return info

        try:
            info = await asyncio.wait_for(handshake(), self.connect_timeout)
        except asyncio.TimeoutError:
            if proto.transport is not None:
                proto.transport.abort()
            raise BrokerError(
                f"NATS at {shown} did not complete the handshake within "
                f"{self.connect_timeout:g} s"
            ) from None
        except OSError as exc:
            if proto.transport is not None:
                proto.transport.abort()
            raise BrokerError(f"cannot reach NATS at {shown}: {exc}") from exc
        except BrokerError:
            if proto.transport is not None:
                proto.transport.abort()
            raise
        self._update_info(info, url)
        # subscriptions first: nothing we publish may beat them
        if self._subs:
            proto.write(
                b"".join(
                    sub_command(s.subject, s.sid, s.queue) for s in self._subs.values()
                )
            )
        self._proto = proto
        self.connected_url = url

    async def close(self) -> None:
        """Flush what is written, close, and stop reconnecting."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        proto = self._proto
        if proto is not None:
            with contextlib.suppress(Exception):
                await self.flush(2.0)
            assert proto.transport is not None
            proto.transport.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(proto.closed), 2.0)
        self._proto = None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _lost(self, proto: _Protocol) -> None:
        if proto is not self._proto:
            return  # a handshake that failed
        self._proto = None
        if self._closing:
            return
        logger.warning(
            "lost the data connection to NATS at %s; reconnecting", proto.url
        )
        if self.on_disconnect is not None:
            self.on_disconnect()
        self._spawn(self._reconnect())

    async def _reconnect(self) -> None:
        attempt = 0
        while not self._closing:
            url = self._take_url()
            try:
                await self._open(url)
            except BrokerError as exc:
                logger.debug("reconnecting: %s", exc)
                attempt += 1
                if attempt % len(self._pool()) == 0:
                    await asyncio.sleep(RECONNECT_WAIT * (0.5 + random.random()))
                continue
            logger.warning(
                "data connection to NATS at %s is back", redact_credentials(url)
            )
            if self.on_reconnect is not None:
                self.on_reconnect()
            return

    async def _keepalive(self) -> None:
        while not self._closing:
            await asyncio.sleep(PING_INTERVAL)
            proto = self._proto
            if proto is None:
                continue
            if proto.pings_out >= 2:
                logger.warning(
                    "NATS at %s answered no PING for %g s; reconnecting",
                    proto.url,
                    2 * PING_INTERVAL,
                )
                assert proto.transport is not None
                proto.transport.abort()
                continue
            proto.pings_out += 1
            proto.pongs.append(None)
            proto.write(_PING_LINE)

    def _update_info(self, fields: dict[str, Any], url: str) -> None:
        """Take what an ``INFO`` from ``url`` says: ``max_payload``, and the
        servers it announces."""
        with contextlib.suppress(TypeError, ValueError):
            self.max_payload = int(fields.get("max_payload", self.max_payload))
        self._learn(fields, url)

    # --- messages -----------------------------------------------------------

    def _dispatch(self, msg: Msg) -> None:
        sub = self._subs.get(msg.sid)
        if sub is not None:
            sub._deliver(msg)

    def subscribe(self, subject: str, cb: Callback, queue: str = "") -> Subscription:
        """Subscribe ``cb`` to ``subject`` (in ``queue`` group if given).

        ``cb`` gets each :class:`~dasf_geo.broker.nats_wire.Msg` in order;
        if it returns an awaitable, the next message waits for it. The
        ``SUB`` is written at once (or on reconnect, if the connection is
        down); :meth:`flush` waits until the server has it.
        """
        self._next_sid += 1
        sub = Subscription(self, subject, queue, self._next_sid, cb)
        self._subs[sub.sid] = sub
        if self._proto is not None:
            self._proto.write(sub_command(subject, sub.sid, queue))
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        if self._subs.pop(sub.sid, None) is not None and self._proto is not None:
            self._proto.write(unsub_command(sub.sid))

    async def publish(
        self,
        subject: str,
        *body: bytes | bytearray | memoryview,
        reply: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Publish the concatenation of ``body`` to ``subject``.

        Returns once the message is written to the socket (or its buffer);
        waits first while that buffer is full.

        Raises:
            BrokerError: no connection now, or the message is larger than
                the server's ``max_payload``; names the URL.
        """
        proto = self._proto
        if proto is not None and not proto.writable.is_set():
            await proto.writable.wait()
            proto = self._proto
        if proto is None:
            raise BrokerError(
                f"no connection to NATS at {self.url} (reconnecting); try again"
            )
        size = 0
        for piece in body:
            size += len(piece)
        hdr = headers_block(headers) if headers else b""
        if size + len(hdr) > self.max_payload:
            raise BrokerError(
                f"the message takes {size + len(hdr)} bytes in NATS, above the "
                f"max_payload of {self.max_payload} bytes of NATS at {self.url}"
            )
        line = pub_header(subject, reply, size, hdr)
        if size < _JOIN_BELOW:
            proto.write(b"".join((line, *body, CRLF)))
        else:
            proto.write_pieces((line, *body, CRLF))

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until the server processed everything written so far.

        Raises:
            BrokerError: no connection, or no answer within ``timeout``.
        """
        proto = self._proto
        if proto is None:
            raise BrokerError(f"no connection to NATS at {self.url}")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        proto.pongs.append(waiter)
        proto.write(_PING_LINE)
        try:
            await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            raise BrokerError(
                f"NATS at {proto.url} did not answer a PING within {timeout:g} s"
            ) from None

    def drop(self) -> None:
        """Abort the current connection (it reconnects): for tests and
        for a server that stopped answering."""
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.abort()
