"""URL layouts and name rules of the broker (pure functions).

Two layouts reach the same topics (PROTOCOL.md "Transport"):

- Pulsar WebSocket API v2:
  ``/ws/v2/producer/{persistent|non-persistent}/{tenant}/{namespace}/{topic}``
  and ``/ws/v2/consumer/…/{topic}/{subscription}``;
- the plain layout of dasf-broker-django: ``/ws/{topic}``,
  ``/ws/{topic}/{subscription}`` and ``/ws/status-ping``. A plain topic
  ``t`` is the Pulsar topic ``non-persistent://public/default/t``, so
  peers using either layout talk to each other. A plain-layout consumer
  without a ``subscriptionType`` gets its own subscription, so that every
  consumer gets every message, as on dasf-broker-django.

Names are checked before anything else happens, so that no name can carry a
path trick (``..``, ``%2e``, ``/``) into the store, the logs or ``/topics``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from dasf_geo.exceptions import ProtocolError

__all__ = [
    "Route",
    "TopicName",
    "parse_path",
    "validate_subscription",
    "validate_topic_part",
]

#: Longest accepted topic, tenant, namespace or subscription name.
MAX_NAME_LENGTH = 200

# Pulsar allows [A-Za-z0-9_-=:.] in local names; we additionally require a
# letter, digit or "_" first so that "." and ".." can never be a name.
_TOPIC_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-=.]*\Z")
# demessaging names its subscriptions "backend-module-2026-11-23T21:34:15"
# and "python-backend-2026-11-23T21:34:15.123456": ":" and "." must pass.
_SUBSCRIPTION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-=.:]*\Z")

PERSISTENT = "persistent"
NON_PERSISTENT = "non-persistent"


@dataclass(frozen=True)
class TopicName:
    """A fully qualified topic.

    Attributes:
        persistent: True for ``persistent://`` topics (stored until acked).
        tenant: the Pulsar tenant (``public`` for the plain layout).
        namespace: the Pulsar namespace (``default`` for the plain layout).
        local: the topic's own name.
    """

    persistent: bool
    tenant: str
    namespace: str
    local: str

    @property
    def full(self) -> str:
        """The Pulsar form, e.g. ``non-persistent://public/default/my-topic``."""
        kind = PERSISTENT if self.persistent else NON_PERSISTENT
        return f"{kind}://{self.tenant}/{self.namespace}/{self.local}"

    @property
    def path(self) -> str:
        """``tenant/namespace/topic``, what auth patterns with a "/" match."""
        return f"{self.tenant}/{self.namespace}/{self.local}"

    def __str__(self) -> str:
        return self.full


@dataclass(frozen=True)
class Route:
    """What a WebSocket request path asks for.

    Attributes:
        kind: ``"producer"``, ``"consumer"`` or ``"status-ping"``.
        topic: the topic (None for ``status-ping``).
        subscription: the subscription name of a consumer, else None.
        params: the query parameters (last value wins).
        plain: True for the plain (dasf-broker-django) layout.
    """

    kind: str
    topic: TopicName | None
    subscription: str | None
    params: dict[str, str]
    plain: bool = False


def _check_name(value: str, what: str, pattern: re.Pattern[str], chars: str) -> str:
    """``value`` if ``pattern`` matches it (a name of ``chars``), else raise."""
    if not value:
        raise ProtocolError(f"the {what} name is empty")
    if len(value) > MAX_NAME_LENGTH:
        raise ProtocolError(
            f"the {what} name is {len(value)} characters long; the limit is "
            f"{MAX_NAME_LENGTH}"
        )
    if not pattern.match(value):
        raise ProtocolError(
            f"invalid {what} name {value[:80]!r}: use letters, digits and "
            f"{chars}, starting with a letter, digit or '_'"
        )
    return value


def validate_topic_part(value: str, what: str = "topic") -> str:
    """Return ``value`` if it is a valid topic, tenant or namespace name.

    Raises:
        ProtocolError: naming ``what`` and the allowed characters.
    """
    return _check_name(value, what, _TOPIC_PART, "'_', '-', '=', '.'")


def validate_subscription(value: str) -> str:
    """Return ``value`` if it is a valid subscription name.

    Raises:
        ProtocolError: naming the subscription and the allowed characters.
    """
    return _check_name(value, "subscription", _SUBSCRIPTION, "'_', '-', '=', '.', ':'")


def _topic(persistent: bool, tenant: str, namespace: str, local: str) -> TopicName:
    return TopicName(
        persistent,
        validate_topic_part(tenant, "tenant"),
        validate_topic_part(namespace, "namespace"),
        validate_topic_part(local, "topic"),
    )


def parse_path(path: str) -> Route | None:
    """Parse the request path (with query string) of a WebSocket request.

    Returns:
        The route, or None if the path is not one of the broker's WebSocket
        paths (the server answers 404).

    Raises:
        ProtocolError: the path has the right shape but a name or query
            parameter is invalid; the message says which.
    """
    raw_path, _, query = path.partition("?")
    try:
        params = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False))
    except ValueError as exc:  # pragma: no cover - parse_qsl is lenient
        raise ProtocolError(f"invalid query string: {exc}") from exc
    parts = raw_path.split("/")
    # "/ws/x/" -> ["", "ws", "x", ""]: tolerate one trailing slash, as the
    # plain layout's routes do
    if len(parts) > 2 and parts[-1] == "":
        parts.pop()
    if len(parts) < 3 or parts[0] != "" or parts[1] != "ws":
        return None
    rest = parts[2:]
    if rest[0] == "v2" and len(rest) >= 2 and rest[1] in ("producer", "consumer"):
        kind = rest[1]
        want = 6 if kind == "producer" else 7
        if len(rest) != want:
            if kind == "producer":
                shape = (
                    "/ws/v2/producer/{persistent|non-persistent}/TENANT/NAMESPACE/TOPIC"
                )
            else:
                shape = (
                    "/ws/v2/consumer/{persistent|non-persistent}/TENANT/NAMESPACE/"
                    "TOPIC/SUBSCRIPTION"
                )
            raise ProtocolError(f"invalid {kind} path {raw_path[:200]!r}: use {shape}")
        persistence = rest[2]
        if persistence not in (PERSISTENT, NON_PERSISTENT):
            raise ProtocolError(
                f"invalid topic domain {persistence[:40]!r}: use 'persistent' or "
                "'non-persistent'"
            )
        topic = _topic(persistence == PERSISTENT, rest[3], rest[4], rest[5])
        subscription = validate_subscription(rest[6]) if kind == "consumer" else None
        return Route(kind, topic, subscription, params)
    if len(rest) == 1 and rest[0] == "status-ping":
        return Route("status-ping", None, None, params, plain=True)
    if len(rest) == 1:
        topic = _topic(False, "public", "default", rest[0])
        return Route("producer", topic, None, params, plain=True)
    if len(rest) == 2:
        topic = _topic(False, "public", "default", rest[0])
        subscription = validate_subscription(rest[1])
        return Route("consumer", topic, subscription, params, plain=True)
    return None
