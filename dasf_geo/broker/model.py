"""The broker's data model: topics, subscriptions, consumers, messages.

Plain dataclasses and the constants that bound them, with no routing logic
(that is :class:`~dasf_geo.broker.core.BrokerCore`) and no frame reading or
writing (that is :mod:`dasf_geo.broker.frames`). The message store
(:mod:`dasf_geo.broker.store`) reads and writes :class:`Message` and the
engine keeps them; both import them from here, so neither imports the other.

Also here: how messages are stamped (:func:`_now_iso` for publish times,
:class:`_Tokens` for message ids), and the two errors of the engine's API
(:class:`SendErrorCode`, :class:`SubscribeError`).
"""

from __future__ import annotations

import base64
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TypedDict

from dasf_geo.broker.names import TopicName
from dasf_geo.exceptions import BrokerError

__all__ = [
    "CEILING_FACTOR",
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_CLIENT_BYTES",
    "DEFAULT_MAX_INFLIGHT_BYTES",
    "DEFAULT_MAX_TOPIC_BYTES",
    "DEFAULT_MAX_TOTAL_BYTES",
    "DEFAULT_RECEIVER_QUEUE_SIZE",
    "DEFAULT_STALL_TIMEOUT",
    "FAIR_SHARE_DIVISOR",
    "KEY_AFFINITY",
    "MAX_RECEIVER_QUEUE_SIZE",
    "SUBSCRIPTION_TYPES",
    "Consumer",
    "Limits",
    "Message",
    "Quota",
    "SendErrorCode",
    "SubscribeError",
    "Subscription",
    "Topic",
]

#: Pulsar's default ``receiverQueueSize``.
DEFAULT_RECEIVER_QUEUE_SIZE = 1000
#: Largest ``receiverQueueSize`` a consumer may ask for.
MAX_RECEIVER_QUEUE_SIZE = 100_000
#: Unacked payload bytes one consumer may hold (one message always fits).
DEFAULT_MAX_INFLIGHT_BYTES = 32 * 1024 * 1024
#: Unacked payload bytes one topic may hold before its producers are paused.
DEFAULT_MAX_TOPIC_BYTES = 32 * 1024 * 1024
#: Unacked payload bytes the whole broker may hold before producers pause.
DEFAULT_MAX_TOTAL_BYTES = 256 * 1024 * 1024
#: Unacked payload bytes the consumers of one client (token) may hold.
DEFAULT_MAX_CLIENT_BYTES = 128 * 1024 * 1024
#: Seconds a consumer may hold ``max_inflight_bytes`` without acking anything.
DEFAULT_STALL_TIMEOUT = 60.0
#: While the broker is full, topics holding this share of ``max_total_bytes``
#: (1/32) wait; smaller ones go on up to the ceiling below.
FAIR_SHARE_DIVISOR = 32
#: The broker-wide ceiling, as a multiple of ``max_total_bytes``, where
#: every producer waits.
CEILING_FACTOR = 1.25

#: Seconds a key stays with its consumer after its last message was acked
#: (the fragments of one payload share a key and must reach one consumer,
#: also when it acks each fragment on arrival).
KEY_AFFINITY = 60.0


class Limits(TypedDict, total=False):
    """The limits of a broker: keyword arguments of ``Broker`` and ``BrokerCore``.

    Sizes are bytes of unacked payload, times seconds (None: never); see
    :class:`~dasf_geo.broker.core.BrokerCore` for what each one bounds.
    """

    max_topic_bytes: int
    max_total_bytes: int
    max_inflight_bytes: int
    max_client_bytes: int
    stall_timeout: float | None
    subscription_expiry: float | None


#: Every limit with its default.
DEFAULT_LIMITS: Limits = {
    "max_topic_bytes": DEFAULT_MAX_TOPIC_BYTES,
    "max_total_bytes": DEFAULT_MAX_TOTAL_BYTES,
    "max_inflight_bytes": DEFAULT_MAX_INFLIGHT_BYTES,
    "max_client_bytes": DEFAULT_MAX_CLIENT_BYTES,
    "stall_timeout": DEFAULT_STALL_TIMEOUT,
    "subscription_expiry": None,
}

#: The subscription types the broker implements (Pulsar spelling).
SUBSCRIPTION_TYPES = ("Exclusive", "Shared", "Failover")


