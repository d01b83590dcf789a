"""The handler contract of a listener and the handler of a backend module.

A :class:`RequestHandler` runs requests for a
:class:`~dasf_geo.transport.listener.Listener`; :class:`ModuleHandler` is the
one of a :class:`~dasf_geo.backend.BackendModule`.
Also here: the builders of its replies (binary results, findings) and of
its error replies (pydantic's structured errors, :class:`_RequestError`).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from dasf_geo.exceptions import (
    PayloadTooLarge,
    ResultError,
)
from dasf_geo.protocol.constants import (
    EXT_ENCODING,
    EXT_FINDINGS,
)
from dasf_geo.protocol.options import (
    TransferOptions,
    format_size,
)
from dasf_geo.protocol.progress import ProgressReport, ReportSender
from dasf_geo.transport._common import (
    OutgoingFile,
    ReceivedPart,
)

__all__ = [
    "FunctionReply",
    "ModuleHandler",
    "RequestHandler",
    "default_subscription",
]

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


class _RequestTooLarge(PayloadTooLarge):
    """A request above its function's ``max_size`` (not raised by user code:
    a PayloadTooLarge from inside a function is an error of the function)."""


def _member_label(member: Any) -> str:
    """``"function 'f'"`` or ``"method 'C.m'"`` for messages."""
    config = member.backend_config
    function = getattr(member, "function", None)
    if function is not None:
        return f"method '{config.name}.{function.backend_config.name}'"
    return f"function '{config.name}'"


def _over_limit(what: str, size: int, limit: int, by: str | None = None) -> str:
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


class ModuleHandler:
    """A :class:`RequestHandler` for a :class:`dasf_geo.backend.BackendModule`."""

    #: the media types of binary parts a multipart request may carry
    #: (NetCDF or zipped zarr of a Dataset or DataArray argument)
    part_media_types: frozenset[str]

    def __init__(self, module_cls: Any) -> None:
        from dasf_geo.data import BINARY_MEDIA_TYPES

        self.part_media_types = frozenset(BINARY_MEDIA_TYPES)
        self.module_cls = module_cls
        config = module_cls.backend_config
        self.config = config.messaging_config
        self.topic: str = self.config.topic
        self.debug: bool = bool(getattr(config, "debug", False))
        self._info: str | None = None
        self._api_info: str | None = None

    def handle(
        self,
        payload: bytes | bytearray,
        progress: ReportSender | None = None,
        accept: frozenset[str] = frozenset(),
        parts: list[ReceivedPart] | None = None,
        compression: int | None = None,
    ) -> bytes | OutgoingFile | FunctionReply:
        """:meth:`_handle` the request, its CF/crs findings sent back.

        The ``warn``/``optional`` findings of the arguments' and the
        result's checks are logged once each and travel with the reply in
        its ``dasfGeoFindings`` property (see :func:`with_findings`).
        """
        from dasf_geo.data import collect_findings, encode_reports

        with collect_findings() as reports:
            reply = self._handle(payload, progress, accept, parts, compression)
        return with_findings(reply, encode_reports(reports)) if reports else reply

    def _handle(
        self,
        payload: bytes | bytearray,
        progress: ReportSender | None = None,
        accept: frozenset[str] = frozenset(),
        parts: list[ReceivedPart] | None = None,
        compression: int | None = None,
    ) -> bytes | OutgoingFile | FunctionReply:
        """Validate the request, run it and serialise the return model.

        A Dataset or DataArray result goes back as raw NetCDF bytes written
        to a temporary file when the caller accepts that (see
        :func:`binary_reply`); otherwise as the JSON of the return model.
        ``compression`` (a zlib level the caller asked for) makes such a
        result compressed NetCDF4, unless its function forces NetCDF3.

        ``parts`` are the binary parts of a multipart request: its
        placeholders are validated as the Dataset or DataArray in the part
        they name (see :func:`dasf_geo.data.request_parts`).

        A function configured with ``@configure(transfer=...)`` gets its
        reply back as a :class:`FunctionReply`, and a request above its
        ``max_size`` is refused before the function runs.

        Raises:
            pydantic.ValidationError: the request is invalid (a part that
                is not NetCDF, a placeholder for a part that does not
                exist, … name the argument).
            PartError: a part no placeholder refers to.
            PayloadTooLarge: the request (its JSON and parts) is above the
                function's ``max_size`` (answered as a ``payload_too_large``
                error, unlike a PayloadTooLarge the function itself raises).
        """
        if parts is None:
            model = self.module_cls.model_validate_json(payload)
        else:
            from dasf_geo.data import BinaryPart, request_parts

            received = [
                BinaryPart(p.index, p.media_type, p.source, p.size) for p in parts
            ]
            with request_parts(received):
                model = self.module_cls.model_validate_json(payload)
            del received  # the arguments hold what they need
        member = model.root
        limits: TransferOptions = member.transfer_options()
        if limits.max_size is not None:
            size = len(payload) + sum(p.size for p in parts or ())
            if size > limits.max_size:
                raise _RequestTooLarge(
                    _over_limit(
                        "request", size, limits.max_size, _member_label(member)
                    ),
                    size=size,
                    limit=limits.max_size,
                )
        if progress is not None:
            attach_reporters(model, progress)
        try:
            result = model()
        except ValidationError as exc:
            # the request was valid: the result (or the function's own
            # validation) is what failed, not the caller's arguments
            raise ResultError(
                f"the function ran, but its result is not valid: {exc}",
                structured_errors(exc),
            ) from exc
        reply: bytes | OutgoingFile | None = None
        if accept:
            reply = binary_reply(result, accept, compression)
        if reply is None:
            from dasf_geo.data import COMPRESSION_CONTEXT, original_errors

            context = (
                None if compression is None else {COMPRESSION_CONTEXT: compression}
            )
            with original_errors():  # a CF error of the result, not pydantic's
                reply = bytes(
                    result.__pydantic_serializer__.to_json(result, context=context)
                )
        if limits:
            return FunctionReply(reply, limits, _member_label(member))
        return reply

    def info(self) -> str:
        """The module's JSON schema (cached)."""
        if self._info is None:
            self._info = json.dumps(self.module_cls.model_json_schema())
        return self._info

    def api_info(self) -> str:
        """The module's API info (cached)."""
        if self._api_info is None:
            self._api_info = self.module_cls.get_api_info().model_dump_json()
        return self._api_info


