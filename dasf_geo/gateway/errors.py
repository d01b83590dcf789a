"""HTTP errors of the gateway: one JSON shape, one mapping from our exceptions.

Every error response is ``{"detail": "<message>"}``; a validation error
(422) adds ``"errors"``, the structured list (``loc``/``msg``/``type``) the
backend sent over DASF. The status codes:

=====  ==================================================================
400    a malformed request: not JSON, not an object, a bad header or query
401    the broker refused the caller's (missing or invalid) token
403    the broker refused the token for this topic
404    unknown route, service, function, class, method, job or parameter
406    an ``Accept`` the result cannot be given in
413    a request body above the limit (the message states size and limit)
415    a body whose ``Content-Type`` the route does not take, or whose bytes
       are not what it says (an upload that is not NetCDF)
422    the backend rejected the arguments (``errors`` says which and why; it
       is empty for backends that send only the text, such as demessaging)
502    the backend answered with an error, or the broker cannot be reached
504    no reply within the timeout (the message names topic, function, seconds)
=====  ==================================================================
"""

from __future__ import annotations

import re
from typing import Any

from starlette.responses import JSONResponse

from dasf_geo.exceptions import (
    ConnectionFailed,
    DataError,
    PartError,
    PayloadTooLarge,
    RemoteError,
    RemoteValidationError,
    RequestTimeout,
    SendError,
    TransportError,
)
from dasf_geo.gateway.discovery import ServiceNotFound

__all__ = ["HTTPError", "error_response", "exception_response"]

_HTTP_STATUS = re.compile(r"\(HTTP (\d{3})")
#: how DASF backends (ours and demessaging) begin a validation error's text
_VALIDATION_TEXT = "error validating request"


class HTTPError(Exception):
    """An error with its HTTP status, raised by the gateway's own checks.

    Args:
        status: the HTTP status code.
        detail: the message the caller sees.
        errors: a structured error list (for 422).
        headers: extra response headers.
    """

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers


def error_response(
    status: int,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The JSON response of an error."""
    body: dict[str, Any] = {"detail": detail}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers)


def status_of(exc: BaseException) -> int:
    """The HTTP status for an exception raised while serving a request."""
    if isinstance(exc, HTTPError):
        return exc.status
    if isinstance(exc, ServiceNotFound):
        return 404
    if isinstance(exc, PayloadTooLarge):
        return 413
    if isinstance(exc, RemoteValidationError):
        return 422
    if isinstance(exc, RemoteError):
        # demessaging backends send the text of the validation error only
        return 422 if str(exc).startswith(_VALIDATION_TEXT) else 502
    if isinstance(exc, RequestTimeout):
        return 504
    if isinstance(exc, ConnectionFailed):
        match = _HTTP_STATUS.search(str(exc))
        if match and match.group(1) in ("401", "403"):
            return int(match.group(1))
        return 502
    if isinstance(exc, SendError) and "not allowed" in str(exc).lower():
        return 403  # dasf-broker-django refuses per message, not per handshake
    if isinstance(exc, TransportError):
        return 502
    if isinstance(exc, (DataError, PartError)):
        return 422
    return 500


def exception_response(exc: BaseException) -> JSONResponse:
    """The JSON error response for ``exc`` (see the table in the module doc)."""
    status = status_of(exc)
    errors = getattr(exc, "errors", None)
    if isinstance(exc, HTTPError):
        return error_response(status, exc.detail, exc.errors, exc.headers)
    if status == 500:
        return error_response(
            500, f"internal error of the gateway: {type(exc).__name__}: {exc}"
        )
    if status == 422:
        # a backend without structured errors (demessaging): an empty list
        errors = errors if isinstance(errors, list) else []
        if isinstance(exc, RemoteValidationError) and exc.problems():
            # the problems, without pydantic's header and error URL
            detail = "error validating request: " + "; ".join(exc.problems())
            return error_response(status, detail, errors)
        return error_response(status, str(exc), errors)
    return error_response(status, str(exc))
