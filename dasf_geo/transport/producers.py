"""The listener's producers on its callers' response topics.

A backend answers on each caller's private response topic, so it keeps one
producer per topic it answers on: opened on the first reply, reused while
it stays connected, closed once idle for ``producer_keep_alive`` seconds.
A producer whose handshake fails is tried again after the delays of
:data:`~dasf_geo.transport.backend.REPLY_CONNECT_DELAYS`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from dasf_geo.exceptions import ConnectionFailed
from dasf_geo.transport.connection import AsyncProducer
from dasf_geo.transport.failover import Fronts, connect_first, front_urls

__all__ = ["ReplyProducers"]

logger = logging.getLogger("dasf_geo.transport.backend")


class ReplyProducers:
    """One producer per response topic, kept while in use.

    Args:
        config: the messaging config (builds each topic's URL).
        header: the HTTP headers of the handshake (a token).
        open_timeout: seconds a handshake may take.
        keep_alive: seconds a producer stays open unused (0: for good).
        fronts: the broker fronts of the listener (its consumer's front is
            tried first, then the others of a cluster); one front when None.
    """

    def __init__(
        self,
        config: Any,
        header: dict[str, str],
        open_timeout: float,
        keep_alive: float,
        fronts: Fronts | None = None,
    ) -> None:
        self.config = config
        self.header = header
        self.open_timeout = open_timeout
        self.keep_alive = keep_alive
        self.fronts = fronts if fronts is not None else Fronts(1)
        self._producers: dict[str, tuple[AsyncProducer, float]] = {}
        self._producer_locks: dict[str, asyncio.Lock] = {}

    def ready(self, topic: str) -> AsyncProducer | None:
        """The producer on ``topic`` if it can take a message now, else None."""
        entry = self._producers.get(topic)
        if entry is None:
            return None
        producer = entry[0]
        if not producer.connected or not producer.has_room:
            return None
        return producer

    def used(self, topic: str, producer: AsyncProducer) -> None:
        """Note that ``producer`` on ``topic`` was used now."""
        self._producers[topic] = (producer, time.monotonic())

    async def get(self, topic: str) -> AsyncProducer:
        """A connected producer on ``topic``, opened if need be.

        Raises:
            ConnectionFailed: it cannot be opened.
        """
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

        urls = front_urls(self.config, topic)
        for delay in (*backend.REPLY_CONNECT_DELAYS, None):
            producer = AsyncProducer(
                self.fronts.pick(urls), self.header, open_timeout=self.open_timeout
            )
            try:
                # the front in use first, then the others of a cluster
                await connect_first(producer, urls, self.fronts)
                return producer
            except ConnectionFailed as exc:
                if delay is None:
                    raise
                logger.warning("%s; trying again in %g s", exc, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def close_idle(self, now: float) -> None:
        """Close the producers unused for longer than ``keep_alive``."""
        for topic, (producer, used) in list(self._producers.items()):
            if self.keep_alive and now - used > self.keep_alive:
                self._producers.pop(topic, None)
                await producer.close()

    async def close(self) -> None:
        """Close every producer."""
        for producer, _ in list(self._producers.values()):
            await producer.close()
        self._producers.clear()
