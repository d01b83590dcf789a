"""OGC API - Processes, Part 1: Core, under ``/ogc/``.

Every function (and class method) of every service is one process, with
id ``<topic>.<function>`` (``<topic>.<Class>.<method>``); its inputs and
output are described from the JSON schemas the backend publishes, and a
Dataset or DataArray is a ``string`` of ``contentMediaType``
``application/x-netcdf`` (base64 in JSON; raw NetCDF as a raw result).

Execution is synchronous by default and asynchronous with ``Prefer:
respond-async`` (201 with ``Location: /ogc/jobs/{jobId}``). A job's status
follows the backend's progress reports (``progress`` 0-100 and the current
step as ``message``); ``GET /ogc/jobs/{jobId}`` with ``Accept:
text/event-stream`` streams status changes as Server-Sent Events until the
job ends. Jobs live in a SQLite file (:mod:`dasf_geo.gateway.jobs`).

Behaviour follows pygeoapi's where the standard leaves room: a result
asked for before the job finished is 404 ``result-not-ready``; ``response:
raw`` (the default) answers with the output's own value and media type,
``response: document`` with ``{"result": value}``. Unlike pygeoapi, a
failed call keeps the gateway's status codes (422 for rejected arguments,
502 for a backend error, 504 for a timeout) with an OGC exception body.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from dasf_geo.gateway.discovery import ServiceNotFound
from dasf_geo.gateway.errors import HTTPError, status_of
from dasf_geo.gateway.jobs import Job, JobStore, now_iso
from dasf_geo.gateway.negotiation import Call
from dasf_geo.gateway.security import forwarded_header
from dasf_geo.gateway.settings import valid_topic
from dasf_geo.gateway.streaming import payload_chunks
from dasf_geo.gateway.targets import Target, find_target, list_targets
from dasf_geo.protocol.constants import EXT_ENCODING, JSON_MEDIA_TYPE
from dasf_geo.protocol.limits import MAX_REQUEST_SIZE

__all__ = ["CONFORMANCE", "JobManager", "describe", "find_process", "status_info"]

logger = logging.getLogger(__name__)

_CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"
#: Seconds :meth:`JobManager.close` waits for cancelled jobs to stop.
CLOSE_TIMEOUT = 5.0

#: The conformance classes implemented.
CONFORMANCE = [
    _CONF + "core",
    _CONF + "ogc-process-description",
    _CONF + "json",
    _CONF + "job-list",
    _CONF + "dismiss",
]
_EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
_REL = "http://www.opengis.net/def/rel/ogc/1.0/"
#: The largest execute request body (arguments inline as JSON).
MAX_EXECUTE_BODY = MAX_REQUEST_SIZE


def _exception(status: int, kind: str, detail: str, **extra: Any) -> JSONResponse:
    """An OGC exception body (RFC 7807 style) that also has our ``detail``."""
    body = {
        "type": kind if "://" in kind else _EXC + kind,
        "title": kind,
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


# --- descriptions -----------------------------------------------------------


def _inline(schema: Any, defs: dict[str, Any], depth: int = 0) -> Any:
    """``schema`` with ``#/$defs/…`` refs replaced by their definitions."""
    if depth > 20:
        return {}
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            target = defs.get(ref[len("#/$defs/") :], {})
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            return {**_inline(target, defs, depth + 1), **_inline(rest, defs, depth)}
        out = {}
        for key, value in schema.items():
            if key == "$defs":
                continue
            if key == "default" and value is None:
                continue
            out[key] = _inline(value, defs, depth + 1)
        return out
    if isinstance(schema, list):
        return [_inline(item, defs, depth + 1) for item in schema]
    return schema


def _summary(target: Target, base: str) -> dict[str, Any]:
    doc = target.description.strip()
    return {
        "id": target.process_id,
        "title": doc.split("\n\n", 1)[0].replace("\n", " ")[:200] or target.label,
        "description": doc,
        "version": "1.0.0",
        "keywords": [target.topic],
        "jobControlOptions": ["sync-execute", "async-execute", "dismiss"],
        "outputTransmission": ["value"],
        "links": [
            {
                "href": f"{base}/ogc/processes/{target.process_id}",
                "rel": "self",
                "type": "application/json",
                "title": "process description",
            }
        ],
    }


