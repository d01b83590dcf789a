"""Results out, in the form the HTTP caller chose.

:func:`send_and_render` sends a :class:`~dasf_geo.gateway.negotiation.Call`
and answers by ``Accept``: JSON (default); a Dataset or DataArray as
``application/x-netcdf``; a DataFrame as ``text/csv``; an ndarray as
``application/x-npy``. A raw NetCDF result is passed on fragment by
fragment while it arrives
(:class:`~dasf_geo.gateway.streaming.StreamedReplyResponse`). How the
arguments came in is :mod:`dasf_geo.gateway.negotiation`'s job.
"""

from __future__ import annotations

import contextlib
import io
import json
from typing import TYPE_CHECKING, Any

import pybase64
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dasf_geo.gateway.errors import HTTPError
from dasf_geo.gateway.streaming import (
    StreamedReplyResponse,
    base64_json_chunks,
    close_payload,
    payload_chunks,
)
from dasf_geo.gateway.targets import Target
from dasf_geo.protocol.constants import EXT_ENCODING, JSON_MEDIA_TYPE
from dasf_geo.transport._common import payload_bytes
from dasf_geo.transport.streamed import StreamedUpload

if TYPE_CHECKING:
    from dasf_geo.gateway.negotiation import Call

__all__ = [
    "CSV",
    "NETCDF",
    "NETCDF_REPLY_TYPES",
    "NPY",
    "available_formats",
    "choose_format",
    "render_reply",
    "send_and_render",
]

NETCDF = "application/x-netcdf"
CSV = "text/csv"
NPY = "application/x-npy"
#: What a NetCDF result may come as (``dasfGeoAccept``; the data registry's
#: ``BINARY_MEDIA_TYPES`` without zarr), spelled out so that a gateway that
#: only passes bytes never imports xarray.
NETCDF_REPLY_TYPES = (f"{NETCDF}; xarray=Dataset", f"{NETCDF}; xarray=DataArray")
#: NetCDF magic numbers: classic, 64-bit offset, HDF5 (NetCDF4)
_MAGIC = (b"CDF\x01", b"CDF\x02", b"\x89HDF")


def _accepted(header: str) -> list[tuple[str, float]]:
    """The media types of an ``Accept`` header, best first."""
    items = []
    for position, part in enumerate(header.split(",")):
        pieces = [p.strip() for p in part.split(";")]
        kind = pieces[0].lower()
        if not kind:
            continue
        quality = 1.0
        for param in pieces[1:]:
            if param.startswith("q="):
                with contextlib.suppress(ValueError):
                    quality = float(param[2:])
        items.append((kind, quality, position))
    items.sort(key=lambda item: (-item[1], item[2]))
    return [(kind, quality) for kind, quality, _ in items if quality > 0]


def available_formats(target: Target) -> list[str]:
    """The media types the result of ``target`` can be sent in, JSON first."""
    kinds = [JSON_MEDIA_TYPE]
    rtype = target.return_type
    if target.may_return_netcdf:
        kinds.append(NETCDF)
    elif rtype.startswith("pandas."):
        kinds.append(CSV)
    elif rtype == "numpy.ndarray":
        kinds.append(NPY)
    return kinds


def choose_format(accept: str | None, target: Target) -> str:
    """The result's media type for an ``Accept`` header.

    Raises:
        HTTPError: 406 when no acceptable type can be given.
    """
    available = available_formats(target)
    if not accept:
        return JSON_MEDIA_TYPE
    for kind, _ in _accepted(accept):
        if kind in ("*/*", "application/*"):
            return JSON_MEDIA_TYPE
        if kind in available:
            return kind
        if kind == "text/*" and CSV in available:
            return CSV
        if (
            kind in ("application/netcdf", "application/x-netcdf4")
            and NETCDF in available
        ):
            return NETCDF
    raise HTTPError(
        406,
        f"the result of {target.label} can be sent as {', '.join(available)}; "
        f"Accept asked for {accept[:200]!r}",
    )


