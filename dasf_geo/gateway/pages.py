"""What ``/`` shows: the dashboard when it is installed, else a small page.

The dashboard (``dasf_geo.web``) is served from its package folder at
``/``, after every API route, when ``dasf_geo.web.static_dir()`` exists and
holds ``index.html``. Otherwise ``/`` is a built-in HTML page listing the
services with links to ``/docs`` and ``/services``.
"""

from __future__ import annotations

import html
import importlib
from pathlib import Path
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from dasf_geo.gateway.security import forwarded_header

__all__ = ["dashboard_dir", "page_routes"]


def dashboard_dir(configured: Path | None = None) -> Path | None:
    """The folder to serve at ``/``, or None for the built-in page.

    ``configured`` wins; else ``dasf_geo.web.static_dir()`` if that package
    is importable and its folder holds ``index.html``.
    """
    if configured is not None:
        return configured if (configured / "index.html").is_file() else None
    try:
        web = importlib.import_module("dasf_geo.web")
    except ImportError:
        return None
    static_dir = getattr(web, "static_dir", None)
    if static_dir is None:
        return None
    try:
        folder = Path(static_dir())
    except Exception:
        return None
    return folder if (folder / "index.html").is_file() else None


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>dasf_geo gateway</title>
<style>body{{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;
padding:0 1rem;color:#222}}code{{background:#f3f3f3;padding:0 .2em}}
li{{margin:.4em 0}}.fn{{color:#555}}</style></head>
<body><h1>dasf_geo gateway</h1>
<p>Every DASF service on the broker, over HTTP.
<a href="docs">Interactive API docs</a> · <a href="openapi.json">OpenAPI</a> ·
<a href="services">/services</a> · <a href="ogc/">OGC API - Processes</a> ·
<a href="notifications">/notifications</a></p>
<h2>Services</h2>
{services}
</body></html>
"""


async def home(request: Request) -> Response:
    """The built-in page: the services, their functions, links to the docs."""
    gw = request.app.state.gateway
    try:
        services = await gw.directory.services(forwarded_header(request, gw.settings))
    except Exception as exc:
        body = f"<p>The broker cannot be asked: {html.escape(str(exc))}</p>"
        return HTMLResponse(_PAGE.format(services=body), status_code=502)
    if not services:
        body = "<p>No service answers on the broker right now.</p>"
    else:
        items = []
        for svc in services:
            members = ", ".join(
                f"<code>{html.escape(n)}</code>" for n in svc.functions + svc.classes
            )
            items.append(
                f'<li><a href="services/{html.escape(svc.topic)}">'
                f"<strong>{html.escape(svc.topic)}</strong></a> — "
                f"{html.escape(svc.description)}<br>"
                f"<span class=fn>{members}</span></li>"
            )
        body = "<ul>" + "".join(items) + "</ul>"
    return HTMLResponse(_PAGE.format(services=body))


class _Dashboard(StaticFiles):
    """The dashboard's files; a path an API route takes with another method
    is answered 405 (as without the dashboard), not looked up as a file."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            router = scope.get("router")
            allowed: set[str] = set()
            for route in getattr(router, "routes", ()):
                if isinstance(route, Mount) and route.name == "web":
                    continue
                match, _ = route.matches({**scope, "path": scope.get("path", "")})
                if match is Match.PARTIAL:
                    allowed |= set(getattr(route, "methods", None) or ())
            if allowed:
                raise HTTPException(405, headers={"Allow": ", ".join(sorted(allowed))})
        await super().__call__(scope, receive, send)


def page_routes(settings: Any) -> list[BaseRoute]:
    """The route(s) for ``/``: last in the routing table."""
    folder = dashboard_dir(settings.static_dir)
    if folder is not None:
        return [
            Mount("/", app=_Dashboard(directory=str(folder), html=True), name="web")
        ]
    return [Route("/", home, methods=["GET"])]
