"""The handler contract of a listener, and the error replies built around it.

A :class:`RequestHandler` runs requests for a
:class:`~dasf_geo.transport.listener.Listener`; a handler that returns a
:class:`FunctionReply` has its function's transfer options applied to the
reply. Also here: what the listener builds its error replies from
(pydantic's structured errors, the size-limit messages; a handler raises
:class:`~dasf_geo.exceptions.RequestError` to have a request answered with
its text as it is) and the ``dasfGeoAccept`` parser.

The handler of a backend module, :class:`ModuleHandler`, knows the backend's
models and so lives in the service layer
(:mod:`dasf_geo.service.handler`); its old import path here still works.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from dasf_geo._moved import moved_names
from dasf_geo.exceptions import (
    PayloadTooLarge,
    RequestError,
)
from dasf_geo.protocol.options import (
    TransferOptions,
    format_size,
)
from dasf_geo.protocol.progress import ReportSender
from dasf_geo.transport._common import (
    OutgoingFile,
)

__all__ = [
    "FunctionReply",
    "RequestHandler",
    "RequestTooLarge",
    "default_subscription",
    "over_limit_message",
]

#: names that moved to the service layer, still importable from here
MOVED = dict.fromkeys(
    ("ModuleHandler", "attach_reporters", "binary_reply", "with_findings"),
    "dasf_geo.service.handler",
)
__getattr__ = moved_names(__name__, MOVED)

#: Most structured errors sent back for one request.
MAX_ERRORS = 100
#: Largest JSON text of an offending input value that is sent back.
MAX_INPUT_CHARS = 200


class RequestHandler(Protocol):
    """What the listener needs from a backend module."""

    topic: str
    debug: bool

    def handle(
        self,
        payload: bytes | bytearray,
        progress: ReportSender | None = None,
        accept: frozenset[str] = frozenset(),
    ) -> bytes | OutgoingFile | FunctionReply:
        """Validate and run one request (UTF-8 JSON); return the JSON reply.

        ``progress`` sends a progress report (JSON text, status) to the
        caller; a handler attaches it to the function's reporters.
        ``accept`` lists the media types the caller takes as a raw binary
        reply: a handler may then return an :class:`OutgoingFile` whose
        ``dasfGeoEncoding`` property names one of them.

        A handler is passed ``compression=level`` (a keyword argument) when
        the caller asked for compressed Dataset/DataArray values in this
        call (``dasfGeoCompression``).

        A handler whose ``part_media_types`` attribute lists media types
        also gets multipart requests: then ``payload`` is their JSON part
        and a keyword argument ``parts`` (a list of :class:`ReceivedPart`)
        holds the binary parts its placeholders refer to.

        A handler returns a :class:`FunctionReply` to have the function's own
        fragment size and size limit applied to the reply.

        Raises:
            pydantic.ValidationError: the request is invalid.
            Exception: anything the user's code raises.
        """
        ...

    def info(self) -> str:
        """The module's JSON schema as JSON text."""
        ...

    def api_info(self) -> str:
        """The module's API model as JSON text."""
        ...


@dataclass
class FunctionReply:
    """A reply with the transfer options of the function that made it.

    A handler returns one (instead of the bare payload) for a function
    configured with ``@configure(transfer=...)``: the listener then cuts
    the reply into fragments no larger than the function's
    ``fragment_size`` and refuses to send it above its ``max_size``, as it
    does for the caller's own options (the smaller value wins).

    Attributes:
        payload: the reply, as :meth:`RequestHandler.handle` returns it.
        options: the function's transfer options.
        label: how messages name the function (``"function 'f'"``).
    """

    payload: bytes | OutgoingFile
    options: TransferOptions
    label: str


class RequestTooLarge(PayloadTooLarge):
    """A request above its function's ``max_size`` (not raised by user code:
    a PayloadTooLarge from inside a function is an error of the function)."""


# the name before it was shared with the service layer
_RequestTooLarge = RequestTooLarge


def over_limit_message(what: str, size: int, limit: int, by: str | None = None) -> str:
    """The message for a ``what`` ("request"/"reply") above a limit.

    ``by`` names the function whose ``max_size`` it is; None: the caller's.
    """
    whose = (
        f"the caller's limit of {format_size(limit)}"
        if by is None
        else f"the limit of {format_size(limit)} set by {by}"
    )
    hint = "ask for less data" if what == "reply" else "send less data"
    return (
        f"the {what} is {format_size(size)}, above {whose} (max_size); {hint} or "
        "raise the limit"
    )


# the name before it was shared with the service layer
_over_limit = over_limit_message


def parse_accept(value: Any) -> frozenset[str]:
    """The media types of a ``dasfGeoAccept`` property (comma-separated)."""
    if not isinstance(value, str):
        return frozenset()
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def default_subscription(topic: str) -> str:
    """The stable subscription name shared by all backends of ``topic``."""
    return f"{topic}-backend"


def _json_safe(value: Any) -> Any:
    """``value`` with everything JSON cannot hold turned into text."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return str(value)


def structured_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """pydantic's error list, JSON-safe, with large inputs left out."""
    out = []
    for error in exc.errors(include_url=False)[:MAX_ERRORS]:
        safe = _json_safe(dict(error))
        if "input" in safe and len(json.dumps(safe["input"])) > MAX_INPUT_CHARS:
            del safe["input"]
        out.append(safe)
    return out


#: the name :class:`~dasf_geo.exceptions.RequestError` had before it was
#: public; code outside the package may still import it from here
_RequestError = RequestError
