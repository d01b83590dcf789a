"""One WebSocket connection to the broker over ``picows``: :class:`WebSocketLink`.

A small RPC call puts eight WebSocket frames on the wire (request, its ack,
delivery, its ack, and the same for the reply), so the cost per frame
decides the call rate. Measured on the project's 2-core machine, a small
frame round trip costs about 130 µs of client CPU with the ``websockets``
asyncio client and about 35 µs with ``picows`` (a Cython library that hands
each frame to a callback, with no future or queue per frame); for 1 MiB
frames both run at memory speed. So callers and backends use ``picows``.

Frames are exchanged as ``bytes`` and sent as WebSocket *text* frames, so
that large base64 payloads are never converted between ``str`` and
``bytes`` (see :mod:`dasf_geo.protocol.messages`). Sending is synchronous
(the frame goes to the socket's transport at once); coroutines wait only
for flow control: the producer's window of unacknowledged messages and the
transport's write buffer.

Errors of the WebSocket library never leave this module raw: they become
:class:`~dasf_geo.exceptions.ConnectionFailed` or
:class:`~dasf_geo.exceptions.TransportError` naming the URL.

The producer and the consumer on top of a link are in
:mod:`dasf_geo.transport.connection`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Iterator, Mapping
from typing import Any

from picows import (
    WSCloseCode,
    WSError,
    WSFrame,
    WSInvalidMessageError,
    WSInvalidStatusError,
    WSInvalidURL,
    WSListener,
    WSMsgType,
    WSTransport,
    ws_connect,
)

from dasf_geo.exceptions import (
    ConnectionFailed,
    TransportError,
)

__all__ = [
    "DEFAULT_MAX_FRAME",
    "WebSocketLink",
    "backoff_delays",
    "redact_url",
]

#: the logger of the connections (named as before the link had its module)
logger = logging.getLogger("dasf_geo.transport.connection")


class _QuietLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """picows' per-connection INFO lines ("WS connection established: ...") at DEBUG."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        """Log ``msg``, at DEBUG if picows meant it as INFO or less."""
        super().log(
            min(level, logging.DEBUG) if level <= logging.INFO else level,
            msg,
            *args,
            **kwargs,
        )


_picows_log = _QuietLog(logging.getLogger("dasf_geo.transport.connection.picows"), {})

#: Largest frame we accept from a broker unless told otherwise.
DEFAULT_MAX_FRAME = 64 * 1024 * 1024
#: Bytes the socket's transport may buffer before senders wait.
WRITE_BUFFER_HIGH = 4 * 1024 * 1024
#: Seconds without incoming data before a ping checks the broker is alive.
PING_IDLE = 20.0
#: Seconds to wait for the broker's pong before the connection counts as dead
#: (picows needs it no longer than :data:`PING_IDLE`).
PING_TIMEOUT = 20.0


def backoff_delays(
    first: float = 0.1, cap: float = 5.0, *, rng: random.Random | None = None
) -> Iterator[float]:
    """Endless delays for reconnect attempts: capped exponential, with jitter.

    The n-th delay is drawn uniformly from the upper half of
    ``min(cap, first * 2**n)``, so that many processes that lost the same
    broker do not all come back in the same millisecond, and no attempt
    waits longer than ``cap`` seconds.
    """
    draw = (rng or random).uniform
    ceiling = first
    while True:
        yield draw(ceiling / 2, ceiling)
        ceiling = min(ceiling * 2, cap)


def redact_url(url: str) -> str:
    """``url`` with the value of a ``token`` query parameter hidden."""
    if "token=" not in url:
        return url
    head, _, query = url.partition("?")
    parts = [
        "token=***" if part.startswith("token=") else part for part in query.split("&")
    ]
    return head + "?" + "&".join(parts)


