"""The HTTP endpoints of OGC API - Processes (see :mod:`dasf_geo.gateway.ogc`).

::

    GET    /ogc/                              landing page
    GET    /ogc/conformance                   conformance classes
    GET    /ogc/processes                     one process per function
    GET    /ogc/processes/{processId}         its inputs and output
    POST   /ogc/processes/{processId}/execution   sync, or async with
                                              Prefer: respond-async
    GET    /ogc/jobs                          jobs, newest first
    GET    /ogc/jobs/{jobId}                  status (SSE with
                                              Accept: text/event-stream)
    GET    /ogc/jobs/{jobId}/results          the result
    DELETE /ogc/jobs/{jobId}                  dismiss
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from dasf_geo.gateway.errors import HTTPError
from dasf_geo.gateway.jobs import FINISHED, Job, JobStore
from dasf_geo.gateway.negotiation import NETCDF, NETCDF_REPLY_TYPES, Call, render_reply
from dasf_geo.gateway.ogc import (
    _REL,
    CONFORMANCE,
    MAX_EXECUTE_BODY,
    JobManager,
    _base,
    _exception,
    _summary,
    _targets,
    describe,
    find_process,
    status_info,
)
from dasf_geo.gateway.security import forwarded_header, parse_json, read_limited
from dasf_geo.gateway.targets import Target
from dasf_geo.protocol.constants import JSON_MEDIA_TYPE

__all__ = ["routes", "start", "stop"]

#: Seconds between SSE keep-alive comments.
SSE_KEEPALIVE = 15.0


def _manager(request: Request) -> JobManager:
    manager = request.app.state.gateway.extras.get("jobs")
    if manager is None:
        raise HTTPError(503, "the job store is not open")
    return manager  # type: ignore[no-any-return]


async def landing(request: Request) -> Response:
    """``GET /ogc/``."""
    base = _base(request)
    return JSONResponse(
        {
            "title": "dasf_geo gateway - OGC API - Processes",
            "description": "Every function of every DASF service on the broker as "
            "an OGC API - Processes process.",
            "links": [
                {
                    "href": f"{base}/ogc/",
                    "rel": "self",
                    "type": "application/json",
                    "title": "this document",
                },
                {
                    "href": f"{base}/openapi.json",
                    "rel": "service-desc",
                    "type": "application/vnd.oai.openapi+json;version=3.1",
                    "title": "the API definition",
                },
                {
                    "href": f"{base}/docs",
                    "rel": "service-doc",
                    "type": "text/html",
                    "title": "the API documentation",
                },
                {
                    "href": f"{base}/ogc/conformance",
                    "rel": _REL + "conformance",
                    "type": "application/json",
                    "title": "conformance classes",
                },
                {
                    "href": f"{base}/ogc/processes",
                    "rel": _REL + "processes",
                    "type": "application/json",
                    "title": "processes",
                },
                {
                    "href": f"{base}/ogc/jobs",
                    "rel": _REL + "job-list",
                    "type": "application/json",
                    "title": "jobs",
                },
            ],
        }
    )


async def conformance(request: Request) -> Response:
    """``GET /ogc/conformance``."""
    return JSONResponse({"conformsTo": CONFORMANCE})


async def processes(request: Request) -> Response:
    """``GET /ogc/processes``."""
    base = _base(request)
    items = [_summary(t, base) for t in await _targets(request)]
    return JSONResponse(
        {
            "processes": items,
            "links": [
                {
                    "href": f"{base}/ogc/processes",
                    "rel": "self",
                    "type": "application/json",
                }
            ],
        }
    )


async def process(request: Request) -> Response:
    """``GET /ogc/processes/{processId}``."""
    try:
        target = await find_process(request, request.path_params["process_id"])
    except HTTPError as exc:
        return _exception(404, "no-such-process", exc.detail)
    return JSONResponse(describe(target, _base(request)))


def _inputs(body: Any, target: Target) -> dict[str, Any]:
    """The arguments of an execute request's ``inputs``."""
    if not isinstance(body, dict):
        raise HTTPError(400, "the execute request must be a JSON object")
    inputs = body.get("inputs", {})
    if not isinstance(inputs, dict):
        raise HTTPError(400, "'inputs' must be a JSON object of input values by id")
    out = {}
    for name, value in inputs.items():
        if isinstance(value, dict) and "href" in value:
            raise HTTPError(
                400,
                f"input {name!r} is a reference (href): this gateway takes values "
                "only; put the value inline",
            )
        if (
            isinstance(value, dict)
            and "value" in value
            and set(value) <= {"value", "mediaType", "encoding", "schema", "format"}
        ):
            value = value["value"]  # a qualified value
        out[name] = value
    return out


