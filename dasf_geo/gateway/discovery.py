"""Which services exist, and their API info: the gateway's view of the broker.

The gateway is a broker client like any caller. For every backend topic it
keeps one :class:`~dasf_geo.transport.client.AsyncClient` per set of
handshake headers (the gateway's own, or the ``Authorization`` a request
forwards), at most :data:`MAX_CLIENTS` of them, least recently used closed
first. A backend's API info is cached for ``settings.refresh`` seconds, so
routes and schemas follow a backend that restarts with a new API.

Services are the topics named in the settings and, when the broker lists
its topics (``GET /topics`` of ``dasf-geo broker`` and the embedded
broker), every topic with a consumer that answers an ``api_info`` request.
Such a broker also tells at once that a topic has no consumer, so an
unknown service is a 404 without waiting; with other brokers the gateway
waits ``settings.discovery_timeout`` seconds for an ``api_info`` reply.
The listing is reused for :data:`LISTING_TTL` seconds, but a name it lacks
is only a 404 once a listing fetched after the request arrived lacks it
too, so that a backend that has just subscribed is found on the first
call; such refreshes are shared by the requests waiting for them and begin
at most once per :data:`LISTING_MIN_INTERVAL` seconds, so that a flood of
requests for unknown names costs the broker a few listings a second.
A dasf_geo service's versioned topic (``<name>_<version>``) is listed
once, among the ``versions`` of its service. Callers' private response
topics (``<topic>_<32 hex digits>``) and the notifications topic are never
probed; a topic whose probe failed is not
probed again for :data:`NEGATIVE_TTL` seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dasf_geo.exceptions import (
    ConnectionFailed,
    RemoteError,
    RequestTimeout,
    SendError,
    TransportError,
)
from dasf_geo.gateway.settings import GatewaySettings, valid_topic
from dasf_geo.protocol.constants import NOTIFICATIONS_TOPIC
from dasf_geo.transport.client import AsyncClient

__all__ = [
    "MAX_CLIENTS",
    "NOTIFICATIONS_TOPIC",
    "ServiceDirectory",
    "ServiceNotFound",
    "ServiceSummary",
    "group_versions",
]

logger = logging.getLogger(__name__)

#: The most broker clients kept open at once (one per topic and header set).
MAX_CLIENTS = 64
#: Seconds a topic that did not answer ``api_info`` is not asked again.
NEGATIVE_TTL = 30.0
#: Seconds to wait for an ``api_info`` answer while discovering.
PROBE_TIMEOUT = 3.0
#: Seconds the broker's list of topics with a consumer is reused.
LISTING_TTL = 1.0
#: Seconds :meth:`ServiceDirectory.close` waits for its clients to close.
CLOSE_TIMEOUT = 5.0
#: Least seconds between the starts of two listings for one header set.
LISTING_MIN_INTERVAL = 0.2

# response topics of dasf_geo callers (new_response_topic)
_RESPONSE_TOPIC = re.compile(r".+_[0-9a-f]{32}")


class ServiceNotFound(LookupError):
    """No service answers on a topic (or the topic name is invalid)."""

    def __init__(self, message: str, topic: str) -> None:
        super().__init__(message)
        self.topic = topic


@dataclass
class _Listing:
    """The broker's topic listing for one header set, and its refresh."""

    #: topics with a consumer (None: the broker cannot list them)
    topics: list[str] | None = None
    #: monotonic time the fetch of ``topics`` began (-inf: never fetched)
    began: float = float("-inf")
    #: the fetch under way, and when it began
    fetch: asyncio.Task[list[str] | None] | None = None
    fetch_began: float = float("-inf")


