"""How a broker cluster names things in NATS, and what it sends (pure functions).

A cluster of ``dasf-geo broker --cluster nats://…`` fronts keeps topics,
subscriptions and persistent messages in NATS (see
:mod:`dasf_geo.broker.cluster`). This module maps Pulsar names onto NATS
names and messages onto NATS message bodies, without any I/O:

- a topic ``{persistent|non-persistent}://TENANT/NAMESPACE/TOPIC`` is the
  subject ``dasf_geo.CLUSTER.{p|n}.TENANT.NAMESPACE.TOPIC``. NATS uses ``.``
  to separate subject tokens and gives ``*`` and ``>`` a meaning; every
  character outside ``[A-Za-z0-9_-=]`` of a name (a topic may contain
  ``.``, a subscription ``:``) is written ``~XX`` (its UTF-8 bytes in hex),
  so distinct names never share a subject (``~`` itself is escaped);
- persistent topics live in one JetStream stream per cluster,
  ``DASF_GEO_CLUSTER`` over ``dasf_geo.CLUSTER.p.>``; a subscription of a
  persistent topic is a durable consumer whose name is a digest of topic
  and subscription (consumer names cannot hold ``.`` and are limited in
  length), with the readable names in its description;
- the owner of an ``Exclusive`` or ``Failover`` subscription holds a lease,
  a key (also a digest) in the key-value bucket ``DASF_GEO_CLUSTER_LEASES``.

A message travels as one NATS body: a format tag line, five header lines
(properties, context, key, publish time, producer message id; the JSON
texts the core read from the producer frame, which contain no raw newline)
and then the payload. The tag says how the payload is written:

- ``DG2``: decoded, as bytes. The front that accepts a producer frame
  decodes its base64 payload to check it anyway; sending those bytes on
  makes the body a quarter smaller for NATS, for the socket writes and
  reads of both fronts and for JetStream's files. The front that delivers
  the message encodes it again (once, whatever the number of consumers).
- ``DG1``: the base64 text as the producer sent it. Fronts write ``DG2``;
  they read both, so that persistent messages stored by fronts of an
  earlier version are still delivered.

:func:`decode_message` is the inverse of :func:`encode_message`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from pybase64 import b64encode

from dasf_geo.broker.names import TopicName
from dasf_geo.exceptions import ConfigurationError, ProtocolError

__all__ = [
    "ClusterNames",
    "WireMessage",
    "decode_message",
    "encode_head",
    "encode_message",
    "escape_token",
    "parse_servers",
    "payload_body",
]

_SAFE = re.compile(r"[A-Za-z0-9_\-=]")
_CLUSTER_NAME = re.compile(r"[A-Za-z0-9_\-]{1,32}\Z")
#: the body's format tags (see the module docstring): a body without one
#: is not a dasf_geo message
_BASE64_TAG = b"DG1\n"
_BYTES_TAG = b"DG2\n"
_LATER_TAG = re.compile(rb"DG[0-9]+\n")
#: longest subject the cluster publishes to (NATS' control line is 4 KiB)
MAX_SUBJECT_LENGTH = 2048


def escape_token(name: str) -> str:
    """``name`` as one NATS subject token: unsafe characters as ``~XX``.

    The mapping is injective: ``~`` is itself escaped, so two names never
    give the same token. Example: ``"my.topic"`` gives ``"my~2etopic"``.
    """
    out = []
    for char in name:
        if _SAFE.fullmatch(char):
            out.append(char)
        else:
            out.extend(f"~{byte:02x}" for byte in char.encode("utf-8"))
    return "".join(out)


def _digest(*parts: str) -> str:
    text = "\x00".join(parts).encode("utf-8")
    return hashlib.sha256(text).hexdigest()[:32]


@dataclass(frozen=True)
class ClusterNames:
    """The NATS names of one cluster (all fronts of a cluster share them).

    Args:
        cluster: the cluster's name, 1 to 32 of ``[A-Za-z0-9_-]``; fronts
            started with the same name on the same NATS form one broker.

    Raises:
        ConfigurationError: the cluster name is invalid.
    """

    cluster: str = "default"

    def __post_init__(self) -> None:
        if not isinstance(self.cluster, str) or not _CLUSTER_NAME.match(self.cluster):
            raise ConfigurationError(
                f"invalid cluster name {self.cluster!r:.60}: use 1 to 32 letters, "
                "digits, '_' or '-'"
            )

    @property
    def prefix(self) -> str:
        """The subject prefix of every topic, ``dasf_geo.CLUSTER``."""
        return f"dasf_geo.{self.cluster}"

    @property
    def stream(self) -> str:
        """The JetStream stream holding the persistent topics."""
        return f"DASF_GEO_{self.cluster}"

    @property
    def stream_subjects(self) -> str:
        """The subjects of :attr:`stream`: every persistent topic."""
        return f"{self.prefix}.p.>"

    @property
    def lease_bucket(self) -> str:
        """The key-value bucket of the Exclusive/Failover leases."""
        return f"DASF_GEO_{self.cluster}_LEASES"

    def subject(self, topic: TopicName) -> str:
        """The NATS subject of ``topic``.

        Raises:
            ProtocolError: the subject would be longer than NATS takes.
        """
        subject = ".".join(
            (
                self.prefix,
                "p" if topic.persistent else "n",
                escape_token(topic.tenant),
                escape_token(topic.namespace),
                escape_token(topic.local),
            )
        )
        if len(subject) > MAX_SUBJECT_LENGTH:
            raise ProtocolError(
                f"the topic {topic.full[:80]!r} maps to a NATS subject of "
                f"{len(subject)} characters; the cluster takes at most "
                f"{MAX_SUBJECT_LENGTH}: use a shorter name"
            )
        return subject

    def queue_group(self, subscription: str) -> str:
        """The NATS queue group of a ``Shared`` subscription (core NATS)."""
        return escape_token(subscription)

    def durable(self, topic: TopicName, subscription: str) -> str:
        """The durable JetStream consumer of a persistent topic's subscription."""
        return "sub_" + _digest(topic.full, subscription)

    def lease_key(self, topic: TopicName, subscription: str) -> str:
        """The lease key of an Exclusive/Failover subscription."""
        return "lease_" + _digest(topic.full, subscription)