def _wants_netcdf(body: dict[str, Any], request: Request, target: Target) -> bool:
    outputs = body.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, dict):
            raise HTTPError(400, "'outputs' must be a JSON object by output id")
        unknown = set(outputs) - {"result"}
        if unknown:
            raise HTTPError(
                400,
                f"unknown output {sorted(unknown)[0]!r}: the only output is 'result'",
            )
        spec = outputs.get("result") or {}
        if not isinstance(spec, dict):
            raise HTTPError(400, "outputs.result must be a JSON object")
        if spec.get("transmissionMode", "value") != "value":
            raise HTTPError(400, "only transmissionMode 'value' is supported")
        fmt = spec.get("format") or {}
        if isinstance(fmt, dict) and fmt.get("mediaType"):
            media = str(fmt["mediaType"]).split(";")[0].strip()
            if media == NETCDF and target.return_type.startswith("xarray."):
                return True
            if media not in (NETCDF, JSON_MEDIA_TYPE):
                raise HTTPError(400, f"output format {media[:80]!r} is not offered")
    accept = request.headers.get("accept", "")
    return NETCDF in accept and target.return_type.startswith("xarray.")


async def execute(request: Request) -> Response:
    """``POST /ogc/processes/{processId}/execution``."""
    from dasf_geo.gateway.rest import timeout_of

    gw = request.app.state.gateway
    try:
        target = await find_process(request, request.path_params["process_id"])
    except HTTPError as exc:
        return _exception(404, "no-such-process", exc.detail)
    raw = await read_limited(request, min(MAX_EXECUTE_BODY, gw.settings.body_limit))
    body = parse_json(raw, "the execute request") if raw.strip() else {}
    arguments = _inputs(body, target)
    response_mode = body.get("response", "raw")
    if response_mode not in ("raw", "document"):
        raise HTTPError(
            400, f"'response' must be 'raw' or 'document', got {response_mode!r:.40}"
        )
    netcdf = _wants_netcdf(body, request, target)
    accept = NETCDF_REPLY_TYPES if netcdf else None
    header = forwarded_header(request, gw.settings)
    client = await gw.directory.client(target.topic, header)
    request_json = target.build_request(arguments)
    call = Call(request_json, json.dumps(request_json).encode("utf-8"))
    timeout = timeout_of(request, gw.settings.timeout, gw.settings.max_timeout)
    prefer = request.headers.get("prefer", "").lower()
    if "respond-async" in prefer:
        manager = _manager(request)
        job = manager.store.create(uuid.uuid4().hex, target.process_id, response_mode)
        task = asyncio.get_running_loop().create_task(
            manager.run(job, target, client, call, timeout, accept)
        )
        manager.tasks[job.job_id] = task
        base = _base(request)
        location = f"{base}/ogc/jobs/{job.job_id}"
        return JSONResponse(
            status_info(job, base),
            status_code=201,
            headers={"Location": location, "Preference-Applied": "respond-async"},
        )
    try:
        reply = await client.request(
            call.payload, timeout=timeout, what=target.label, accept=accept
        )
    finally:
        call.close()
    from dasf_geo.gateway.rest import check_reply

    await check_reply(reply, target.topic)
    fmt = NETCDF if netcdf else JSON_MEDIA_TYPE
    response = render_reply(reply, target, fmt)
    if response_mode == "document" and fmt == JSON_MEDIA_TYPE:
        return _document(response)
    return response


def _document(response: Any) -> Response:
    """Wrap a streamed JSON result as ``{"result": …}``."""

    if not isinstance(response, StreamingResponse):
        body = b'{"result": ' + bytes(response.body) + b"}"
        return Response(body, media_type=JSON_MEDIA_TYPE)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"result": '
        async for chunk in response.body_iterator:
            yield chunk if isinstance(chunk, bytes) else str(chunk).encode()
        yield b"}"

    return StreamingResponse(chunks(), media_type=JSON_MEDIA_TYPE)


def _job_or_404(request: Request) -> Job | Response:
    job = _manager(request).store.get(request.path_params["job_id"])
    if job is None:
        return _exception(
            404, "no-such-job", f"no job {request.path_params['job_id'][:100]!r}"
        )
    return job