@dataclass
class ServiceSummary:
    """One entry of ``GET /services``."""

    topic: str
    description: str
    functions: list[str]
    classes: list[str]
    #: for a dasf_geo service (API info with a ``"service"`` object): the
    #: versions answering on versioned topics of their own, each
    #: ``{"version", "topic", "shadow", "url"}``; None for other backends
    versions: list[dict[str, Any]] | None = None

    def as_json(self) -> dict[str, Any]:
        """The JSON object of the entry (with its ``url``, and ``versions``)."""
        entry: dict[str, Any] = {
            "topic": self.topic,
            "description": self.description,
            "functions": self.functions,
            "classes": self.classes,
            "url": f"/services/{self.topic}",
        }
        if self.versions is not None:
            entry["versions"] = self.versions
        return entry

    @classmethod
    def of(cls, topic: str, api_info: Mapping[str, Any]) -> ServiceSummary:
        """The summary of ``api_info`` (functions and classes by name)."""
        schema = api_info.get("rpc_schema")
        description = ""
        if isinstance(schema, Mapping):
            # the summary: the docstring's first paragraph
            text = str(schema.get("description") or "").strip()
            description = " ".join(text.split("\n\n", 1)[0].split())
        return cls(
            topic=topic,
            description=description,
            functions=[
                str(f.get("name"))
                for f in api_info.get("functions") or []
                if isinstance(f, Mapping) and not str(f.get("name", "")).startswith("~")
            ],
            classes=[
                str(c.get("name"))
                for c in api_info.get("classes") or []
                if isinstance(c, Mapping)
            ],
        )


def _version_of(
    topic: str, info: Mapping[str, Any]
) -> tuple[str, dict[str, Any]] | None:
    """``(service name, version entry)`` if ``topic`` is a versioned topic.

    A dasf_geo service answers on its name and on ``<name>_<version>``; the
    ``"service"`` object of its API info names both (see
    :func:`dasf_geo.service._reserved.describe_service`).
    """
    svc = info.get("service")
    if not isinstance(svc, Mapping):
        return None
    name, versioned = svc.get("name"), svc.get("versioned_topic")
    if not isinstance(name, str) or versioned != topic or name == topic:
        return None
    return name, {
        "version": str(svc.get("version", "")),
        "topic": topic,
        "shadow": bool(svc.get("shadow")),
        "url": f"/services/{topic}",
    }


def group_versions(found: list[tuple[str, dict[str, Any]]]) -> list[ServiceSummary]:
    """The summaries of ``(topic, api_info)`` pairs, one per service.

    The versioned topic of a service whose own topic is among ``found`` is
    no service of its own: it goes into the ``versions`` of its service
    (sorted by version). A versioned topic whose service's topic is not
    among them stays an entry of its own.
    """
    topics = {topic for topic, _ in found}
    versions: dict[str, list[dict[str, Any]]] = {}
    folded: set[str] = set()
    for topic, info in found:
        version = _version_of(topic, info)
        if version is not None and version[0] in topics:
            versions.setdefault(version[0], []).append(version[1])
            folded.add(topic)
    out = []
    for topic, info in found:
        if topic in folded:
            continue
        summary = ServiceSummary.of(topic, info)
        if isinstance(info.get("service"), Mapping):
            summary.versions = sorted(
                versions.get(topic, []), key=lambda v: (v["version"], v["topic"])
            )
        out.append(summary)
    return out


HeaderKey = tuple[tuple[str, str], ...]


def _key(header: Mapping[str, str] | None) -> HeaderKey:
    return tuple(sorted((header or {}).items()))


