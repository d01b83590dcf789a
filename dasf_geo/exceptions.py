"""Exceptions raised by dasf_geo.

Every error dasf_geo raises on purpose derives from :class:`DasfGeoError`, so
``except dasf_geo.DasfGeoError`` catches all of them. Third-party errors
(websockets, sockets, sqlite) are converted at the boundary into one of these
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
    └── BrokerError               the embedded broker cannot start or serve
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = [
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
    "ProtocolError",
    "RemoteError",
    "RemoteValidationError",
    "ReplyLost",
    "RequestTimeout",
    "ResultError",
    "SendError",
    "ServiceNotFound",
    "TransportError",
    "UnsupportedTypeError",
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


def validation_problems(errors: Iterable[Any], skip: Iterable[str] = ()) -> list[str]:
    """``where: problem (got value)`` for each entry of a structured error list.

    ``errors`` is pydantic's ``errors()`` list as DASF sends it (``loc``,
    ``msg``, ``input``); entries that are not dicts are left out. Leading
    ``loc`` entries in ``skip`` (and ``function``/``request``) are dropped.
    """
    names = {"function", "request", *skip}
    lines = []
    for error in errors:
        if not isinstance(error, dict):
            continue
        loc = [str(p) for p in error.get("loc", ())]
        while len(loc) > 1 and loc[0] in names:
            loc.pop(0)
        where = ".".join(loc) or "request"
        got = ""
        if "input" in error and not isinstance(error["input"], (dict, list)):
            got = f" (got {error['input']!r:.60})"
        lines.append(f"{where}: {error.get('msg', '')}{got}")
    return lines


class BrokerError(DasfGeoError):
    """The embedded broker cannot start or serve (e.g. the port is taken)."""
