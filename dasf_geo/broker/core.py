"""The broker's routing, acknowledgement and delivery logic (sans-I/O).

Nothing here touches a socket or asyncio. The server feeds it what clients
send (:meth:`BrokerCore.publish`, :meth:`BrokerCore.consumer_frame`) and
connection events (:meth:`~BrokerCore.subscribe`,
:meth:`~BrokerCore.unsubscribe`); the core answers with ack frames and puts
deliveries into each consumer's :attr:`Consumer.outbox`, calling the
consumer's ``notify`` callback when the outbox was empty. The server renders
and sends them with :meth:`BrokerCore.next_frame`.

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

import base64
import binascii
import contextlib
import json
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any

from pybase64 import b64decode as _b64decode  # as dasf_geo.protocol.messages

from dasf_geo.broker.names import TopicName
from dasf_geo.exceptions import BrokerError, ProtocolError
from dasf_geo.protocol.messages import loads_strict_json, parse_json_object
from dasf_geo.protocol.messages import split_payload_frame as _split_payload_frame

if TYPE_CHECKING:
    from dasf_geo.broker.store import MessageStore

__all__ = [
    "DEFAULT_MAX_CLIENT_BYTES",
    "DEFAULT_MAX_INFLIGHT_BYTES",
    "DEFAULT_MAX_TOPIC_BYTES",
    "DEFAULT_MAX_TOTAL_BYTES",
    "DEFAULT_RECEIVER_QUEUE_SIZE",
    "DEFAULT_STALL_TIMEOUT",
    "SUBSCRIPTION_TYPES",
    "BrokerCore",
    "Consumer",
    "Message",
    "Quota",
    "SendErrorCode",
    "SubscribeError",
    "Subscription",
    "Topic",
    "read_producer_frame",
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

#: Most backlog entries one dispatch looks at past messages that must wait.
_MAX_SCAN = 10_000
#: Seconds a key stays with its consumer after its last message was acked
#: (the fragments of one payload share a key and must reach one consumer,
#: also when it acks each fragment on arrival).
KEY_AFFINITY = 60.0

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
        payload: the base64 payload (ASCII bytes), never decoded.
        properties: the properties as JSON object text.
        publish_time: ISO 8601 UTC time of publication.
        context: the producer's ``context`` as JSON text, if it sent one.
        key: the producer's ``key`` as JSON text, if it sent one.
        refs: how many subscriptions still hold it.
        size: bytes it occupies in memory (payload and properties).
    """

    seq: int
    message_id: str
    payload: bytes
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

    def _has_room(self, max_bytes: int, continues_key: bool = False) -> bool:
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

    def _held(self, size: int) -> None:
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


def _send_error(code: int, message: str, context: bytes | None) -> bytes:
    parts = [
        b'{"result":"send-error:',
        str(code).encode(),
        b'","errorMsg":',
        json.dumps(message).encode("utf-8"),
    ]
    if context is not None:
        parts += [b',"context":', context]
    parts.append(b"}")
    return b"".join(parts)


def _ok(message_id: str, context: bytes | None) -> bytes:
    return b'{"result":"ok","messageId":"%s"%s}' % (
        message_id.encode("ascii"),
        b"" if context is None else b',"context":' + context,
    )


# a delivery: id, payload, properties, publishTime, redeliveryCount, then
# ',"context":…' and ',"key":…' or nothing; bytes formatting copies the
# payload once, faster than joining a list of parts
_DELIVERY = (
    b'{"messageId":"%s","payload":"%s","properties":%s,"publishTime":"%s",'
    b'"redeliveryCount":%d%s%s}'
)


def _compact_encoder() -> Callable[[Any], str]:
    """``json.dumps(value, separators=(",", ":"))``, made once.

    ``json.dumps`` with arguments builds a new encoder on every call; the
    values dumped here come from ``json.loads`` (no cycles, only JSON
    types), so one C encoder without cycle markers gives the same text.
    """
    encoder = json.JSONEncoder(separators=(",", ":"))
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has the C encoder
        return encoder.encode
    c_encode = make(
        None,
        encoder.default,
        encode_basestring_ascii,
        None,
        ":",
        ",",
        False,
        False,
        True,
    )

    def encode(value: Any) -> str:
        return "".join(c_encode(value, 0))

    return encode


_encode = _compact_encoder()


def _dump(value: Any) -> bytes:
    """Compact JSON text of ``value`` (a value read by ``json.loads``)."""
    kind = type(value)
    if kind is str:
        return encode_basestring_ascii(value).encode("ascii")
    if kind is int:
        return int.__repr__(value).encode("ascii")
    return _encode(value).encode("utf-8")


# the plain ack {"messageId": "<id>"} as dasf_geo and the benchmarks send it:
# read without a JSON parser (ids the broker hands out are URL-safe base64)
_PLAIN_ACK = re.compile(rb'\{"messageId":"([A-Za-z0-9_\-]+)"\}')


