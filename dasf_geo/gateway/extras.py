"""Routes for the service extras: parameters and the monitoring store.

Each route is one DASF request with a reserved ``func_name`` (they start
with ``~`` and are not listed as functions)::

    GET  /services/{topic}/~parameters
         -> {"func_name": "~list_parameters"}
    GET  /services/{topic}/~parameters/{name}
         -> {"func_name": "~get_parameter", "parameter": name}
    POST /services/{topic}/~parameters/{name}       (body {"value": V})
         -> {"func_name": "~set_parameter", "parameter": name, "value": V}
    GET  /services/{topic}/~monitor?variables=a,b&start=ISO&end=ISO&format=json|csv
         -> {"func_name": "~monitor", "variables": [...], "start": …, "end": …}
    GET  /services/{topic}/~monitor?format=sqlite     (the SQLite store file)
         -> {"func_name": "~monitor", "format": "sqlite"}

Errors map as for any call; an error whose text says "unknown parameter"
is a 404.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dasf_geo.exceptions import RemoteError, RemoteValidationError
from dasf_geo.gateway.errors import HTTPError
from dasf_geo.gateway.security import forwarded_header, parse_json, read_limited

__all__ = ["routes"]

#: The largest body of a parameter update.
MAX_PARAMETER_BODY = 1 << 20


async def _extra_call(request: Request, body: dict[str, Any]) -> Any:
    from dasf_geo.gateway.rest import timeout_of

    gw = request.app.state.gateway
    topic = request.path_params["topic"]
    header = forwarded_header(request, gw.settings)
    # a 404 for a topic nobody serves, before anything is sent
    await gw.directory.api_info(topic, header)
    client = await gw.directory.client(topic, header)
    timeout = timeout_of(
        request, min(gw.settings.timeout, 60.0), gw.settings.max_timeout
    )
    try:
        return await client.call(body, timeout=timeout)
    except RemoteValidationError:
        raise
    except RemoteError as exc:
        if "unknown parameter" in str(exc):
            raise HTTPError(404, str(exc)) from None
        raise


async def list_parameters(request: Request) -> Response:
    """All exposed parameters and their values."""
    return JSONResponse(await _extra_call(request, {"func_name": "~list_parameters"}))


async def get_parameter(request: Request) -> Response:
    """One parameter's value."""
    name = request.path_params["name"]
    value = await _extra_call(
        request, {"func_name": "~get_parameter", "parameter": name}
    )
    return JSONResponse(value)


async def set_parameter(request: Request) -> Response:
    """Set one parameter from ``{"value": V}``; answer with the new value."""
    name = request.path_params["name"]
    body = await read_limited(request, MAX_PARAMETER_BODY)
    data = parse_json(body)
    if not isinstance(data, dict) or "value" not in data:
        raise HTTPError(400, 'the request body must be a JSON object {"value": V}')
    value = await _extra_call(
        request,
        {"func_name": "~set_parameter", "parameter": name, "value": data["value"]},
    )
    return JSONResponse(value)


def _iso(raw: str | None, what: str) -> str | None:
    if raw is None or raw == "":
        return None
    try:
        datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise HTTPError(
            400, f"{what} must be an ISO 8601 date and time, got {raw[:60]!r}"
        ) from None
    return raw


async def monitor(request: Request) -> Response:
    """Recorded values of the monitoring store, as JSON or CSV."""
    query = request.query_params
    fmt = query.get("format", "json")
    if fmt not in ("json", "csv", "sqlite"):
        raise HTTPError(400, f"format must be json, csv or sqlite, got {fmt[:20]!r}")
    if fmt == "sqlite":
        return await _sqlite_file(request)
    raw_vars = query.get("variables")
    variables = (
        [v.strip() for v in raw_vars.split(",") if v.strip()] if raw_vars else None
    )
    rows = await _extra_call(
        request,
        {
            "func_name": "~monitor",
            "variables": variables,
            "start": _iso(query.get("start"), "start"),
            "end": _iso(query.get("end"), "end"),
        },
    )
    if fmt == "json":
        return JSONResponse(rows)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["variable", "value", "timestamp"])
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict):
            continue
        value = row.get("value")
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            value = json.dumps(value)
        writer.writerow([row.get("variable"), value, row.get("timestamp")])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8")


async def _sqlite_file(request: Request) -> Response:
    """The service's SQLite store file itself (``format=sqlite``)."""
    import base64

    reply = await _extra_call(request, {"func_name": "~monitor", "format": "sqlite"})
    if not isinstance(reply, dict) or not isinstance(reply.get("data"), str):
        raise HTTPError(502, "the service did not send its store file")
    name = str(reply.get("filename") or "monitor.sqlite").replace('"', "")
    return Response(
        base64.b64decode(reply["data"]),
        media_type=str(reply.get("media_type") or "application/vnd.sqlite3"),
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def routes() -> list[Route]:
    """The service-extras routes (before the call routes they would shadow)."""
    return [
        Route("/services/{topic}/~parameters", list_parameters, methods=["GET"]),
        Route("/services/{topic}/~parameters/{name}", get_parameter, methods=["GET"]),
        Route("/services/{topic}/~parameters/{name}", set_parameter, methods=["POST"]),
        Route("/services/{topic}/~monitor", monitor, methods=["GET"]),
    ]
