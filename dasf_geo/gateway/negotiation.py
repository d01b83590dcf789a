"""Arguments in, results out, in the form the HTTP caller chose.

Arguments (:func:`read_call`):

- ``application/json`` (or no body): an object of arguments by name, JSON
  values as DASF JSON callers send them (a Dataset as base64 NetCDF text);
- ``application/x-netcdf``: the raw NetCDF bytes of the one Dataset or
  DataArray argument, the other arguments in the query string (each a JSON
  value, or plain text for a string);
- ``multipart/form-data``: a file field per Dataset/DataArray argument
  (raw NetCDF) and a field per other argument (as in the query string).

A raw NetCDF body of known size (``Content-Length``) for a dasf_geo
backend is checked to be NetCDF by its first bytes and sent into the
fragments of a multipart DASF request while it arrives
(:class:`~dasf_geo.transport.streamed.StreamedUpload`). Other uploads go to
temporary files chunk by chunk (never whole in memory), are checked to be
NetCDF by their first bytes, and travel to a dasf_geo backend as binary
parts of a multipart DASF request; to another backend
(demessaging) as base64 text inside the JSON request, written to a
temporary file and sent fragment by fragment. The files are removed when
the call ends, whatever happens.

Results go out by ``Accept`` in :mod:`dasf_geo.gateway.rendering`
(:func:`send_and_render`, re-exported here with the media types).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import IO, Any

import pybase64
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request

from dasf_geo.gateway.errors import HTTPError
from dasf_geo.gateway.rendering import (  # noqa: F401  (re-exported)
    _MAGIC,
    CSV,
    NETCDF,
    NETCDF_REPLY_TYPES,
    NPY,
    available_formats,
    choose_format,
    render_reply,
    send_and_render,
)
from dasf_geo.gateway.settings import GatewaySettings
from dasf_geo.gateway.targets import TYPE_KEY, Target
from dasf_geo.protocol.constants import JSON_MEDIA_TYPE
from dasf_geo.transport._common import OutgoingFile, OutgoingParts
from dasf_geo.transport.streamed import StreamedUpload

__all__ = [
    "CSV",
    "NETCDF",
    "NPY",
    "Call",
    "choose_format",
    "read_call",
    "send_and_render",
]

#: The most form fields / files one multipart request may have.
MAX_FORM_FIELDS = 1000
MAX_FORM_FILES = 64


class _FilePayload(OutgoingFile):
    """A JSON request in a temporary file, with a length (for size checks)."""

    def __len__(self) -> int:
        return self.size


@dataclass
class _Upload:
    """One binary argument received from the caller."""

    name: str
    file: IO[bytes]
    size: int
    media_type: str


@dataclass
class Call:
    """One DASF request ready to send, and what to clean up after it.

    Attributes:
        request: the request's JSON object (binary arguments are
            placeholders or base64 text).
        payload: what to send: UTF-8 JSON, multipart parts, or a file.
        cleanup: called once the call ends (removes temporary files).
    """

    request: dict[str, Any]
    payload: Any
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Remove every temporary file of the call."""
        for close in self.cleanup:
            with contextlib.suppress(Exception):
                close()
        self.cleanup.clear()


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def _plain_value(raw: str) -> Any:
    """A query or form value: JSON if it parses, else the text itself."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


async def _json_arguments(request: Request) -> dict[str, Any]:
    from dasf_geo.gateway.security import parse_json, read_limited

    gw = request.app.state.gateway
    body = await read_limited(request, gw.settings.body_limit)
    if not body.strip():
        return {}
    value = parse_json(body)
    if not isinstance(value, dict):
        raise HTTPError(
            400,
            "the request body must be a JSON object of arguments by name, got "
            f"a JSON {type(value).__name__}",
        )
    return value


def _check_netcdf(upload: _Upload) -> None:
    upload.file.seek(0)
    head = upload.file.read(4)
    upload.file.seek(0)
    if head not in _MAGIC:
        raise HTTPError(
            415,
            f"the upload for argument {upload.name!r} is not NetCDF (it starts with "
            f"{head!r}, {upload.size} bytes); send the bytes written by "
            "to_netcdf() (NetCDF3 or NetCDF4)",
        )


def _part_type(target: Target, name: str) -> str:
    kind = str(target.parameters().get(name, {}).get(TYPE_KEY, "xarray.Dataset"))
    return f"{NETCDF}; xarray={kind.rsplit('.', 1)[-1]}"


async def _spool_body(request: Request, call: Call) -> tuple[IO[bytes], int]:
    """The request body in a temporary file (removed by ``call.close()``)."""
    file = tempfile.TemporaryFile(prefix="dasf-geo-upload-")  # noqa: SIM115
    call.cleanup.append(file.close)
    from dasf_geo.gateway.security import body_chunks

    limit = request.app.state.gateway.settings.body_limit
    size = 0
    async for chunk in body_chunks(request, limit):
        file.write(chunk)
        size += len(chunk)
    file.seek(0)
    return file, size


async def _stream_body(
    request: Request,
    target: Target,
    client: Any,
    call: Call,
    name: str,
    arguments: dict[str, Any],
) -> bool:
    """Make ``call`` send a raw NetCDF body into fragments as it arrives.

    Only for a body of known size (``Content-Length``: every fragment
    carries the total) going to a dasf_geo backend that takes binary parts
    for the argument; returns False (nothing read) otherwise, and the body
    is spooled to a file. The first bytes are checked to be NetCDF before
    anything is sent.

    Raises:
        HTTPError: 413 above the body limit, 415 when it is not NetCDF.
    """
    from dasf_geo.gateway.security import body_chunks, content_length
    from dasf_geo.protocol.parts import placeholder

    size = content_length(request)
    if (
        size is None
        or not client.supports_parts
        or name not in set(target.data_parameters())
    ):
        return False
    limit = request.app.state.gateway.settings.body_limit
    source = body_chunks(request, limit).__aiter__()
    first = b""
    while len(first) < 4:
        try:
            first += await source.__anext__()
        except StopAsyncIteration:
            break
    if first[:4] not in _MAGIC:
        raise HTTPError(
            415,
            f"the upload for argument {name!r} is not NetCDF (it starts with "
            f"{first[:4]!r}, {size} bytes); send the bytes written by "
            "to_netcdf() (NetCDF3 or NetCDF4)",
        )

    async def body() -> AsyncIterator[bytes]:
        yield first
        async for chunk in source:
            yield chunk

    arguments[name] = None  # placeholder, set below
    call.request = target.build_request(arguments)
    request_json = call.request
    fields = (
        request_json["function"]
        if "function" in request_json and "class_name" in request_json
        else request_json
    )
    _put(request_json, name, placeholder(1), fields)
    call.payload = StreamedUpload(
        json.dumps(request_json).encode("utf-8"),
        body(),
        size,
        _part_type(target, name),
    )
    return True


#: methods whose arguments come from the query string
_QUERY_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})


def _query_arguments(request: Request) -> dict[str, Any]:
    return {
        k: _plain_value(v)
        for k, v in request.query_params.multi_items()
        if k != "token"
    }


async def read_call(
    request: Request, target: Target, client: Any, settings: GatewaySettings
) -> Call:
    """Read the arguments of ``request`` and build the DASF request.

    Raises:
        HTTPError: 400 (malformed), 413 (too large), 415 (a content type the
            route does not take, an upload that is not NetCDF).
    """
    kind = _media_type(request.headers.get("content-type"))
    call = Call({}, b"")
    try:
        uploads: list[_Upload] = []
        if request.method in _QUERY_METHODS:
            # a service entrypoint declared with method="GET" (or DELETE):
            # its arguments are the query parameters
            arguments = _query_arguments(request)
        elif kind in ("", JSON_MEDIA_TYPE) or kind.endswith("+json"):
            arguments = await _json_arguments(request)
        elif kind == NETCDF:
            names = target.netcdf_parameters()
            if len(names) != 1:
                raise HTTPError(
                    415,
                    f"{target.label} takes {len(names)} Dataset/DataArray arguments; "
                    f"a raw {NETCDF} body needs exactly one (send JSON or "
                    "multipart/form-data)",
                )
            arguments = _query_arguments(request)
            if await _stream_body(request, target, client, call, names[0], arguments):
                return call
            file, size = await _spool_body(request, call)
            uploads.append(_Upload(names[0], file, size, _part_type(target, names[0])))
        elif kind == "multipart/form-data":
            arguments = await _form_arguments(request, target, call, uploads)
        else:
            raise HTTPError(
                415,
                f"unsupported Content-Type {kind[:80]!r}: send application/json, "
                f"{NETCDF} (one Dataset argument) or multipart/form-data",
            )
        seen: set[str] = set()
        for upload in uploads:
            if upload.name in seen:
                raise HTTPError(400, f"argument {upload.name!r} is given twice")
            seen.add(upload.name)
            _check_netcdf(upload)
            arguments[upload.name] = None  # placeholder, set below
        call.request = target.build_request(arguments)
        if uploads:
            # base64 for a backend without parts reads and writes whole
            # files: not on the event loop
            call.payload = await asyncio.to_thread(
                _payload, call, target, uploads, client
            )
        else:
            call.payload = _payload(call, target, uploads, client)
        return call
    except ClientDisconnect:
        call.close()
        raise
    except BaseException:
        call.close()
        raise


async def _form_arguments(
    request: Request, target: Target, call: Call, uploads: list[_Upload]
) -> dict[str, Any]:
    data_params = set(target.netcdf_parameters())
    try:
        form = await request.form(max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS)
    except (ClientDisconnect, HTTPError):
        raise
    except Exception as exc:
        raise HTTPError(
            400, f"the multipart/form-data body is invalid: {exc}"
        ) from None
    call.cleanup.append(lambda: _close_form(form))
    arguments: dict[str, Any] = {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if name not in data_params:
                raise HTTPError(
                    400,
                    f"file field {name!r} is not a Dataset/DataArray argument of "
                    f"{target.label} (those are: "
                    f"{', '.join(sorted(data_params)) or 'none'})",
                )
            size = value.size
            if size is None:
                value.file.seek(0, os.SEEK_END)
                size = value.file.tell()
            uploads.append(_Upload(name, value.file, size, _part_type(target, name)))
        else:
            arguments[name] = _plain_value(value)
    return arguments


def _close_form(form: Any) -> None:
    for _, value in form.multi_items():
        if isinstance(value, UploadFile):
            with contextlib.suppress(Exception):
                value.file.close()


def _payload(call: Call, target: Target, uploads: list[_Upload], client: Any) -> Any:
    """The DASF payload of ``call``: JSON, multipart, or JSON in a file."""
    request = call.request
    fields = (
        request["function"]
        if "function" in request and "class_name" in request
        else request
    )
    if not uploads:
        return json.dumps(request).encode("utf-8")
    typed = set(target.data_parameters())
    if client.supports_parts and all(u.name in typed for u in uploads):
        # raw parts only where the backend's registry reads them (an untyped
        # argument may have a validator of its own that wants base64)
        from dasf_geo.protocol.parts import placeholder

        for index, upload in enumerate(uploads, start=1):
            _put(request, upload.name, placeholder(index), fields)
        head = json.dumps(request).encode("utf-8")
        return OutgoingParts(head, list(uploads))
    # another backend: base64 NetCDF inside the JSON, built in a file
    marker = "\x00dasf-geo-upload-{}\x00"
    for index, upload in enumerate(uploads):
        _put(request, upload.name, marker.format(index), fields)
    text = json.dumps(request)
    out = tempfile.TemporaryFile(prefix="dasf-geo-json-")  # noqa: SIM115
    call.cleanup.append(out.close)
    rest = text
    for index, upload in enumerate(uploads):
        token = json.dumps(marker.format(index))[1:-1]
        before, _, rest = rest.partition(token)
        out.write(before.encode("utf-8"))
        upload.file.seek(0)
        while True:
            chunk = upload.file.read(3 * (1 << 18))
            if not chunk:
                break
            out.write(pybase64.b64encode(chunk))
    out.write(rest.encode("utf-8"))
    size = out.tell()
    out.seek(0)
    if size <= 256 * 1024:
        data = out.read()
        return data
    return _FilePayload(out, size)


def _put(
    request: dict[str, Any], name: str, value: Any, fields: dict[str, Any]
) -> None:
    """Set argument ``name`` where it belongs (method or constructor)."""
    if name in fields and fields is not request:
        fields[name] = value
    else:
        request[name] = value
