"""The caller's side of broker-front failover: reconnects and resends.

:class:`~dasf_geo.transport.caller.AsyncClient` inherits these methods
from :class:`CallerFailover`: reopening the reply connection with backoff,
round robin over the broker fronts (:class:`~dasf_geo.transport.failover.Fronts`),
failing or keeping the calls in flight when it closes, and sending a request
again through the next front when the one in use went away before
acknowledging it. The I/O-free rules (which URL, which order, which waits)
live in :mod:`dasf_geo.transport.failover`; the sending and matching of
requests in :mod:`dasf_geo.transport.caller`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from dasf_geo.exceptions import ReplyLost, SendError, TransportError
from dasf_geo.protocol.messages import ProducerAck, new_response_topic
from dasf_geo.transport._common import MessagingSettings
from dasf_geo.transport.connection import (
    AsyncConsumer,
    AsyncProducer,
    backoff_delays,
    check_ack,
    redact_url,
)
from dasf_geo.transport.failover import Fronts, connect_first, front_urls
from dasf_geo.transport.matching import ReplyMatcher

__all__ = [
    "RECONNECT_FIRST_DELAY",
    "RECONNECT_MAX_DELAY",
    "RESPONSE_SUBSCRIPTION",
    "CallerFailover",
]

logger = logging.getLogger("dasf_geo.transport.client")

#: Subscription name on the private response topic.
RESPONSE_SUBSCRIPTION = "dasf-geo-caller"
#: Seconds before the first attempt to reopen a lost reply connection, and
#: the longest wait between attempts (see :func:`backoff_delays`).
RECONNECT_FIRST_DELAY = 0.05
RECONNECT_MAX_DELAY = 5.0


class CallerFailover:
    """The reconnect and resend methods of
    :class:`~dasf_geo.transport.caller.AsyncClient`.

    A mixin: it works on the client's connections, fronts and matcher,
    declared below for the type checker and set by ``AsyncClient.__init__``.
    """

    config: MessagingSettings
    topic: str
    response_topic: str
    _producer: AsyncProducer
    _consumer: AsyncConsumer
    _producer_urls: list[str]
    _consumer_urls: list[str]
    _fronts: Fronts
    _matcher: ReplyMatcher
    _replies_persistent: bool
    _replies_ready: asyncio.Event | None
    _resends: set[asyncio.Task[None]]
    _producer_lock: asyncio.Lock | None
    _closed: bool

    async def _reconnect_consumer(self) -> bool:
        """Open the reply connection again; retry with backoff until closed.

        Every failure (a refused handshake, a peer that hangs up before the
        upgrade, a timeout) is retried after a capped, jittered exponential
        delay (:func:`~dasf_geo.transport.connection.backoff_delays`).
        """
        delays = backoff_delays(RECONNECT_FIRST_DELAY, RECONNECT_MAX_DELAY)
        attempt = 0
        # with several broker fronts, each round tries the next ones first
        for front, wait in self._fronts.schedule(delays):
            if wait:
                await asyncio.sleep(wait)
            if self._closed:
                break
            attempt += 1
            await self._consumer.close()
            self._consumer.url = self._consumer_urls[front]
            try:
                await self._consumer.connect()
            except TransportError as exc:
                logger.warning(
                    "reconnecting to the broker (attempt %d): %s", attempt, exc
                )
                continue
            self._fronts.move_to(front, self._consumer.url)
            logger.info(
                "reconnected to %s (attempt %d)",
                redact_url(self._consumer.url),
                attempt,
            )
            return True
        return False

    async def _watch_replies(self) -> None:
        """Reconnect the reply consumer whenever its connection closes."""
        while not self._closed:
            await self._consumer.wait_closed()
            if self._closed:
                return
            assert self._replies_ready is not None
            self._replies_ready.clear()
            reason = self._consumer._closed_error()
            logger.warning("lost the reply connection: %s", reason)
            if not self._replies_persistent:
                # the broker forgets a non-persistent subscription with its
                # consumer: replies on the way now are gone, so the calls
                # waiting for them learn it now, not at their timeout
                self._fail_in_flight(reason)
                if len(self._fronts) > 1:
                    self._new_reply_topic()
            # on a persistent topic the broker redelivers what we missed, so
            # the calls keep waiting until their own timeout
            if not await self._reconnect_consumer():
                return
            self._replies_ready.set()

    def _reply_urls(self) -> list[str]:
        """The reply consumer's URL on each broker front."""
        return front_urls(
            self.config,
            self.response_topic,
            RESPONSE_SUBSCRIPTION,
            {"subscriptionType": "Exclusive"},
        )

    def _new_reply_topic(self) -> None:
        """Subscribe a fresh response topic from the next connection on.

        A broker cluster keeps the ``Exclusive`` reply subscription of a
        dead front for its lease (``--lease``, 6 s by default), refusing a
        new consumer meanwhile. A non-persistent reply topic has nothing
        to keep (the calls waiting on it failed already), so a caller with
        several fronts takes a new one instead of waiting for the lease.
        """
        self.response_topic = new_response_topic(self.topic)
        self._consumer_urls = self._reply_urls()

    def _fail_in_flight(self, reason: Exception) -> None:
        """Fail every call waiting for a reply: its reply may be lost."""

        def lost(what: str) -> ReplyLost:
            return ReplyLost(
                f"the reply to {what} from topic {self.topic!r} may be "
                f"lost: the connection for replies closed while waiting "
                f"({reason}); the request may or may not have run, call "
                "again if that is safe",
                url=redact_url(self._producer.url),
                topic=self.topic,
            )

        self._matcher.fail_in_flight(lost)

    async def _ensure_producer(self) -> AsyncProducer:
        assert self._producer_lock is not None
        async with self._producer_lock:
            if not self._producer.connected:
                await self._producer.close()
                await connect_first(self._producer, self._producer_urls, self._fronts)
        return self._producer

    def _check_ack(
        self,
        fut: asyncio.Future[ProducerAck],
        context: str,
        url: str,
        message: tuple[bytes, dict[str, Any]] | None = None,
    ) -> None:
        """Fail request ``context`` if the broker did not accept it.

        A request ``message`` whose front went away before acknowledging it
        is sent again through the next front instead (see
        :meth:`_may_resend`).
        """
        if fut.cancelled():
            return
        error = fut.exception()
        if error is None:
            try:
                check_ack(fut.result(), url)
            except SendError as exc:
                error = exc
        if error is None:
            return
        if (
            message is not None
            and context in self._matcher.pending
            and self._may_resend(error)
        ):
            task = asyncio.get_running_loop().create_task(
                self._resend(context, *message)
            )
            self._resends.add(task)
            task.add_done_callback(self._resends.discard)
            return
        self._matcher.finish(context, error=error)

    def _may_resend(self, error: BaseException) -> bool:
        """True if a request whose send failed with ``error`` is sent again.

        Only with several broker fronts and on a persistent topic: the
        front may have stored the request before it died (then it runs
        twice, and the caller keeps the first reply, matched by context),
        which a persistent topic's at-least-once delivery allows. A broker
        that refused the message (:class:`SendError`) is not asked again.
        """
        return (
            self._replies_persistent
            and len(self._fronts) > 1
            and not self._closed
            and isinstance(error, TransportError)
            and not isinstance(error, SendError)
        )

    async def _resend(
        self, context: str, payload: bytes, props: dict[str, Any]
    ) -> None:
        """Send a one-message request (base64 ``payload``) again."""
        try:
            await self._across_fronts(self._producer, lambda p: p.send(payload, props))
        except Exception as exc:
            self._matcher.finish(context, error=exc)

    async def _across_fronts(
        self,
        producer: AsyncProducer,
        send: Callable[[AsyncProducer], Awaitable[Any]],
    ) -> None:
        """``await send(producer)``; again through the next front when the
        one in use goes away meanwhile (see :meth:`_may_resend`)."""
        while True:
            try:
                await send(producer)
                return
            except TransportError as exc:
                if not self._may_resend(exc):
                    raise
                logger.warning(
                    "sending a request to topic %r again through another broker "
                    "front: %s",
                    self.topic,
                    exc,
                )
            ready = self._replies_ready
            if ready is not None and not ready.is_set():
                await ready.wait()  # the reply connection is being reopened
            if self._closed:
                raise TransportError(f"the client for topic {self.topic!r} was closed")
            producer = await self._ensure_producer()
