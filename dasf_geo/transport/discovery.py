"""Finding a service: the first ``api_info`` of a caller, failing fast.

A caller that names a topic nobody serves would otherwise wait for the
whole call timeout (600 s) in silence. :func:`discover` asks for the API
info with a short timeout of its own (:data:`DEFAULT_DISCOVERY_TIMEOUT`),
says on a terminal that it is waiting after a moment, and when nobody
answers raises :class:`~dasf_geo.exceptions.ServiceNotFound` naming the
topic, the broker and — where the broker can tell (``GET /topics`` of the
embedded broker) — the topics that have a backend, the closest name first.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from dasf_geo.exceptions import RequestTimeout, ServiceNotFound
from dasf_geo.protocol.constants import NOTIFICATIONS_TOPIC
from dasf_geo.transport.failover import front_name, front_urls

__all__ = [
    "DEFAULT_DISCOVERY_TIMEOUT",
    "WAIT_NOTICE_DELAY",
    "backend_topics",
    "broker_address",
    "discover",
    "not_found",
    "rank_topics",
]

#: seconds a caller waits for a service's API info before giving up
DEFAULT_DISCOVERY_TIMEOUT = 10.0
#: seconds after which a terminal shows "waiting for a service ..."
WAIT_NOTICE_DELAY = 1.0
#: seconds granted to ``GET /topics``
TOPICS_TIMEOUT = 2.0

# callers' response topics: ours (128 random bits) and demessaging's
# (8 random letters after the topic)
_RESPONSE_TOPIC = re.compile(r"_(?:[0-9a-f]{32}|[a-z]{8})$")
_CALLER_SUBSCRIPTION = "dasf-geo-caller"


def broker_addresses(config: Any) -> list[str]:
    """``ws://HOST:PORT`` of each broker front ``config`` names (no path, token)."""
    return [front_name(url) for url in front_urls(config, "topic")]


def broker_address(config: Any) -> str:
    """``ws://HOST:PORT`` of the broker ``config`` talks to (no path, no token).

    The fronts of a broker cluster are comma-separated.
    """
    return ",".join(broker_addresses(config))


def backend_topics(config: Any, timeout: float = TOPICS_TIMEOUT) -> list[str] | None:
    """The topics that have a backend on the broker of ``config``.

    Asks the broker's ``GET /topics`` (the embedded broker and its
    cluster fronts). Returns None when the broker cannot tell (another
    broker, no such route, no permission, no answer within ``timeout``).
    """
    from dasf_geo.transport._common import header_of

    stats: Any = None
    for address in broker_addresses(config):  # the first front that answers
        scheme = "https" if address.startswith("wss") else "http"
        url = f"{scheme}{address[address.index(':') :]}/topics"
        request = urllib.request.Request(url, headers=dict(header_of(config)))
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                stats = json.loads(response.read(4 << 20))
            break
        except (OSError, ValueError):
            continue
    if stats is None:
        return None
    if not isinstance(stats, dict) or not isinstance(stats.get("topics"), list):
        return None
    names: list[str] = []
    for topic in stats["topics"]:
        if not isinstance(topic, dict):
            continue
        name = topic.get("name")
        subs = topic.get("subscriptions")
        if not isinstance(name, str) or not isinstance(subs, list):
            continue
        if _RESPONSE_TOPIC.search(name) or name == NOTIFICATIONS_TOPIC:
            continue
        if any(
            isinstance(s, dict)
            and s.get("consumers")
            and s.get("name") != _CALLER_SUBSCRIPTION
            for s in subs
        ):
            names.append(name)
    return sorted(set(names))


def rank_topics(topic: str, names: Iterable[str]) -> list[str]:
    """``names`` with the ones closest to ``topic`` first."""

    def closeness(name: str) -> tuple[float, str]:
        ratio = difflib.SequenceMatcher(None, topic.lower(), name.lower()).ratio()
        return (-ratio, name)

    return sorted(set(names), key=closeness)