async def jobs(request: Request) -> Response:
    """``GET /ogc/jobs?limit=N&processID=P&status=S``."""
    raw = request.query_params.get("limit", "100")
    try:
        limit = int(raw)
    except ValueError:
        limit = -1
    if not 1 <= limit <= 10_000:
        raise HTTPError(
            400, f"limit must be an integer from 1 to 10000, got {raw[:40]!r}"
        )
    status = request.query_params.getlist("status") or None
    base = _base(request)
    found = _manager(request).store.list(
        limit, process_id=request.query_params.get("processID"), status=status
    )
    return JSONResponse(
        {
            "jobs": [status_info(j, base) for j in found],
            "links": [
                {"href": f"{base}/ogc/jobs", "rel": "self", "type": "application/json"}
            ],
        }
    )


async def job(request: Request) -> Response:
    """``GET /ogc/jobs/{jobId}``: status, or SSE with ``Accept: text/event-stream``."""
    found = _job_or_404(request)
    if isinstance(found, Response):
        return found
    base = _base(request)
    if "text/event-stream" not in request.headers.get("accept", ""):
        return JSONResponse(status_info(found, base))
    manager = _manager(request)
    job_id = found.job_id

    async def events() -> AsyncIterator[bytes]:
        last = None
        while True:
            changed = manager.changed(job_id)
            current = manager.store.get(job_id)
            if current is None:
                yield b"event: dismissed\ndata: {}\n\n"
                return
            text = json.dumps(status_info(current, base))
            if text != last:
                yield f"event: status\ndata: {text}\n\n".encode()
                last = text
            if current.status in FINISHED:
                return
            try:
                await asyncio.wait_for(changed.wait(), SSE_KEEPALIVE)
            except asyncio.TimeoutError:
                yield b": keep-alive\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def results(request: Request) -> Response:
    """``GET /ogc/jobs/{jobId}/results``."""
    found = _job_or_404(request)
    if isinstance(found, Response):
        return found
    if found.status in ("accepted", "running"):
        return _exception(
            404, "result-not-ready", f"job {found.job_id} is {found.status}"
        )
    if found.status == "failed":
        error = found.error_info
        extra = {"errors": error["errors"]} if "errors" in error else {}
        return _exception(
            int(error.get("status", 502)),
            "job-failed",
            str(error.get("detail", found.message)),
            **extra,
        )
    if not found.result_file:
        return _exception(500, "result-lost", f"job {found.job_id} has no result")
    media = found.result_type or JSON_MEDIA_TYPE
    if media == JSON_MEDIA_TYPE and found.response == "document":
        path = found.result_file

        async def body() -> AsyncIterator[bytes]:
            yield b'{"result": '
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    yield chunk
            yield b"}"

        return StreamingResponse(body(), media_type=JSON_MEDIA_TYPE)
    filename = "result.nc" if media.startswith(NETCDF) else None
    return FileResponse(found.result_file, media_type=media, filename=filename)


async def dismiss(request: Request) -> Response:
    """``DELETE /ogc/jobs/{jobId}``: stop waiting for it, forget it."""
    found = _job_or_404(request)
    if isinstance(found, Response):
        return found
    manager = _manager(request)
    task = manager.tasks.pop(found.job_id, None)
    if task is not None:
        task.cancel()
    manager.store.delete(found.job_id)
    manager.notify(found.job_id)
    info = status_info(found, _base(request))
    info["status"] = "dismissed"
    info["message"] = "dismissed"
    info["links"] = info["links"][:1]
    return JSONResponse(info)


async def start(state: Any) -> None:
    """Open the job store of the gateway ``state``."""
    settings = state.settings
    store = JobStore(settings.jobs_db, settings.job_retention)
    state.extras["jobs"] = JobManager(store, owns_file=settings.jobs_db is None)


async def stop(state: Any) -> None:
    """Cancel running jobs and close the store."""
    manager = state.extras.pop("jobs", None)
    if manager is not None:
        await manager.close()


def routes() -> list[Route]:
    """The OGC API routes."""
    return [
        Route("/ogc", landing, methods=["GET"]),
        Route("/ogc/", landing, methods=["GET"]),
        Route("/ogc/conformance", conformance, methods=["GET"]),
        Route("/ogc/processes", processes, methods=["GET"]),
        Route("/ogc/processes/{process_id}", process, methods=["GET"]),
        Route("/ogc/processes/{process_id}/execution", execute, methods=["POST"]),
        Route("/ogc/jobs", jobs, methods=["GET"]),
        Route("/ogc/jobs/{job_id}", job, methods=["GET"]),
        Route("/ogc/jobs/{job_id}", dismiss, methods=["DELETE"]),
        Route("/ogc/jobs/{job_id}/results", results, methods=["GET"]),
    ]
