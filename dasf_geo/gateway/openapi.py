"""``/openapi.json`` (OpenAPI 3.1) from the backends' API info, and ``/docs``.

Each function or method of every service becomes one ``POST`` operation:
its summary and description from the docstring the backend published, its
request body the JSON schema of its arguments (the request schema without
``func_name``; for a method, the constructor's and the method's arguments
side by side), and its responses the return schema plus the error shapes.
Dataset and DataArray arguments and results also get their raw forms
(``application/x-netcdf``, ``multipart/form-data``), DataFrames
``text/csv`` and arrays ``application/x-npy``.

Pydantic's ``$defs`` become ``components/schemas`` (named
``<topic>.<function>.<Name>``, since a ``$ref`` in OpenAPI resolves against
the whole document) and every ``$ref`` is rewritten to point there.

``/docs`` is Swagger UI served from the ``fastapi-offline`` package's
files: no request leaves the gateway (the online validator badge is off).
"""

from __future__ import annotations

import copy
import importlib.util
import re
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from dasf_geo.gateway.negotiation import CSV, NETCDF, NPY, available_formats
from dasf_geo.gateway.rest import entrypoint_method
from dasf_geo.gateway.security import forwarded_header
from dasf_geo.gateway.targets import Target, list_targets

__all__ = ["build_document", "routes", "swagger_dir"]

_COMPONENT_NAME = re.compile(r"[^A-Za-z0-9._-]")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("dasf_geo")
    except Exception:
        return "0"


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
        },
    }


_ERRORS = {
    "400": _error("Malformed request (not JSON, not an object, a bad header)"),
    "401": _error("The broker refused the caller's token"),
    "403": _error("The broker refused the token for this topic"),
    "404": _error("No such service or function"),
    "406": _error("The result cannot be sent in an Accept-ed media type"),
    "413": _error("The request body or the reply is above the size limit"),
    "415": _error("Unsupported Content-Type, or an upload that is not NetCDF"),
    "422": {
        "description": "The backend rejected the arguments",
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/ValidationError"}
            }
        },
    },
    "502": _error("The backend answered with an error"),
    "504": _error("No reply within the timeout"),
}

_COMPONENTS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    },
    "ValidationError": {
        "type": "object",
        "properties": {
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "loc": {
                            "type": "array",
                            "items": {"type": ["string", "integer"]},
                        },
                        "msg": {"type": "string"},
                        "type": {"type": "string"},
                    },
                    "required": ["loc", "msg", "type"],
                },
            },
        },
        "required": ["detail", "errors"],
    },
}


def _allows_null(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(
        isinstance(s, dict) and _allows_null(s)
        for key in ("anyOf", "oneOf")
        for s in schema.get(key) or []
    )


def _rewrite(schema: Any, defs: dict[str, str]) -> Any:
    """``schema`` with ``#/$defs/X`` refs pointing at components (no ``$defs``).

    A ``default`` of null on a schema that does not allow null (pydantic
    writes one on return schemas) is left out: validators check defaults.
    """
    if isinstance(schema, dict):
        out = {}
        for key, value in schema.items():
            if key == "$defs":
                continue
            if key == "default" and value is None and not _allows_null(schema):
                continue
            if (
                key == "$ref"
                and isinstance(value, str)
                and value.startswith("#/$defs/")
            ):
                name = value[len("#/$defs/") :]
                out[key] = "#/components/schemas/" + defs.get(name, name)
            else:
                out[key] = _rewrite(value, defs)
        return out
    if isinstance(schema, list):
        return [_rewrite(item, defs) for item in schema]
    return schema


def _collect_defs(
    prefix: str, schemas: list[dict[str, Any]], components: dict[str, Any]
) -> dict[str, str]:
    """Move the ``$defs`` of ``schemas`` into ``components``; name map."""
    names: dict[str, str] = {}
    found: dict[str, Any] = {}
    for schema in schemas:
        for name, value in (schema.get("$defs") or {}).items():
            found[name] = value
            names[name] = _COMPONENT_NAME.sub("_", f"{prefix}.{name}")
    for name, value in found.items():
        components[names[name]] = _rewrite(value, names)
    return names


def _arguments_schema(target: Target, defs: dict[str, str]) -> dict[str, Any]:
    params = target.parameters()
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {n: _rewrite(p, defs) for n, p in params.items()},
        "additionalProperties": False,
    }
    required = target.required()
    if required:
        schema["required"] = required
    return schema


def _request_body(target: Target, defs: dict[str, str]) -> dict[str, Any]:
    args = _arguments_schema(target, defs)
    content: dict[str, Any] = {"application/json": {"schema": args}}
    data = target.data_parameters()
    if len(data) == 1:
        content[NETCDF] = {
            "schema": {"type": "string", "contentMediaType": NETCDF},
            "x-dasf-argument": data[0],
        }
    if data:
        form = copy.deepcopy(args)
        for name in data:
            form["properties"][name] = {
                "type": "string",
                "contentMediaType": NETCDF,
                "description": "the NetCDF file (raw bytes)",
            }
        content["multipart/form-data"] = {"schema": form}
    return {"required": False, "content": content}


def _responses(target: Target, defs: dict[str, str]) -> dict[str, Any]:
    content: dict[str, Any] = {
        "application/json": {"schema": _rewrite(target.return_schema, defs)}
    }
    for kind in available_formats(target)[1:]:
        if kind == NETCDF:
            content[kind] = {"schema": {"type": "string", "contentMediaType": NETCDF}}
        elif kind == CSV:
            content[kind] = {"schema": {"type": "string"}}
        elif kind == NPY:
            content[kind] = {"schema": {"type": "string", "contentMediaType": NPY}}
    return {"200": {"description": "The result", "content": content}, **_ERRORS}


