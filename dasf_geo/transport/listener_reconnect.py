"""The listener's side of broker-front failover: reconnecting its consumer.

:class:`~dasf_geo.transport.listener.Listener` inherits these methods from
:class:`ListenerReconnect`: waiting until it is stopped while its
connection stays up, and reopening the connection with backoff, round
robin over the broker fronts (:class:`~dasf_geo.transport.failover.Fronts`),
when it drops. The I/O-free rules live in :mod:`dasf_geo.transport.failover`;
the handling of requests in :mod:`dasf_geo.transport.listener`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from dasf_geo.exceptions import TransportError
from dasf_geo.transport.connection import AsyncConsumer, backoff_delays, redact_url
from dasf_geo.transport.failover import Fronts

__all__ = [
    "RECONNECT_FIRST_DELAY",
    "RECONNECT_MAX_DELAY",
    "ListenerReconnect",
]

logger = logging.getLogger("dasf_geo.transport.backend")

#: Seconds before the first reconnect attempt, and the longest wait.
RECONNECT_FIRST_DELAY = 0.1
RECONNECT_MAX_DELAY = 10.0


class ListenerReconnect:
    """The reconnect methods of :class:`~dasf_geo.transport.listener.Listener`.

    A mixin: it works on the listener's consumer, fronts and events,
    declared below for the type checker and set by ``Listener.__init__``
    and ``Listener.run``.
    """

    _consumer: AsyncConsumer
    _consumer_urls: list[str]
    _fronts: Fronts
    _stopping: asyncio.Event | None
    connected: asyncio.Event
    consumer_url: str

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
        # with several broker fronts, each round tries the next ones first
        for front, wait in self._fronts.schedule(delays):
            if wait:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), wait)
            if self._stopping.is_set():
                break
            await self._consumer.close()
            attempt += 1
            self._consumer.url = self._consumer_urls[front]
            try:
                await self._consumer.connect()
            except TransportError as exc:
                logger.warning("connection attempt %d failed: %s", attempt, exc)
                continue
            self._fronts.move_to(front, self._consumer.url)
            self.consumer_url = self._consumer.url
            logger.info(
                "connection attempt %d: reconnected to %s",
                attempt,
                redact_url(self.consumer_url),
            )
            self.connected.set()
            return True
        return False
