"""Exceptions raised by dasf_geo.

Every error dasf_geo raises on purpose derives from :class:`DasfGeoError`, so
``except dasf_geo.DasfGeoError`` catches all of them. Third-party errors
(picows and socket errors, sqlite) are converted at the boundary into one of these
and chained with ``from exc``.

Hierarchy::

    DasfGeoError
    ├── ConfigurationError        misuse: a bad option, a bad @configure call
    ├── ProtocolError             a message that breaks the DASF/Pulsar protocol
    │   ├── FragmentError         a fragmented payload cannot be reassembled
    │   │   └── FragmentTooLarge  … because it is above the size limit
    │   └── PartError             a multipart request cannot be cut into its parts
    ├── PayloadTooLarge           a request or reply above its hard size limit
    ├── DataError                 a value cannot be validated or serialized
    │   ├── UnsupportedTypeError  no entry in the type registry for a type
    │   ├── CFConventionError     a CF-convention violation (strict mode)
    │   └── CRSError              a missing or invalid ``crs``
    ├── TransportError            talking to the broker failed
    │   ├── ConnectionFailed      the broker cannot be reached / refused us
    │   ├── SendError             the broker refused a message (non-"ok" ack)
    │   ├── RequestTimeout        no (complete) reply within the timeout
    │   │   └── ServiceNotFound   no service answered on a topic when asked
    │   └── ReplyLost             the reply connection dropped during a call
    ├── ResultError               a function's result failed validation
    ├── RemoteError               the backend answered with status "error"
    │   └── RemoteValidationError the backend rejected the request's arguments
    ├── RequestError              (backend side) a request answered with exactly
    │                             this error text, e.g. invalid arguments
    └── BrokerError               the embedded broker cannot start or serve
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CONFIGURE_STYLE",
    "CONFIG_STYLE",
    "MODULE_STYLE",
    "WIRE_STYLE",
    "BrokerError",
    "CFConventionError",
    "CRSError",
    "ConfigurationError",
    "ConnectionFailed",
    "DasfGeoError",
    "DataError",
    "FragmentError",
    "FragmentTooLarge",
    "PartError",
    "PayloadTooLarge",
    "ProblemStyle",
    "ProtocolError",
    "RemoteError",
    "RemoteValidationError",
    "ReplyLost",
    "RequestError",
    "RequestTimeout",
    "ResultError",
    "SendError",
    "ServiceNotFound",
    "TransportError",
    "UnsupportedTypeError",
    "format_validation_error",
    "problem_lines",
    "validation_problems",
]


class DasfGeoError(Exception):
    """Base class of every error dasf_geo raises on purpose."""


class ConfigurationError(DasfGeoError, ValueError):
    """An option, a ``@configure`` call or a config file is wrong.

    The message says what to change.
    """


class ProtocolError(DasfGeoError, ValueError):
    """A message does not follow the DASF / Pulsar WebSocket protocol."""


class FragmentError(ProtocolError):
    """A fragmented payload cannot be reassembled (missing, corrupt, too big)."""


class PayloadTooLarge(DasfGeoError, ValueError):
    """A request or a reply is larger than its hard size limit.

    Raised by a caller before it sends a request above the call's
    ``max_size``, and when a reply is (or grows) above it — whether the
    backend refused to send it or the caller stopped receiving it.

    Attributes:
        size: the payload's size in bytes (for a reply cut off on arrival:
            the bytes received when the limit was passed), if known.
        limit: the limit in bytes.
        topic: the backend's topic, if known.
    """

    def __init__(
        self,
        message: str,
        *,
        size: int | None = None,
        limit: int | None = None,
        topic: str | None = None,
    ) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit
        self.topic = topic


class FragmentTooLarge(FragmentError, PayloadTooLarge):
    """A payload being reassembled is above the receiver's size limit."""


class PartError(ProtocolError):
    """A multipart request's ``dasfGeoParts`` or placeholders do not fit its payload.

    The message names the part and what is wrong with it.
    """


class DataError(DasfGeoError, ValueError):
    """A value cannot be validated or serialized."""


class UnsupportedTypeError(DataError, TypeError):
    """The type registry has no entry for a type; the message lists the known ones."""


class CFConventionError(DataError):
    """A Dataset or DataArray violates the CF conventions (strict mode).

    Attributes:
        findings: the individual findings, each naming variable, attribute
            and rule.
    """

    def __init__(self, message: str, findings: list[Any] | None = None) -> None:
        super().__init__(message)
        self.findings = list(findings or [])


class CRSError(DataError):
    """The ``crs`` of a Dataset is missing, unparseable or inconsistent."""

    def __init__(self, message: str, findings: list[Any] | None = None) -> None:
        super().__init__(message)
        self.findings = list(findings or [])


class TransportError(DasfGeoError):
    """Talking to the message broker failed.

    Attributes:
        url: the broker URL concerned, if known.
        topic: the topic concerned, if known.
    """

    def __init__(
        self, message: str, *, url: str | None = None, topic: str | None = None
    ) -> None:
        super().__init__(message)
        self.url = url
        self.topic = topic


