"""Thin asyncio producer and consumer connections over ``websockets``.

DESIGN.md measured the ``websockets`` library at ~1,000 MB/s for 1 MiB
frames on this machine (``websocket-client`` ~160 MB/s), so both callers and
backends use it. Frames are exchanged as ``bytes`` and sent as WebSocket
*text* frames (``send(data, text=True)``), so that large base64 payloads are
never converted between ``str`` and ``bytes`` (see
:mod:`dasf_geo.protocol.messages`).

Errors of the WebSocket library never leave this module raw: they become
:class:`~dasf_geo.exceptions.ConnectionFailed` or
:class:`~dasf_geo.exceptions.TransportError` naming the URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Mapping
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from dasf_geo.exceptions import (
    ConnectionFailed,
    ProtocolError,
    SendError,
    TransportError,
)
from dasf_geo.protocol.messages import (
    ConsumerMessage,
    ProducerAck,
    ack_frame,
    build_producer_frame,
    negative_ack_frame,
    parse_ack,
    parse_consumer_message,
)

__all__ = ["AsyncConsumer", "AsyncProducer", "WebSocketLink", "redact_url"]

logger = logging.getLogger(__name__)

#: Largest frame we accept from a broker unless told otherwise.
DEFAULT_MAX_FRAME = 64 * 1024 * 1024


def redact_url(url: str) -> str:
    """``url`` with the value of a ``token`` query parameter hidden."""
    if "token=" not in url:
        return url
    head, _, query = url.partition("?")
    parts = [
        "token=***" if part.startswith("token=") else part for part in query.split("&")
    ]
    return head + "?" + "&".join(parts)


class WebSocketLink:
    """One WebSocket connection to a broker URL.

    Args:
        url: the full ``ws://`` or ``wss://`` URL of a producer or consumer.
        header: extra HTTP headers for the handshake (e.g. ``Authorization``).
        open_timeout: seconds to wait for the handshake.
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
        self._ws: ClientConnection | None = None

    @property
    def connected(self) -> bool:
        """True while the WebSocket is open."""
        return self._ws is not None and self._ws.state is websockets.State.OPEN

    async def connect(self) -> None:
        """Open the connection.

        Raises:
            ConnectionFailed: the broker cannot be reached within
                ``open_timeout`` or refused the handshake; the message names
                the URL and the broker's reason.
        """
        shown = redact_url(self.url)
        try:
            self._ws = await connect(
                self.url,
                additional_headers=self.header or None,
                open_timeout=self.open_timeout,
                max_size=self.max_frame,
                # base64 hardly compresses, and deflate would cap throughput
                compression=None,
                # large frames: let the kernel buffer, we do flow control
                write_limit=4 * 1024 * 1024,
                max_queue=64,
                ping_interval=20,
                ping_timeout=60,
                close_timeout=5,
            )
        except InvalidStatus as exc:
            body = exc.response.body.decode("utf-8", "replace").strip()[:300]
            reason = f"HTTP {exc.response.status_code}" + (f": {body}" if body else "")
            raise ConnectionFailed(
                f"the broker refused the connection to {shown} ({reason})", url=self.url
            ) from exc
        except (asyncio.TimeoutError, TimeoutError) as exc:
            raise ConnectionFailed(
                f"no connection to {shown} within {self.open_timeout:g} s", url=self.url
            ) from exc
        except (OSError, InvalidHandshake, ValueError) as exc:
            raise ConnectionFailed(
                f"cannot connect to {shown}: {exc}", url=self.url
            ) from exc

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                await ws.close()
            except Exception:  # closing a broken connection may fail; it is gone
                logger.debug("error closing %s", redact_url(self.url), exc_info=True)

    def _require(self) -> ClientConnection:
        if self._ws is None:
            raise TransportError(
                f"not connected to {redact_url(self.url)}", url=self.url
            )
        return self._ws

    def _closed_error(self, exc: ConnectionClosed) -> TransportError:
        rcvd = exc.rcvd
        reason = f" (code {rcvd.code}: {rcvd.reason})" if rcvd is not None else ""
        return TransportError(
            f"the connection to {redact_url(self.url)} was closed{reason}", url=self.url
        )