def describe(target: Target, base: str) -> dict[str, Any]:
    """The OGC process description of ``target``."""
    defs = {
        **(target.class_schema.get("$defs") or {}),
        **(target.rpc_schema.get("$defs") or {}),
    }
    required = set(target.required())
    inputs = {}
    for name, prop in target.parameters().items():
        schema = _inline(prop, defs)
        inputs[name] = {
            "title": str(prop.get("title") or name),
            "description": str(prop.get("description") or ""),
            "schema": schema,
            "minOccurs": 1 if name in required else 0,
            "maxOccurs": 1,
        }
    ret_defs = target.return_schema.get("$defs") or {}
    result_schema = _inline(target.return_schema, dict(ret_defs))
    doc = _summary(target, base)
    doc["inputs"] = inputs
    doc["outputs"] = {
        "result": {
            "title": "result",
            "description": str(target.return_schema.get("description") or ""),
            "schema": result_schema,
        }
    }
    doc["links"].append(
        {
            "href": f"{base}/ogc/processes/{target.process_id}/execution",
            "rel": _REL + "execute",
            "title": "execute",
        }
    )
    return doc


async def _targets(request: Request) -> list[Target]:
    gw = request.app.state.gateway
    header = forwarded_header(request, gw.settings)
    out: list[Target] = []
    for svc in await gw.directory.services(header):
        info = gw.directory.cached_api_info(svc.topic, header)
        if info is not None:
            out.extend(list_targets(svc.topic, info))
    return out


async def find_process(request: Request, process_id: str) -> Target:
    """The function or method a process id names.

    Raises:
        HTTPError: 404 ``no-such-process``.
    """
    gw = request.app.state.gateway
    header = forwarded_header(request, gw.settings)
    pieces = process_id.split(".")
    for cut in range(1, len(pieces)):
        topic = ".".join(pieces[:cut])
        rest = pieces[cut:]
        if not valid_topic(topic) or len(rest) > 2:
            continue
        try:
            info = await gw.directory.api_info(topic, header, timeout=3.0)
        except ServiceNotFound:
            continue
        target = (
            find_target(topic, info, *rest)
            if len(rest) == 2
            else (find_target(topic, info, rest[0]))
        )
        if target is not None:
            return target
    raise HTTPError(404, f"no process {process_id[:200]!r} on this gateway")


# --- jobs -----------------------------------------------------------------------


