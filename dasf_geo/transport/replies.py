"""A backend's reply as the caller sees it, and its errors as exceptions.

:class:`Reply` is one complete reply, :class:`BinaryValue` a result sent as
raw bytes; :func:`raise_for_status` turns an error reply into the matching
:class:`~dasf_geo.exceptions.RemoteError` and :func:`warn_findings` the
CF/crs findings that came with a reply into warnings.
"""

from __future__ import annotations

import contextlib
import json
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dasf_geo.exceptions import (
    PayloadTooLarge,
    RemoteError,
    RemoteValidationError,
)
from dasf_geo.protocol.constants import (
    EXT_ENCODING,
    EXT_ERRORS,
    EXT_FINDINGS,
    Status,
)
from dasf_geo.protocol.messages import (
    b64encode,
)
from dasf_geo.protocol.options import (
    TOO_LARGE_ERROR,
)
from dasf_geo.transport._common import (
    FileBuffer,
    payload_bytes,
)

__all__ = [
    "BinaryValue",
    "Reply",
    "raise_for_status",
    "warn_findings",
]

_ERROR = Status.ERROR.value


@dataclass
class Reply:
    """A complete reply from a backend.

    Attributes:
        status: ``success``, ``error`` or ``running``.
        payload: the decoded payload bytes (JSON text for results); a large
            payload is a :class:`~dasf_geo.transport.buffers.FileBuffer`
            (use :meth:`text`, :meth:`json` or ``bytes()``).
        properties: the properties of the reply (of its last fragment).
        message_type: ``response``, ``pong``…
    """

    status: str
    payload: bytes | bytearray
    properties: dict[str, Any]
    message_type: str

    def value(self) -> Any:
        """The result: a :class:`BinaryValue` for a binary reply, else the JSON.

        Raises:
            RemoteError: the payload is not JSON.
        """
        encoding = self.properties.get(EXT_ENCODING)
        if isinstance(encoding, str) and encoding:
            return BinaryValue(encoding, self.payload)
        return self.json()

    def findings(self) -> list[Any]:
        """The CF/crs findings the backend sent with the reply.

        Those of ``warn``/``optional`` checks of the call's arguments and
        result (``dasfGeoFindings``), as
        :class:`~dasf_geo.data.FindingReport` objects; empty when there are
        none (or the backend is no dasf_geo backend). Malformed entries are
        left out.
        """
        raw = self.properties.get(EXT_FINDINGS)
        if raw is None:
            return []
        from dasf_geo.data import decode_reports

        return decode_reports(raw)

    def text(self) -> str:
        """The payload as UTF-8 text."""
        return bytes(payload_bytes(self.payload)).decode("utf-8", "replace")

    def json(self) -> Any:
        """The payload parsed as JSON.

        Raises:
            RemoteError: the payload is not JSON.
        """
        try:
            return json.loads(payload_bytes(self.payload))
        except ValueError as exc:
            raise RemoteError(
                f"the backend's reply is not JSON: {self.text()[:200]!r}"
            ) from exc


@dataclass
class BinaryValue:
    """A result sent as raw bytes (e.g. the NetCDF of a Dataset).

    Attributes:
        media_type: what the bytes are (the reply's ``dasfGeoEncoding``).
        data: the bytes; a large reply is a temporary file
            (:class:`~dasf_geo.transport.buffers.FileBuffer`).
    """

    media_type: str
    data: Any

    def decode(self) -> Any:
        """The Python object (an ``xr.Dataset`` or ``xr.DataArray``).

        A reply smaller than
        :data:`~dasf_geo.transport.client.LAZY_THRESHOLD` is loaded into memory. A
        larger one stays in its temporary file and is opened lazily (values
        are read when used; dask-backed when dask is installed); the file is
        removed when the returned object is garbage-collected or closed.

        Raises:
            DataError: the bytes are not what the media type says.
        """
        from dasf_geo.data import open_reply, read_reply

        # the threshold is a setting of dasf_geo.transport.client, read there
        from dasf_geo.transport import client

        data = self.data
        if isinstance(data, FileBuffer) and len(data) > client.LAZY_THRESHOLD:
            value = open_reply(self.media_type, data.path)
            value.set_close(_closer(value, data))
            # the file outlives this BinaryValue: it belongs to the object now
            weakref.finalize(value, data.close)
            return value
        source = data.path if isinstance(data, FileBuffer) else data
        return read_reply(self.media_type, source)

    def to_json(self) -> str:
        """The JSON form of the value, as a caller of a JSON reply sees it.

        That is the base64 text of the bytes (what demessaging callers and
        the DASF web map read).
        """
        return b64encode(payload_bytes(self.data)).decode("ascii")

    def __len__(self) -> int:
        return len(self.data)


def _closer(value: Any, buffer: FileBuffer) -> Callable[[], None]:
    close_backend = getattr(value, "_close", None)

    def close() -> None:
        if close_backend is not None:
            close_backend()
        buffer.close()

    return close


def warn_findings(reply: Reply, stacklevel: int = 4) -> list[Any]:
    """Raise the findings that came with ``reply`` as warnings; return them.

    Each report becomes a :class:`~dasf_geo.data.CFConventionWarning` or
    :class:`~dasf_geo.data.CRSWarning` with the text the backend logged.
    """
    reports = reply.findings()
    if reports:
        from dasf_geo.data import warn_reports

        warn_reports(reports, stacklevel=stacklevel)
    return reports


def raise_for_status(reply: Reply, topic: str | None = None) -> Reply:
    """Return ``reply`` if it succeeded, else raise the backend's error.

    Raises:
        PayloadTooLarge: the backend did not send a reply above the call's
            ``max_size`` (see :class:`~dasf_geo.protocol.options.TransferOptions`).
        RemoteValidationError: the backend rejected the arguments; its
            ``errors`` list says which and why.
        RemoteError: any other error reply.
    """
    if reply.status != _ERROR:
        return reply
    message = reply.text()
    raw = reply.properties.get(EXT_ERRORS)
    errors: list[dict[str, Any]] = []
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            parsed = json.loads(raw)
            if isinstance(parsed, list):
                errors = [e for e in parsed if isinstance(e, dict)]
    too_large = next((e for e in errors if e.get("type") == TOO_LARGE_ERROR), None)
    if too_large is not None:
        ctx = too_large.get("ctx")
        ctx = ctx if isinstance(ctx, dict) else {}
        where = f"the backend on topic {topic!r}" if topic else "the backend"
        refused = (
            "refused the request"
            if too_large.get("loc") == ["request"]
            else "did not send its reply"
        )
        raise PayloadTooLarge(
            f"{where} {refused}: {message}",
            size=ctx.get("size") if isinstance(ctx.get("size"), int) else None,
            limit=ctx.get("limit") if isinstance(ctx.get("limit"), int) else None,
            topic=topic,
        )
    if errors:
        raise RemoteValidationError(message, errors=errors, topic=topic)
    raise RemoteError(message, topic=topic)


def _json_property(reply: Reply, key: str, topic: str) -> dict[str, Any]:
    raw = reply.properties.get(key)
    if raw is None:
        raise RemoteError(
            f"the backend on topic {topic!r} sent no {key!r}", topic=topic
        )
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise RemoteError(
            f"the backend on topic {topic!r} sent {key!r} that is not JSON: "
            f"{raw!r:.200}",
            topic=topic,
        ) from None
    if not isinstance(value, dict):
        raise RemoteError(f"the backend's {key!r} is not a JSON object", topic=topic)
    return value
