"""The broker's routing, acknowledgement and delivery logic (sans-I/O).

Nothing here touches a socket or asyncio. The server feeds it what clients
send (:meth:`BrokerCore.publish`, :meth:`BrokerCore.consumer_frame`) and
connection events (:meth:`~BrokerCore.subscribe`,
:meth:`~BrokerCore.unsubscribe`); the core answers with ack frames and puts
deliveries into each consumer's :attr:`Consumer.outbox`, calling the
consumer's ``notify`` callback when the outbox was empty. The server renders
and sends them with :meth:`BrokerCore.next_frame`.

The core is built from pure parts: the data model (:mod:`.model`: topics,
subscriptions, consumers, messages), the frame codec (:mod:`.frames`), the
delivery policy (:mod:`.dispatch`) and the status reports (:mod:`.status`).
The names that lived here before those modules existed stay importable
from here. This module stays above 600 lines because :class:`BrokerCore`
is one state machine: publishing, acks, unsubscribing and :meth:`tick`
each update the same accounting (unacked bytes per consumer, client, topic
and broker; the store), and the invariants the property tests check are
easiest to keep where all of it can be read at once.

Delivery model (Pulsar's; docs/protocol.md, "Frames"):

- a message published to a topic goes to every subscription of the topic;
  a topic without subscriptions drops it (Pulsar does the same);
- within a subscription, ``Exclusive`` allows one consumer, ``Failover``
  sends everything to the oldest connected consumer, ``Shared`` spreads
  messages round-robin over the consumers with room;
- a consumer holds at most ``receiverQueueSize`` unacked messages and at
  most ``max_inflight_bytes`` of payload (one message always fits); in
  pull mode also at most the permits it granted. Messages with a ``key``
  the consumer already holds unacked (the fragments of one payload share a
  key) are bounded by bytes only, so a consumer that acks fragments after
  using the whole payload does not wait forever for its rest;
- in a ``Shared`` subscription, messages with a key go to the consumer
  that got the earlier messages of that key, while it holds any of them
  unacked and for ``KEY_AFFINITY`` (60) seconds after it acked the last
  one (a consumer may ack fragments as they arrive);
- unacked messages of a consumer that goes away, and negatively acked ones,
  go back to the front of the subscription's backlog with
  ``redeliveryCount`` + 1;
- a subscription of a ``non-persistent`` topic lives while it has
  consumers; a ``persistent`` topic's subscriptions are durable and its
  messages are written to the :class:`~dasf_geo.broker.store.MessageStore`
  before the producer gets its ack, and deleted when every subscription
  acked them.

Memory is bounded, and one client cannot stall the others:

- :meth:`BrokerCore.is_full` tells the server to stop reading a producer's
  socket while its topic holds ``max_topic_bytes`` of unacked payload;
  ``on_drain`` fires when acks free room again;
- while the whole broker holds ``max_total_bytes``, only the producers of
  topics that hold at least ``max_total_bytes / 32`` (the topics that fill
  it) wait; the others go on up to a ceiling of 1.25 times ``max_total_bytes``,
  where every producer waits;
- the consumers of one client (the same ``quota`` key: a token, when the
  broker checks tokens) hold at most ``max_client_bytes`` unacked, beyond
  one message each;
- a consumer that holds ``max_inflight_bytes`` unacked (while the broker
  is full: ``max_total_bytes / 32``) and acknowledges nothing for
  ``stall_timeout`` seconds is unsubscribed by :meth:`tick`
  (its unacked messages go back to the subscription, as for any consumer
  that leaves) and its ``disconnect`` callback is told why.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from dasf_geo.broker import status
from dasf_geo.broker.dispatch import dispatch, forget_key, release_keys
from dasf_geo.broker.frames import (
    _DELIVERY,
    _ok,
    _send_error,
    read_consumer_frame,
    read_producer_frame,
)
from dasf_geo.broker.frames import _dump as _dump
from dasf_geo.broker.model import (
    CEILING_FACTOR,
    DEFAULT_MAX_CLIENT_BYTES,
    DEFAULT_MAX_INFLIGHT_BYTES,
    DEFAULT_MAX_TOPIC_BYTES,
    DEFAULT_MAX_TOTAL_BYTES,
    DEFAULT_RECEIVER_QUEUE_SIZE,
    DEFAULT_STALL_TIMEOUT,
    FAIR_SHARE_DIVISOR,
    MAX_RECEIVER_QUEUE_SIZE,
    SUBSCRIPTION_TYPES,
    Consumer,
    Message,
    Quota,
    SendErrorCode,
    SubscribeError,
    Subscription,
    Topic,
    _Entry,
    _now_iso,
    _Tokens,
)
from dasf_geo.broker.model import KEY_AFFINITY as KEY_AFFINITY
from dasf_geo.broker.names import TopicName
from dasf_geo.exceptions import BrokerError

if TYPE_CHECKING:
    from dasf_geo.broker.store import MessageStore

__all__ = ["BrokerCore"]


class BrokerCore:
    """Topics, subscriptions, deliveries and acks, without any I/O.

    Args:
        store: where persistent topics keep their messages; without one,
            persistent topics behave like non-persistent ones.
        max_topic_bytes: unacked payload bytes per topic before
            :meth:`is_full` says to pause its producers.
        max_total_bytes: the same limit for the whole broker.
        max_inflight_bytes: unacked payload bytes per consumer.
        max_client_bytes: unacked payload bytes of all consumers that share
            a ``quota`` key (see :meth:`subscribe`).
        stall_timeout: seconds a consumer may hold ``max_inflight_bytes``
            without acknowledging anything before :meth:`tick` unsubscribes
            it; None: never.
        subscription_expiry: seconds after which a durable subscription
            without consumers is deleted with its messages by :meth:`tick`
            (Pulsar's ``subscriptionExpirationTimeMinutes``); None: never.
        clock: the monotonic clock used for ack timeouts and expiry.

    Raises:
        BrokerError: the store cannot be read.
    """

    def __init__(
        self,
        store: MessageStore | None = None,
        *,
        max_topic_bytes: int = DEFAULT_MAX_TOPIC_BYTES,
        max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
        max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES,
        max_client_bytes: int = DEFAULT_MAX_CLIENT_BYTES,
        stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
        subscription_expiry: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.max_topic_bytes = max_topic_bytes
        self.max_total_bytes = max_total_bytes
        #: topics holding this much wait while the broker is full
        self.fair_share_bytes = max(1, max_total_bytes // FAIR_SHARE_DIVISOR)
        #: where every producer waits
        self.ceiling_bytes = int(max_total_bytes * CEILING_FACTOR)
        self.max_inflight_bytes = max_inflight_bytes
        self.max_client_bytes = max_client_bytes
        self.stall_timeout = stall_timeout
        self._quotas: dict[str, Quota] = {}
        self.subscription_expiry = subscription_expiry
        self.clock = clock
        self.topics: dict[str, Topic] = {}
        self.held_bytes = 0
        #: called with the topic when acks free room below the limits
        self.on_drain: Callable[[Topic], None] | None = None
        self.started = time.time()
        self._consumer_ids = 0
        self._tokens = _Tokens()
        if store is not None:
            self._load(store)

    # --- topics ---------------------------------------------------------------

    def topic(self, name: TopicName) -> Topic:
        """The topic called ``name``, created if needed."""
        topic = self.topics.get(name.full)
        if topic is None:
            topic = self.topics[name.full] = Topic(name)
        return topic

    def _maybe_forget(self, topic: Topic) -> None:
        # status-ping data goes with the topic: memory stays bounded by the
        # topics in use
        if not topic.subscriptions and not topic.producers and not topic.held_bytes:
            self.topics.pop(topic.name.full, None)

    def is_full(self, topic: Topic) -> bool:
        """True while producers of ``topic`` must wait (memory limits reached).

        That is while the topic holds ``max_topic_bytes``; while the broker
        holds ``max_total_bytes`` and the topic is one of those that fill it
        (it holds :attr:`fair_share_bytes`); and while the broker holds
        :attr:`ceiling_bytes`, whatever the topic.
        """
        held = topic.held_bytes
        if held >= self.max_topic_bytes:
            return True
        total = self.held_bytes
        if total < self.max_total_bytes:
            return False
        return held >= self.fair_share_bytes or total >= self.ceiling_bytes

    # --- producers ------------------------------------------------------------

    def add_producer(self, name: TopicName) -> Topic:
        """Register a producer connection on ``name``; return the topic."""
        topic = self.topic(name)
        topic.producers += 1
        return topic

    def remove_producer(self, topic: Topic) -> None:
        """Unregister a producer connection of ``topic``."""
        topic.producers = max(0, topic.producers - 1)
        self._maybe_forget(topic)

    def publish(self, topic: Topic, frame: bytes) -> bytes:
        """Accept one producer frame; return the ack frame for the producer.

        The frame must be a JSON object with a base64 ``payload`` string and
        optional ``properties`` (object), ``context`` and ``key``. Errors
        never raise: they are answered with ``send-error:<code>`` acks that
        echo the ``context`` when it could be read.
        """
        read = read_producer_frame(frame)
        if isinstance(read, bytes):
            return read  # an error ack
        payload, properties, context, key, _ = read
        message = Message(
            seq=topic.next_seq,
            message_id=self._tokens.next(),
            payload=payload,
            properties=properties,
            publish_time=_now_iso(),
            context=context,
            key=key,
        )
        subs = list(topic.subscriptions.values())
        if topic.name.persistent and self.store is not None and subs:
            try:
                self.store.add_message(
                    topic.name.full, message, [s.name for s in subs if s.durable]
                )
            except BrokerError as exc:
                return _send_error(SendErrorCode.UNKNOWN, str(exc), context)
        topic.next_seq += 1
        topic.published += 1
        for sub in subs:
            self._enqueue(sub, _Entry(message))
        for sub in subs:
            self._dispatch(sub)
        return _ok(message.message_id, context)

    def _enqueue(self, sub: Subscription, entry: _Entry) -> None:
        message = entry.message
        if message.refs == 0:
            sub.topic.held_bytes += message.size
            self.held_bytes += message.size
        message.refs += 1
        sub.backlog.append(entry)

    def _release(self, sub: Subscription, entry: _Entry, acked: bool) -> None:
        message = entry.message
        message.refs -= 1
        topic = sub.topic
        if acked and sub.durable and self.store is not None:
            # on failure the message stays in the store and is redelivered
            # after a restart: at-least-once, never lost
            with contextlib.suppress(BrokerError):
                self.store.ack(topic.name.full, sub.name, message.seq)
        if message.refs == 0:
            was_full = self.is_full(topic)
            broker_full = self.held_bytes >= self.max_total_bytes
            topic.held_bytes -= message.size
            self.held_bytes -= message.size
            if self.on_drain is not None and (
                (was_full and not self.is_full(topic))
                # room in the broker may let producers of other topics go on
                or (broker_full and self.held_bytes < self.max_total_bytes)
            ):
                self.on_drain(topic)

    # --- consumers ------------------------------------------------------------

    def check_subscribe(
        self,
        name: TopicName,
        subscription: str,
        subscription_type: str = "Exclusive",
        receiver_queue_size: int = DEFAULT_RECEIVER_QUEUE_SIZE,
    ) -> None:
        """Raise if a consumer could not join ``subscription`` right now.

        The server calls this during the WebSocket handshake, so that a
        refused consumer gets an HTTP error with the reason.

        Raises:
            SubscribeError: see :meth:`subscribe`.
        """
        if subscription_type not in SUBSCRIPTION_TYPES:
            raise SubscribeError(
                400,
                f"unsupported subscriptionType {subscription_type[:40]!r}: use "
                + ", ".join(SUBSCRIPTION_TYPES),
            )
        if not 1 <= receiver_queue_size <= MAX_RECEIVER_QUEUE_SIZE:
            raise SubscribeError(
                400,
                f"receiverQueueSize must be between 1 and {MAX_RECEIVER_QUEUE_SIZE}, "
                f"got {receiver_queue_size}",
            )
        topic = self.topics.get(name.full)
        sub = None if topic is None else topic.subscriptions.get(subscription)
        if sub is not None and sub.consumers:
            if sub.type == "Exclusive":
                raise SubscribeError(
                    409,
                    f"Exclusive consumer is already connected to subscription "
                    f"{subscription!r} of topic {name.local!r}: use another "
                    "subscription name or subscriptionType=Shared",
                )
            if sub.type != subscription_type:
                raise SubscribeError(
                    409,
                    f"subscription {subscription!r} of topic {name.local!r} is of "
                    f"type {sub.type}; connect with subscriptionType={sub.type} "
                    "or use another subscription name",
                )

    def subscribe(
        self,
        name: TopicName,
        subscription: str,
        subscription_type: str = "Exclusive",
        *,
        receiver_queue_size: int = DEFAULT_RECEIVER_QUEUE_SIZE,
        pull_mode: bool = False,
        notify: Callable[[], None] | None = None,
        label: str = "",
        ack_timeout: float | None = None,
        quota: str | None = None,
        disconnect: Callable[[str], None] | None = None,
    ) -> Consumer:
        """Connect a consumer to ``subscription`` of topic ``name``.

        ``ack_timeout`` (seconds) sends unacked deliveries back to the
        subscription when :meth:`tick` finds them older than that.
        Consumers with the same ``quota`` key (a client's name) hold at most
        ``max_client_bytes`` unacked together. ``disconnect`` is called
        with a reason if :meth:`tick` unsubscribes the consumer because it
        stalled.

        Raises:
            SubscribeError: an ``Exclusive`` subscription already has a
                consumer, or the subscription has consumers of another type
                (status 409), or an argument is invalid (status 400).
        """
        self.check_subscribe(name, subscription, subscription_type, receiver_queue_size)
        topic = self.topic(name)
        sub = topic.subscriptions.get(subscription)
        if sub is None:
            durable = name.persistent and self.store is not None
            if durable:
                assert self.store is not None
                try:
                    self.store.add_subscription(
                        name.full, subscription, subscription_type
                    )
                except BrokerError as exc:
                    raise SubscribeError(500, str(exc)) from exc
            sub = topic.subscriptions[subscription] = Subscription(
                subscription, topic, subscription_type, durable
            )
        sub.type = subscription_type
        self._consumer_ids += 1
        shared = None
        if quota is not None:
            shared = self._quotas.get(quota)
            if shared is None:
                shared = self._quotas[quota] = Quota(quota, self.max_client_bytes)
        consumer = Consumer(
            id=self._consumer_ids,
            subscription=sub,
            receiver_queue_size=receiver_queue_size,
            pull_mode=pull_mode,
            notify=notify,
            name=label,
            ack_timeout=ack_timeout,
            quota=shared,
            disconnect=disconnect,
        )
        if shared is not None:
            shared.consumers.append(consumer)
        sub.consumers.append(consumer)
        sub.idle_since = None
        self._dispatch(sub)
        return consumer

    def unsubscribe(self, consumer: Consumer) -> None:
        """Disconnect ``consumer``; its unacked messages go back to the backlog.

        A non-durable subscription without consumers is removed with its
        messages (at-most-once on non-persistent topics).
        """
        if consumer.closed:
            return
        consumer.closed = True
        sub = consumer.subscription
        if consumer in sub.consumers:
            sub.consumers.remove(consumer)
        unsent = {token for token, _ in consumer.outbox}
        returned = []
        for token, entry in consumer.inflight.items():
            if token not in unsent:
                entry.redelivery_count += 1
            returned.append(entry)
        consumer.inflight.clear()
        consumer.outbox.clear()
        for key in [k for k, (c, _) in sub.key_owners.items() if c is consumer]:
            del sub.key_owners[key]
            sub.key_released.pop(key, None)
        quota = consumer.quota
        was_full = quota is not None and quota.full
        consumer.add_held(-consumer.inflight_bytes)
        if quota is not None:
            with contextlib.suppress(ValueError):
                quota.consumers.remove(consumer)
            if not quota.consumers:
                self._quotas.pop(quota.key, None)
            elif was_full:
                self._quota_freed(quota, sub)
        returned.sort(key=lambda e: e.message.seq)
        sub.backlog.extendleft(reversed(returned))
        consumer.deadlines.clear()
        if not sub.consumers and not sub.durable:
            self._drop_subscription(sub)
        else:
            if not sub.consumers:
                sub.idle_since = self.clock()
            self._dispatch(sub)

    def _drop_subscription(self, sub: Subscription) -> None:
        topic = sub.topic
        topic.subscriptions.pop(sub.name, None)
        while sub.backlog:
            self._release(sub, sub.backlog.popleft(), acked=False)
        self._maybe_forget(topic)

    def delete_subscription(self, name: TopicName, subscription: str) -> bool:
        """Remove a subscription without consumers, with its stored messages.

        Returns:
            True if it existed.

        Raises:
            SubscribeError: it still has consumers (status 409).
        """
        topic = self.topics.get(name.full)
        sub = None if topic is None else topic.subscriptions.get(subscription)
        if sub is None:
            return False
        if sub.consumers:
            raise SubscribeError(
                409,
                f"subscription {subscription!r} of topic {name.local!r} has "
                "connected consumers",
            )
        if sub.durable and self.store is not None:
            self.store.delete_subscription(name.full, subscription)
        self._drop_subscription(sub)
        return True

    def _dispatch(self, sub: Subscription) -> None:
        dispatch(sub, self.max_inflight_bytes, self._tokens.next)

    def _forget_key(self, sub: Subscription, entry: _Entry) -> None:
        forget_key(sub, entry, self.clock)

    def next_frame(self, consumer: Consumer) -> bytes | None:
        """Take the next delivery of ``consumer`` as a frame to send, if any.

        The frame is ``{"messageId", "payload", "properties", "publishTime",
        "redeliveryCount", "context"?, "key"?}``, built by concatenation so
        that the payload is never copied through JSON.
        """
        if not consumer.outbox:
            return None
        token, entry = consumer.outbox.popleft()
        if consumer.ack_timeout is not None:
            # Pulsar counts the ack timeout from the delivery to the client
            consumer.deadlines.append((self.clock() + consumer.ack_timeout, token))
        message = entry.message
        context = message.context
        key = message.key
        return _DELIVERY % (
            token.encode("ascii"),
            message.payload,
            message.properties,
            message.publish_time.encode("ascii"),
            entry.redelivery_count,
            b"" if context is None else b',"context":' + context,
            b"" if key is None else b',"key":' + key,
        )

    def consumer_frame(self, consumer: Consumer, frame: bytes) -> bool:
        """Handle a frame a consumer sent: ack, negative ack or permit.

        Returns:
            True if it referred to a message the consumer holds (or was a
            permit), False for an ack of an unknown or already acked message
            id, which is ignored as Pulsar does.

        Raises:
            ProtocolError: the frame is not JSON, not an object, has no
                ``messageId`` string, or has an unknown ``type``.
        """
        kind, token, permits = read_consumer_frame(frame)
        if kind == "permit":
            consumer.permits = min(consumer.permits + permits, MAX_RECEIVER_QUEUE_SIZE)
            self._dispatch(consumer.subscription)
            return True
        entry = consumer.inflight.pop(token, None)
        if entry is None:
            return False
        quota = consumer.quota
        was_full = quota is not None and quota.full
        consumer.add_held(-entry.message.size)
        consumer.stalled_since = None
        sub = consumer.subscription
        self._forget_key(sub, entry)
        if kind == "negativeAcknowledge":
            entry.redelivery_count += 1
            sub.backlog.appendleft(entry)
        else:
            self._release(sub, entry, acked=True)
        self._dispatch(sub)
        if was_full and quota is not None:
            self._quota_freed(quota, sub)
        return True

    def _quota_freed(self, quota: Quota, done: Subscription) -> None:
        """A client's quota has room again: its other consumers may take more."""
        if quota.full:
            return
        for sub in {
            id(c.subscription): c.subscription for c in quota.consumers
        }.values():
            if sub is not done:
                self._dispatch(sub)

    # --- time -------------------------------------------------------------------

    def tick(self) -> None:
        """Apply ack timeouts and subscription expiry (call it every second).

        Unacked deliveries older than their consumer's ``ack_timeout`` go
        back to the front of the backlog with ``redeliveryCount`` + 1 (the
        old message id is forgotten); durable subscriptions without
        consumers for ``subscription_expiry`` seconds are deleted.
        """
        now = self.clock()
        for consumer in list(self.all_consumers()):
            if not consumer.deadlines:
                continue
            expired = []
            while consumer.deadlines and consumer.deadlines[0][0] <= now:
                _, token = consumer.deadlines.popleft()
                entry = consumer.inflight.get(token)
                if entry is not None:
                    expired.append((token, entry))
            if not expired:
                continue
            sub = consumer.subscription
            quota = consumer.quota
            was_full = quota is not None and quota.full
            for token, entry in expired:
                del consumer.inflight[token]
                consumer.add_held(-entry.message.size)
                self._forget_key(sub, entry)
                entry.redelivery_count += 1
            expired.sort(key=lambda pair: pair[1].message.seq)
            sub.backlog.extendleft(reversed([entry for _, entry in expired]))
            self._dispatch(sub)
            if was_full and quota is not None:
                self._quota_freed(quota, sub)
        if self.stall_timeout is not None:
            self._disconnect_stalled(now, self.stall_timeout)
        for topic in self.topics.values():
            for sub in topic.subscriptions.values():
                if sub.key_released:
                    release_keys(sub, now)
        if self.subscription_expiry is not None:
            for topic in list(self.topics.values()):
                for sub in list(topic.subscriptions.values()):
                    if (
                        sub.idle_since is not None
                        and not sub.consumers
                        and now - sub.idle_since >= self.subscription_expiry
                    ):
                        self.delete_subscription(topic.name, sub.name)

    def _disconnect_stalled(self, now: float, stall_timeout: float) -> None:
        """Unsubscribe consumers that hold much and ack nothing.

        Much is ``max_inflight_bytes``; while the broker holds
        ``max_total_bytes``, it is :attr:`fair_share_bytes` (a consumer
        then holds less than its own limit, because its topic waits).
        """
        limit = self.max_inflight_bytes
        if self.held_bytes >= self.max_total_bytes:
            limit = min(limit, self.fair_share_bytes)
        for consumer in list(self.all_consumers()):
            if consumer.inflight_bytes < limit:
                consumer.stalled_since = None
                continue
            if consumer.stalled_since is None:
                consumer.stalled_since = now
                continue
            if now - consumer.stalled_since < stall_timeout:
                continue
            held = consumer.inflight_bytes
            self.unsubscribe(consumer)
            if consumer.disconnect is not None:
                consumer.disconnect(
                    f"held {held} bytes unacked for {stall_timeout:g} s without "
                    "acking any; they go back to the subscription"
                )

    # --- status-ping (dasf-broker-django) ---------------------------------------

    def status_ping(
        self, frame: bytes, may_consume: Callable[[TopicName], bool]
    ) -> bytes:
        """Handle a frame sent to ``/ws/status-ping``; return the ack.

        See :func:`dasf_geo.broker.status.status_ping`.
        """
        return status.status_ping(self.topics, frame, may_consume, self._tokens.next)

    # --- persistence ----------------------------------------------------------

    def _load(self, store: MessageStore) -> None:
        from dasf_geo.broker.names import NON_PERSISTENT, PERSISTENT

        def parse(full: str) -> TopicName:
            kind, _, rest = full.partition("://")
            tenant, namespace, local = rest.split("/", 2)
            assert kind in (PERSISTENT, NON_PERSISTENT)
            return TopicName(kind == PERSISTENT, tenant, namespace, local)

        for full, name, sub_type in store.subscriptions():
            topic = self.topic(parse(full))
            durable = Subscription(name, topic, sub_type, True)
            durable.idle_since = self.clock()
            topic.subscriptions[name] = durable
        for full, message, sub_names in store.messages():
            topic = self.topic(parse(full))
            topic.next_seq = max(topic.next_seq, message.seq + 1)
            for sub_name in sub_names:
                sub = topic.subscriptions.get(sub_name)
                if sub is not None:
                    self._enqueue(sub, _Entry(message))

    # --- introspection --------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """What ``GET /topics`` returns: topics, subscriptions, backlogs."""
        return status.stats(self.topics)

    def counts(self) -> dict[str, int]:
        """Numbers of topics, producers and consumers, for ``GET /health``."""
        return status.counts(self.topics, self.held_bytes)

    def all_consumers(self) -> Iterable[Consumer]:
        """Every connected consumer."""
        for topic in list(self.topics.values()):
            for sub in list(topic.subscriptions.values()):
                yield from list(sub.consumers)