class SendErrorCode:
    """Pulsar WebSocket error codes used in ``"send-error:<code>"`` results."""

    #: the frame is not a JSON object of the expected shape
    JSON = 3
    #: the client may not do this
    NOT_AUTHORIZED = 6
    #: the payload is missing or not base64
    PAYLOAD_ENCODING = 7
    #: anything else (e.g. the store failed)
    UNKNOWN = 8


class SubscribeError(BrokerError):
    """A consumer cannot join a subscription.

    Attributes:
        status: the HTTP status the server refuses the handshake with.
        reason: the text sent to the client.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# (millisecond, its text) and (second, "YYYY-MM-DDTHH:MM:SS"); replaced as
# whole tuples, so that brokers in several threads never mix two entries
_now_cache: tuple[int, str] = (-1, "")
_second_cache: tuple[int, str] = (-1, "")


def _now_iso() -> str:
    """The current UTC time as ISO 8601 with milliseconds.

    ``2026-11-23T21:34:15.123+00:00``, as
    ``datetime.now(timezone.utc).isoformat(timespec="milliseconds")`` gives,
    but formatted once per millisecond (the text per second): a busy broker
    stamps many messages within one millisecond.
    """
    global _now_cache, _second_cache
    millis = time.time_ns() // 1_000_000
    cached = _now_cache
    if cached[0] == millis:
        return cached[1]
    second, milli = divmod(millis, 1000)
    day = _second_cache
    if day[0] != second:
        stamp = (_EPOCH + timedelta(seconds=second)).isoformat()[:19]
        day = _second_cache = (second, stamp)
    text = f"{day[1]}.{milli:03d}+00:00"
    _now_cache = (millis, text)
    return text


class _Tokens:
    """Message ids: 96 random bits each, as ``secrets.token_urlsafe(12)``.

    Reads the system's random source once per 1024 ids instead of once per
    id: 12 random bytes are exactly 16 URL-safe base64 characters, so each
    16-character slice of a block's encoding is one id.
    """

    __slots__ = ("_block", "_pos")

    _BLOCK_IDS = 1024

    def __init__(self) -> None:
        self._block = ""
        self._pos = 0

    def next(self) -> str:
        """A new id of 16 URL-safe characters."""
        pos = self._pos
        if pos >= len(self._block):
            raw = os.urandom(12 * self._BLOCK_IDS)
            self._block = base64.urlsafe_b64encode(raw).decode("ascii")
            pos = 0
        self._pos = pos + 16
        return self._block[pos : pos + 16]


@dataclass(eq=False, slots=True)
class Message:
    """A published message, shared by the subscriptions that hold it.

    Attributes:
        seq: the topic's sequence number (order of publication).
        message_id: the id returned to the producer.
        payload: the base64 payload (ASCII bytes, or a read-only view of
            them in the frame or NATS body it came in), formatted into
            delivery frames as it came.
        properties: the properties as JSON object text.
        publish_time: ISO 8601 UTC time of publication.
        context: the producer's ``context`` as JSON text, if it sent one.
        key: the producer's ``key`` as JSON text, if it sent one.
        refs: how many subscriptions still hold it.
        size: bytes it occupies in memory (payload and properties).
    """

    seq: int
    message_id: str
    payload: bytes | memoryview
    properties: bytes
    publish_time: str
    context: bytes | None = None
    key: bytes | None = None
    refs: int = 0
    #: bytes the message occupies in memory (payload and properties)
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = len(self.payload) + len(self.properties)


@dataclass(eq=False, slots=True)
class _Entry:
    """One subscription's claim on a message."""

    message: Message
    redelivery_count: int = 0


@dataclass(eq=False, slots=True)
class Quota:
    """Unacked bytes held by the consumers of one client (e.g. one token).

    Attributes:
        key: the client's name (never a token).
        max_bytes: most unacked bytes its consumers hold together (each
            consumer may always hold one message).
        inflight_bytes: what they hold now.
        consumers: the consumers that use it.
    """

    key: str
    max_bytes: int
    inflight_bytes: int = 0
    consumers: list[Consumer] = field(default_factory=list)

    @property
    def full(self) -> bool:
        """True while its consumers get nothing more (beyond one message)."""
        return self.inflight_bytes >= self.max_bytes