def _parse_object(frame: bytes, what: str) -> dict[str, Any]:
    """A frame as a JSON object: standard JSON only, nested 64 levels at most.

    Raises:
        ProtocolError: it is not such an object; the text says why.
    """
    return parse_json_object(frame, what, strict=True)


def _invalid_base64(payload: bytes, context: bytes | None) -> bytes | None:
    """The ``send-error`` ack for a payload that is not base64, else None."""
    if payload:
        try:
            _b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            # as dasf_geo.protocol.messages.b64decode words it
            return _send_error(
                SendErrorCode.PAYLOAD_ENCODING,
                f"the payload is not valid base64: {exc}",
                context,
            )
    return None


def _read_frame(
    frame: bytes,
) -> tuple[bytes, bytes, bytes | None, bytes | None] | bytes:
    """Read a producer frame of any shape, or say what is wrong with it.

    Returns:
        ``(payload, properties, context, key)`` as bytes (the JSON text of
        the last three, context and key None if absent), the payload checked
        as base64; or the ``send-error`` ack for the producer.
    """
    split = _split_payload_frame(frame, strict=True)
    if split is None:
        try:
            obj = _parse_object(frame, "message")
        except ProtocolError as exc:
            return _send_error(SendErrorCode.JSON, str(exc), None)
        raw = obj.get("payload")
        context = None if "context" not in obj else _dump(obj["context"])
        if raw is None:
            return _send_error(
                SendErrorCode.PAYLOAD_ENCODING,
                "the message has no 'payload': send the payload as a base64 "
                "string (empty for no payload)",
                context,
            )
        if not isinstance(raw, str):
            return _send_error(
                SendErrorCode.PAYLOAD_ENCODING,
                f"the 'payload' must be a base64 string, got {type(raw).__name__}",
                context,
            )
        if not raw.isascii():
            return _send_error(
                SendErrorCode.PAYLOAD_ENCODING,
                "the payload is not valid base64: it contains non-ASCII characters",
                context,
            )
        payload = raw.encode("ascii")
    else:
        obj, payload = split
        context = None if "context" not in obj else _dump(obj["context"])
    invalid = _invalid_base64(payload, context)
    if invalid is not None:
        return invalid
    props = obj.get("properties")
    if props is None:
        props = {}
    if not isinstance(props, dict):
        return _send_error(
            SendErrorCode.JSON,
            f"the 'properties' must be a JSON object, got {type(props).__name__}",
            context,
        )
    key = obj.get("key")
    if key is not None and not isinstance(key, str):
        return _send_error(
            SendErrorCode.JSON,
            f"the 'key' must be a string, got {type(key).__name__}",
            context,
        )
    return payload, _dump(props), context, None if key is None else _dump(key)


# a JSON string without escapes (what json.dumps writes for printable ASCII
# text) and an integer as json.dumps writes it
_J_STR = rb'"[^"\\\x00-\x1f\x80-\xff]*"'
_J_VALUE = rb"(?:" + _J_STR + rb"|-?[1-9][0-9]*|0)"
_J_PAIR = _J_STR + rb":" + _J_VALUE
# the rest of a producer frame after its payload, as dasf_geo and most
# clients write it: compact properties of strings and integers, a context
_PLAIN_TAIL = re.compile(
    rb'","properties":(\{(?:' + _J_PAIR + rb"(?:," + _J_PAIR + rb")*)?\})"
    rb'(?:,"context":(' + _J_VALUE + rb"))?\}"
)
# name and value after name and value, from the start of the properties
# (a search for strings followed by ':' alone could start at the closing
# quote of a value)
_PAIRS = re.compile(rb"(" + _J_STR + rb"):" + _J_VALUE)


def read_producer_frame(
    frame: bytes,
) -> tuple[bytes, bytes, bytes | None, bytes | None] | bytes:
    """``(payload, properties, context, key)`` of a producer frame (raw JSON
    bytes of each, as messages keep them), or the
    ``send-error`` ack frame that refuses it.

    The frame must be a JSON object with a base64 ``payload`` string and
    optional ``properties`` (object), ``context`` and ``key``. The common
    plain frame is read without the JSON parser; anything else goes through
    the checked parser.
    """
    plain = _read_plain_frame(frame)
    if plain is None:
        return _read_frame(frame)
    invalid = _invalid_base64(plain[0], plain[2])
    return plain if invalid is None else invalid