class ServiceDirectory:
    """Broker clients and API info of the services a gateway serves.

    Args:
        settings: the gateway's settings.

    Use it from the gateway's event loop only; :meth:`close` closes every
    client.
    """

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self._clients: OrderedDict[tuple[str, HeaderKey], AsyncClient] = OrderedDict()
        self._locks: dict[tuple[str, HeaderKey], asyncio.Lock] = {}
        # (topic, header key) -> (api info, monotonic time fetched)
        self._api: dict[tuple[str, HeaderKey], tuple[dict[str, Any], float]] = {}
        self._negative: dict[tuple[str, HeaderKey], float] = {}
        self._known: set[str] = set(settings.topics)
        self._listings: dict[HeaderKey, _Listing] = {}
        self._closed = False

    # --- clients ------------------------------------------------------------

    async def client(
        self, topic: str, header: Mapping[str, str] | None = None
    ) -> AsyncClient:
        """The (started) client of ``topic`` for handshake headers ``header``.

        Args:
            topic: the backend's topic.
            header: the headers to use instead of the gateway's own (None:
                the gateway's).

        Raises:
            ServiceNotFound: ``topic`` is not a valid topic name.
            ConnectionFailed: the broker cannot be reached or refused the
                headers.
        """
        if not valid_topic(topic):
            raise ServiceNotFound(
                f"{topic[:100]!r} is not a valid topic name: use only letters, "
                "digits and _ - = : . %",
                topic,
            )
        key = (topic, _key(header))
        client = self._clients.get(key)
        if client is not None and not client.closed:
            self._clients.move_to_end(key)
            return client
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            client = self._clients.get(key)
            if client is not None and not client.closed:
                return client
            config = self.settings.messaging_config(topic, header)
            client = AsyncClient(config, topic, timeout=self.settings.timeout)
            try:
                await client.start()
            except BaseException:
                await client.close()
                raise
            self._clients[key] = client
            while len(self._clients) > MAX_CLIENTS:
                _, old = self._clients.popitem(last=False)
                asyncio.get_running_loop().create_task(old.close())
            return client

    # --- API info -----------------------------------------------------------

    async def api_info(
        self,
        topic: str,
        header: Mapping[str, str] | None = None,
        *,
        refresh: bool = False,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """The API info of the backend on ``topic`` (cached).

        Args:
            topic: the backend's topic.
            header: handshake headers (see :meth:`client`).
            refresh: ask the backend even if the cache is fresh.
            timeout: seconds to wait (default: ``settings.discovery_timeout``).

        Raises:
            ServiceNotFound: no backend answered on ``topic``.
            ConnectionFailed: the broker refused the connection.
        """
        key = (topic, _key(header))
        now = time.monotonic()
        cached = self._api.get(key)
        if (
            cached is not None
            and not refresh
            and now - cached[1] < self.settings.refresh
        ):
            return cached[0]
        if not valid_topic(topic):
            await self.client(topic, header)  # raises ServiceNotFound
        listing = await self._broker_listing(header)
        if listing is not None and topic not in listing:
            # a backend may have subscribed since the cached listing: a 404
            # needs a listing begun after this request arrived
            listing = await self._broker_listing(header, since=now)
        if listing is not None and topic not in listing:
            self._api.pop(key, None)
            offered = ", ".join(sorted(listing)) or "none"
            raise ServiceNotFound(
                f"no service answers on topic {topic!r}: the broker has no "
                f"consumer on it (topics with a service: {offered})",
                topic,
            )
        client = await self.client(topic, header)
        wait = self.settings.discovery_timeout if timeout is None else timeout
        try:
            info = await client.api_info(wait)
        except RequestTimeout:
            self._api.pop(key, None)
            reason = (
                "the broker does not list its topics, so the gateway waited "
                "--discovery-timeout"
                if listing is None
                else "the topic has a consumer, but it did not answer"
            )
            raise ServiceNotFound(
                f"no service answers on topic {topic!r} (no api_info reply within "
                f"{wait:g} s; {reason})",
                topic,
            ) from None
        except (ConnectionFailed, SendError):
            raise  # the broker refused us: not the backend's absence
        except (RemoteError, TransportError) as exc:
            self._api.pop(key, None)
            raise ServiceNotFound(
                f"the backend on topic {topic!r} sent no usable API info: {exc}",
                topic,
            ) from exc
        self._api[key] = (info, time.monotonic())
        self._negative.pop(key, None)
        self._known.add(topic)
        return info

    def cached_api_info(
        self, topic: str, header: Mapping[str, str] | None = None
    ) -> dict[str, Any] | None:
        """The last API info of ``topic``, however old, or None."""
        cached = self._api.get((topic, _key(header)))
        return None if cached is None else cached[0]

    def forget(self, topic: str) -> None:
        """Drop the cached API info of ``topic`` (all header sets)."""
        for key in [k for k in self._api if k[0] == topic]:
            del self._api[key]

    # --- discovery ------------------------------------------------------------

    async def candidate_topics(
        self, header: Mapping[str, str] | None = None
    ) -> list[str]:
        """The named topics plus those the broker lists with a consumer."""
        topics = dict.fromkeys(self.settings.topics)
        if not self.settings.topics:
            for topic in sorted(self._known):
                topics[topic] = None
            for topic in await self._broker_topics(header):
                topics[topic] = None
        return list(topics)

    async def _broker_topics(self, header: Mapping[str, str] | None) -> list[str]:
        """Topics with a consumer, from the broker's ``GET /topics``."""
        return await self._broker_listing(header) or []

    async def _broker_listing(
        self, header: Mapping[str, str] | None, since: float | None = None
    ) -> list[str] | None:
        """Topics with a consumer, or None when the broker cannot list them.

        Without ``since``, a listing begun less than :data:`LISTING_TTL`
        seconds ago is reused, so that the probes of one ``GET /services``
        ask the broker once. With ``since`` (a :func:`time.monotonic`
        time), the answer is a listing begun at or after ``since``: the one
        under way if it began late enough, else a new one, begun no sooner
        than :data:`LISTING_MIN_INTERVAL` seconds after the previous one
        (the callers meanwhile wait and then share it).
        """
        base = self.settings.broker_http_url
        if base is None:
            return None
        state = self._listings.setdefault(_key(header), _Listing())
        if since is None:
            if time.monotonic() - state.began < LISTING_TTL:
                return state.topics
            if state.fetch is None:
                self._begin_listing(state, base, header)
            assert state.fetch is not None
            return await asyncio.shield(state.fetch)
        while state.began < since:
            fetch = state.fetch
            if fetch is not None:
                # a fetch begun before ``since`` is waited for, then another
                await asyncio.shield(fetch)
                continue
            wait = state.fetch_began + LISTING_MIN_INTERVAL - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue  # someone else may have begun one meanwhile
            self._begin_listing(state, base, header)
        return state.topics

    def _begin_listing(
        self, state: _Listing, base: str, header: Mapping[str, str] | None
    ) -> None:
        began = time.monotonic()

        async def fetch() -> list[str] | None:
            try:
                found = await self._fetch_listing(base, header)
            finally:
                state.fetch = None
            state.topics, state.began = found, began
            return found

        state.fetch_began = began
        state.fetch = asyncio.get_running_loop().create_task(
            fetch(), name="dasf-geo topic listing"
        )

    async def _fetch_listing(
        self, base: str, header: Mapping[str, str] | None
    ) -> list[str] | None:
        hdrs = dict(self.settings.header if header is None else header)

        def fetch() -> Any:
            request = urllib.request.Request(base + "/topics", headers=hdrs)
            with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT) as response:
                return json.load(response)

        try:
            listing = await asyncio.get_running_loop().run_in_executor(None, fetch)
        except Exception as exc:  # a broker without /topics (Pulsar)
            logger.debug("no topic listing from %s: %s", base, exc)
            return None
        if not isinstance(listing, dict) or not isinstance(listing.get("topics"), list):
            return None
        found = []
        for entry in listing["topics"]:
            if not isinstance(entry, dict):
                continue
            name = entry.get("name")
            if (
                not isinstance(name, str)
                or not valid_topic(name)
                or name == NOTIFICATIONS_TOPIC
                or _RESPONSE_TOPIC.fullmatch(name)
            ):
                continue
            subs = entry.get("subscriptions") or []
            if any(isinstance(s, dict) and s.get("consumers") for s in subs):
                found.append(name)
        return found

    async def services(
        self, header: Mapping[str, str] | None = None
    ) -> list[ServiceSummary]:
        """Every service that answers, with its summary, sorted by topic.

        A service's versioned topic is listed among its ``versions``, not
        as a service of its own (see :func:`group_versions`).

        Raises:
            ConnectionFailed: the broker refused the headers.
        """
        topics = await self.candidate_topics(header)
        now = time.monotonic()

        async def probe(topic: str) -> tuple[str, dict[str, Any]] | None:
            key = (topic, _key(header))
            if self._negative.get(key, 0.0) > now and topic not in self.settings.topics:
                return None
            try:
                info = await self.api_info(topic, header, timeout=PROBE_TIMEOUT)
            except ServiceNotFound:
                self._negative[key] = time.monotonic() + NEGATIVE_TTL
                if topic not in self.settings.topics:
                    self._known.discard(topic)
                return None
            return topic, info

        results = await asyncio.gather(*(probe(t) for t in topics))
        return group_versions([r for r in results if r is not None])

    async def close(self) -> None:
        """Close every client, within about :data:`CLOSE_TIMEOUT` seconds."""
        self._closed = True
        for state in self._listings.values():
            if state.fetch is not None:
                state.fetch.cancel()
        clients = list(self._clients.values())
        self._clients.clear()
        if not clients:
            return
        # concurrently, and bounded: a client whose close waits on a task
        # that lost its cancellation must not hold the gateway's shutdown
        closing = [asyncio.ensure_future(client.close()) for client in clients]
        done, pending = await asyncio.wait(closing, timeout=CLOSE_TIMEOUT)
        for fut in done:
            if not fut.cancelled():
                fut.exception()  # retrieved: a broken connection is gone anyway
        if pending:
            logger.warning(
                "%d broker client(s) did not close within %g s",
                len(pending),
                CLOSE_TIMEOUT,
            )
            for fut in pending:
                fut.cancel()
