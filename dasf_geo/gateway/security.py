"""Who may do what through the gateway: token forwarding, binding, body limits.

- **Tokens**: a request's ``Authorization`` header (or, as Pulsar takes it,
  its ``token`` query parameter) is passed on to the broker handshake of
  the calls it makes, so an HTTP caller can do exactly what its token
  allows over WebSocket; the broker refuses what it does not (401/403).
  A request without one uses the gateway's own ``--header``.
- **Binding**: :func:`check_bind` refuses a non-loopback address unless
  the broker requires tokens (a ``--header``/forwarded token is needed to
  do anything) or ``--insecure`` is given — as ``dasf-geo broker`` does.
- **Bodies**: :func:`read_limited` reads a body up to the limit and fails
  with 413 stating both sizes; the ``Content-Length`` is checked first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.requests import HTTPConnection, Request

from dasf_geo.exceptions import ConfigurationError
from dasf_geo.gateway.errors import HTTPError
from dasf_geo.gateway.settings import GatewaySettings
from dasf_geo.protocol.options import format_size

__all__ = [
    "body_chunks",
    "check_bind",
    "content_length",
    "forwarded_header",
    "read_limited",
    "too_large",
]

#: The longest ``Authorization`` value passed on.
MAX_TOKEN_CHARS = 8192


def forwarded_header(
    conn: HTTPConnection, settings: GatewaySettings
) -> dict[str, str] | None:
    """The broker handshake headers for this request (None: the gateway's).

    Raises:
        HTTPError: 400 for an ``Authorization`` that is too long or has
            control characters.
    """
    if not settings.forward_auth:
        return None
    value = conn.headers.get("authorization")
    if value is None:
        token = conn.query_params.get("token")
        if token is None:
            return None
        value = f"Bearer {token}"
    if len(value) > MAX_TOKEN_CHARS or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise HTTPError(
            400,
            f"the Authorization header is invalid: at most {MAX_TOKEN_CHARS} "
            "printable characters",
        )
    header = {k: v for k, v in settings.header.items() if k.lower() != "authorization"}
    header["Authorization"] = value
    return header


def content_length(request: Request) -> int | None:
    """The request's ``Content-Length``, or None when it has none.

    Raises:
        HTTPError: 400 when it is not a non-negative integer.
    """
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise HTTPError(400, f"invalid Content-Length {raw[:40]!r}")
    return value


def too_large(size: int, limit: int, exact: bool = True) -> HTTPError:
    """The 413 error for a body of ``size`` bytes (``exact``: a declared size;
    otherwise the body grew past the limit while being read)."""
    if exact:
        text = (
            f"the request body is {format_size(size)}, above the gateway's limit "
            f"of {format_size(limit)}"
        )
    else:
        text = (
            f"the request body is more than {format_size(limit)}, the gateway's limit"
        )
    return HTTPError(413, text + "; send less data or raise the limit (--body-limit)")


async def body_chunks(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The request body chunk by chunk, failing with 413 above ``limit`` bytes.

    Raises:
        HTTPError: 413 (declared or received size above ``limit``).
    """
    declared = content_length(request)
    if declared is not None and declared > limit:
        raise too_large(declared, limit)
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise too_large(received, limit, exact=False)
        if chunk:
            yield chunk


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body (for JSON), at most ``limit`` bytes.

    Raises:
        HTTPError: 413 above ``limit``.
    """
    parts = [chunk async for chunk in body_chunks(request, limit)]
    return b"".join(parts)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    from dasf_geo.broker import is_loopback as broker_is_loopback

    return bool(broker_is_loopback(host))


def check_bind(host: str, settings: GatewaySettings, insecure: bool) -> None:
    """Refuse to listen on a non-loopback ``host`` without auth or ``insecure``.

    "Auth" means the broker requires tokens, which the gateway passes on:
    the gateway has a token of its own (``--header`` with an
    ``Authorization``) that the broker checks, or forwards callers' tokens.

    Raises:
        ConfigurationError: the address is not loopback, the gateway has no
            broker token and ``insecure`` is False.
    """
    if is_loopback(host) or insecure:
        return
    has_token = any(k.lower() == "authorization" for k in settings.header)
    if not has_token:
        raise ConfigurationError(
            f"refusing to serve HTTP on {host!r} without authentication: anyone "
            "who reaches it could call every service. Give the gateway a broker "
            'token (--header \'{"Authorization": "Bearer …"}\') against a '
            "broker that checks tokens, or pass --insecure to accept the risk"
        )


def describe_header(header: Mapping[str, Any] | None) -> str:
    """``Authorization: Bearer ab…`` with the secret hidden, for logs."""
    if not header:
        return "no headers"
    return ", ".join(
        f"{k}: {str(v)[:9]}…" if k.lower() == "authorization" else f"{k}: {v}"
        for k, v in header.items()
    )


class BodyLimit:
    """ASGI middleware: no request body above ``limit`` bytes reaches a route.

    A declared ``Content-Length`` above the limit is answered with 413 at
    once; a body that grows past it while being read (chunked uploads,
    multipart forms) makes the read fail with the same 413.
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from dasf_geo.gateway.errors import error_response

        limit = self.limit
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0:
                    response = error_response(
                        400, f"invalid Content-Length {value[:40].decode('latin-1')!r}"
                    )
                    await response(scope, receive, send)
                    return
                if declared > limit:
                    error = too_large(declared, limit)
                    await error_response(413, error.detail)(scope, receive, send)
                    return
        received = 0

        async def limited() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(received, limit, exact=False)
            return message

        await self.app(scope, limited, send)


def parse_json(body: bytes, what: str = "the request body") -> Any:
    """Parse a JSON body.

    Raises:
        HTTPError: 400 naming the problem (invalid JSON, nested too deeply).
    """
    import json

    try:
        return json.loads(body)
    except RecursionError:
        raise HTTPError(400, f"{what} is nested too deeply") from None
    except ValueError as exc:
        raise HTTPError(400, f"{what} is not valid JSON: {exc}") from None
