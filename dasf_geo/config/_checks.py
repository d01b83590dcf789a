"""The checks behind the messaging configs' field validators.

Each check returns the (normalised) value or raises :class:`ValueError`
with a message that says what to change; pydantic reports it under the
field's name. Topic and subscription names follow the broker's rule
(:mod:`dasf_geo.protocol.names`), so that a name the configuration accepts is
a name the broker accepts.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any
from urllib.parse import urlsplit

from dasf_geo.protocol.names import validate_subscription, validate_topic_part

__all__ = [
    "MAX_HEADER_SIZE",
    "check_host",
    "check_name",
    "check_ws_url",
    "parse_header",
]

#: Upper bound on the JSON text of ``header`` (characters).
MAX_HEADER_SIZE = 16 * 1024

# RFC 7230 "token" for header field names.
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A DNS host name (labels of letters, digits and hyphens).
_HOSTNAME_RE = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)
_URL_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<rest>.*)", re.S)


def short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (hostile input stays readable)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_name(value: str, what: str) -> str:
    """Validate a topic, tenant, namespace or subscription name.

    ``what`` is ``"topic"``, ``"tenant"``, ``"namespace"``, ``"subscription
    name"`` or ``"subscription"``; subscriptions follow the broker's
    subscription rule, every other name its topic rule.

    Raises:
        ValueError: the name is empty, too long or has characters the broker
            refuses (:class:`~dasf_geo.exceptions.ProtocolError`).
    """
    if not isinstance(value, str):
        raise ValueError(f"the {what} must be a string, got {short(value)}")
    if what.startswith("subscription"):
        return validate_subscription(value)
    return validate_topic_part(value, what)


def parse_header(value: Any) -> dict[str, str]:
    """The ``header`` option as a dict of strings (JSON text is accepted).

    Raises:
        ValueError: not a JSON object of valid HTTP header names and values,
            or longer than :data:`MAX_HEADER_SIZE`.
    """
    if value is None or value == "":
        return {}
    if isinstance(value, (str, bytes, bytearray)):
        if len(value) > MAX_HEADER_SIZE:
            raise ValueError(
                f"the header is {len(value)} characters long; "
                f"use at most {MAX_HEADER_SIZE}"
            )
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValueError(
                "the header must be a JSON object such as "
                '\'{"authorization": "Token ..."}\', '
                f"but it is not valid JSON ({exc})"
            ) from None
    if not isinstance(value, dict):
        raise ValueError(
            "the header must be a JSON object mapping names to strings, "
            f"got {type(value).__name__} {short(value)}"
        )
    header: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not _HEADER_NAME_RE.fullmatch(key):
            raise ValueError(
                f"the header name {short(key)} is not a valid HTTP header "
                "name; use letters, digits and - _ only"
            )
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise ValueError(
                f"the header value of {key!r} must be a string, "
                f"got {type(item).__name__} {short(item)}"
            )
        text = str(item)
        if any(ch in text for ch in "\r\n\x00"):
            raise ValueError(
                f"the header value of {key!r} contains a line break or NUL "
                "character, which HTTP headers do not allow"
            )
        header[key] = text
    if len(json.dumps(header)) > MAX_HEADER_SIZE:
        raise ValueError(
            f"the header is longer than {MAX_HEADER_SIZE} characters as JSON"
        )
    return header


def url_error(field: str, value: str, problem: str) -> ValueError:
    """The error of a bad URL option, with an example of a good one."""
    return ValueError(
        f"the {field} {short(value)} {problem}; expected a URL such as "
        "'ws://localhost:8080/ws/v2/consumer/non-persistent/public/default'"
    )


def check_host(value: str) -> str:
    """Validate a broker host: a host name or IP address, nothing more.

    Raises:
        ValueError: a scheme, port or path is included, or the name is not
            a valid host name or IP address.
    """
    if not isinstance(value, str):
        raise ValueError(f"the host must be a string, got {short(value)}")
    if not value:
        raise ValueError("the host must not be empty; use e.g. 'localhost'")
    if "://" in value or "/" in value:
        raise ValueError(
            f"the host {short(value)} must be a host name or IP address "
            "without scheme, port or path (e.g. 'localhost'); to give a full "
            "URL use --websocket-url instead"
        )
    candidate = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        ipaddress.ip_address(candidate)
        return value
    except ValueError:
        pass
    if not _HOSTNAME_RE.fullmatch(value):
        raise ValueError(
            f"the host {short(value)} is not a valid host name or IP address "
            "(use e.g. 'localhost', 'broker.example.org' or '127.0.0.1'; "
            "give the port with -p/--port)"
        )
    return value


def check_ws_url(value: str, field: str) -> str:
    """Validate a ``ws://`` or ``wss://`` URL option; return it without a final ``/``.

    Raises:
        ValueError: another scheme, a query, fragment, credentials, or a bad
            port or host.
    """
    match = _URL_RE.fullmatch(value)
    if not match:
        raise url_error(field, value, "is not a URL")
    if match["scheme"].lower() not in ("ws", "wss"):
        raise url_error(
            field,
            value,
            f"uses the scheme {match['scheme']!r}; only ws:// and wss:// work",
        )
    rest = match["rest"]
    if any(ch.isspace() or ord(ch) < 32 for ch in rest):
        raise url_error(field, value, "contains white space or control characters")
    if "?" in rest or "#" in rest:
        raise url_error(
            field,
            value,
            "has a query or fragment; the topic is appended to the URL's path, "
            "so pass tokens with --header instead",
        )
    parts = urlsplit(value)
    if "@" in parts.netloc:
        raise url_error(
            field, value, "contains credentials; pass them with --header instead"
        )
    try:
        port = parts.port
    except ValueError:
        raise url_error(field, value, "has an invalid port") from None
    if port == 0:
        raise url_error(field, value, "has an invalid port")
    host = parts.hostname
    if not host:
        raise url_error(field, value, "has no host")
    try:
        check_host(host)
    except ValueError:
        raise url_error(field, value, f"has an invalid host {host!r}") from None
    return value.rstrip("/")
