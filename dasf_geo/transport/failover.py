"""Failover between the fronts of a broker cluster.

A broker cluster (``dasf-geo broker --cluster``, see docs/scaling.md) is
several stateless WebSocket *fronts* that share topics, subscriptions and
persistence. A backend or caller given several broker URLs
(``--broker ws://a:8080,ws://b:8080``, or a comma-separated
``websocket_url``) connects to the first; when its front goes away it
moves to the next one, round robin, and waits the usual capped backoff
only once every front failed in a row.

This module holds the I/O-free part: which URL each connection uses
(:func:`front_urls`), the order and waits of reconnect attempts
(:func:`reconnect_schedule`) and the front a client is on now
(:class:`Fronts`). The reconnect loops of
:class:`~dasf_geo.transport.caller.AsyncClient` and
:class:`~dasf_geo.transport.listener.Listener` drive it.

What a call in flight gets when a front dies is decided by the topic's
persistence, not here: on a persistent topic the cluster redelivers and the
caller keeps waiting (a duplicate reply is dropped by its context); on a
non-persistent one the caller fails the call with
:class:`~dasf_geo.exceptions.ReplyLost`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from dasf_geo.exceptions import ConfigurationError, ConnectionFailed
from dasf_geo.transport._common import add_query
from dasf_geo.transport.connection import redact_url

__all__ = [
    "Fronts",
    "connect_first",
    "front_name",
    "front_urls",
    "pulsar_fronts_config",
    "reconnect_schedule",
    "split_brokers",
]

logger = logging.getLogger("dasf_geo.transport.failover")


def front_urls(
    config: Any,
    topic: str,
    subscription: str | None = None,
    query: Mapping[str, Any] | None = None,
) -> list[str]:
    """The URL of ``topic`` on each broker front of ``config``, in order.

    Configs without ``get_topic_urls`` (any object with ``get_topic_url``)
    have one front. ``query`` parameters are added to every URL.
    """
    many = getattr(config, "get_topic_urls", None)
    if many is not None:
        urls = list(many(topic, subscription))
    else:
        urls = [config.get_topic_url(topic, subscription)]
    if query:
        urls = [add_query(url, query) for url in urls]
    return urls


def front_name(url: str) -> str:
    """``ws://HOST:PORT`` of a topic URL: how log lines name a front."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return redact_url(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def reconnect_schedule(
    count: int, current: int, delays: Iterator[float]
) -> Iterator[tuple[int, float]]:
    """Endless ``(front index, seconds to wait before trying it)`` pairs.

    After the loss of front ``current``, each round tries every front once,
    starting with the next one (round robin; with one front, that front),
    without waiting in between; before each later round it waits the next
    of ``delays`` (the capped, jittered backoff of
    :func:`~dasf_geo.transport.connection.backoff_delays`). With one front
    this is the plain backoff loop: try, wait, try, wait longer…

    Example:
        >>> steps = reconnect_schedule(3, 0, iter([1.0, 2.0]))
        >>> [next(steps) for _ in range(7)]
        [(1, 0.0), (2, 0.0), (0, 0.0), (1, 1.0), (2, 0.0), (0, 0.0), (1, 2.0)]
    """
    if count < 1:
        raise ValueError(f"need at least one front, got {count}")
    wait = 0.0
    while True:
        for step in range(1, count + 1):
            yield (current + step) % count, wait
            wait = 0.0
        wait = next(delays)