class _Listener(WSListener):  # type: ignore[misc]  # picows has no stubs for mypy
    """Hands picows' frame callbacks to a :class:`WebSocketLink`."""

    def __init__(self, link: WebSocketLink) -> None:
        super().__init__()
        self.link = link
        self._parts: list[bytes] = []
        self._part_bytes = 0
        #: True once the WebSocket upgrade succeeded
        self.upgraded = False

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.upgraded = True

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            if self._parts:
                self.link._protocol_error(
                    transport, "a new message began before the last one ended"
                )
                return
            if frame.fin:
                self.link._on_frame(frame.get_payload_as_bytes())
                return
            self._parts = [frame.get_payload_as_bytes()]
            self._part_bytes = frame.payload_size
        elif kind is WSMsgType.CONTINUATION:
            if not self._parts:
                self.link._protocol_error(transport, "a continuation frame came first")
                return
            self._parts.append(frame.get_payload_as_bytes())
            self._part_bytes += frame.payload_size
            if self._part_bytes > self.link.max_frame:
                self.link._protocol_error(
                    transport,
                    f"a message above the limit of {self.link.max_frame} bytes",
                    WSCloseCode.MESSAGE_TOO_BIG,
                )
                return
            if frame.fin:
                parts, self._parts, self._part_bytes = self._parts, [], 0
                self.link._on_frame(b"".join(parts))
            return
        elif kind is WSMsgType.CLOSE:
            self.link._on_close_frame(frame.get_close_code(), frame.get_close_reason())
            with contextlib.suppress(Exception):
                transport.send_close(frame.get_close_code())
            transport.disconnect()
        # PING is answered by picows (auto-pong); PONG needs nothing

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.link._on_disconnected()

    def pause_writing(self) -> None:
        self.link._writable.clear()

    def resume_writing(self) -> None:
        self.link._writable.set()


