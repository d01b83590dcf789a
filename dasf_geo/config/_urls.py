"""Broker and topic URLs: the two layouts, and a list of broker fronts.

The one place that spells a topic URL in the Pulsar layout
(:func:`pulsar_topic_url`) and in the plain layout (:func:`plain_topic_url`),
and that splits and checks a list of broker URLs
(:func:`split_broker_urls`). :mod:`dasf_geo.config.messaging` builds its
configs on these and re-exports them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from dasf_geo.config._checks import check_ws_url, short

__all__ = ["plain_topic_url", "pulsar_topic_url", "split_broker_urls"]


def pulsar_topic_url(
    base: str,
    path: str,
    *,
    consumer: bool,
    persistent: bool = False,
    tenant: str = "public",
    namespace: str = "default",
) -> str:
    """The Pulsar-layout URL of a topic path below ``ws://host:port``.

    The one place that spells the layout (names are not checked here;
    :class:`PulsarConfig` checks them first).

    Args:
        base: ``ws://host:port`` (or ``wss://``) of the broker.
        path: ``topic`` for a producer, ``topic/subscription`` for a consumer.
        consumer: a consumer URL (else a producer URL).
        persistent: a ``persistent`` topic (else ``non-persistent``).
        tenant: the Pulsar tenant.
        namespace: the Pulsar namespace.
    """
    kind = "consumer" if consumer else "producer"
    persistence = "persistent" if persistent else "non-persistent"
    return f"{base.rstrip('/')}/ws/v2/{kind}/{persistence}/{tenant}/{namespace}/{path}"


def plain_topic_url(base: str, path: str) -> str:
    """The plain-layout URL of a topic path: ``{base}/{path}``."""
    return f"{base.rstrip('/')}/{path}"


def split_broker_urls(value: Any, option: str = "--broker") -> list[str]:
    """The broker URLs in ``value``: one URL, a comma-separated list, or a list.

    Several URLs name the fronts of one broker cluster (see
    :mod:`dasf_geo.transport.failover`): a client uses the first and moves
    to the next when its front goes away. Each entry is checked as a
    ``ws://`` or ``wss://`` URL; a trailing ``/`` is dropped.

    Example:
        >>> split_broker_urls("ws://a:8080, ws://b:8080/")
        ['ws://a:8080', 'ws://b:8080']

    Args:
        value: a string (entries separated by ``,``) or a list of strings.
        option: how the user spelled the option, for the messages.

    Raises:
        ValueError: no URL at all, an empty entry (``a,,b``), an entry that
            is not a ``ws://``/``wss://`` URL, or one given twice; the
            message names the option, the entry and its position.
    """
    if isinstance(value, str):
        entries = value.split(",")
    elif isinstance(value, (list, tuple)):
        entries = list(value)
    else:
        raise ValueError(
            f"{option} must be a URL, a comma-separated list of URLs or a list, "
            f"got {type(value).__name__} {short(value)}"
        )
    if not entries or entries == [""]:
        raise ValueError(f"{option} names no broker URL")
    urls: list[str] = []
    seen: dict[tuple[str, str, int | None, str], int] = {}
    for position, entry in enumerate(entries, 1):
        label = f"{option} entry {position}" if len(entries) > 1 else option
        if not isinstance(entry, str):
            raise ValueError(f"{label} must be a string, got {short(entry)}")
        entry = entry.strip()
        if not entry:
            raise ValueError(
                f"{label} is empty (in {short(value)}); separate the URLs with "
                "single commas"
            )
        url = check_ws_url(entry, label)
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        key = (
            scheme,
            (parts.hostname or "").lower(),
            parts.port or (443 if scheme == "wss" else 80),
            parts.path.rstrip("/"),
        )
        if key in seen:
            raise ValueError(
                f"{label} {short(entry)} is the same broker as entry "
                f"{seen[key]}; give each front once"
            )
        seen[key] = position
        urls.append(url)
    return urls
