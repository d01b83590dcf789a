"""Calling a service through the HTTP gateway instead of the broker.

``dasf_geo.connect("http://host:8000/services/geo_service")`` gives the same
:class:`~dasf_geo.service.dynamic.Service` as a WebSocket connection, for
callers whose network blocks WebSockets: :class:`HTTPClient` offers what the
service facade uses of :class:`~dasf_geo.transport.client.Client` (``call``,
``api_info``, ``ping``, ``close``) over ``httpx``. Dataset and DataArray
results come as raw NetCDF (``Accept: application/x-netcdf``), written to a
temporary file as they arrive when large, and are decoded like a binary
reply of the broker path. Dataset and DataArray arguments are uploaded as
NetCDF files of a ``multipart/form-data`` request, streamed from the
temporary files they are written to; other arguments travel as JSON.

HTTP errors become the exceptions a broker caller gets: 422
:class:`~dasf_geo.exceptions.RemoteValidationError` with its ``errors``,
413 :class:`~dasf_geo.exceptions.PayloadTooLarge`, 504
:class:`~dasf_geo.exceptions.RequestTimeout`, 401/403 and unreachable
gateways :class:`~dasf_geo.exceptions.ConnectionFailed`, anything else
:class:`~dasf_geo.exceptions.RemoteError`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from dasf_geo._moved import moved_names
from dasf_geo.exceptions import (
    ConfigurationError,
    ConnectionFailed,
    PayloadTooLarge,
    RemoteError,
    RemoteValidationError,
    RequestTimeout,
)
from dasf_geo.protocol.parts import part_index
from dasf_geo.transport._common import DEFAULT_SPOOL_THRESHOLD, FileBuffer
from dasf_geo.transport.client import DEFAULT_TIMEOUT, BinaryValue

__all__ = ["HTTPClient", "split_service_url"]

#: names that moved to the service layer, still importable from here
MOVED = {"connect_http": "dasf_geo.service.dynamic"}
__getattr__ = moved_names(__name__, MOVED)

NETCDF = "application/x-netcdf"


def split_service_url(url: str) -> tuple[str, str]:
    """``(gateway base URL, topic)`` of ``http://HOST:PORT[/prefix]/services/TOPIC``.

    Raises:
        ConfigurationError: the URL has no ``/services/TOPIC`` path.
    """
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    head, sep, topic = path.rpartition("/services/")
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or not sep
        or (not topic or "/" in topic)
    ):
        raise ConfigurationError(
            f"an HTTP service URL looks like http://HOST:PORT/services/TOPIC, got "
            f"{url!r:.200}"
        )
    base = urlunsplit((parts.scheme, parts.netloc, head, "", ""))
    return base, topic


class HTTPClient:
    """A blocking client for one service behind an HTTP gateway.

    Args:
        url: ``http://HOST:PORT/services/TOPIC``.
        header: HTTP headers of every request (e.g. ``Authorization``).
        timeout: default seconds to wait for a reply.

    Raises:
        ConfigurationError: ``url`` is not a service URL.
    """

    #: Dataset and DataArray arguments go as NetCDF files of a
    #: ``multipart/form-data`` upload (the service facade writes them with a
    #: :class:`~dasf_geo.data.PartWriter`); the gateway passes them on raw or
    #: as base64, whatever the backend takes
    supports_parts = True
    features: frozenset[str] | None = frozenset()

    def __init__(
        self,
        url: str,
        header: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> None:
        import httpx

        self.base, self.topic = split_service_url(url)
        self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        self._http = httpx.Client(
            base_url=self.base, headers=dict(header or {}), timeout=None
        )

    @property
    def url(self) -> str:
        """The service's URL."""
        return f"{self.base}/services/{self.topic}"

    def _fail(self, response: Any, what: str) -> None:
        """Raise the exception for an error response."""
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text[:500]}
        detail = str(body.get("detail", "")) if isinstance(body, dict) else str(body)
        status = response.status_code
        if status == 422:
            errors = body.get("errors") if isinstance(body, dict) else None
            raise RemoteValidationError(
                detail,
                errors=errors if isinstance(errors, list) else [],
                topic=self.topic,
            )
        if status == 413:
            raise PayloadTooLarge(detail, topic=self.topic)
        if status == 504:
            raise RequestTimeout(detail, url=self.url, topic=self.topic)
        if status in (401, 403):
            raise ConnectionFailed(
                f"the gateway refused {what} (HTTP {status}): {detail}", url=self.url
            )
        raise RemoteError(f"{what} failed (HTTP {status}): {detail}", topic=self.topic)

    def _send(self, method: str, path: str, what: str, **kws: Any) -> Any:
        import httpx

        try:
            return self._http.send(
                self._http.build_request(method, path, **kws), stream=True
            )
        except httpx.TimeoutException as exc:
            raise RequestTimeout(
                f"no answer from {self.url} to {what}: {exc}", url=self.url
            ) from exc
        except httpx.HTTPError as exc:
            raise ConnectionFailed(
                f"cannot reach the gateway at {self.base}: {exc}", url=self.url
            ) from exc

    def api_info(self, timeout: float | None = None) -> dict[str, Any]:
        """The service's API info (``GET /services/TOPIC``)."""
        wait = 30.0 if timeout is None else timeout
        response = self._send(
            "GET",
            f"/services/{self.topic}",
            "api_info",
            headers={"X-Dasf-Timeout": f"{wait:g}"},
            timeout=wait + 10.0,
        )
        try:
            response.read()
            if response.status_code != 200:
                self._fail(response, "api_info")
            info = response.json()
        finally:
            response.close()
        if not isinstance(info, dict):
            raise RemoteError(f"the API info from {self.url} is not a JSON object")
        return info

    def ping(self, timeout: float | None = None) -> float:
        """Seconds for one ``api_info`` round trip through the gateway."""
        start = time.perf_counter()
        self.api_info(timeout)
        return time.perf_counter() - start

    def call(
        self,
        request: dict[str, Any],
        *,
        timeout: float | None = None,
        progress: Callable[[dict[str, Any]], None] | None = None,
        accept: Iterable[str] | None = None,
        parts: Any = None,
        options: Any = None,
    ) -> Any:
        """Send a request (``{"func_name": …}`` or a class request).

        Returns:
            The JSON result, or a :class:`BinaryValue` for a NetCDF result.

        Raises:
            RemoteValidationError, RemoteError, RequestTimeout,
            PayloadTooLarge, ConnectionFailed: see the module docstring.
        """
        wait = self.timeout if timeout is None else timeout
        if "class_name" in request:
            function = dict(request.get("function") or {})
            name = f"{request['class_name']}/{function.pop('func_name', '')}"
            body = {
                k: v for k, v in request.items() if k not in ("class_name", "function")
            }
            body.update(function)
        else:
            body = {k: v for k, v in request.items() if k != "func_name"}
            name = str(request.get("func_name", ""))
        what = f"{name.replace('/', '.')}()"
        binary = bool(accept) and any(str(a).startswith(NETCDF) for a in accept or ())
        headers = {
            "Accept": NETCDF if binary else "application/json",
            "X-Dasf-Timeout": f"{wait:g}",
        }
        files = _files(body, parts)
        if files:
            # NetCDF arguments as files (streamed by httpx), the others as
            # form fields holding their JSON
            data = {k: json.dumps(v) for k, v in body.items() if part_index(v) is None}
            send: dict[str, Any] = {"data": data, "files": files}
        else:
            send = {"json": body}
        response = self._send(
            "POST",
            f"/services/{self.topic}/{name}",
            what,
            headers=headers,
            timeout=wait + 30.0,
            **send,
        )
        try:
            if response.status_code != 200:
                response.read()
                self._fail(response, what)
            media = response.headers.get("content-type", "")
            if media.startswith(NETCDF):
                return BinaryValue(media, self._download(response, progress))
            response.read()
            return response.json()
        finally:
            response.close()

    def _download(
        self, response: Any, progress: Callable[[dict[str, Any]], None] | None
    ) -> Any:
        """The body in memory, or in a temporary file above the spool threshold."""
        size = response.headers.get("content-length")
        total = int(size) if size and size.isdigit() else None
        if total is not None and total > DEFAULT_SPOOL_THRESHOLD:
            buffer: Any = FileBuffer(total)
        else:
            buffer = bytearray()
        offset = 0
        try:
            for chunk in response.iter_bytes(1 << 20):
                if isinstance(buffer, FileBuffer):
                    buffer[offset : offset + len(chunk)] = chunk
                else:
                    buffer += chunk
                offset += len(chunk)
                if progress is not None:
                    progress(
                        {
                            "kind": "transfer",
                            "received": offset,
                            "total": total,
                            "done": False,
                        }
                    )
        except BaseException:
            if isinstance(buffer, FileBuffer):
                buffer.close()
            raise
        if total is not None and offset != total:
            if isinstance(buffer, FileBuffer):
                buffer.close()
            raise RemoteError(
                f"the result from {self.url} is truncated: {offset} of {total} bytes"
            )
        if progress is not None:
            progress(
                {"kind": "transfer", "received": offset, "total": total, "done": True}
            )
        return buffer

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def __enter__(self) -> HTTPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _files(body: dict[str, Any], parts: Any) -> dict[str, Any]:
    """The file fields for the part placeholders in ``body``."""
    written = list(getattr(parts, "parts", None) or [])
    files = {}
    for name, value in body.items():
        index = part_index(value)
        if index is None:
            continue
        if not 1 <= index <= len(written):
            raise ConfigurationError(f"argument {name!r} refers to a missing part")
        part = written[index - 1]
        part.file.seek(0)
        files[name] = (f"{name}.nc", part.file, part.media_type)
    return files
