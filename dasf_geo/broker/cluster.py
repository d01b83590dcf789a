"""A broker cluster: stateless WebSocket fronts over NATS JetStream.

``dasf-geo broker --cluster nats://HOST:4222`` runs a :class:`ClusterBroker`:
the same WebSocket server as the embedded broker (both URL layouts, auth,
``/health``, ``/topics``, frame size limit, keepalive), but topics,
subscriptions, delivery, acks and persistence live in NATS, as Pulsar's
WebSocket proxy keeps them in the Pulsar brokers behind it. Start as many
fronts as you like, on as many hosts, with the same ``--cluster-name``; a
producer on one front reaches consumers on every front.

Layers inside a front:

- :class:`FrontCore`, a :class:`~dasf_geo.broker.core.BrokerCore` without a
  store, keeps what is local to the front: its consumers, their outboxes,
  ``receiverQueueSize``, unacked bytes, pull-mode permits, ack timeouts,
  Shared/Failover choice among the consumers connected here. It is fed by
  the NATS binding instead of by producers, and tells the binding when a
  message is acked (or given back) so that JetStream learns it;
- :class:`~dasf_geo.broker.cluster_nats.NatsBinding` is the NATS I/O
  (nats-py for JetStream, a data connection of its own for the payloads:
  :mod:`dasf_geo.broker.nats_data`);
- the connection classes here and in :mod:`dasf_geo.broker.cluster_producer`
  connect the two with the picows server; :mod:`dasf_geo.broker.cluster_flow`
  pauses the producers of a non-persistent topic whose consumers on some
  front fall behind.

What the cluster guarantees (see docs/scaling.md): persistent topics are
at-least-once across the loss of a front (its messages are redelivered
after ``ack_wait``) and of NATS connections (fronts reconnect);
non-persistent topics are at-most-once, as on the embedded broker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from dasf_geo.broker.auth import AuthConfig, Grant
from dasf_geo.broker.cluster_flow import FlowControl
from dasf_geo.broker.cluster_names import ClusterNames, WireMessage, parse_servers
from dasf_geo.broker.cluster_nats import Feed, NatsBinding
from dasf_geo.broker.cluster_producer import ClusterProducer, _ack_when_stored, _done
from dasf_geo.broker.core import (
    BrokerCore,
    Message,
    SendErrorCode,
    SubscribeError,
    Subscription,
    _Entry,
    _now_iso,
    _ok,
    _send_error,
    read_producer_frame,
)
from dasf_geo.broker.names import Route, TopicName
from dasf_geo.broker.server import (
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_PORT,
    Broker,
    EmbeddedBroker,
    WSCloseCode,
    _broadcast,
    _Connection,
    _Consumer,
)
from dasf_geo.exceptions import BrokerError, ConfigurationError

__all__ = ["ClusterBroker", "EmbeddedClusterBroker", "FrontCore"]

logger = logging.getLogger(__name__)

#: seconds between two warnings about dropped non-persistent messages
_DROP_WARNING_INTERVAL = 10.0


class FrontCore(BrokerCore):
    """The core of one front: local consumers, fed from NATS.

    Args:
        limits: as for :class:`~dasf_geo.broker.core.BrokerCore` (no store:
            persistence lives in JetStream).
    """

    def __init__(self, **limits: Any) -> None:
        limits.pop("subscription_expiry", None)  # local subscriptions never last
        super().__init__(None, **limits)
        #: a JetStream message and its feed, by the local message
        self.handles: dict[Message, tuple[Feed, Any]] = {}
        #: called with (feed, JetStream message, acked) when a local
        #: consumer is done with a message
        self.settle: Any = None
        #: the front holding an Exclusive lease elsewhere, or None
        self.leased_elsewhere: Any = None
        #: called with a topic that let go of a message
        self.released: Any = None

    def inject(
        self, sub: Subscription, wire: WireMessage, handle: Any, redeliveries: int
    ) -> None:
        """Add a message from NATS to one local subscription and dispatch it."""
        topic = sub.topic
        message = Message(
            seq=topic.next_seq,
            message_id=wire.message_id,
            payload=wire.payload,
            properties=wire.properties,
            publish_time=wire.publish_time,
            context=wire.context,
            key=wire.key,
        )
        topic.next_seq += 1
        topic.published += 1
        if handle is not None:
            self.handles[message] = handle
        self._enqueue(sub, _Entry(message, redeliveries))
        self._dispatch(sub)

    def _release(self, sub: Subscription, entry: _Entry, acked: bool) -> None:
        super()._release(sub, entry, acked)
        handle = self.handles.pop(entry.message, None)
        if handle is not None and self.settle is not None:
            self.settle(handle[0], handle[1], acked)
        if self.released is not None:
            self.released(sub.topic)

    def check_subscribe(
        self,
        name: TopicName,
        subscription: str,
        subscription_type: str = "Exclusive",
        receiver_queue_size: int = 1000,
    ) -> None:
        """As on the embedded broker, and Exclusive across the cluster.

        Raises:
            SubscribeError: see :meth:`BrokerCore.subscribe`; also 409 when
                another front holds the Exclusive subscription.
        """
        super().check_subscribe(
            name, subscription, subscription_type, receiver_queue_size
        )
        if subscription_type == "Exclusive" and self.leased_elsewhere is not None:
            holder = self.leased_elsewhere(name, subscription)
            if holder is not None:
                raise SubscribeError(
                    409,
                    f"Exclusive subscription {subscription[:80]!r} of "
                    f"{name.full[:120]!r} already has a consumer (on broker front "
                    f"{holder})",
                )


def _room(sub: Subscription, max_bytes: int) -> int:
    """How many more messages the consumers of ``sub`` take now."""
    room = 0
    held = 0
    for consumer in sub.consumers:
        free = consumer.receiver_queue_size - len(consumer.inflight)
        if consumer.pull_mode:
            free = min(free, consumer.permits)
        room += max(0, free)
        held += consumer.inflight_bytes
    if not sub.consumers:
        return 0
    held += sum(entry.message.size for entry in sub.backlog)
    if held >= max_bytes * len(sub.consumers):
        return 0
    return room - len(sub.backlog)


class ClusterBroker(Broker):
    """A broker front over NATS JetStream (see the module docstring).

    Takes the arguments of :class:`~dasf_geo.broker.server.Broker` except
    ``store``, and:

    Args:
        cluster: NATS URLs, a list or comma-separated text
            (``nats://127.0.0.1:4222``).
        cluster_name: fronts with the same name on the same NATS are one
            broker (1 to 32 of ``[A-Za-z0-9_-]``).
        ack_wait: seconds before JetStream redelivers the messages of a
            front that died.
        lease: seconds before an Exclusive/Failover subscription held by a
            dead front passes to another.
        connect_timeout: seconds to wait for NATS at start.

    Raises:
        ConfigurationError: an option is invalid (a NATS URL, the cluster
            name, a store given).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        cluster: str | list[str] = "nats://127.0.0.1:4222",
        cluster_name: str = "default",
        ack_wait: float = 30.0,
        lease: float = 6.0,
        connect_timeout: float = 5.0,
        store: Any = None,
        auth: str | os.PathLike[str] | AuthConfig | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        insecure: bool = False,
        **limits: Any,
    ) -> None:
        if store is not None:
            raise ConfigurationError(
                "a cluster front keeps no store: persistent topics live in NATS "
                "JetStream; drop --store or --cluster"
            )
        for what, value in (("ack_wait", ack_wait), ("lease", lease)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not 0.5 <= value <= 86400
            ):
                raise ConfigurationError(
                    f"{what} must be a number of seconds between 0.5 and 86400, got "
                    f"{value!r:.60}"
                )
        servers = parse_servers(
            cluster if isinstance(cluster, str) else ",".join(cluster)
        )
        super().__init__(
            host,
            port,
            auth=auth,
            max_frame_size=max_frame_size,
            insecure=insecure,
            **limits,
        )
        self.names = ClusterNames(cluster_name)
        self.binding = NatsBinding(
            servers,
            self.names,
            ack_wait=float(ack_wait),
            lease=float(lease),
            subscription_expiry=self.limits.get("subscription_expiry"),
            connect_timeout=connect_timeout,
        )
        self._feeds: dict[tuple[str, str], Feed] = {}
        self.flow: FlowControl | None = None
        self._last_drop_warning = 0.0
        self.dropped = 0

    # --- life cycle ---------------------------------------------------------

    async def start(self) -> None:
        """Connect to NATS, then listen.

        Raises:
            BrokerError: NATS is not there (the message names its URL), or
                the port cannot be bound.
        """
        if self.running:
            return
        await self.binding.start()
        try:
            await super().start()
        except BaseException:
            await self.binding.stop()
            raise
        logger.info(
            "broker front %s of cluster %r over NATS at %s",
            self.binding.front_id,
            self.names.cluster,
            self.binding.url,
        )

    async def stop(self) -> None:
        """Close every connection, give back held messages, leave NATS."""
        await super().stop()
        if self.flow is not None:
            await self.flow.stop()
        await self.binding.stop()
        self._feeds.clear()

    def _make_core(self) -> BrokerCore:
        core = FrontCore(**self.limits)
        core.settle = self._settle
        core.leased_elsewhere = self.binding.lease_holder
        self.flow = FlowControl(self.binding, core.max_topic_bytes)
        core.released = self.flow.released
        return core

    def _listener(self, route: Route, grant: Grant | None) -> _Connection:
        if route.kind == "producer":
            return ClusterProducer(self, route)
        if route.kind == "consumer":
            return _ClusterConsumer(self, route, grant)
        return super()._listener(route, grant)

    # --- between the core and NATS ------------------------------------------

    def _settle(self, feed: Feed, msg: Any, acked: bool) -> None:
        self.binding.settle(feed, msg, acked)
        self.binding.refill(feed)

    def _local_sub(self, feed: Feed, name: str) -> Subscription | None:
        assert self.core is not None
        topic = self.core.topics.get(feed.topic.full)
        return None if topic is None else topic.subscriptions.get(name)

    def attach(self, consumer: _ClusterConsumer) -> Feed:
        """The feed of a consumer's local subscription, opened if new."""
        assert consumer.consumer is not None and self.core is not None
        sub = consumer.consumer.subscription
        key = (sub.topic.name.full, sub.name)
        feed = self._feeds.get(key)
        if feed is not None:
            self.binding.refill(feed)
            return feed
        local_name = sub.name
        nats_name = local_name
        if _broadcast(consumer.route):
            # a broadcast consumer's own subscription: unique in the cluster
            nats_name = f"{local_name}.{self.binding.front_id}"
        core = self.core
        assert isinstance(core, FrontCore)
        limit = core.max_inflight_bytes

        def room(feed: Feed) -> int:
            local = self._local_sub(feed, local_name)
            return 0 if local is None else _room(local, limit)

        def deliver(feed: Feed, wire: WireMessage, msg: Any, redeliveries: int) -> None:
            local = self._local_sub(feed, local_name)
            if local is None or feed.closed:
                if msg is not None:
                    self.binding.settle(feed, msg, False)
                return
            if msg is None and core.is_full(local.topic):
                # what was on its way when this front asked to pause is
                # kept (as the embedded broker keeps the frames it read
                # before it paused a producer), up to the front's ceiling
                flow = self.flow
                if (
                    flow is None
                    or not flow.pausing(local.topic.name)
                    or core.held_bytes >= core.ceiling_bytes
                ):
                    self._drop(local.topic.name)
                    return
            if msg is not None:
                feed.held[id(msg)] = msg
            handle = None if msg is None else (feed, msg)
            core.inject(local, wire, handle, redeliveries)
            if msg is None and self.flow is not None:
                self.flow.delivered(local.topic)

        feed = Feed(sub.topic.name, nats_name, sub.type, deliver, room)
        self._feeds[key] = feed
        assert self._loop is not None
        self._loop.create_task(self._start_feed(feed, consumer))
        return feed

    async def _start_feed(self, feed: Feed, consumer: _ClusterConsumer) -> None:
        try:
            await self.binding.open_feed(feed)
        except BrokerError as exc:
            logger.error("%s", exc)
            consumer.close(WSCloseCode.INTERNAL_ERROR, str(exc))
            return
        if feed.sub_type == "Exclusive" and not feed.active:
            holder = self.binding.lease_holder(feed.topic, feed.subscription)
            consumer.close(
                WSCloseCode.POLICY_VIOLATION,
                f"Exclusive subscription {feed.subscription!r} already has a "
                f"consumer (on broker front {holder or 'another front'})",
            )

    def detach(self, consumer: _ClusterConsumer) -> None:
        """Close the feed of a local subscription that lost its last consumer."""
        if consumer.consumer is None:
            return
        sub = consumer.consumer.subscription
        key = (sub.topic.name.full, sub.name)
        feed = self._feeds.get(key)
        if feed is None:
            return
        current = self._local_sub(feed, sub.name)
        if current is not None and current.consumers:
            return  # others (or a newcomer) still consume here
        del self._feeds[key]
        feed.closed = True
        assert self._loop is not None
        self._loop.create_task(self.binding.close_feed(feed))

    def _drop(self, topic: TopicName) -> None:
        # core NATS cannot wait for a slow consumer: what does not fit the
        # front's memory limits is dropped (non-persistent: at-most-once)
        self.dropped += 1
        now = time.monotonic()
        if now - self._last_drop_warning >= _DROP_WARNING_INTERVAL:
            self._last_drop_warning = now
            logger.warning(
                "dropped messages of %s: its consumers on this front hold %d "
                "bytes unacked (use a persistent topic to keep them)",
                topic.full,
                self.core.topic(topic).held_bytes if self.core else 0,
            )

    async def publish_frame(self, topic: TopicName, frame: bytes) -> bytes:
        """Check a producer frame, publish it to NATS; return the ack frame."""
        return await (await self.submit_frame(topic, frame))

    async def submit_frame(
        self, topic: TopicName, frame: bytes
    ) -> asyncio.Future[bytes]:
        """Check a producer frame and send it to NATS; return its ack to come.

        The frame is on the NATS connection when this returns (in call
        order); the future gives its ack frame: at once for a refused frame
        and a non-persistent topic, once JetStream stored the message for a
        persistent one (``ok``), or a ``send-error`` ack. It never fails.
        """
        loop = asyncio.get_running_loop()
        read = read_producer_frame(frame)
        if isinstance(read, bytes):
            return _done(loop, read)  # an error ack
        payload, properties, context, key, data = read
        assert self.core is not None
        message_id = self.core._tokens.next()
        # the decoded payload goes to NATS (DG2, see cluster_names)
        wire = WireMessage(
            payload, properties, context, key, _now_iso(), message_id, data
        )
        try:
            stored = await self.binding.submit(topic, wire)
        except BrokerError as exc:
            return _done(loop, _send_error(SendErrorCode.UNKNOWN, str(exc), context))
        if stored.done() and not stored.cancelled() and stored.exception() is None:
            return _done(loop, _ok(message_id, context))
        return loop.create_task(_ack_when_stored(stored, message_id, context))


class _ClusterConsumer(_Consumer):
    """A consumer whose local subscription is fed from NATS."""

    broker: ClusterBroker
    feed: Feed | None = None

    def connected(self) -> None:
        super().connected()
        if self.consumer is not None and self.open:
            self.feed = self.broker.attach(self)

    def disconnected(self) -> None:
        super().disconnected()
        self.broker.detach(self)

    def message(self, data: bytes) -> None:
        super().message(data)
        if self.feed is not None:
            self.broker.binding.refill(self.feed)


class EmbeddedClusterBroker(EmbeddedBroker):
    """A :class:`ClusterBroker` front in a background thread (tests, scripts).

    Takes the arguments of :class:`ClusterBroker`.

    Raises:
        ConfigurationError: an option is invalid.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, **kwargs: Any
    ) -> None:
        super().__init__(host, port)
        self.broker = ClusterBroker(host, port, **kwargs)