@dataclass(frozen=True, slots=True)
class WireMessage:
    """A message as it travels between fronts.

    Attributes:
        payload: the base64 payload (ASCII bytes, or a read-only view of
            them in the producer frame or a received NATS body).
        properties: the properties as compact JSON object text.
        context: the producer's ``context`` as JSON text, or None.
        key: the producer's ``key`` as JSON text, or None.
        publish_time: ISO 8601 time the first front accepted it.
        message_id: the id the producer got in its ack.
        data: the payload decoded, where the front has it (the front that
            accepted the producer frame): the body then carries these bytes
            (``DG2``) instead of the base64 text (``DG1``).
    """

    payload: bytes | memoryview
    properties: bytes
    context: bytes | None
    key: bytes | None
    publish_time: str
    message_id: str
    data: bytes | memoryview | None = None


def encode_head(message: WireMessage) -> bytes:
    """The NATS body of ``message`` up to its payload (see the module docstring).

    A front writes the head and the payload one after the other, so that a
    large payload is not copied into a joined body.
    """
    return b"".join(
        (
            _BASE64_TAG if message.data is None else _BYTES_TAG,
            message.properties,
            b"\n",
            b"" if message.context is None else message.context,
            b"\n",
            b"" if message.key is None else message.key,
            b"\n",
            message.publish_time.encode("ascii"),
            b"\n",
            message.message_id.encode("ascii"),
            b"\n",
        )
    )


def payload_body(message: WireMessage) -> bytes | memoryview:
    """What follows :func:`encode_head` in the body: the decoded payload
    if the message has it, else the base64 text."""
    return message.payload if message.data is None else message.data


def encode_message(message: WireMessage) -> bytes:
    """The NATS body of ``message``: :func:`encode_head` and :func:`payload_body`."""
    return encode_head(message) + payload_body(message)


def decode_message(body: bytes | bytearray) -> WireMessage:
    """Read a body written by :func:`encode_message` (either tag).

    The payload of a ``DG1`` body is a read-only view into ``body``, not a
    copy (a fragment is half a megabyte; a delivery frame formats the view
    as it formats bytes); ``body`` may be the bytearray a large message was
    read into (the other parts are bytes in any case). A ``DG2`` body's
    bytes are encoded to base64 here, once, and ``body`` is not kept.

    Raises:
        ProtocolError: ``body`` is not such a body (something else published
            on the cluster's subjects, or a body of a later format).
    """
    if body.startswith(_BYTES_TAG):
        decoded = True
    elif body.startswith(_BASE64_TAG):
        decoded = False
    elif (later := _LATER_TAG.match(body)) is not None:
        raise ProtocolError(
            f"a message on the cluster's subjects has the format "
            f"{later.group()[:-1].decode('ascii')}, which this front does not "
            "read: a front of a later dasf_geo version wrote it; run one "
            "version on all fronts of a cluster"
        )
    else:
        raise ProtocolError(
            "a message on the cluster's subjects was not written by a dasf-geo "
            f"broker front (it starts with {bytes(body[:16])!r})"
        )
    parts: list[bytes] = []
    start = len(_BYTES_TAG)
    for _ in range(5):
        end = body.find(b"\n", start)
        if end < 0:
            raise ProtocolError(
                "a message on the cluster's subjects is truncated: it has "
                f"{len(parts) + 1} of 6 parts"
            )
        parts.append(bytes(body[start:end]))
        start = end + 1
    props, context, key, when, message_id = parts
    rest = memoryview(body)[start:].toreadonly()
    try:
        return WireMessage(
            payload=b64encode(rest) if decoded else rest,
            properties=props,
            context=context or None,
            key=key or None,
            publish_time=when.decode("ascii"),
            message_id=message_id.decode("ascii"),
        )
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            f"a message on the cluster's subjects has a non-ASCII header: {exc}"
        ) from None


def parse_servers(text: str) -> list[str]:
    """The NATS server URLs of ``--cluster`` (comma-separated).

    Example: ``"nats://a:4222,nats://b:4222"`` gives both URLs.

    Raises:
        ConfigurationError: empty, or a URL is not ``nats://HOST[:PORT]``
            (or ``tls://``), naming the URL.
    """
    from urllib.parse import urlsplit

    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError(
            "the cluster needs at least one NATS URL, e.g. nats://127.0.0.1:4222"
        )
    urls = []
    for raw in text.split(","):
        url = raw.strip()
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ConfigurationError(f"invalid NATS URL {url[:100]!r}: {exc}") from None
        if parts.scheme not in ("nats", "tls") or not parts.hostname:
            raise ConfigurationError(
                f"invalid NATS URL {url[:100]!r}: use nats://HOST:PORT (or "
                "tls://HOST:PORT), e.g. nats://127.0.0.1:4222"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigurationError(
                f"invalid NATS URL {url[:100]!r}: a NATS URL has no path, query "
                "or fragment"
            )
        del port
        urls.append(url)
    return urls