def _operation(target: Target, components: dict[str, Any]) -> dict[str, Any]:
    defs = _collect_defs(
        f"{target.topic}.{target.path.replace('/', '.')}",
        [target.class_schema, target.rpc_schema, target.return_schema],
        components,
    )
    doc = target.description.strip()
    summary = doc.split("\n\n", 1)[0].replace("\n", " ")[:200] or target.label
    return {
        "tags": [target.topic],
        "operationId": _COMPONENT_NAME.sub("_", f"{target.topic}__{target.path}"),
        "summary": summary,
        "description": doc,
        "parameters": [
            {
                "name": "X-Dasf-Timeout",
                "in": "header",
                "required": False,
                "description": "seconds to wait for the reply",
                "schema": {"type": "number", "exclusiveMinimum": 0},
            }
        ],
        "requestBody": _request_body(target, defs),
        "responses": _responses(target, defs),
    }


def _declared_operation(post: dict[str, Any], method: str) -> dict[str, Any]:
    """The operation of a service entrypoint declared with another method:
    ``GET``/``DELETE`` take the arguments as query parameters."""
    op = copy.deepcopy(post)
    op["operationId"] = f"{op['operationId']}__{method.lower()}"
    if method in ("GET", "DELETE", "HEAD", "OPTIONS"):
        body = op.pop("requestBody")
        args = body["content"]["application/json"]["schema"]
        required = set(args.get("required", []))
        op["parameters"] += [
            {"name": name, "in": "query", "required": name in required, "schema": sub}
            for name, sub in args.get("properties", {}).items()
        ]
    return op


def _static_paths() -> dict[str, Any]:
    ok = {"description": "OK", "content": {"application/json": {"schema": {}}}}
    return {
        "/services": {
            "get": {
                "tags": ["gateway"],
                "operationId": "list_services",
                "summary": "Every service with its description and members",
                "responses": {"200": ok},
            }
        },
        "/services/{topic}": {
            "get": {
                "tags": ["gateway"],
                "operationId": "service_info",
                "summary": "The backend's API info (schemas of every member)",
                "parameters": [
                    {
                        "name": "topic",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {"200": ok, "404": _ERRORS["404"]},
            }
        },
        "/notifications": {
            "get": {
                "tags": ["gateway"],
                "operationId": "notifications",
                "summary": "Notifications of the services, newest first",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                    {
                        "name": "severity",
                        "in": "query",
                        "schema": {"enum": ["INFO", "WARNING", "CRITICAL"]},
                    },
                ],
                "responses": {"200": ok, "400": _ERRORS["400"]},
            }
        },
        "/ogc/processes": {
            "get": {
                "tags": ["OGC API - Processes"],
                "operationId": "ogc_processes",
                "summary": "OGC API - Processes: one process per function",
                "responses": {"200": ok},
            }
        },
    }


def build_document(services: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``(topic, api_info)`` pairs."""
    components: dict[str, Any] = copy.deepcopy(_COMPONENTS)
    paths = _static_paths()
    tags = [{"name": "gateway", "description": "Discovery and notifications"}]
    for topic, info in services:
        description = str((info.get("rpc_schema") or {}).get("description") or "")
        tags.append({"name": topic, "description": description})
        for target in list_targets(topic, info):
            item = {"post": _operation(target, components)}
            if target.class_name is None:
                method = entrypoint_method(info, target.name)
                if method != "POST":
                    item[method.lower()] = _declared_operation(item["post"], method)
            paths[f"/services/{topic}/{target.path}"] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dasf_geo gateway",
            "version": _version(),
            "description": "Every DASF service on the broker over HTTP. Arguments "
            "are JSON (Datasets as base64 NetCDF) or raw NetCDF; results follow "
            "the Accept header.",
        },
        "tags": tags,
        "paths": paths,
        "components": {"schemas": components},
    }


async def openapi_json(request: Request) -> Response:
    """``GET /openapi.json``: the document for the services answering now."""
    gw = request.app.state.gateway
    header = forwarded_header(request, gw.settings)
    services = await gw.directory.services(header)
    pairs = []
    for svc in services:
        info = gw.directory.cached_api_info(svc.topic, header)
        if info is not None:
            pairs.append((svc.topic, info))
    return JSONResponse(build_document(pairs))


def swagger_dir() -> Path | None:
    """The folder of Swagger UI's files in the ``fastapi-offline`` package."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


_DOCS = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>dasf_geo gateway - API docs</title>
<link rel="icon" type="image/png" href="docs/static/favicon.png">
<link rel="stylesheet" href="docs/static/swagger-ui.css">
</head><body><div id="swagger-ui"></div>
<script src="docs/static/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({
  url: "openapi.json", dom_id: "#swagger-ui", validatorUrl: null,
  deepLinking: true, layout: "BaseLayout",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset]
});
</script></body></html>
"""


async def docs(request: Request) -> Response:
    """``GET /docs``: Swagger UI from local files."""
    if swagger_dir() is None:
        return HTMLResponse(
            "<p>Swagger UI needs the fastapi-offline package: pip install "
            'fastapi-offline. The document is at <a href="openapi.json">'
            "openapi.json</a>.</p>",
            status_code=503,
        )
    return HTMLResponse(_DOCS)


def routes() -> list[BaseRoute]:
    """``/openapi.json``, ``/docs`` and Swagger UI's files."""
    out: list[BaseRoute] = [
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
    ]
    folder = swagger_dir()
    if folder is not None:
        out.append(Mount("/docs/static", app=StaticFiles(directory=str(folder))))
    return out
