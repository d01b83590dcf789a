"""Building the listener's replies, without I/O.

:func:`answer_properties` is the one place that builds the properties of
a reply to a request, for every reply the
:class:`~dasf_geo.transport.listener.Listener` sends: sent at once or in
fragments, a success, an error or a progress report. :func:`error_reply`
builds an error reply's payload and ``dasfGeoErrors`` property,
:func:`failure_reply` the text of a request whose execution failed;
:func:`checked_result` applies the caller's and the function's ``max_size``
to a reply, :func:`fragment_size` their fragment sizes; :func:`execute`
runs a request with the handler (in a worker thread) and turns invalid
requests into the errors answered to the caller (one reply per request:
the listener answers each request once, with what these return).

What to do with each incoming message is decided in
:mod:`dasf_geo.transport.dispatch`.
"""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

from pydantic import ValidationError

from dasf_geo.exceptions import DasfGeoError, PartError, RequestError
from dasf_geo.protocol.constants import (
    EXT_ERRORS,
    EXT_FINDINGS,
    EXT_PARTS,
    MessageType,
    Status,
)
from dasf_geo.protocol.messages import reply_properties
from dasf_geo.protocol.options import TOO_LARGE_ERROR
from dasf_geo.protocol.parts import parse_parts
from dasf_geo.protocol.progress import ReportSender
from dasf_geo.transport._common import OutgoingFile, payload_bytes, received_parts
from dasf_geo.transport.dispatch import _Incoming
from dasf_geo.transport.handler import (
    FunctionReply,
    RequestHandler,
    RequestTooLarge,
    over_limit_message,
    structured_errors,
)

__all__ = [
    "answer_properties",
    "checked_result",
    "error_reply",
    "execute",
    "failure_reply",
    "fragment_size",
]

logger = logging.getLogger("dasf_geo.transport.backend")


# --- building replies ------------------------------------------------------