class WebSocketLink:
    """One WebSocket connection to a broker URL.

    Args:
        url: the full ``ws://`` or ``wss://`` URL of a producer or consumer.
        header: extra HTTP headers for the handshake (e.g. ``Authorization``).
        open_timeout: seconds to wait for the connection and handshake.
        max_frame: the largest frame accepted from the broker, in bytes.
    """

    def __init__(
        self,
        url: str,
        header: Mapping[str, str] | None = None,
        *,
        open_timeout: float = 30.0,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        self.url = url
        self.header = dict(header or {})
        self.open_timeout = open_timeout
        self.max_frame = max_frame
        self._transport: WSTransport | None = None
        self._writable = asyncio.Event()
        self._close_info: tuple[int, str] | None = None
        self._disconnected: asyncio.Event | None = None

    @property
    def connected(self) -> bool:
        """True while the WebSocket is open."""
        transport = self._transport
        return transport is not None and not transport.is_disconnected

    async def connect(self) -> None:
        """Open the connection.

        Raises:
            ConnectionFailed: the broker cannot be reached within
                ``open_timeout`` or refused the handshake; the message names
                the URL and the broker's reason.
        """
        shown = redact_url(self.url)
        self._close_info = None
        self._writable = asyncio.Event()
        self._writable.set()
        self._disconnected = asyncio.Event()
        try:
            transport, listener = await asyncio.wait_for(
                ws_connect(
                    lambda: _Listener(self),
                    self.url,
                    websocket_handshake_timeout=self.open_timeout,
                    max_frame_size=self.max_frame,
                    extra_headers=self.header or None,
                    enable_auto_ping=True,
                    auto_ping_idle_timeout=PING_IDLE,
                    auto_ping_reply_timeout=PING_TIMEOUT,
                    logger_name=_picows_log,
                ),
                self.open_timeout,
            )
        except WSInvalidStatusError as exc:
            raise ConnectionFailed(
                f"the broker refused the connection to {shown} ({_refusal(exc)})",
                url=self.url,
            ) from exc
        except (asyncio.TimeoutError, TimeoutError) as exc:
            raise ConnectionFailed(
                f"no connection to {shown} within {self.open_timeout:g} s", url=self.url
            ) from exc
        except WSInvalidMessageError as exc:
            # picows keeps what it could not parse: say what arrived
            raw = exc.args[1] if len(exc.args) > 1 else b""
            raise ConnectionFailed(
                f"cannot connect to {shown}: {exc.args[0]} (received {raw!r:.200})",
                url=self.url,
            ) from exc
        except (OSError, WSError, WSInvalidURL, ValueError) as exc:
            raise ConnectionFailed(
                f"cannot connect to {shown}: {exc}", url=self.url
            ) from exc
        if transport is None or not getattr(listener, "upgraded", False):
            # picows hands back a dead transport when the peer hangs up
            # before answering the upgrade (a broker going down, a proxy or
            # port that accepts TCP and drops it): no disconnect event would
            # ever come for it, so this is a failed connect, not a link
            if transport is not None:
                with contextlib.suppress(Exception):
                    transport.disconnect(graceful=False)
            raise ConnectionFailed(
                f"cannot connect to {shown}: the connection was closed before "
                "the WebSocket handshake completed",
                url=self.url,
            )
        underlying = transport.underlying_transport
        with contextlib.suppress(Exception):  # not every transport has limits
            underlying.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        self._transport = transport
        self._on_connected()

    def _on_connected(self) -> None:
        """Called once the handshake succeeded (subclasses reset state)."""

    async def wait_closed(self) -> None:
        """Return once the connection is closed (at once if it never opened)."""
        closed = self._disconnected
        if closed is None or self._transport is None:
            return
        await closed.wait()

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        transport, self._transport = self._transport, None
        if transport is None:
            return
        try:
            if not transport.is_disconnected:
                transport.send_close(WSCloseCode.OK)
                transport.disconnect()
                await asyncio.wait_for(transport.wait_disconnected(), 5)
        except Exception:  # closing a broken connection may fail; it is gone
            logger.debug("error closing %s", redact_url(self.url), exc_info=True)
            transport.disconnect(graceful=False)

    def _require(self) -> WSTransport:
        transport = self._transport
        if transport is None or transport.is_disconnected:
            raise self._closed_error()
        return transport

    def _closed_error(self) -> TransportError:
        if self._transport is None and self._close_info is None:
            return TransportError(
                f"not connected to {redact_url(self.url)}", url=self.url
            )
        info = self._close_info
        reason = f" (code {info[0]}: {info[1]})" if info is not None else ""
        return TransportError(
            f"the connection to {redact_url(self.url)} was closed{reason}", url=self.url
        )

    def _send_now(self, frame: bytes) -> None:
        """Put ``frame`` on the wire as a text frame (no waiting)."""
        self._require().send(WSMsgType.TEXT, frame)

    async def _drain(self) -> None:
        """Wait while the transport's write buffer is full."""
        if not self._writable.is_set():
            closed = self._disconnected
            assert closed is not None
            writable = asyncio.ensure_future(self._writable.wait())
            gone = asyncio.ensure_future(closed.wait())
            try:
                await asyncio.wait(
                    {writable, gone}, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                writable.cancel()
                gone.cancel()
            self._require()

    # --- callbacks from the listener --------------------------------------

    def _on_frame(self, data: bytes) -> None:
        """A complete message arrived (subclasses handle it)."""

    def _on_close_frame(self, code: Any, reason: str) -> None:
        value = getattr(code, "value", code)
        self._close_info = (int(value), reason)

    def _on_disconnected(self) -> None:
        if self._close_info is None:
            self._close_info = (
                int(WSCloseCode.ABNORMAL_CLOSURE.value),
                "no close frame",
            )
        if self._disconnected is not None:
            self._disconnected.set()
        self._writable.set()  # wake senders; they find the link closed

    def _protocol_error(
        self,
        transport: WSTransport,
        text: str,
        code: WSCloseCode = WSCloseCode.PROTOCOL_ERROR,
    ) -> None:
        logger.warning("closing %s: %s", redact_url(self.url), text)
        self._close_info = (int(code.value), text)
        with contextlib.suppress(Exception):
            transport.send_close(code, text.encode("utf-8")[:120])
        transport.disconnect()


def _refusal(exc: WSInvalidStatusError) -> str:
    response = getattr(exc, "response", None)
    status = getattr(response, "status", None)
    code = getattr(status, "value", status)
    body = (getattr(exc, "raw_body", None) or getattr(response, "body", None)) or b""
    text = bytes(body).decode("utf-8", "replace").strip()[:300]
    reason = f"HTTP {code}" if code is not None else str(exc)
    return reason + (f": {text}" if text else "")