@dataclass(eq=False, slots=True)
class Consumer:
    """A connected consumer of a subscription.

    Attributes:
        id: a number unique within the broker's run.
        subscription: the subscription it consumes.
        receiver_queue_size: most unacked messages it may hold.
        pull_mode: True if it must grant permits before getting messages.
        permits: messages it still allows (pull mode).
        outbox: deliveries waiting to be sent, in order.
        notify: called (without arguments) when the outbox becomes non-empty.
        name: a label for ``/topics`` (e.g. the peer address).
        ack_timeout: seconds after which an unacked delivery goes back to
            the subscription (Pulsar's ``ackTimeoutMillis``); None for never.
    """

    id: int
    subscription: Subscription
    receiver_queue_size: int = DEFAULT_RECEIVER_QUEUE_SIZE
    pull_mode: bool = False
    permits: int = 0
    outbox: deque[tuple[str, _Entry]] = field(default_factory=deque)
    notify: Callable[[], None] | None = None
    name: str = ""
    closed: bool = False
    inflight: dict[str, _Entry] = field(default_factory=dict)
    inflight_bytes: int = 0
    #: seconds after which an unacked delivery is redelivered (None: never)
    ack_timeout: float | None = None
    deadlines: deque[tuple[float, str]] = field(default_factory=deque)
    #: the client's shared limit, if it belongs to one
    quota: Quota | None = None
    #: called with a reason when the core unsubscribed it (a stall)
    disconnect: Callable[[str], None] | None = None
    #: clock time since when it holds its byte limit without acking
    stalled_since: float | None = None

    def has_room(self, max_bytes: int, continues_key: bool = False) -> bool:
        """True if it may get one more message (``max_bytes``: its byte limit).

        ``continues_key``: the message continues a key it holds unacked.
        """
        # more messages of a key this consumer already holds unacked (the
        # rest of a fragmented payload) are bounded by bytes, not by count:
        # a consumer that acks a payload's fragments only after using the
        # whole payload would otherwise wait forever for the rest of it
        if self.closed or (
            not continues_key and len(self.inflight) >= self.receiver_queue_size
        ):
            return False
        if self.inflight:
            if self.inflight_bytes >= max_bytes:
                return False
            quota = self.quota
            if quota is not None and quota.inflight_bytes >= quota.max_bytes:
                return False
        return not self.pull_mode or self.permits > 0

    def add_held(self, size: int) -> None:
        """Account for ``size`` more (or, negative, fewer) unacked bytes."""
        self.inflight_bytes += size
        quota = self.quota
        if quota is not None:
            quota.inflight_bytes += size


@dataclass(eq=False, slots=True)
class Subscription:
    """A named subscription of a topic.

    Attributes:
        name: the subscription name.
        topic: its topic.
        type: ``Exclusive``, ``Shared`` or ``Failover``.
        durable: True on persistent topics (it outlives its consumers).
        consumers: connected consumers, oldest first.
        backlog: messages not yet delivered, in order.
    """

    name: str
    topic: Topic
    type: str
    durable: bool
    consumers: list[Consumer] = field(default_factory=list)
    backlog: deque[_Entry] = field(default_factory=deque)
    key_owners: dict[bytes, tuple[Consumer, int]] = field(default_factory=dict)
    #: clock time when a key's last unacked message was acked; its owner
    #: keeps the key for :data:`KEY_AFFINITY` seconds after that
    key_released: dict[bytes, float] = field(default_factory=dict)
    #: clock time when the last consumer left (None while it has consumers)
    idle_since: float | None = None
    _next: int = 0

    @property
    def unacked(self) -> int:
        """Messages delivered to a consumer and not yet acked."""
        return sum(len(c.inflight) for c in self.consumers)


@dataclass(eq=False, slots=True)
class Topic:
    """A topic and what the broker knows about it.

    Attributes:
        name: the fully qualified name.
        subscriptions: by name.
        producers: connected producers.
        held_bytes: unacked payload bytes held for its subscriptions.
        published: messages accepted since the broker started.
        last_pong: time of the last DASF pong posted to ``/ws/status-ping``.
        api_info: the last ``api_info`` posted to ``/ws/status-ping``.
    """

    name: TopicName
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    producers: int = 0
    held_bytes: int = 0
    published: int = 0
    next_seq: int = 1
    last_pong: str | None = None
    api_info: Any = None