def answer_properties(
    incoming: _Incoming,
    source_topic: str,
    message_type: MessageType | str = MessageType.RESPONSE,
    status: Status | str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The properties of any reply to ``incoming``, however it is sent.

    The sender adds the size and checksum of one message, or the
    properties of each fragment.
    """
    return reply_properties(
        incoming.header, source_topic, message_type, status, **extra
    )


def error_reply(
    text: str,
    errors: list[dict[str, Any]] | None = None,
    findings: str | None = None,
) -> tuple[bytes, dict[str, Any]]:
    """The payload and extra properties of an error reply.

    ``errors`` (a structured error list such as pydantic's) goes into the
    ``dasfGeoErrors`` property, ``findings`` (see :func:`error_findings`)
    into ``dasfGeoFindings``.
    """
    extra: dict[str, Any] = {EXT_ERRORS: json.dumps(errors)} if errors else {}
    if findings is not None:
        extra[EXT_FINDINGS] = findings
    return text.encode("utf-8"), extra


def error_findings(error: BaseException) -> str | None:
    """The ``dasfGeoFindings`` of an error reply: the CF/crs findings of the
    values checked before the request failed (e.g. its arguments), so that
    the caller learns of them too; None when there are none."""
    from dasf_geo.data import encode_reports, reports_of

    reports = reports_of(error)
    return encode_reports(reports) if reports else None


def failure_reply(
    error: BaseException, context: str, debug: bool
) -> tuple[str, list[dict[str, Any]] | None]:
    """The text and error list answering a request whose execution failed.

    A request error (validation, parts, size) is answered as it is; any
    other exception is logged and answered with its type and text (its
    traceback with ``debug``).
    """
    if isinstance(error, RequestError):
        return error.text, error.errors
    logger.error(
        "request %s failed",
        context,
        exc_info=(type(error), error, error.__traceback__),
    )
    detail = "".join(traceback.format_exception(error)) if debug else str(error)
    return f"error executing request: {type(error).__name__}: {detail}", None


def fragment_size(incoming: _Incoming, max_payload_size: int) -> int:
    """The fragment size of a reply: the smallest of ours, the caller's
    and the function's."""
    size = max_payload_size
    for asked in (
        incoming.options.fragment_size,
        incoming.function_options.fragment_size,
    ):
        if asked is not None and asked < size:
            size = asked
    return size


def checked_result(
    incoming: _Incoming, result: Any, error: BaseException | None
) -> tuple[Any, BaseException | None]:
    """A handler's result and error, with the reply's size limits applied.

    A :class:`FunctionReply` is unwrapped (its options kept on
    ``incoming``); a reply above the caller's or the function's
    ``max_size`` becomes a ``payload_too_large`` error naming the smallest
    limit it is above (an :class:`OutgoingFile` is closed then).
    """
    limits: list[tuple[int | None, str | None]] = [(incoming.options.max_size, None)]
    if isinstance(result, FunctionReply):
        incoming.function_options = result.options
        limits.append((result.options.max_size, result.label))
        result = result.payload
    if result is not None:
        size = result.size if isinstance(result, OutgoingFile) else len(result)
        # the smallest limit the reply is above is the one to name
        over = [(lim, by) for lim, by in limits if lim is not None and size > lim]
        if over:
            if isinstance(result, OutgoingFile):
                result.close()
            limit, by = min(over, key=lambda item: item[0])
            text = over_limit_message("reply", size, limit, by)
            result, error = None, _too_large(text, size, limit, "reply")
    return result, error


# --- running a request -----------------------------------------------------


def execute(
    handler: RequestHandler,
    data: bytes | bytearray,
    progress: ReportSender | None = None,
    accept: frozenset[str] = frozenset(),
    parts: Any = None,
    compression: int | None = None,
) -> bytes | OutgoingFile | FunctionReply:
    """Run a request with ``handler`` (in a worker thread).

    Raises:
        RequestError: the request is invalid (validation, JSON, parts,
            size): answered with its text and error list.
        Exception: whatever the function raised.
    """
    # only handlers asked for compression need to know the keyword
    extra = {} if compression is None else {"compression": compression}
    try:
        if parts is None:
            return handler.handle(payload_bytes(data), progress, accept, **extra)
        return _execute_parts(handler, data, progress, accept, parts, extra)
    except ValidationError as exc:
        raise RequestError(
            f"error validating request: {exc}", structured_errors(exc)
        ) from exc
    except PartError as exc:
        raise RequestError(f"error reading the request's parts: {exc}") from exc
    except RequestTooLarge as exc:
        assert exc.size is not None and exc.limit is not None
        raise _too_large(str(exc), exc.size, exc.limit, "request") from exc
    except ValueError as exc:
        # pydantic raises ValueError for JSON it cannot parse at all
        if isinstance(exc, DasfGeoError) or not _is_json_error(exc):
            raise
        raise RequestError(f"error validating request: {exc}") from exc


def _execute_parts(
    handler: RequestHandler,
    data: Any,
    progress: ReportSender | None,
    accept: frozenset[str],
    parts: Any,
    extra: dict[str, Any],
) -> bytes | OutgoingFile | FunctionReply:
    """Run a multipart request: cut it, hand the parts to the handler.

    The parts' temporary files (and a reassembly file) are removed once
    the handler returned, whatever happened.

    Raises:
        PartError: the handler takes no parts, or ``dasfGeoParts`` does
            not fit the payload.
    """
    media_types = getattr(handler, "part_media_types", None)
    try:
        if not media_types:
            raise PartError(
                f"the backend on topic {handler.topic!r} does not take multipart "
                f"requests ({EXT_PARTS})"
            )
        specs = parse_parts(parts, len(data), media_types)
    except BaseException:
        close = getattr(data, "close", None)
        if close is not None:
            close()
        raise
    with received_parts(data, specs) as (head, binary):
        return handler.handle(  # type: ignore[call-arg]
            head, progress, accept, parts=binary, **extra
        )


def _too_large(text: str, size: int, limit: int, what: str) -> RequestError:
    """The error answering a ``what`` ("request"/"reply") above a max_size."""
    return RequestError(
        text,
        [
            {
                "type": TOO_LARGE_ERROR,
                "loc": [what],
                "msg": text,
                "ctx": {"size": size, "limit": limit},
            }
        ],
    )


def _is_json_error(exc: ValueError) -> bool:
    text = str(exc).lower()
    return "json" in text or "utf-8" in text or "utf8" in text
