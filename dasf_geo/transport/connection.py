"""The producer and the consumer connections of callers and backends.

:class:`AsyncProducer` sends messages to one topic and matches the
broker's acks within a window of unacknowledged messages;
:class:`AsyncConsumer` receives the messages of one subscription and
acknowledges them, in small batches. Both are a
:class:`~dasf_geo.transport.link.WebSocketLink` (one ``picows`` connection,
its reconnect delays and the redaction of tokens in URLs, in
:mod:`dasf_geo.transport.link`), whose names are importable from here too.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from picows import WSMsgType

from dasf_geo.exceptions import (
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
from dasf_geo.transport.link import (
    DEFAULT_MAX_FRAME,
    WebSocketLink,
    backoff_delays,
    redact_url,
)

__all__ = [
    "DEFAULT_MAX_FRAME",
    "AsyncConsumer",
    "AsyncProducer",
    "WebSocketLink",
    "backoff_delays",
    "check_ack",
    "redact_url",
]

logger = logging.getLogger(__name__)

#: Seconds a consumer may hold acks to send them together (see ``ack_soon``).
ACK_DELAY = 0.005
#: Acks a consumer sends at once, without waiting for :data:`ACK_DELAY`.
ACK_BATCH = 64


class AsyncProducer(WebSocketLink):
    """Sends messages to one topic and matches the broker's acks.

    Sends may run concurrently; each one gets its own ack (matched by the
    frame's ``context``). At most ``window`` messages are unacknowledged at
    any time, so a fast sender never outruns the broker — this replaces the
    reference's sleeps between fragments.
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
        self._slot_waiters: collections.deque[asyncio.Future[None]] = (
            collections.deque()
        )

    def _on_connected(self) -> None:
        self._pending = {}

    async def close(self) -> None:
        """Close the connection; unacknowledged sends fail."""
        await super().close()
        self._fail_all(TransportError(f"producer {redact_url(self.url)} closed"))

    def _fail_all(self, error: Exception) -> None:
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(error)
        self._wake_slots()

    def _on_disconnected(self) -> None:
        super()._on_disconnected()
        self._fail_all(self._closed_error())

    def _on_frame(self, data: bytes) -> None:
        try:
            ack = parse_ack(data)
        except ProtocolError as exc:
            logger.warning("ignoring a frame from %s: %s", redact_url(self.url), exc)
            return
        fut = self._pending.pop(ack.context or "", None)
        if fut is not None and not fut.done():
            fut.set_result(ack)
        self._wake_slots()

    def _wake_slots(self) -> None:
        waiters = self._slot_waiters
        room = self.window - len(self._pending)
        while waiters and room > 0:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                room -= 1

    @property
    def has_room(self) -> bool:
        """True if a message can be sent now without waiting."""
        return (
            len(self._pending) < self.window
            and self._writable.is_set()
            and not self._slot_waiters
        )

    def submit_now(
        self,
        payload: bytes,
        properties: Mapping[str, Any],
        *,
        key: str | None = None,
    ) -> asyncio.Future[ProducerAck]:
        """Send one message at once, whatever the window; return its ack future.

        For small messages of callers that checked :attr:`has_room` (or
        that may overshoot the window by one). The future fails with
        :class:`TransportError` when the connection closes.

        Raises:
            TransportError: the connection is closed.
        """
        transport = self._require()
        context = str(next(self._counter))
        frame = build_producer_frame(payload, properties, context)
        if key is not None:
            # splice the key in without re-serialising the payload
            frame = frame[:-1] + b',"key":' + _json_text(key) + b"}"
        fut: asyncio.Future[ProducerAck] = asyncio.get_running_loop().create_future()
        self._pending[context] = fut
        transport.send(WSMsgType.TEXT, frame)
        return fut

    async def submit(
        self,
        payload: bytes,
        properties: Mapping[str, Any],
        *,
        key: str | None = None,
    ) -> asyncio.Future[ProducerAck]:
        """Send one message without waiting for its ack.

        Waits only while ``window`` messages are unacknowledged or the
        socket's write buffer is full, so many messages (e.g. the fragments
        of one payload) are pipelined.

        Returns:
            A future that resolves to the broker's ack (or fails with
            :class:`TransportError` when the connection closes).

        Raises:
            TransportError: the connection is closed.
        """
        while True:
            self._require()
            if len(self._pending) >= self.window:
                await self._wait_for_slot()
            elif not self._writable.is_set():
                await self._drain()
            else:
                break
        return self.submit_now(payload, properties, key=key)

    async def _wait_for_slot(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._slot_waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            with contextlib.suppress(ValueError):
                self._slot_waiters.remove(waiter)
            self._wake_slots()  # pass on a wake-up this waiter may have had
            raise

    async def wait_ack(self, fut: asyncio.Future[ProducerAck]) -> ProducerAck:
        """Wait for the ack behind ``fut`` (from :meth:`submit`).

        Raises:
            SendError: the broker answered with a result other than ``ok``.
            TransportError: the connection closed or no ack arrived within
                ``ack_timeout`` seconds.
        """
        if not fut.done():
            loop = asyncio.get_running_loop()
            handle = loop.call_later(self.ack_timeout, self._ack_timed_out, fut)
            try:
                await asyncio.shield(fut)
            finally:
                handle.cancel()
        return check_ack(fut.result(), self.url)

    def _ack_timed_out(self, fut: asyncio.Future[ProducerAck]) -> None:
        for context, pending in list(self._pending.items()):
            if pending is fut:
                del self._pending[context]
        if not fut.done():
            fut.set_exception(
                TransportError(
                    f"no ack from the broker at {redact_url(self.url)} within "
                    f"{self.ack_timeout:g} s",
                    url=self.url,
                )
            )
        self._wake_slots()

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


def check_ack(ack: ProducerAck, url: str) -> ProducerAck:
    """Return ``ack`` if the broker accepted the message.

    Raises:
        SendError: the broker answered with a result other than ``ok``.
    """
    if not ack.ok:
        raise SendError(
            f"the broker at {redact_url(url)} refused a message: "
            f"{ack.result}" + (f" ({ack.error})" if ack.error else ""),
            url=url,
        )
    return ack


def _json_text(value: str) -> bytes:
    return json.dumps(value).encode("utf-8")


class AsyncConsumer(WebSocketLink):
    """Receives the messages of one subscription and acknowledges them.

    Each well-formed message is handed to ``on_message`` as it arrives (on
    the event loop, without a task switch); frames that are not consumer
    messages are logged and skipped. How many messages arrive before any is
    acked is bounded by the broker (``receiverQueueSize``).

    Args:
        on_message: called with each message.
        ack_delay: seconds :meth:`ack_soon` may hold an ack.
    """

    def __init__(
        self,
        url: str,
        header: Mapping[str, str] | None = None,
        *,
        on_message: Callable[[ConsumerMessage], None],
        ack_delay: float = ACK_DELAY,
        **kwargs: Any,
    ) -> None:
        super().__init__(url, header, **kwargs)
        self.on_message = on_message
        self.ack_delay = ack_delay
        self._ack_batch: list[str] = []
        self._ack_timer: asyncio.TimerHandle | None = None

    def _on_frame(self, data: bytes) -> None:
        try:
            msg = parse_consumer_message(data)
        except ProtocolError as exc:
            logger.warning("ignoring a frame from %s: %s", redact_url(self.url), exc)
            return
        self.on_message(msg)

    def ack_soon(self, message_id: str) -> None:
        """Acknowledge ``message_id`` within :attr:`ack_delay` seconds.

        Acks that come due together are written back to back, so the broker
        wakes up once for many of them instead of once per message. The
        batch is flushed when it reaches :data:`ACK_BATCH` acks, after
        ``ack_delay`` seconds, before the connection is closed, and whenever
        the owner calls :meth:`flush_acks` because it sends something anyway
        (the client with its next request, the backend with its next reply).
        Failures are not raised: an unacknowledged message is redelivered.
        """
        self._ack_batch.append(message_id)
        if len(self._ack_batch) >= ACK_BATCH or self.ack_delay <= 0:
            self.flush_acks()
        elif self._ack_timer is None:
            self._ack_timer = asyncio.get_running_loop().call_later(
                self.ack_delay, self.flush_acks
            )

    def flush_acks(self) -> None:
        """Send the acks that :meth:`ack_soon` collected (errors are logged)."""
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        batch, self._ack_batch = self._ack_batch, []
        if not batch:
            return
        try:
            transport = self._require()
            for message_id in batch:
                transport.send(WSMsgType.TEXT, ack_frame(message_id))
        except TransportError as exc:
            logger.debug("%d ack(s) not sent: %s", len(batch), exc)

    async def close(self) -> None:
        """Send the acks still collected, then close the connection."""
        self.flush_acks()
        await super().close()

    def ack_now(self, message_id: str) -> None:
        """Acknowledge ``message_id`` at once (no waiting).

        Raises:
            TransportError: the connection closed.
        """
        self._send_now(ack_frame(message_id))

    async def negative_ack(self, message_id: str) -> None:
        """Ask the broker to redeliver ``message_id`` (Pulsar negative ack)."""
        self.nack_now(message_id)

    def nack_now(self, message_id: str) -> None:
        """Ask the broker to redeliver ``message_id`` at once (no waiting).

        Raises:
            TransportError: the connection closed.
        """
        self.flush_acks()  # keep acks and negative acks in order
        self._send_now(negative_ack_frame(message_id))
