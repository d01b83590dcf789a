"""The NATS side of a broker front: connection, publishing, feeds, leases.

:class:`NatsBinding` is the I/O layer that a cluster front
(:mod:`dasf_geo.broker.cluster`) puts beside its sans-I/O
:class:`~dasf_geo.broker.core.BrokerCore`. It uses the maintained
``nats-py`` client (``pip install 'dasf_geo[cluster]'``):

- **non-persistent topics** are core NATS subjects: a ``Shared``
  subscription is a queue group (NATS gives each message to one member,
  whichever front it is on), an ``Exclusive`` or ``Failover`` one a plain
  subscription held only by the front that owns its lease. At most once,
  as on the embedded broker: a message nobody subscribes to is dropped;
- **persistent topics** are one JetStream stream (interest retention: a
  message stays until every subscription acked it) and one durable pull
  consumer per subscription. Fronts pull only as many messages as their
  WebSocket consumers have room for (``receiverQueueSize`` and bytes), so
  a busy backend does not hoard work (``Shared`` is work stealing across
  fronts); a consumer's ack is the JetStream ack, a negative ack or a
  consumer that goes away is a JetStream nak, and messages held by a front
  that dies are redelivered after ``ack_wait`` (at-least-once). While a
  consumer holds a message the front tells JetStream it is in progress,
  so long requests are not redelivered;
- **Exclusive and Failover** are cluster-wide through leases in a
  JetStream key-value bucket whose entries expire after ``lease`` seconds:
  the front that created the key feeds its consumers and refreshes the
  key; the others wait (Failover) or refuse the consumer (Exclusive). A
  dead front's lease expires and a waiting front takes over.

Every NATS error is turned into :class:`~dasf_geo.exceptions.BrokerError`
(or a ``send-error`` ack for a producer) that names the NATS URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dasf_geo.broker.cluster_leases import LeaseMixin
from dasf_geo.broker.cluster_names import (
    ClusterNames,
    WireMessage,
    decode_message,
    encode_message,
)
from dasf_geo.broker.names import TopicName

if TYPE_CHECKING:
    from dasf_geo.broker.cluster_keys import KeyRouter
from dasf_geo.exceptions import BrokerError, ConfigurationError, ProtocolError

__all__ = ["Feed", "NatsBinding"]

logger = logging.getLogger(__name__)

#: seconds a JetStream publish may take before the producer gets an error
PUBLISH_TIMEOUT = 10.0
#: seconds a pull request stays open on the server
_PULL_EXPIRES = 20.0
#: seconds before a message given back is redelivered
_NAK_DELAY = 0.05
#: most messages asked for in one pull request
_MAX_BATCH = 256
#: bytes nats-py reads from its socket at once, and buffers before it stops
#: reading: its default (32 KiB, so reading paused at 64 KiB) made a front
#: pause and resume its socket a dozen times per half-megabyte fragment
READ_BUFFER_SIZE = 1024 * 1024
#: topics whose NATS subject a binding remembers
_SUBJECT_CACHE = 4096


def _import_nats() -> Any:
    try:
        import nats
    except ImportError:  # pragma: no cover - the extra is part of [test]
        raise ConfigurationError(
            "a broker cluster needs the nats-py package: pip install "
            "'dasf_geo[cluster]'"
        ) from None
    return nats


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark the outcome of ``task`` as seen (nobody may await it any more)."""
    if not task.cancelled():
        task.exception()


def _raise_read_buffer() -> None:
    """Make nats-py read :data:`READ_BUFFER_SIZE` bytes at a time.

    nats-py takes its socket read size and its stream reader's limit from
    the module constant ``nats.aio.client.DEFAULT_BUFFER_SIZE`` (read at
    each connect and each read); it has no connect option for them. Only
    ever raised, never lowered.
    """
    import nats.aio.client as client

    if getattr(client, "DEFAULT_BUFFER_SIZE", READ_BUFFER_SIZE) < READ_BUFFER_SIZE:
        client.DEFAULT_BUFFER_SIZE = READ_BUFFER_SIZE


