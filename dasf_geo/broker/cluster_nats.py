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

Two connections per front: the payloads (every publish, JetStream's
included, and the subscriptions of non-persistent topics, the key router's
forwards and JetStream's publish acks) travel on a
:class:`~dasf_geo.broker.nats_data.DataConnection`, which receives a large
payload straight into one buffer and writes one without joining it with
anything; nats-py keeps the rest (JetStream management, pull consumers and
their acks, the key-value buckets), whose messages are small. A
producer's messages all go through the data connection, in order; a
JetStream publish is a plain ``PUB`` with a reply subject that the data
connection subscribes itself, so a publish and its confirmation use one
connection and the confirmation cannot get lost in the other's reconnect.
Persistent messages are still received through nats-py's pull consumers
(their acks, naks and in-progress reports are nats-py's).

Every NATS error is turned into :class:`~dasf_geo.exceptions.BrokerError`
(or a ``send-error`` ack for a producer) that names the NATS URL. The
feeds (subscriptions, durable consumers, pulls, acks) are
:mod:`dasf_geo.broker.cluster_feeds`, the leases
:mod:`dasf_geo.broker.cluster_leases`; :class:`NatsBinding` inherits both.
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

from dasf_geo.broker.cluster_feeds import (  # noqa: F401  (re-exported)
    _MAX_BATCH,
    _NAK_DELAY,
    _PULL_EXPIRES,
    FeedMixin,
)
from dasf_geo.broker.cluster_names import (
    ClusterNames,
    WireMessage,
    encode_head,
    payload_body,
)
from dasf_geo.broker.names import TopicName
from dasf_geo.broker.nats_data import DataConnection, redact_credentials
from dasf_geo.broker.nats_wire import Msg

if TYPE_CHECKING:
    from dasf_geo.broker.cluster_keys import KeyRouter
from dasf_geo.exceptions import BrokerError, ConfigurationError, ProtocolError

__all__ = ["Feed", "NatsBinding"]

logger = logging.getLogger(__name__)

#: seconds a JetStream publish may take before the producer gets an error
PUBLISH_TIMEOUT = 10.0
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


class NatsBinding(FeedMixin):
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
        self.data: DataConnection | None = None
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
        """The NATS URLs as given, passwords and tokens hidden (for messages)."""
        return ",".join(redact_credentials(server) for server in self.servers)

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
            # nats-py keeps the URL parsed (with any password in it)
            where = self.nc.connected_url
            shown = self.url if where is None else redact_credentials(where.geturl())
            logger.warning("reconnected to NATS at %s", shown)
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
        self.data = DataConnection(
            self.servers,
            name=f"dasf-geo broker front {self.front_id} data",
            connect_timeout=min(self.connect_timeout, 2.0),
            on_disconnect=self._data_lost,
        )
        try:
            await self.data.connect()
        except BrokerError as exc:
            await self._give_up_start()
            raise BrokerError(
                f"cannot open the data connection to NATS at {self.url}: {exc}"
            ) from exc
        self.max_payload = self.data.max_payload
        self.js = self.nc.jetstream(timeout=PUBLISH_TIMEOUT)
        try:
            await self._ensure_stream()
            await self._ensure_bucket()
        except BrokerError:
            await self._give_up_start()
            raise
        from dasf_geo.broker.cluster_keys import KeyRouter

        self.keys = KeyRouter(self)
        try:
            await self.keys.start()
        except Exception as exc:
            await self._give_up_start()
            raise BrokerError(
                f"NATS at {self.url} refused the key bucket of the cluster: {exc}"
            ) from exc
        self._ack_prefix = self.nc.new_inbox()
        self.data.subscribe(self._ack_prefix + ".*", self._on_publish_ack)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._maintain()),
            loop.create_task(self._watch_leases()),
        ]

    async def _give_up_start(self) -> None:
        """Close both NATS connections of a start that failed half-way.

        The data connection reconnects on its own once open, so a front
        that could not start must close it too, not only nats-py's.
        """
        if self.data is not None:
            with contextlib.suppress(Exception):
                await self.data.close()
        with contextlib.suppress(Exception):
            await self.nc.close()

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
        if self.data is not None:
            with contextlib.suppress(Exception):
                await self.data.close()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.drain(), 5.0)
            with contextlib.suppress(Exception):
                await self.nc.close()

    def _data_lost(self) -> None:
        """The data connection is down: what JetStream did not confirm yet
        may or may not be stored, and its answer cannot come any more."""
        for fut in self._acks.values():
            if not fut.done():
                fut.set_exception(
                    BrokerError(
                        f"lost the connection to NATS at {self.url} before "
                        "JetStream confirmed the message; it may or may not be "
                        "stored"
                    )
                )

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
        head = encode_head(message)
        payload = payload_body(message)
        size = len(head) + len(payload)
        if size > self.max_payload:
            raise BrokerError(
                f"the message takes {size} bytes in NATS, above the "
                f"max_payload of {self.max_payload} bytes of NATS at {self.url}: "
                "send smaller fragments (max_payload_size) or raise max_payload "
                "in the NATS configuration"
            )
        subject = self._subject(topic)
        loop = asyncio.get_running_loop()
        assert self.data is not None
        if not topic.persistent:
            await self.data.publish(subject, head, payload)
            done: asyncio.Future[None] = loop.create_future()
            done.set_result(None)
            return done
        self._ack_seq += 1
        reply = f"{self._ack_prefix}.{self._ack_seq}"
        fut: asyncio.Future[Any] = loop.create_future()
        self._acks[reply] = fut
        try:
            await self.data.publish(subject, head, payload, reply=reply)
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

    def _on_publish_ack(self, msg: Msg) -> None:
        fut = self._acks.get(msg.subject)
        if fut is not None and not fut.done():
            fut.set_result(msg)

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
