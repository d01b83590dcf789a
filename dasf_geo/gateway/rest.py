"""The REST face: ``/services``, ``/services/{topic}`` and the calls.

``POST /services/{topic}/{function}`` (or ``/{Class}/{method}``) turns
the request into one DASF request on ``topic`` and the reply into the
response; the body's arguments are read by
:mod:`dasf_geo.gateway.negotiation` (JSON, raw NetCDF, multipart) and the
result is written in the form the ``Accept`` header asks for.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dasf_geo.gateway.discovery import ServiceNotFound
from dasf_geo.gateway.errors import HTTPError
from dasf_geo.gateway.security import forwarded_header
from dasf_geo.gateway.targets import Target, describe_members, find_target
from dasf_geo.transport.client import raise_for_status

__all__ = ["call_target", "resolve_target", "routes", "timeout_of"]

logger = logging.getLogger(__name__)


def _state(request: Request) -> Any:
    return request.app.state.gateway


async def list_services(request: Request) -> Response:
    """``GET /services``: every service with its description and members."""
    gw = _state(request)
    header = forwarded_header(request, gw.settings)
    services = await gw.directory.services(header)
    return JSONResponse({"services": [s.as_json() for s in services]})


async def service_info(request: Request) -> Response:
    """``GET /services/{topic}``: the backend's API info, unchanged."""
    gw = _state(request)
    topic = request.path_params["topic"]
    header = forwarded_header(request, gw.settings)
    wait = None
    if "x-dasf-timeout" in request.headers:
        wait = timeout_of(request, gw.settings.timeout, gw.settings.max_timeout)
    info = await gw.directory.api_info(topic, header, refresh=True, timeout=wait)
    return JSONResponse(info)


async def resolve_target(
    gw: Any, topic: str, name: str, method: str | None, header: Any
) -> Target:
    """The function or method a route names, from (refreshed) API info.

    Raises:
        ServiceNotFound: no service on ``topic``, or it has no such member.
    """
    info = await gw.directory.api_info(topic, header)
    target = find_target(topic, info, name, method)
    if target is None:
        # the backend may have restarted with a new API: ask once more
        info = await gw.directory.api_info(topic, header, refresh=True)
        target = find_target(topic, info, name, method)
    if target is None:
        what = (
            f"class {name!r} with a method {method!r}"
            if method
            else (f"function {name!r}")
        )
        raise ServiceNotFound(
            f"the service on topic {topic!r} has no {what}; it offers: "
            f"{describe_members(info)}",
            topic,
        )
    return target


def timeout_of(request: Request, default: float, maximum: float) -> float:
    """Seconds to wait for the reply: ``X-Dasf-Timeout`` or the default.

    Raises:
        HTTPError: 400 when the header is not a number of seconds in
            ``(0, maximum]``.
    """
    raw = request.headers.get("x-dasf-timeout")
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value <= maximum:
        raise HTTPError(
            400,
            f"X-Dasf-Timeout must be a number of seconds > 0 and <= {maximum:g}, "
            f"got {raw[:40]!r}",
        )
    return value


def entrypoint_method(info: dict[str, Any], name: str) -> str:
    """The HTTP method a ``dasf_geo.service`` entrypoint declared, else POST.

    A service's API info carries ``service.entrypoints.NAME.method``.
    """
    service = info.get("service")
    if isinstance(service, dict):
        entrypoints = service.get("entrypoints")
        entry = entrypoints.get(name) if isinstance(entrypoints, dict) else None
        if isinstance(entry, dict) and isinstance(entry.get("method"), str):
            return str(entry["method"]).upper()
    return "POST"


async def call_target(request: Request) -> Response:
    """``POST /services/{topic}/{function}`` and ``…/{Class}/{method}``.

    A service entrypoint declared with another method (``GET``, ``PUT``…)
    is also reached with that method; ``GET``/``DELETE`` take the arguments
    from the query string.
    """
    from dasf_geo.gateway.negotiation import read_call, send_and_render

    gw = _state(request)
    params = request.path_params
    topic = params["topic"]
    header = forwarded_header(request, gw.settings)
    target = await resolve_target(
        gw, topic, params["name"], params.get("method"), header
    )
    if request.method != "POST":
        info = await gw.directory.api_info(topic, header)
        declared = entrypoint_method(info, target.name)
        if target.class_name is not None or request.method not in (
            declared,
            "HEAD" if declared == "GET" else declared,
        ):
            allowed = "POST" if declared == "POST" else f"POST, {declared}"
            raise HTTPError(
                405,
                f"{request.method} is not allowed on {request.url.path}; "
                f"allowed: {allowed}",
            )
    timeout = timeout_of(request, gw.settings.timeout, gw.settings.max_timeout)
    client = await gw.directory.client(topic, header)
    call = await read_call(request, target, client, gw.settings)
    return await send_and_render(request, target, client, call, timeout)


async def check_reply(reply: Any, topic: str) -> Any:
    """``raise_for_status`` that removes a spooled payload on error."""
    try:
        return raise_for_status(reply, topic)
    except BaseException:
        from dasf_geo.gateway.streaming import close_payload

        close_payload(reply.payload)
        raise


def routes() -> list[Route]:
    """The REST routes (after the service-extras routes, before the pages)."""
    return [
        Route("/services", list_services, methods=["GET"]),
        Route("/services/{topic}", service_info, methods=["GET"]),
        Route(
            "/services/{topic}/{name}",
            call_target,
            methods=["POST", "GET", "PUT", "PATCH", "DELETE"],
        ),
        Route("/services/{topic}/{name}/{method}", call_target, methods=["POST"]),
    ]