class ConnectionFailed(TransportError, ConnectionError):
    """The broker at ``url`` cannot be reached or refused the connection."""


class SendError(TransportError):
    """The broker answered a sent message with a result other than ``ok``."""


class RequestTimeout(TransportError, TimeoutError):
    """No complete reply arrived within the timeout.

    The message names the topic, the function and the number of seconds.
    """


class ServiceNotFound(RequestTimeout):
    """No service answered on a topic within the (short) discovery timeout.

    The message names the topic and the broker, says what to check and,
    where the broker can tell, lists the topics that have a service.

    Attributes:
        topics: the topics with a service on that broker, or None when the
            broker cannot tell.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        topic: str | None = None,
        topics: list[str] | None = None,
    ) -> None:
        super().__init__(message, url=url, topic=topic)
        self.topics = topics


class ReplyLost(TransportError):
    """The connection for replies closed while a call waited for its reply.

    Raised at once (not at the call's timeout) for calls on a
    non-persistent topic, whose broker forgets replies it cannot deliver.
    The request may or may not have run; the message names the topic and
    the function.
    """


class ResultError(DasfGeoError, ValueError):
    """A backend function ran, but its result failed validation.

    Its return value does not match the return annotation or breaks the
    function's data rules (e.g. strict CF checks on a Dataset), or a
    pydantic validation inside the function failed. The request itself was
    valid: the function's code is what needs the fix.

    Attributes:
        errors: pydantic's error list.
    """

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.errors = list(errors or [])


class RequestError(DasfGeoError):
    """A backend refuses a request: answered with exactly this error text.

    Raised while a backend runs a request (by the transport for a request
    that fails validation, a multipart request whose parts do not fit, a
    request above the size limit; by the service layer for an unknown
    parameter or an unreadable monitoring store). The listener answers it
    with an error reply whose payload is ``text`` and whose
    ``dasfGeoErrors`` property is ``errors`` — no traceback, no
    ``error executing request:`` prefix, nothing logged as a failure. The
    caller then gets a :class:`RemoteError` (a
    :class:`RemoteValidationError` when ``errors`` is not empty).

    Args:
        text: the error reply's text.
        errors: a structured error list (pydantic's ``.errors()`` shape),
            if any.

    Attributes:
        text: the error reply's text.
        errors: the structured error list, or None.
    """

    def __init__(self, text: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.errors = errors


class RemoteError(DasfGeoError):
    """The backend answered a request with ``status: error``.

    Attributes:
        message: the error text sent by the backend.
        errors: a structured error list (pydantic's ``.errors()`` shape) when
            the backend sent one, else an empty list.
        topic: the backend's topic.
    """

    def __init__(
        self,
        message: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        topic: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors = list(errors or [])
        self.topic = topic


class RemoteValidationError(RemoteError):
    """The backend rejected the request's arguments; see :attr:`errors`."""

    def problems(self, skip: Iterable[str] = ()) -> list[str]:
        """One ``where: problem (got value)`` text per rejected argument.

        Args:
            skip: leading ``loc`` entries to leave out (the function's and
                class's names, which say nothing a caller does not know).

        Returns:
            The problems of :attr:`errors`, without pydantic's boilerplate
            (header, error URL); empty when the backend sent no structured
            list (demessaging backends send text only).
        """
        return validation_problems(self.errors or [], skip)


@dataclass(frozen=True)
class ProblemStyle:
    """How :func:`format_validation_error` spells the problems of one caller.

    Every place that turns a validation error into a message uses the one
    formatter; a style keeps the spelling each of them has always had.

    Attributes:
        title: the text before the problems; ``{title}`` is the title given.
        label: how the problem's location is named; ``{where}`` is the
            dotted location.
        unknown: the line of an unknown option; ``{where}`` is the location,
            ``{where_r}`` its shortened ``repr``, ``{known}`` the valid
            options.
        strip: leading boilerplate removed from pydantic's messages.
        got: how the offending value is appended: ``"config"`` (shortened
            to 80 characters, not for value and missing errors), ``"wire"``
            (60 characters of its ``repr``, not for dicts and lists), or
            ``None`` (never).
        listed: several problems as a ``- `` list below the title (else
            joined with ``; ``).
        skip_loc: leading location names dropped (``function``,
            ``request``: the envelope of an RPC call).
        nowhere: the location of a problem without one; ``None`` shows the
            problem alone.
    """

    title: str = "invalid {title}: "
    label: str = "{where}"
    unknown: str = "unknown option {where_r}; valid options are {known}"
    strip: tuple[str, ...] = ("Value error, ", "Assertion failed, ")
    got: str | None = "config"
    listed: bool = True
    skip_loc: tuple[str, ...] = ()
    nowhere: str | None = None


#: options of a settings class (messaging, logging, main() and the CLI)
CONFIG_STYLE = ProblemStyle()
#: ``@configure`` options
CONFIGURE_STYLE = ProblemStyle(
    title="{title}: ",
    label="option {where!r}",
    unknown="unknown option {where_r}; valid options are: {known}",
    strip=(),
    got=None,
    listed=False,
)
#: the options of ``BackendModule.create_model``
MODULE_STYLE = ProblemStyle(
    unknown="{where}: unknown option; valid options are: {known}",
    strip=("Value error, ",),
    got=None,
    listed=False,
)
#: a structured error list as DASF sends it (arguments of a remote call)
WIRE_STYLE = ProblemStyle(
    strip=(), got="wire", skip_loc=("function", "request"), nowhere="request"
)


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (hostile input stays readable)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _got(error: dict[str, Any], style: ProblemStyle) -> str:
    if "input" not in error or style.got is None:
        return ""
    value = error["input"]
    if style.got == "wire":
        return "" if isinstance(value, (dict, list)) else f" (got {value!r:.60})"
    if error.get("type") in ("value_error", "missing"):
        return ""
    return f" (got {_short(value)})"


def problem_lines(
    errors: Iterable[Any],
    style: ProblemStyle = CONFIG_STYLE,
    option_names: Mapping[str, str] | None = None,
    env_prefix: str | None = None,
    known_fields: Iterable[str] | None = None,
    skip: Iterable[str] = (),
) -> list[str]:
    """One line per entry of a pydantic ``errors()`` list, in ``style``.

    Args:
        errors: the entries (``loc``, ``msg``, ``type``, ``input``); entries
            that are not dicts are left out.
        style: the spelling (see :class:`ProblemStyle`).
        option_names: maps field names to how the user spells them, e.g.
            ``{"port": "-p/--port"}``.
        env_prefix: the environment variable prefix, e.g. ``"DE_BACKEND_"``.
        known_fields: the valid field names; an unknown name is reported
            with this list, and only known names get an environment variable.
        skip: further leading location names to drop.

    Returns:
        The lines, without the title.
    """
    known = sorted(known_fields) if known_fields is not None else None
    names = {*style.skip_loc, *skip}
    lines = []
    for error in errors:
        if not isinstance(error, dict):
            continue
        loc = [str(part) for part in error.get("loc", ())]
        while names and len(loc) > 1 and loc[0] in names:
            loc.pop(0)
        field = loc[0] if loc else ""
        where = ".".join(loc) or style.nowhere or ""
        if error.get("type") == "extra_forbidden":
            where = where or "value"
            template = style.unknown
            if known is None:  # no list to offer: the sentence up to the ";"
                template = template.rpartition(";")[0] or template
            lines.append(
                template.format(
                    where=where,
                    where_r=_short(where),
                    known=", ".join(known or ()),
                )
            )
            continue
        spelled = []
        if option_names and field in option_names:
            spelled.append(option_names[field])
        if env_prefix and field and (known is None or field in known):
            spelled.append(f"environment variable {env_prefix}{field.upper()}")
        msg = str(error.get("msg", "invalid value"))
        for boilerplate in style.strip:
            if msg.startswith(boilerplate):
                msg = msg[len(boilerplate) :]
                break
        if where:
            label = style.label.format(where=where)
            label += f" ({', '.join(spelled)})" if spelled else ""
            msg = f"{label}: {msg}"
        lines.append(msg + _got(error, style))
    return lines


def format_validation_error(
    exc: Any,
    title: str,
    option_names: Mapping[str, str] | None = None,
    env_prefix: str | None = None,
    known_fields: Iterable[str] | None = None,
    *,
    style: ProblemStyle = CONFIG_STYLE,
) -> str:
    """Render a pydantic ``ValidationError`` as one readable message.

    The one formatter of validation errors: settings, ``main()`` and the
    command line, ``@configure``, ``BackendModule.create_model`` and the
    structured errors of remote calls all spell their problems through it.
    Each problem names the option (and, when given, the command-line option
    and environment variable that set it), the problem and the offending
    value (shortened).

    Args:
        exc: the validation error (anything with pydantic's ``errors()``),
            or its list of errors.
        title: what was being configured, e.g. ``"PulsarConfig"``.
        option_names: maps field names to how the user spells them.
        env_prefix: the environment variable prefix, e.g. ``"DE_BACKEND_"``.
        known_fields: the valid field names (listed for an unknown one).
        style: the spelling (see :class:`ProblemStyle`).

    Returns:
        The message, by default starting with ``"invalid {title}: "``.
    """
    errors = exc.errors(include_url=False) if hasattr(exc, "errors") else exc
    lines = problem_lines(errors, style, option_names, env_prefix, known_fields)
    head = style.title.format(title=title)
    if len(lines) == 1 or not style.listed:
        return head + "; ".join(lines)
    return head.rstrip() + "\n" + "\n".join(f"- {line}" for line in lines)


def validation_problems(errors: Iterable[Any], skip: Iterable[str] = ()) -> list[str]:
    """``where: problem (got value)`` for each entry of a structured error list.

    ``errors`` is pydantic's ``errors()`` list as DASF sends it (``loc``,
    ``msg``, ``input``); entries that are not dicts are left out. Leading
    ``loc`` entries in ``skip`` (and ``function``/``request``) are dropped.
    """
    return problem_lines(errors, WIRE_STYLE, skip=skip)


class BrokerError(DasfGeoError):
    """The embedded broker cannot start or serve (e.g. the port is taken)."""