@dataclass(eq=False)
class Feed:
    """What one front feeds into one of its local subscriptions.

    Attributes:
        topic: the topic.
        subscription: the subscription name in NATS (the local name, made
            unique per front for a broadcast consumer).
        sub_type: ``Exclusive``, ``Shared`` or ``Failover``.
        deliver: called with the feed, a :class:`WireMessage`, its
            JetStream message (None on core NATS) and its redelivery count.
        room: called with the feed: how many more messages the local
            consumers can take now.
        active: True while messages flow (always for Shared; while the lease
            is held otherwise).
    """

    topic: TopicName
    subscription: str
    sub_type: str
    deliver: Callable[[Feed, WireMessage, Any, int], None]
    room: Callable[[Feed], int]
    active: bool = False
    closed: bool = False
    shut: bool = False
    lease_revision: int | None = None
    core_sub: Any = None
    inbox_sub: Any = None
    inbox: str = ""
    pending: int = 0
    last_pull: float = 0.0
    held: dict[int, Any] = field(default_factory=dict)
    #: messages given back, nak'ed once the feed's pulls cannot catch them
    naks: list[Any] = field(default_factory=list)


class NatsBinding(LeaseMixin):
    """A front's connection to the NATS cluster.

    Args:
        servers: NATS URLs (``nats://HOST:PORT``).
        names: the cluster's NATS names.
        ack_wait: seconds before JetStream redelivers a message a front took
            and neither acked nor reported in progress (a dead front).
        lease: seconds an Exclusive/Failover lease outlives its front.
        subscription_expiry: seconds after which JetStream deletes a durable
            subscription nobody pulls from (None: never).
        connect_timeout: seconds to wait for NATS at start.
    """

    def __init__(
        self,
        servers: list[str],
        names: ClusterNames,
        *,
        ack_wait: float = 30.0,
        lease: float = 6.0,
        subscription_expiry: float | None = None,
        connect_timeout: float = 5.0,
    ) -> None:
        self.servers = servers
        self.names = names
        self.ack_wait = ack_wait
        self.lease = lease
        self.subscription_expiry = subscription_expiry
        self.connect_timeout = connect_timeout
        self.front_id = uuid.uuid4().hex[:12]
        self.nc: Any = None
        self.js: Any = None
        self.kv: Any = None
        self.max_payload = 1024 * 1024
        self.feeds: set[Feed] = set()
        #: lease key -> (front id of its holder, when the watcher saw it);
        #: a lease that expires leaves no event, so its age counts
        self.holders: dict[str, tuple[str, float]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._ack_prefix = ""
        self._acks: dict[str, asyncio.Future[Any]] = {}
        self._ack_seq = 0
        self._durables: set[str] = set()
        self._background: set[asyncio.Future[Any]] = set()
        self._subjects: dict[TopicName, str] = {}
        self.connected = False
        self._stopping = False
        self.keys: KeyRouter | None = None

    @property
    def url(self) -> str:
        """The NATS URLs as given (for messages)."""
        return ",".join(self.servers)

    # --- life cycle ---------------------------------------------------------

    async def start(self) -> None:
        """Connect, and create the stream and lease bucket if needed.

        Raises:
            BrokerError: NATS does not answer at the URL, or has no
                JetStream, or refuses the stream; the message names the URL.
        """
        nats = _import_nats()

        async def on_error(exc: Exception) -> None:
            logger.debug("NATS at %s: %s", self.url, exc)

        async def on_disconnect() -> None:
            self.connected = False
            if self._stopping:
                return
            logger.warning("lost the connection to NATS at %s; reconnecting", self.url)

        async def on_reconnect() -> None:
            self.connected = True
            logger.warning("reconnected to NATS at %s", self.nc.connected_url)
            for feed in list(self.feeds):
                feed.pending = 0  # pull requests died with the connection
                self.refill(feed)

        _raise_read_buffer()
        try:
            self.nc = await asyncio.wait_for(
                nats.connect(
                    servers=self.servers,
                    connect_timeout=min(self.connect_timeout, 2.0),
                    max_reconnect_attempts=1,
                    reconnect_time_wait=0.5,
                    error_cb=on_error,
                    disconnected_cb=on_disconnect,
                    reconnected_cb=on_reconnect,
                    name=f"dasf-geo broker front {self.front_id}",
                ),
                self.connect_timeout,
            )
        except (asyncio.TimeoutError, OSError, nats.errors.Error) as exc:
            raise BrokerError(
                f"cannot reach NATS at {self.url}: {exc or type(exc).__name__}; "
                "start nats-server with JetStream (nats-server -js) or give the "
                "right --cluster URL"
            ) from exc
        # from now on keep reconnecting: fronts outlive a NATS restart
        self.nc.options["max_reconnect_attempts"] = -1
        self.connected = True
        self.max_payload = int(self.nc.max_payload)
        self.js = self.nc.jetstream(timeout=PUBLISH_TIMEOUT)
        try:
            await self._ensure_stream()
            await self._ensure_bucket()
        except BrokerError:
            await self.nc.close()
            raise
        from dasf_geo.broker.cluster_keys import KeyRouter

        self.keys = KeyRouter(self)
        try:
            await self.keys.start()
        except Exception as exc:
            await self.nc.close()
            raise BrokerError(
                f"NATS at {self.url} refused the key bucket of the cluster: {exc}"
            ) from exc
        self._ack_prefix = self.nc.new_inbox()
        await self.nc.subscribe(self._ack_prefix + ".*", cb=self._on_publish_ack)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._maintain()),
            loop.create_task(self._watch_leases()),
        ]

    async def stop(self) -> None:
        """Release leases, nak held messages and close the connection."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        for feed in list(self.feeds):
            with contextlib.suppress(Exception):
                await self.close_feed(feed)
        for fut in self._acks.values():
            if not fut.done():
                fut.set_exception(BrokerError("the broker front is stopping"))
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.drain(), 5.0)
            with contextlib.suppress(Exception):
                await self.nc.close()

    async def _ensure_stream(self) -> None:
        from nats.js.api import (
            DiscardPolicy,
            RetentionPolicy,
            StorageType,
            StreamConfig,
        )
        from nats.js.errors import NotFoundError

        nats = _import_nats()
        name = self.names.stream
        try:
            await self.js.stream_info(name)
            return
        except NotFoundError:
            pass
        except nats.errors.NoRespondersError:
            raise BrokerError(
                f"NATS at {self.url} has no JetStream, which persistent topics "
                "need: start nats-server with -js"
            ) from None
        except (asyncio.TimeoutError, nats.errors.Error) as exc:
            raise BrokerError(
                f"NATS at {self.url} did not describe the stream {name}: {exc}"
            ) from exc
        try:
            await self.js.add_stream(
                StreamConfig(
                    name=name,
                    subjects=[self.names.stream_subjects],
                    retention=RetentionPolicy.INTEREST,
                    storage=StorageType.FILE,
                    discard=DiscardPolicy.OLD,
                    description="dasf-geo broker cluster: persistent topics",
                )
            )
        except (asyncio.TimeoutError, nats.errors.Error) as exc:
            with contextlib.suppress(Exception):
                await self.js.stream_info(name)  # another front was quicker
                return
            raise BrokerError(
                f"NATS at {self.url} refused the stream {name}: {exc}"
            ) from exc

    # --- publishing ---------------------------------------------------------

    async def publish(self, topic: TopicName, message: WireMessage) -> None:
        """Publish ``message`` on ``topic``; for persistent topics, stored.

        Returns when NATS took the message (core NATS: written to the
        connection; JetStream: acknowledged by the stream).

        Raises:
            BrokerError: too large for NATS, not stored, no answer within
                :data:`PUBLISH_TIMEOUT`, or no connection; says which.
        """
        await (await self.submit(topic, message))

    async def submit(
        self, topic: TopicName, message: WireMessage
    ) -> asyncio.Future[None]:
        """Send ``message`` to NATS; return a future of its confirmation.

        The message is on the connection when this returns, in the order of
        the calls; the future is done at once for a non-persistent topic
        and when JetStream stored the message for a persistent one, so that
        a producer's messages are stored one behind the other without a
        round trip to JetStream between two of them.

        Raises:
            BrokerError: too large for NATS or no connection (from this
                call); not stored or no answer within :data:`PUBLISH_TIMEOUT`
                (from the future).
        """
        body = encode_message(message)
        if len(body) > self.max_payload:
            raise BrokerError(
                f"the message takes {len(body)} bytes in NATS, above the "
                f"max_payload of {self.max_payload} bytes of NATS at {self.url}: "
                "send smaller fragments (max_payload_size) or raise max_payload "
                "in the NATS configuration"
            )
        nats = _import_nats()
        subject = self._subject(topic)
        loop = asyncio.get_running_loop()
        if not topic.persistent:
            try:
                await self.nc.publish(subject, body)
            except nats.errors.Error as exc:
                raise BrokerError(
                    f"NATS at {self.url} refused the message: {exc}"
                ) from exc
            done: asyncio.Future[None] = loop.create_future()
            done.set_result(None)
            return done
        self._ack_seq += 1
        reply = f"{self._ack_prefix}.{self._ack_seq}"
        fut: asyncio.Future[Any] = loop.create_future()
        self._acks[reply] = fut
        try:
            await self.nc.publish(subject, body, reply=reply)
        except nats.errors.Error as exc:
            self._acks.pop(reply, None)
            raise BrokerError(f"NATS at {self.url} refused the message: {exc}") from exc
        except BaseException:
            self._acks.pop(reply, None)
            raise
        confirmed = loop.create_task(self._confirm(reply, fut))
        # a producer gone meanwhile leaves its confirmations unread
        confirmed.add_done_callback(_retrieve)
        return confirmed

    async def _confirm(self, reply: str, fut: asyncio.Future[Any]) -> None:
        """Wait for JetStream's answer to one persistent message.

        Raises:
            BrokerError: it was not stored, or no answer came within
                :data:`PUBLISH_TIMEOUT`.
        """
        try:
            answer = await asyncio.wait_for(fut, PUBLISH_TIMEOUT)
        except asyncio.TimeoutError:
            raise BrokerError(
                f"JetStream at {self.url} did not confirm the message within "
                f"{PUBLISH_TIMEOUT:g} s; it may or may not be stored"
            ) from None
        finally:
            self._acks.pop(reply, None)
        if answer.headers and answer.headers.get("Status") == "503":
            raise BrokerError(
                f"no JetStream stream takes persistent topics at {self.url}: the "
                f"stream {self.names.stream} is gone; restart the broker fronts"
            )
        try:
            data = json.loads(answer.data)
        except ValueError:
            data = {}
        error = data.get("error") if isinstance(data, dict) else None
        if error or not isinstance(data, dict) or "seq" not in data:
            text = error.get("description") if isinstance(error, dict) else error
            raise BrokerError(
                f"JetStream at {self.url} did not store the message: "
                f"{text or answer.data[:200]!r}"
            )

    def _subject(self, topic: TopicName) -> str:
        """The NATS subject of ``topic``, remembered (escaping each time cost
        a front a tenth of its time on a large fragmented payload).

        Raises:
            BrokerError: the topic maps to no subject NATS takes.
        """
        subject = self._subjects.get(topic)
        if subject is None:
            try:
                subject = self.names.subject(topic)
            except ProtocolError as exc:
                raise BrokerError(str(exc)) from None
            if len(self._subjects) >= _SUBJECT_CACHE:
                self._subjects.clear()
            self._subjects[topic] = subject
        return subject

    async def _on_publish_ack(self, msg: Any) -> None:
        fut = self._acks.get(msg.subject)
        if fut is not None and not fut.done():
            fut.set_result(msg)

    # --- feeds --------------------------------------------------------------

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

        async def on_message(msg: Any) -> None:
            try:
                wire = decode_message(msg.data)
            except ProtocolError as exc:
                logger.warning("dropped a message on %s: %s", subject, exc)
                return
            if await self._keep(feed, wire, msg.data, None, 0):
                feed.deliver(feed, wire, None, 0)

        queue = self.names.queue_group(feed.subscription)
        feed.core_sub = await self.nc.subscribe(
            subject,
            queue=queue if feed.sub_type == "Shared" else "",
            cb=on_message,
            pending_msgs_limit=1_000_000,
            pending_bytes_limit=1024 * 1024 * 1024,
        )

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
        self, feed: Feed, wire: WireMessage, body: bytes, msg: Any, count: int
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

    # --- periodic work ------------------------------------------------------

    async def _maintain(self) -> None:
        """Leases, in-progress reports and lost pull requests, periodically."""
        period = max(0.2, min(self.lease, self.ack_wait) / 3)
        last_progress = time.monotonic()
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for feed in list(self.feeds):
                try:
                    if feed.sub_type != "Shared":
                        await self._try_lease(feed)
                    if feed.pending and now - feed.last_pull > _PULL_EXPIRES + 2:
                        feed.pending = 0
                    self.refill(feed)
                except Exception:
                    logger.exception("error maintaining the feed of %s", feed.topic)
            if now - last_progress >= self.ack_wait / 3:
                last_progress = now
                for feed in list(self.feeds):
                    for msg in list(feed.held.values()):
                        with contextlib.suppress(Exception):
                            await msg.in_progress()