class Fronts:
    """The front a client is connected to now, among ``count`` fronts.

    The caller's two connections (requests and replies) and the backend's
    consumer and reply producers share one :class:`Fronts`, so that they
    move together.

    Args:
        count: how many fronts the config names (at least 1).
        what: how log lines name the owner, e.g. ``"the caller of topic 't'"``.
    """

    def __init__(self, count: int, what: str = "the client") -> None:
        if count < 1:
            raise ValueError(f"need at least one front, got {count}")
        self.count = count
        self.what = what
        #: the index of the front in use (into every URL list of the config)
        self.index = 0

    def __len__(self) -> int:
        return self.count

    def pick(self, urls: Sequence[str]) -> str:
        """The URL of the front in use, from one URL per front."""
        return urls[self.index % len(urls)]

    def order(self) -> list[int]:
        """Every front once, the one in use first (for fresh connections)."""
        return [(self.index + step) % self.count for step in range(self.count)]

    def schedule(self, delays: Iterator[float]) -> Iterator[tuple[int, float]]:
        """:func:`reconnect_schedule` from the front in use."""
        return reconnect_schedule(self.count, self.index, delays)

    def move_to(self, index: int, url: str) -> bool:
        """Use front ``index`` from now on; log one line if that is a move.

        Returns:
            True if the client changed fronts.
        """
        index %= self.count
        if index == self.index:
            return False
        self.index = index
        logger.warning(
            "%s moved to the broker front %s (%d of %d)",
            self.what,
            front_name(url),
            index + 1,
            self.count,
        )
        return True


def split_brokers(value: Any, option: str = "broker") -> list[str]:
    """The broker URLs in ``value`` (see :func:`split_broker_urls`).

    Raises:
        ConfigurationError: an entry is empty, not ``ws://``/``wss://``, or
            given twice; the message names the entry.
    """
    from dasf_geo.config.messaging import split_broker_urls

    try:
        return split_broker_urls(value, option)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None


def pulsar_fronts_config(urls: Sequence[str], **fields: Any) -> Any:
    """A config reaching Pulsar-layout brokers at ``urls`` (``ws://HOST:PORT``).

    Several fronts are written as comma-separated producer and consumer base
    URLs of a :class:`~dasf_geo.config.WebsocketURLConfig` (the Pulsar
    layout ``/ws/v2/{producer|consumer}/{persistence}/{tenant}/{namespace}``
    is spelled out), so that ``persistent``, ``tenant`` and ``namespace``
    go into the path.

    Args:
        urls: the brokers' ``ws://HOST:PORT`` (or ``wss://``), already split
            (see :func:`~dasf_geo.config.messaging.split_broker_urls`).
        **fields: ``topic`` and further config fields.

    Raises:
        ConfigurationError: an entry has a path (a plain-layout broker needs
            ``websocket_url``), or a field is invalid.
    """
    from dasf_geo.config import WebsocketURLConfig

    persistent = fields.pop("persistent", False)
    if isinstance(persistent, str):
        persistent = persistent.strip().lower() in ("persistent", "true", "1", "yes")
    tenant = fields.pop("tenant", "public")
    namespace = fields.pop("namespace", "default")
    for name in ("host", "port"):
        fields.pop(name, None)
    path = f"{'persistent' if persistent else 'non-persistent'}/{tenant}/{namespace}"
    roots = []
    for position, url in enumerate(urls, 1):
        parts = urlsplit(url)
        if parts.path.strip("/") not in ("", "ws/v2"):
            raise ConfigurationError(
                f"broker entry {position} {url!r} has a path; the Pulsar layout "
                "needs ws://HOST:PORT, a plain-layout broker needs websocket_url=…"
            )
        roots.append(f"{parts.scheme}://{parts.netloc}")
    return WebsocketURLConfig(
        producer_url=",".join(f"{root}/ws/v2/producer/{path}" for root in roots),
        consumer_url=",".join(f"{root}/ws/v2/consumer/{path}" for root in roots),
        **fields,
    )


async def connect_first(link: Any, urls: Sequence[str], fronts: Fronts) -> None:
    """Open ``link`` on the first front that answers, the one in use first.

    Each front is tried once; ``link.url`` and ``fronts`` end on the front
    that answered.

    Raises:
        ConnectionFailed: no front answered; with one front its own error,
            with several one message naming every front and its error.
    """
    errors: list[ConnectionFailed] = []
    for index in fronts.order():
        link.url = urls[index]
        try:
            await link.connect()
        except ConnectionFailed as exc:
            errors.append(exc)
            continue
        if errors:
            fronts.move_to(index, urls[index])
        else:
            fronts.index = index
        return
    if len(errors) == 1:
        raise errors[0]
    raise ConnectionFailed(
        f"none of the {len(errors)} broker fronts answered: "
        + "; ".join(str(exc) for exc in errors),
        url=errors[0].url,
    ) from errors[-1]
