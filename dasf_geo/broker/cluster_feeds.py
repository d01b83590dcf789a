"""Feeding a front's consumers from NATS: subscriptions, pulls, acks.

:class:`FeedMixin` is the feed half of
:class:`~dasf_geo.broker.cluster_nats.NatsBinding`: it opens and closes a
:class:`~dasf_geo.broker.cluster_nats.Feed` (a core NATS subscription for a
non-persistent topic, a durable JetStream pull consumer for a persistent
one; the former on the front's data connection,
:class:`~dasf_geo.broker.nats_data.DataConnection`, the latter on nats-py),
pulls only as many messages as the front's WebSocket consumers have
room for, and acks or naks each message as its consumer settles it. Leases
(:mod:`dasf_geo.broker.cluster_leases`) decide when an Exclusive or
Failover feed is active.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from dasf_geo.broker.cluster_leases import LeaseMixin, _import_nats
from dasf_geo.broker.cluster_names import WireMessage, decode_message
from dasf_geo.broker.names import TopicName
from dasf_geo.exceptions import BrokerError, ProtocolError

if TYPE_CHECKING:
    from dasf_geo.broker.cluster_keys import KeyRouter
    from dasf_geo.broker.cluster_nats import Feed
    from dasf_geo.broker.nats_data import DataConnection
    from dasf_geo.broker.nats_wire import Msg

__all__ = ["FeedMixin"]

logger = logging.getLogger("dasf_geo.broker.cluster_nats")

#: seconds a pull request stays open on the server
_PULL_EXPIRES = 20.0
#: seconds before a message given back is redelivered
_NAK_DELAY = 0.05
#: most messages asked for in one pull request
_MAX_BATCH = 256


class FeedMixin(LeaseMixin):
    """The feed half of :class:`~dasf_geo.broker.cluster_nats.NatsBinding`."""

    nc: Any
    data: DataConnection | None
    ack_wait: float
    subscription_expiry: float | None
    connected: bool
    feeds: set[Feed]
    keys: KeyRouter | None
    _durables: set[str]
    _background: set[asyncio.Future[Any]]

    def _subject(self, topic: TopicName) -> str:  # pragma: no cover
        raise NotImplementedError

    async def open_feed(self, feed: Feed) -> None:
        """Start feeding ``feed`` (now for Shared, once leased otherwise).

        Raises:
            BrokerError: NATS refused the subscription or durable consumer.
        """
        self.feeds.add(feed)
        if feed.topic.persistent:
            await self._ensure_durable(feed)
            feed.inbox = self.nc.new_inbox()

            async def on_pulled(msg: Any) -> None:
                pulled = self._on_pulled(feed, msg)
                if pulled is not None:
                    wire, count = pulled
                    if await self._keep(feed, wire, msg.data, msg, count):
                        feed.deliver(feed, wire, msg, count)

            feed.inbox_sub = await self.nc.subscribe(feed.inbox, cb=on_pulled)
        if feed.sub_type == "Shared":
            await self._activate(feed)
        else:
            if (
                not feed.topic.persistent
                and self.lease_holder(feed.topic, feed.subscription) is None
            ):
                # nobody else is known to hold it: subscribe at once (a
                # caller's replies may follow its handshake closely; a
                # persistent topic keeps them meanwhile) and give way if
                # the lease turns out to be another front's
                await self._activate(feed)
            await self._try_lease(feed)

    async def close_feed(self, feed: Feed) -> None:
        """Stop feeding; release its lease (held messages are nak'ed by the core)."""
        feed.closed = True
        self.feeds.discard(feed)
        for sub in (feed.core_sub, feed.inbox_sub):
            if sub is not None:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
        feed.core_sub = feed.inbox_sub = None
        with contextlib.suppress(Exception):
            await self.nc.flush(2)
        if self.data is not None:
            with contextlib.suppress(Exception):
                await self.data.flush(2)
        # only now: a nak'ed message would otherwise go straight back to
        # this feed's own pull request
        self._nak_given_back(feed)
        feed.shut = True
        if feed.lease_revision is not None:
            key = self.names.lease_key(feed.topic, feed.subscription)
            with contextlib.suppress(Exception):
                await self.kv.delete(key, last=feed.lease_revision)
            feed.lease_revision = None

    async def _ensure_durable(self, feed: Feed) -> None:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        nats = _import_nats()
        durable = self.names.durable(feed.topic, feed.subscription)
        if durable in self._durables:
            return
        config = ConsumerConfig(
            durable_name=durable,
            description=f"{feed.topic.full} subscription {feed.subscription}"[:400],
            filter_subject=self.names.subject(feed.topic),
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.NEW,
            ack_wait=self.ack_wait,
            max_ack_pending=100_000,
            max_waiting=4096,
            inactive_threshold=self.subscription_expiry,
        )
        try:
            await self.js.add_consumer(self.names.stream, config)
        except (asyncio.TimeoutError, nats.errors.Error) as exc:
            # a consumer of that name that exists is fine (another front)
            try:
                await self.js.consumer_info(self.names.stream, durable)
            except Exception:
                raise BrokerError(
                    f"JetStream at {self.url} refused the subscription "
                    f"{feed.subscription!r} of {feed.topic.full}: {exc}"
                ) from exc
        self._durables.add(durable)

    async def _activate(self, feed: Feed) -> None:
        if feed.active or feed.closed:
            return
        feed.active = True
        if feed.topic.persistent:
            self.refill(feed)
            return
        subject = self.names.subject(feed.topic)
        keys = self.keys

        def on_message(msg: Msg) -> Any:
            # called in order of arrival; a keyed message of a Shared
            # subscription may have to wait for the key bucket, and the
            # subscription's next messages wait for it
            try:
                wire = decode_message(msg.data)
            except ProtocolError as exc:
                logger.warning("dropped a message on %s: %s", subject, exc)
                return None
            if wire.key is None or keys is None or feed.sub_type != "Shared":
                feed.deliver(feed, wire, None, 0)
                return None
            return self._route_and_deliver(feed, wire, msg.data)

        queue = self.names.queue_group(feed.subscription)
        assert self.data is not None
        feed.core_sub = self.data.subscribe(
            subject, on_message, queue=queue if feed.sub_type == "Shared" else ""
        )

    async def _route_and_deliver(
        self, feed: Feed, wire: WireMessage, body: bytes | bytearray
    ) -> None:
        if await self._keep(feed, wire, body, None, 0):
            feed.deliver(feed, wire, None, 0)

    async def _deactivate(self, feed: Feed) -> None:
        feed.active = False
        if feed.core_sub is not None:
            with contextlib.suppress(Exception):
                await feed.core_sub.unsubscribe()
            feed.core_sub = None

    # --- JetStream pulls ----------------------------------------------------

    def refill(self, feed: Feed) -> None:
        """Ask JetStream for as many messages as the local consumers take."""
        if not (feed.active and feed.topic.persistent) or feed.closed:
            return
        if not self.connected or feed.inbox_sub is None:
            return
        want = min(feed.room(feed) - feed.pending, _MAX_BATCH)
        if want <= 0:
            return
        feed.pending += want
        feed.last_pull = time.monotonic()
        request = json.dumps(
            {"batch": want, "expires": int(_PULL_EXPIRES * 1e9)}
        ).encode()
        subject = (
            f"$JS.API.CONSUMER.MSG.NEXT.{self.names.stream}."
            f"{self.names.durable(feed.topic, feed.subscription)}"
        )
        self._spawn(self._send_pull(feed, subject, request, want))

    async def _send_pull(
        self, feed: Feed, subject: str, request: bytes, want: int
    ) -> None:
        try:
            await self.nc.publish(subject, request, reply=feed.inbox)
        except Exception as exc:
            feed.pending = max(0, feed.pending - want)
            logger.debug("pull request on %s failed: %s", feed.topic.full, exc)

    async def _keep(
        self,
        feed: Feed,
        wire: WireMessage,
        body: bytes | bytearray,
        msg: Any,
        count: int,
    ) -> bool:
        # the messages of a key (fragments of one payload) stay at one front
        if wire.key is None or self.keys is None or feed.sub_type != "Shared":
            return True
        try:
            return await self.keys.route(feed, wire, body, msg, count)
        except Exception:  # a bug must not lose the message
            logger.exception("error routing a keyed message of %s", feed.topic)
            return True

    def _on_pulled(self, feed: Feed, msg: Any) -> tuple[WireMessage, int] | None:
        headers = msg.headers or {}
        status = headers.get("Status")
        if status:
            if status == "100":
                return None  # heartbeat
            left = headers.get("Nats-Pending-Messages")
            if left is not None and left.isdigit():
                feed.pending = max(0, feed.pending - int(left))
            else:
                feed.pending = 0
            if status == "409":
                logger.debug("pull on %s: %s", feed.topic.full, headers)
            self.refill(feed)
            return None
        feed.pending = max(0, feed.pending - 1)
        if feed.closed:
            self._spawn(msg.nak())
            return None
        try:
            wire = decode_message(msg.data)
        except ProtocolError as exc:
            logger.warning("dropped a message of %s: %s", feed.topic.full, exc)
            self._spawn(msg.term())
            return None
        try:
            count = int(msg.metadata.num_delivered)
        except Exception:
            count = 1
        return wire, max(0, count - 1)

    def settle(self, feed: Feed, msg: Any, acked: bool) -> None:
        """Ack (or nak) a JetStream message a local consumer is done with."""
        feed.held.pop(id(msg), None)
        if acked:
            self._spawn(self._settle(msg, True))
            return
        feed.naks.append(msg)
        if len(feed.naks) == 1:
            # after the current callback: if the feed is closing by then,
            # close_feed naks them after its pulls are gone
            asyncio.get_running_loop().call_soon(self._nak_given_back, feed, False)

    def _nak_given_back(self, feed: Feed, closing: bool = True) -> None:
        if feed.closed and not closing and not feed.shut:
            return  # close_feed naks them once its pulls are gone
        naks, feed.naks = feed.naks, []
        for msg in naks:
            self._spawn(self._settle(msg, False))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _settle(self, msg: Any, acked: bool) -> None:
        try:
            if acked:
                await msg.ack()
            else:
                # a plain nak of several messages at once sometimes made
                # nats-server 2.9 redeliver one of them twice and lose
                # another (until ack_wait); a nak with a delay takes
                # another path in the server and does not
                await msg.nak(delay=_NAK_DELAY)
        except Exception as exc:  # redelivered after ack_wait: at-least-once
            logger.debug("could not settle a message: %s", exc)