class AsyncProducer(WebSocketLink):
    """Sends messages to one topic and matches the broker's acks.

    Sends may run concurrently; each one waits for its own ack (matched by
    the frame's ``context``). At most ``window`` messages are unacknowledged
    at any time, so a fast sender never outruns the broker — this replaces
    the reference's sleeps between fragments.
    """

    def __init__(
        self,
        url: str,
        header: Mapping[str, str] | None = None,
        *,
        window: int = 16,
        ack_timeout: float = 60.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(url, header, **kwargs)
        self.window = window
        self.ack_timeout = ack_timeout
        self._counter = itertools.count()
        self._pending: dict[str, asyncio.Future[ProducerAck]] = {}
        self._slots: asyncio.Semaphore | None = None
        self._reader: asyncio.Task[None] | None = None
        self._send_lock: asyncio.Lock | None = None

    async def connect(self) -> None:
        """Open the connection and start reading acks (see :class:`WebSocketLink`)."""
        await super().connect()
        self._slots = asyncio.Semaphore(self.window)
        self._send_lock = asyncio.Lock()
        self._reader = asyncio.get_running_loop().create_task(
            self._read_acks(), name=f"acks {redact_url(self.url)}"
        )

    async def close(self) -> None:
        """Close the connection; unacknowledged sends fail."""
        reader, self._reader = self._reader, None
        await super().close()
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        self._fail_all(TransportError(f"producer {redact_url(self.url)} closed"))

    def _fail_all(self, error: Exception) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(error)
        self._pending.clear()

    async def _read_acks(self) -> None:
        ws = self._require()
        try:
            async for frame in ws:
                try:
                    ack = parse_ack(
                        frame if isinstance(frame, bytes) else frame.encode()
                    )
                except ProtocolError as exc:
                    logger.warning("ignoring a frame from %s: %s", self.url, exc)
                    continue
                fut = self._pending.pop(ack.context or "", None)
                if fut is not None and not fut.done():
                    fut.set_result(ack)
        except ConnectionClosed as exc:
            self._fail_all(self._closed_error(exc))
        else:
            self._fail_all(
                TransportError(
                    f"the connection to {redact_url(self.url)} was closed", url=self.url
                )
            )

    async def submit(
        self,
        payload: bytes,
        properties: Mapping[str, Any],
        *,
        key: str | None = None,
    ) -> asyncio.Future[ProducerAck]:
        """Send one message without waiting for its ack.

        Waits only while ``window`` messages are unacknowledged, so many
        messages (e.g. the fragments of one payload) are pipelined.

        Returns:
            A future that resolves to the broker's ack (or fails with
            :class:`TransportError` when the connection closes).

        Raises:
            TransportError: the connection is closed.
        """
        ws = self._require()
        assert self._slots is not None and self._send_lock is not None
        await self._slots.acquire()
        context = str(next(self._counter))
        frame = build_producer_frame(payload, properties, context)
        if key is not None:
            # splice the key in without re-serialising the payload
            frame = frame[:-1] + b',"key":' + _json_text(key) + b"}"
        fut: asyncio.Future[ProducerAck] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(lambda _: self._slots.release())  # type: ignore[union-attr]
        self._pending[context] = fut
        try:
            async with self._send_lock:
                await ws.send(frame, text=True)
        except ConnectionClosed as exc:
            self._pending.pop(context, None)
            error = self._closed_error(exc)
            if not fut.done():
                fut.set_exception(error)
            fut.exception()  # mark retrieved; we raise it here instead
            raise error from exc
        return fut

    async def wait_ack(self, fut: asyncio.Future[ProducerAck]) -> ProducerAck:
        """Wait for the ack behind ``fut`` (from :meth:`submit`).

        Raises:
            SendError: the broker answered with a result other than ``ok``.
            TransportError: the connection closed or no ack arrived within
                ``ack_timeout`` seconds.
        """
        try:
            ack = await asyncio.wait_for(asyncio.shield(fut), self.ack_timeout)
        except asyncio.TimeoutError:
            for context, pending in list(self._pending.items()):
                if pending is fut:
                    del self._pending[context]
            if not fut.done():
                fut.cancel()
            raise TransportError(
                f"no ack from the broker at {redact_url(self.url)} within "
                f"{self.ack_timeout:g} s",
                url=self.url,
            ) from None
        if not ack.ok:
            raise SendError(
                f"the broker at {redact_url(self.url)} refused a message: "
                f"{ack.result}" + (f" ({ack.error})" if ack.error else ""),
                url=self.url,
            )
        return ack

    async def send(
        self,
        payload: bytes,
        properties: Mapping[str, Any],
        *,
        key: str | None = None,
    ) -> ProducerAck:
        """Send one message and wait for the broker's ack.

        Args:
            payload: base64 text (ASCII bytes).
            properties: the message properties.
            key: an optional message key (Pulsar ``key``).

        Raises:
            SendError: the broker answered with a result other than ``ok``.
            TransportError: the connection closed or no ack arrived within
                ``ack_timeout`` seconds.
        """
        return await self.wait_ack(await self.submit(payload, properties, key=key))


def _json_text(value: str) -> bytes:
    return json.dumps(value).encode("utf-8")


class AsyncConsumer(WebSocketLink):
    """Receives the messages of one subscription and acknowledges them."""

    async def receive(self) -> ConsumerMessage:
        """Wait for the next well-formed message.

        Frames that are not valid consumer messages are logged and skipped.

        Raises:
            TransportError: the connection closed.
        """
        ws = self._require()
        while True:
            try:
                frame = await ws.recv(decode=False)
            except ConnectionClosed as exc:
                raise self._closed_error(exc) from exc
            try:
                return parse_consumer_message(frame)
            except ProtocolError as exc:
                logger.warning(
                    "ignoring a frame from %s: %s", redact_url(self.url), exc
                )

    async def ack(self, message_id: str) -> None:
        """Acknowledge ``message_id``.

        Raises:
            TransportError: the connection closed.
        """
        await self._send_control(ack_frame(message_id))

    async def negative_ack(self, message_id: str) -> None:
        """Ask the broker to redeliver ``message_id`` (Pulsar negative ack)."""
        await self._send_control(negative_ack_frame(message_id))

    async def _send_control(self, frame: bytes) -> None:
        ws = self._require()
        try:
            await ws.send(frame, text=True)
        except ConnectionClosed as exc:
            raise self._closed_error(exc) from exc