async def send_and_render(
    request: Request,
    target: Target,
    client: Any,
    call: Call,
    timeout: float,
    progress: Any = None,
) -> Response:
    """Send ``call``, wait for the reply, and answer in the chosen format.

    A raw NetCDF result, and the reply to an upload that streams into the
    request (:class:`~dasf_geo.transport.streamed.StreamedUpload`), go
    through :meth:`AsyncClient.request_stream
    <dasf_geo.transport.caller.AsyncClient.request_stream>`: a fragmented
    binary reply is passed on while it arrives (see
    :class:`~dasf_geo.gateway.streaming.StreamedReplyResponse`); any other
    reply (an error, JSON) is joined first, as :meth:`request` would.
    """
    from dasf_geo.gateway.rest import check_reply

    try:
        fmt = choose_format(request.headers.get("accept"), target)
        accept = None
        if fmt == NETCDF:
            accept = NETCDF_REPLY_TYPES
        if fmt == NETCDF or isinstance(call.payload, StreamedUpload):
            stream = await client.request_stream(
                call.payload,
                timeout=timeout,
                what=target.label,
                accept=accept,
                progress=progress,
            )
        else:
            stream = None
            reply = await client.request(
                call.payload,
                timeout=timeout,
                what=target.label,
                accept=accept,
                progress=progress,
            )
    finally:
        call.close()
    if stream is not None:
        encoding = (stream.properties or {}).get(EXT_ENCODING)
        if (
            fmt == NETCDF
            and encoding
            and stream.status == "success"
            and stream.fragmented
        ):
            return StreamedReplyResponse(
                stream,
                str(encoding),
                {"Content-Disposition": f'attachment; filename="{target.name}.nc"'},
                target.label,
            )
        try:
            reply = await stream.reply()
        finally:
            stream.close()
    await check_reply(reply, target.topic)
    return render_reply(reply, target, fmt)


def render_reply(reply: Any, target: Target, fmt: str) -> Response:
    """The response for a successful reply in media type ``fmt``."""
    payload = reply.payload
    filename = target.name
    if fmt == NETCDF:
        headers = {"Content-Disposition": f'attachment; filename="{filename}.nc"'}
        # the media type says Dataset or DataArray (``xarray=…``), as the
        # reply's dasfGeoEncoding does
        encoding = reply.properties.get(EXT_ENCODING)
        if encoding:
            headers["Content-Length"] = str(len(payload))
            return StreamingResponse(
                payload_chunks(payload), media_type=str(encoding), headers=headers
            )
        # a backend that sent the JSON form (base64 text): decode on the way,
        # once the first bytes show it is NetCDF (an untyped result may not be)
        _check_base64_netcdf(payload, target)
        kind = target.return_type.rsplit(".", 1)[-1] or "Dataset"
        return StreamingResponse(
            base64_json_chunks(payload),
            media_type=f"{NETCDF}; xarray={kind}",
            headers=headers,
        )
    if fmt in (CSV, NPY):
        try:
            value = _decode_result(target, payload_bytes(payload))
        finally:
            close_payload(payload)
        return _table_or_array(value, fmt, filename)
    if isinstance(payload, (bytes, bytearray)):  # in memory anyway: one write
        return Response(bytes(payload), media_type=JSON_MEDIA_TYPE)
    return StreamingResponse(
        payload_chunks(payload),
        media_type=JSON_MEDIA_TYPE,
        headers={"Content-Length": str(len(payload))},
    )


def _check_base64_netcdf(payload: Any, target: Target) -> None:
    """Raise 406 unless the JSON result is a string of base64 NetCDF."""
    from dasf_geo.gateway.streaming import _slice, json_string_bounds

    try:
        start, end = json_string_bounds(payload)
        head = pybase64.b64decode(_slice(payload, start, min(end, start + 8)))
    except ValueError:
        head = b""
    if head[:4] not in _MAGIC:
        close_payload(payload)
        raise HTTPError(
            406,
            f"the result of {target.label} is not a NetCDF Dataset; ask for "
            "application/json",
        )


def _decode_result(target: Target, data: bytes | bytearray) -> Any:
    from dasf_geo.data import decode_by_schema

    try:
        value = json.loads(data)
    except ValueError as exc:
        raise HTTPError(
            502, f"the result of {target.label} is not JSON: {exc}"
        ) from None
    schema = target.return_schema
    return decode_by_schema(schema, value, dict(schema.get("$defs") or {}))


def _table_or_array(value: Any, fmt: str, filename: str) -> Response:
    import numpy as np

    if fmt == CSV:
        import pandas as pd

        keep_index = not isinstance(value.index, pd.RangeIndex)
        text = value.to_csv(index=keep_index)
        return Response(
            text,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
        )
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(value), allow_pickle=False)
    return Response(
        buffer.getvalue(),
        media_type=NPY,
        headers={"Content-Disposition": f'attachment; filename="{filename}.npy"'},
    )