def not_found(
    topic: str, config: Any, seconds: float, topics: list[str] | None
) -> ServiceNotFound:
    """The error for a topic on which no service answered."""
    address = broker_address(config)
    message = (
        f"no service answered on topic {topic!r} at {address} within "
        f"{seconds:g} s; check the topic name and the broker address (--broker)."
    )
    if topics is not None:
        others = [t for t in rank_topics(topic, topics) if t != topic]
        if others:
            close = difflib.get_close_matches(topic, others, n=1, cutoff=0.6)
            if close:
                message += f" Did you mean {close[0]!r}?"
            message += " Topics with a service on this broker: " + ", ".join(others)
        else:
            message += " No topic on this broker has a service."
    return ServiceNotFound(message, url=address, topic=topic, topics=topics)


class _Notice:
    """Print "waiting for a service ..." once after a delay, on a terminal."""

    def __init__(self, topic: str, config: Any, stream: TextIO | None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.text = (
            f"waiting for a service on topic {topic!r} at {broker_address(config)} ..."
        )
        self.shown = False

    @property
    def wanted(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        try:
            return bool(isatty and isatty())
        except ValueError:  # a closed stream
            return False

    def show(self) -> None:
        if not self.shown:
            self.shown = True
            print(self.text, file=self.stream, flush=True)


def discover(
    client: Any,
    config: Any,
    timeout: float | None = None,
    *,
    notice: bool | None = None,
    stream: TextIO | None = None,
    topics: Callable[[Any], list[str] | None] = backend_topics,
) -> dict[str, Any]:
    """Ask ``client``'s backend for its API info, failing fast.

    Args:
        client: a blocking :class:`~dasf_geo.transport.client.Client`.
        config: its messaging config (for the broker's address).
        timeout: seconds to wait (default :data:`DEFAULT_DISCOVERY_TIMEOUT`).
        notice: print "waiting for a service ..." after
            :data:`WAIT_NOTICE_DELAY` s; None: only when ``stream`` (default:
            standard error) is a terminal.
        stream: where the notice goes.
        topics: how to list the broker's topics for the error message.

    Raises:
        ServiceNotFound: no service answered within ``timeout``.
        ConnectionFailed: the broker cannot be reached.
    """
    seconds = DEFAULT_DISCOVERY_TIMEOUT if timeout is None else timeout
    note = _Notice(client.topic, config, stream)
    timer: threading.Timer | None = None
    if notice or (notice is None and note.wanted):
        timer = threading.Timer(WAIT_NOTICE_DELAY, note.show)
        timer.daemon = True
        timer.start()
    try:
        return dict(client.api_info(seconds))
    except ServiceNotFound:
        raise
    except RequestTimeout:
        raise not_found(client.topic, config, seconds, topics(config)) from None
    finally:
        if timer is not None:
            timer.cancel()


async def adiscover(
    client: Any,
    config: Any,
    timeout: float | None = None,
    *,
    notice: bool | None = None,
    stream: TextIO | None = None,
    topics: Callable[[Any], list[str] | None] = backend_topics,
) -> dict[str, Any]:
    """The asyncio form of :func:`discover` (``client`` an AsyncClient)."""
    import asyncio

    seconds = DEFAULT_DISCOVERY_TIMEOUT if timeout is None else timeout
    note = _Notice(client.topic, config, stream)
    loop = asyncio.get_running_loop()
    handle = None
    if notice or (notice is None and note.wanted):
        handle = loop.call_later(WAIT_NOTICE_DELAY, note.show)
    try:
        return dict(await client.api_info(seconds))
    except ServiceNotFound:
        raise
    except RequestTimeout:
        listed = await loop.run_in_executor(None, topics, config)
        raise not_found(client.topic, config, seconds, listed) from None
    finally:
        if handle is not None:
            handle.cancel()
