"""The name rules of topics, tenants, namespaces and subscriptions.

One rule for every place that accepts a name: the messaging configs check a
topic when it is configured (:mod:`dasf_geo.config.messaging`), the broker
checks it again when a connection asks for it (:mod:`dasf_geo.broker.names`).
A name the configuration accepts is therefore a name the broker accepts.

Pulsar allows ``[A-Za-z0-9_-=:.]`` in local names. dasf_geo additionally
requires a letter, digit or ``_`` first, so that ``.`` and ``..`` can never
be a name (no path trick reaches the store, the logs or ``/topics``), and
keeps ``:`` for subscriptions only: demessaging names its subscriptions
``backend-module-2026-11-23T21:34:15``.
"""

from __future__ import annotations

import re

from dasf_geo.exceptions import ProtocolError

__all__ = ["MAX_NAME_LENGTH", "validate_subscription", "validate_topic_part"]

#: Longest accepted topic, tenant, namespace or subscription name.
MAX_NAME_LENGTH = 200

_TOPIC_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-=.]*\Z")
# demessaging names its subscriptions "backend-module-2026-11-23T21:34:15"
# and "python-backend-2026-11-23T21:34:15.123456": ":" and "." must pass.
_SUBSCRIPTION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-=.:]*\Z")


def validate_topic_part(value: str, what: str = "topic") -> str:
    """Return ``value`` if it is a valid topic, tenant or namespace name.

    Raises:
        ProtocolError: naming ``what`` and the allowed characters (a
            :class:`ValueError`, so pydantic validators may let it through).
    """
    if not value:
        raise ProtocolError(f"the {what} name is empty")
    if len(value) > MAX_NAME_LENGTH:
        raise ProtocolError(
            f"the {what} name is {len(value)} characters long; the limit is "
            f"{MAX_NAME_LENGTH}"
        )
    if not _TOPIC_PART.match(value):
        raise ProtocolError(
            f"invalid {what} name {value[:80]!r}: use letters, digits and "
            "'_', '-', '=', '.', starting with a letter, digit or '_'"
        )
    return value


def validate_subscription(value: str) -> str:
    """Return ``value`` if it is a valid subscription name.

    Raises:
        ProtocolError: naming the subscription and the allowed characters.
    """
    if not value:
        raise ProtocolError("the subscription name is empty")
    if len(value) > MAX_NAME_LENGTH:
        raise ProtocolError(
            f"the subscription name is {len(value)} characters long; the limit "
            f"is {MAX_NAME_LENGTH}"
        )
    if not _SUBSCRIPTION.match(value):
        raise ProtocolError(
            f"invalid subscription name {value[:80]!r}: use letters, digits "
            "and '_', '-', '=', '.', ':', starting with a letter, digit or '_'"
        )
    return value