def parse_accept(value: Any) -> frozenset[str]:
    """The media types of a ``dasfGeoAccept`` property (comma-separated)."""
    if not isinstance(value, str):
        return frozenset()
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def binary_reply(
    result: Any, accept: frozenset[str], compression: int | None = None
) -> OutgoingFile | None:
    """The raw binary form of ``result`` if the caller accepts it, else None.

    Applies when the return value itself is an ``xr.Dataset`` or
    ``xr.DataArray`` encoded by the data registry (no custom
    ``return_serializer``): it is checked and encoded under the function's
    data options exactly as for a JSON reply, but written as NetCDF (or
    zipped zarr) bytes into a temporary file instead of base64 text inside
    JSON — so the reply is base64-encoded once, on the wire, never held as
    one big string, and (written by the engine to a path) never held as one
    big bytes object either. ``compression``: see :func:`write_reply`.
    """
    from dasf_geo.data import write_reply_file

    field = type(result).model_fields.get("root")
    if field is None:
        return None
    written = write_reply_file(result.root, field.metadata, accept, compression)
    if written is None:
        return None
    file, size, media_type = written  # closed by OutgoingFile.close
    return OutgoingFile(file, size, {EXT_ENCODING: media_type})


def with_findings(
    reply: bytes | OutgoingFile | FunctionReply, findings: str
) -> OutgoingFile | FunctionReply:
    """``reply`` carrying ``findings`` (JSON text) in ``dasfGeoFindings``.

    Bytes become an :class:`OutgoingFile` over them, so that the property
    rides on every message of the reply.
    """
    if isinstance(reply, FunctionReply):
        payload = with_findings(reply.payload, findings)
        assert isinstance(payload, OutgoingFile)
        return FunctionReply(payload, reply.options, reply.label)
    if isinstance(reply, OutgoingFile):
        reply.properties[EXT_FINDINGS] = findings
        return reply
    return OutgoingFile(io.BytesIO(reply), len(reply), {EXT_FINDINGS: findings})


def attach_reporters(model: Any, sender: ReportSender) -> None:
    """Give the progress reports among a request's arguments to ``sender``.

    Each report is copied first, so that a default report shared by all
    calls of a function is never mutated by one of them.
    """
    function = getattr(model, "root", model)
    function = getattr(function, "function", function)  # a class's method
    for name in type(function).model_fields:
        value = getattr(function, name, None)
        if isinstance(value, ProgressReport):
            report = value.model_copy(deep=True)
            report.attach(sender)
            # bypass validate_assignment: the value is a valid report already
            function.__dict__[name] = report


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


class _RequestError(Exception):
    """An error to be answered with an error reply (text and errors list)."""

    def __init__(self, text: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.errors = errors
