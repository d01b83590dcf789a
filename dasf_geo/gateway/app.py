"""The gateway's ASGI application: routes, error handlers, start and stop.

:func:`create_app` builds a Starlette application from
:class:`~dasf_geo.gateway.settings.GatewaySettings`. Starlette (the ASGI
toolkit FastAPI is built on) is used directly because every route and
schema here comes from the backends' API info at run time, not from Python
signatures known when the app is written: FastAPI's decorators and its
generated OpenAPI would have nothing to describe. The OpenAPI document is
built from the API info instead (:mod:`dasf_geo.gateway.openapi`).

Routing order: service extras (``/services/{topic}/~…``), REST
(``/services…``), OGC API - Processes (``/ogc/…``), ``/openapi.json`` and
``/docs``, ``/notifications``, the WebSocket pass-through ``/ws/…``, and
last ``/`` (the dashboard or a built-in page).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from dasf_geo.exceptions import DasfGeoError
from dasf_geo.gateway.discovery import ServiceDirectory, ServiceNotFound
from dasf_geo.gateway.errors import HTTPError, error_response, exception_response
from dasf_geo.gateway.security import BodyLimit
from dasf_geo.gateway.settings import GatewaySettings

__all__ = ["GatewayState", "create_app"]

logger = logging.getLogger(__name__)


@dataclass
class GatewayState:
    """What the routes share (``request.app.state.gateway``).

    Attributes:
        settings: the gateway's settings.
        directory: broker clients and API info.
        extras: further objects (job manager, notifications) by name.
    """

    settings: GatewaySettings
    directory: ServiceDirectory
    extras: dict[str, Any] = field(default_factory=dict)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail
    if exc.status_code == 404:
        detail = (
            f"no route {request.method} {request.url.path[:200]} on this gateway; "
            "see /docs or /openapi.json for the routes"
        )
    elif exc.status_code == 405:
        detail = (
            f"{request.method} is not allowed on {request.url.path[:200]}; "
            f"allowed: {(exc.headers or {}).get('Allow', '?')}"
        )
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, str(detail), headers=headers)


async def _known_error(request: Request, exc: Exception) -> Response:
    return exception_response(exc)


async def _disconnected(request: Request, exc: Exception) -> Response:
    # nobody reads this answer: the caller went away mid-upload
    return Response(status_code=499)


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("error serving %s %s", request.method, request.url.path)
    return exception_response(exc)


def create_app(settings: GatewaySettings) -> Starlette:
    """The gateway application for ``settings``.

    Raises:
        ConfigurationError: invalid settings.
    """
    from dasf_geo.gateway import (
        extras,
        notifications,
        ogc_routes,
        openapi,
        pages,
        rest,
        ws,
    )

    state = GatewayState(settings, ServiceDirectory(settings))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.gateway = state
        await notifications.start(state)
        await ogc_routes.start(state)
        try:
            yield
        finally:
            await ogc_routes.stop(state)
            await notifications.stop(state)
            await state.directory.close()

    middleware = [Middleware(BodyLimit, limit=settings.body_limit)]
    if settings.cors_origins:
        middleware.insert(
            0,
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                allow_headers=["*"],
                expose_headers=[
                    "Content-Disposition",
                    "Location",
                    "Preference-Applied",
                ],
            ),
        )
    routes = [
        *extras.routes(),
        *rest.routes(),
        *ogc_routes.routes(),
        *openapi.routes(),
        *notifications.routes(),
        *ws.routes(),
        *pages.page_routes(settings),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            HTTPException: _http_exception,
            HTTPError: _known_error,
            ServiceNotFound: _known_error,
            DasfGeoError: _known_error,
            ClientDisconnect: _disconnected,
            Exception: _unexpected,
        },
    )
    app.state.gateway = state
    return app
