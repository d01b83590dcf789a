"""The broker's HTTP side: its two routes and the WebSocket handshake.

picows hands every HTTP request, upgrade or not, to the broker before
anything is answered; :func:`route_request` answers it:

- ``GET /health``: ``{"status": "ok", "uptime_s": …, "topics": …,
  "producers": …, "consumers": …, "held_bytes": …}``;
- ``GET /topics``: topics, subscriptions, consumers and backlogs (needs a
  valid token when the broker runs with an auth file);
- a WebSocket route (see :mod:`dasf_geo.broker.names`) is accepted with the
  connection object the broker's ``_listener`` makes, or refused with an
  HTTP status and a one-line text reason for everything decided at
  connection time (unknown path, invalid name, missing or refused token,
  busy ``Exclusive`` subscription), as Pulsar's WebSocket proxy does; a
  plain HTTP request to a WebSocket route gets 426.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from picows import (
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)

from dasf_geo.broker.auth import Grant, token_from_request
from dasf_geo.broker.connections import _ack_timeout, _broadcast, _consumer_params
from dasf_geo.broker.model import SubscribeError
from dasf_geo.broker.names import parse_path
from dasf_geo.exceptions import ProtocolError

if TYPE_CHECKING:
    from dasf_geo.broker.server import Broker

__all__ = ["route_request"]

_SERVER_HEADER = ("Server", "dasf-geo-broker")
_NO_STORE = ("Cache-Control", "no-store")


def _json_response(data: Any) -> WSUpgradeResponseWithListener:
    """``200 OK`` with ``data`` as JSON; picows closes the connection after it."""
    body = (json.dumps(data, indent=1) + "\n").encode("utf-8")
    response = WSUpgradeResponse.create_ok_response(
        body,
        [_SERVER_HEADER, ("Content-Type", "application/json"), _NO_STORE],
    )
    return WSUpgradeResponseWithListener(response, None)


def _refuse(
    status: int, reason: str, *headers: tuple[str, str]
) -> WSUpgradeResponseWithListener:
    """Refuse a request with ``status`` and a one-line text reason."""
    response = WSUpgradeResponse.create_error_response(
        status,
        (reason + "\n").encode("utf-8"),
        [
            _SERVER_HEADER,
            ("Content-Type", "text/plain; charset=utf-8"),
            _NO_STORE,
            *headers,
        ],
    )
    return WSUpgradeResponseWithListener(response, None)


def _is_upgrade(request: WSUpgradeRequest) -> bool:
    """True if the request asks for a WebSocket (``Upgrade: websocket``)."""
    upgrade = request.headers.get("Upgrade", "")
    return "websocket" in (part.strip().lower() for part in upgrade.split(","))


def route_request(broker: Broker, request: WSUpgradeRequest) -> Any:
    """Answer an HTTP request, refuse it, or accept its WebSocket upgrade.

    Returns:
        What picows' listener factory returns: a response (with the
        connection's listener for an accepted upgrade).
    """
    path = request.path.decode("ascii", "replace")
    plain = path.partition("?")[0]
    if plain in ("/health", "/health/"):
        assert broker.core is not None
        return _json_response(
            {
                "status": "ok",
                "uptime_s": round(time.time() - broker.started_at, 3),
                **broker.core.counts(),
            },
        )
    try:
        route = parse_path(path)
    except ProtocolError as exc:
        return _refuse(400, str(exc))
    if plain in ("/topics", "/topics/"):
        return _topics(broker, request, path)
    if route is None:
        return _refuse(
            404,
            f"no route {plain[:200]!r} on this dasf-geo broker: connect to "
            "/ws/v2/producer/{persistent|non-persistent}/TENANT/NAMESPACE/TOPIC, "
            "/ws/v2/consumer/…/TOPIC/SUBSCRIPTION, /ws/TOPIC, "
            "/ws/TOPIC/SUBSCRIPTION or /ws/status-ping; or GET /health, "
            "/topics",
        )
    grant: Grant | None = None
    if broker.auth is not None:
        token = token_from_request(request.headers, route.params)
        grant = broker.auth.identify(token)
        if grant is None:
            if token is None:
                reason = (
                    "this broker requires a token: pass ?token=… or an "
                    "'Authorization: Bearer …' header"
                )
            else:
                reason = "the token is not known to this broker"
            return _refuse(401, reason)
        action = "produce" if route.kind == "producer" else "consume"
        if route.topic is not None and not grant.allows(action, route.topic):
            return _refuse(
                403, f"{grant.name!r} may not {action} topic {route.topic.local!r}"
            )
    if route.kind == "consumer":
        assert route.topic is not None and route.subscription is not None
        try:
            sub_type, queue_size, _ = _consumer_params(route.params)
            _ack_timeout(route.params)
            assert broker.core is not None
            # a broadcast consumer gets a subscription of its own
            name = route.subscription + ("." if _broadcast(route) else "")
            broker.core.check_subscribe(route.topic, name, sub_type, queue_size)
        except SubscribeError as exc:
            return _refuse(exc.status, exc.reason)
    if not _is_upgrade(request):
        return _refuse(
            426,
            f"{plain[:200]!r} is a WebSocket route: connect with a WebSocket "
            "client (the request has no 'Upgrade: websocket' header)",
            ("Upgrade", "websocket"),
        )
    listener = broker.listener_for(route, grant)
    response = WSUpgradeResponse.create_101_response([_SERVER_HEADER])
    return WSUpgradeResponseWithListener(response, listener)


def _topics(broker: Broker, request: WSUpgradeRequest, path: str) -> Any:
    """``GET /topics``: the core's statistics (with auth: for a known token)."""
    if broker.auth is not None:
        _, _, query = path.partition("?")
        token = token_from_request(request.headers, dict(parse_qsl(query)))
        grant = None if token is None else broker.auth.identify(token)
        if grant is None:
            return _refuse(401, "GET /topics on this broker requires a valid token")
    assert broker.core is not None
    return _json_response(broker.core.stats())