class JobManager:
    """Runs asynchronous jobs and tells listeners about their changes."""

    def __init__(self, store: JobStore, owns_file: bool) -> None:
        self.store = store
        self.owns_file = owns_file
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._changed: dict[str, asyncio.Event] = {}

    def changed(self, job_id: str) -> asyncio.Event:
        """An event set at the job's next change."""
        return self._changed.setdefault(job_id, asyncio.Event())

    def notify(self, job_id: str) -> None:
        """Wake the listeners of ``job_id``."""
        event = self._changed.pop(job_id, None)
        if event is not None:
            event.set()

    def update(self, job_id: str, **fields: Any) -> None:
        """Store new fields of a job and wake its listeners."""
        self.store.update(job_id, **fields)
        self.notify(job_id)

    async def run(
        self,
        job: Job,
        target: Target,
        client: Any,
        call: Call,
        timeout: float,
        accept: tuple[str, ...] | None,
    ) -> None:
        """Run one job to its end (a task)."""
        job_id = job.job_id
        last: tuple[int | None, str | None] = (None, None)

        def progress(event: dict[str, Any]) -> None:
            # every change is stored: reports come at the pace of the work
            nonlocal last
            pct, message = _progress_of(event)
            if (pct is None and message is None) or (pct, message) == last:
                return
            last = (pct, message)
            fields: dict[str, Any] = {}
            if pct is not None:
                fields["progress"] = max(0, min(99, pct))
            if message is not None:
                fields["message"] = message[:500]
            self.update(job_id, **fields)

        self.update(job_id, status="running", started=now_iso(), message="running")
        try:
            reply = await client.request(
                call.payload,
                timeout=timeout,
                what=target.label,
                accept=accept,
                progress=progress,
            )
            from dasf_geo.gateway.rest import check_reply

            await check_reply(reply, target.topic)
            encoding = reply.properties.get(EXT_ENCODING)
            suffix, media = (
                (".nc", str(encoding)) if encoding else (".json", JSON_MEDIA_TYPE)
            )
            path = self.store.result_path(job_id, suffix)
            with open(path, "wb") as fh:
                async for chunk in payload_chunks(reply.payload):
                    fh.write(chunk)
            self.update(
                job_id,
                status="successful",
                progress=100,
                finished=now_iso(),
                message="done",
                result_file=str(path),
                result_type=media,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            errors = getattr(exc, "errors", None)
            error: dict[str, Any] = {"status": status_of(exc), "detail": str(exc)}
            if isinstance(errors, list):
                error["errors"] = errors
            if error["status"] == 500:
                logger.exception("job %s failed", job_id)
            self.update(
                job_id,
                status="failed",
                finished=now_iso(),
                message=str(exc)[:500],
                error=json.dumps(error),
            )
        finally:
            call.close()
            self.tasks.pop(job_id, None)
            self.store.prune()

    async def close(self) -> None:
        """Cancel running jobs (they are marked failed at the next start)."""
        tasks = [task for task in self.tasks.values() if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            # bounded: a job whose cancellation was lost (asyncio.wait_for
            # on Python < 3.12) must not hold the gateway's shutdown
            _, pending = await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT)
            if pending:
                logger.warning(
                    "%d job(s) did not stop within %g s", len(pending), CLOSE_TIMEOUT
                )
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: a job records its own failure
        self.store.close()
        if self.owns_file:  # the default store: a folder of its own
            shutil.rmtree(self.store.path.parent, ignore_errors=True)


def _progress_of(event: dict[str, Any]) -> tuple[int | None, str | None]:
    """Percent done and the current step from a client progress event."""
    kind = event.get("kind")
    if kind == "report":
        report = event.get("report")
        if not isinstance(report, dict):
            return None, None
        children = [c for c in report.get("children") or [] if isinstance(c, dict)]
        steps = report.get("steps") if isinstance(report.get("steps"), int) else 0
        done = sum(1 for c in children if c.get("status") == "success")
        pct = int(100 * done / steps) if steps else None
        current = next(
            (c for c in reversed(children) if c.get("status") == "running"), None
        )
        message = str((current or report).get("step_message") or "") or None
        return pct, message
    if kind == "transfer" and isinstance(event.get("total"), int) and event["total"]:
        return (
            None,
            f"receiving the result: {event['received']} of {event['total']} bytes",
        )
    return None, None


def status_info(job: Job, base: str) -> dict[str, Any]:
    """The OGC ``statusInfo`` of a job."""
    info: dict[str, Any] = {
        "jobID": job.job_id,
        "processID": job.process_id,
        "type": "process",
        "status": job.status,
        "message": job.message,
        "progress": int(job.progress),
        "created": job.created,
        "updated": job.updated,
        "links": [
            {
                "href": f"{base}/ogc/jobs/{job.job_id}",
                "rel": "self",
                "type": "application/json",
                "title": "job status",
            },
        ],
    }
    if job.started:
        info["started"] = job.started
    if job.finished:
        info["finished"] = job.finished
    if job.status == "successful":
        info["links"].append(
            {
                "href": f"{base}/ogc/jobs/{job.job_id}/results",
                "rel": _REL + "results",
                "type": job.result_type or JSON_MEDIA_TYPE,
                "title": "job results",
            }
        )
    return info