def _read_plain_frame(
    frame: bytes,
) -> tuple[bytes, bytes, bytes | None, bytes | None] | None:
    """Read ``{"payload":"…","properties":{…},"context":…}`` without JSON.

    Only for the compact shape whose properties are strings without escapes
    and integers (no repeated names) and whose context is one such value:
    that text is exactly what ``json.dumps`` writes back for what
    ``json.loads`` reads from it, so the result is the one :func:`_read_frame`
    gives (the payload is not checked here). Returns None for anything else.
    """
    if not frame.startswith(b'{"payload":"'):
        return None
    end = frame.find(b'"', 12)
    if end < 0:
        return None
    payload = frame[12:end]
    if b"\\" in payload or not payload.isascii():
        return None
    match = _PLAIN_TAIL.fullmatch(frame, end)
    if match is None:
        return None
    properties, context = match.groups()
    names = _PAIRS.findall(properties)
    if len(names) != len(set(names)):
        return None  # json.loads keeps the last of repeated names
    return payload, properties, context, None


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
        payload, properties, context, key = read
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
        consumer._held(-consumer.inflight_bytes)
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
        if not sub.backlog or not sub.consumers:
            return
        if sub.type == "Shared":
            self._dispatch_shared(sub)
            return
        # Exclusive and Failover: everything goes to the oldest consumer
        consumer = sub.consumers[0]
        limit = self.max_inflight_bytes
        while sub.backlog:
            key = sub.backlog[0].message.key
            continues = key is not None and key in sub.key_owners
            if not consumer._has_room(limit, continues):
                break
            self._deliver(sub, consumer, sub.backlog.popleft())

    def _dispatch_shared(self, sub: Subscription) -> None:
        """Round-robin over consumers with room; keyed messages stick.

        A message with a ``key`` goes to the consumer that holds unacked
        messages of the same key, if any (as Pulsar's Key_Shared does), so
        the fragments of one payload, which share a key, reach one consumer.
        Such a message waits for that consumer's room while later messages
        may pass it.
        """
        consumers = sub.consumers
        count = len(consumers)
        limit = self.max_inflight_bytes
        for c in consumers:
            if c._has_room(limit, continues_key=True):
                break
        else:
            return  # nobody can take anything: skip the scan
        waiting: list[_Entry] = []
        scanned = 0
        while sub.backlog and scanned < _MAX_SCAN:
            entry = sub.backlog[0]
            key = entry.message.key
            owner = None if key is None else sub.key_owners.get(key)
            if owner is not None:
                if not owner[0]._has_room(limit, continues_key=True):
                    waiting.append(sub.backlog.popleft())
                    scanned += 1
                    continue
                consumer = owner[0]
            else:
                for i in range(count):
                    consumer = consumers[(sub._next + i) % count]
                    if consumer._has_room(limit):
                        sub._next = (sub._next + i + 1) % count
                        break
                else:
                    if not any(
                        owner._has_room(limit, continues_key=True)
                        for owner, _ in sub.key_owners.values()
                    ):
                        break
                    # nobody has room for new keys; owners may still take
                    # messages of their keys further back
                    waiting.append(sub.backlog.popleft())
                    scanned += 1
                    continue
            self._deliver(sub, consumer, sub.backlog.popleft())
        sub.backlog.extendleft(reversed(waiting))

    def _deliver(self, sub: Subscription, consumer: Consumer, entry: _Entry) -> None:
        token = self._tokens.next()
        consumer.inflight[token] = entry
        consumer._held(entry.message.size)
        key = entry.message.key
        if key is not None:
            owner = sub.key_owners.get(key)
            sub.key_owners[key] = (consumer, 1 if owner is None else owner[1] + 1)
            sub.key_released.pop(key, None)
        if consumer.pull_mode:
            consumer.permits -= 1
        was_empty = not consumer.outbox
        consumer.outbox.append((token, entry))
        if was_empty and consumer.notify is not None:
            consumer.notify()

    def _forget_key(self, sub: Subscription, entry: _Entry) -> None:
        key = entry.message.key
        if key is None:
            return
        owner = sub.key_owners.get(key)
        if owner is not None:
            if owner[1] <= 1:
                # keep the key with its consumer for a while: a receiver
                # that acks fragments as they arrive must still get the rest
                sub.key_owners[key] = (owner[0], 0)
                sub.key_released[key] = self.clock()
            else:
                sub.key_owners[key] = (owner[0], owner[1] - 1)

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
        plain = _PLAIN_ACK.fullmatch(frame)
        if plain is not None:
            kind: Any = None
            token: Any = plain.group(1).decode("ascii")
        else:
            obj = _parse_object(frame, "consumer frame")
            kind = obj.get("type")
            token = obj.get("messageId")
        if kind == "permit":
            permits = obj.get("permitMessages")
            if type(permits) is not int or permits < 1:
                raise ProtocolError(
                    f"'permitMessages' must be a positive integer, got {permits!r:.40}"
                )
            consumer.permits = min(consumer.permits + permits, MAX_RECEIVER_QUEUE_SIZE)
            self._dispatch(consumer.subscription)
            return True
        if kind not in (None, "ack", "negativeAcknowledge"):
            raise ProtocolError(
                f"unknown frame type {str(kind)[:40]!r}: send {{'messageId': …}} "
                "to acknowledge, type 'negativeAcknowledge' or 'permit'"
            )
        if not isinstance(token, str) or not token:
            raise ProtocolError(
                "the consumer frame has no 'messageId' string: acknowledge with "
                '{"messageId": "<id of the message>"}'
            )
        entry = consumer.inflight.pop(token, None)
        if entry is None:
            return False
        quota = consumer.quota
        was_full = quota is not None and quota.full
        consumer._held(-entry.message.size)
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
                consumer._held(-entry.message.size)
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
                    self._release_keys(sub, now)
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

    @staticmethod
    def _release_keys(sub: Subscription, now: float) -> None:
        """Forget keys without unacked messages for :data:`KEY_AFFINITY` s."""
        stale = [k for k, t in sub.key_released.items() if now - t >= KEY_AFFINITY]
        for key in stale:
            del sub.key_released[key]
            owner = sub.key_owners.get(key)
            if owner is not None and owner[1] == 0:
                del sub.key_owners[key]

    # --- status-ping (dasf-broker-django) ---------------------------------------

    def status_ping(
        self, frame: bytes, may_consume: Callable[[TopicName], bool]
    ) -> bytes:
        """Handle a frame sent to ``/ws/status-ping``; return the ack.

        Backends post ``pong`` and ``api_info`` replies there; the broker
        records them on the (plain layout) topic named by the
        ``source_topic`` property, like dasf-broker-django, if that topic is
        in use (has a subscription or a producer).
        """
        try:
            obj = _parse_object(frame, "message")
        except ProtocolError as exc:
            return _send_error(SendErrorCode.JSON, str(exc), None)
        context = None if "context" not in obj else _dump(obj["context"])
        message_id = self._tokens.next()
        props = obj.get("properties")
        slug = props.get("source_topic") if isinstance(props, dict) else None
        if not isinstance(slug, str) or not slug:
            return _status_ack("No source topic found.", message_id, context)
        from dasf_geo.broker.names import validate_topic_part

        try:
            name = TopicName(False, "public", "default", validate_topic_part(slug))
        except ProtocolError as exc:
            return _status_ack(str(exc), message_id, context)
        topic = self.topics.get(name.full)
        if topic is None or not may_consume(name):
            # dasf-broker-django answers both cases with this text
            return _status_ack(
                "User is not allowed to publish to this topic", message_id, context
            )
        assert isinstance(props, dict)
        mtype = props.get("messageType")
        if mtype == "pong":
            topic.last_pong = _now_iso()
        elif mtype == "response" and "api_info" in props:
            try:
                topic.api_info = loads_strict_json(props["api_info"])
            except (TypeError, ValueError):
                return _status_ack(
                    "the api_info property is not JSON text", message_id, context
                )
        return _status_ack("ok", message_id, context)

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
        topics = []
        for topic in sorted(self.topics.values(), key=lambda t: t.name.full):
            subs = []
            for sub in sorted(topic.subscriptions.values(), key=lambda s: s.name):
                unacked = sub.unacked
                subs.append(
                    {
                        "name": sub.name,
                        "type": sub.type,
                        "durable": sub.durable,
                        "consumers": len(sub.consumers),
                        "backlog": len(sub.backlog) + unacked,
                        "unacked": unacked,
                    }
                )
            topics.append(
                {
                    "topic": topic.name.full,
                    "name": topic.name.local,
                    "persistent": topic.name.persistent,
                    "producers": topic.producers,
                    "published": topic.published,
                    "held_bytes": topic.held_bytes,
                    "last_pong": topic.last_pong,
                    "api_info": topic.api_info is not None,
                    "subscriptions": subs,
                }
            )
        return {"topics": topics}

    def counts(self) -> dict[str, int]:
        """Numbers of topics, producers and consumers, for ``GET /health``."""
        topics = list(self.topics.values())
        return {
            "topics": len(topics),
            "producers": sum(t.producers for t in topics),
            "consumers": sum(
                len(s.consumers) for t in topics for s in t.subscriptions.values()
            ),
            "held_bytes": self.held_bytes,
        }

    def all_consumers(self) -> Iterable[Consumer]:
        """Every connected consumer."""
        for topic in list(self.topics.values()):
            for sub in list(topic.subscriptions.values()):
                yield from list(sub.consumers)


def _status_ack(result: str, message_id: str, context: bytes | None) -> bytes:
    parts = [
        b'{"messageId":"',
        message_id.encode("ascii"),
        b'","result":',
        json.dumps(result).encode("utf-8"),
    ]
    if context is not None:
        parts += [b',"context":', context]
    parts.append(b"}")
    return b"".join(parts)
