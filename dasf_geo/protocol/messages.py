"""The DASF envelope on top of Pulsar WebSocket frames (sans-I/O).

A DASF message is a Pulsar message whose properties carry the envelope
(docs/protocol.md, "The DASF envelope"): ``response_topic``,
``requestContext`` and ``messageType`` on a request; ``requestContext``,
``messageType``, ``source_topic`` and ``status`` on a reply. This module
makes request contexts and response topics, builds both kinds of
properties and checks a request's envelope.

The frames underneath are in :mod:`dasf_geo.protocol.frames`, JSON
parsing in :mod:`dasf_geo.protocol.jsontext`; their names are importable
from here too, as they always were.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dasf_geo.exceptions import ProtocolError
from dasf_geo.protocol.constants import (
    KEY_MESSAGE_TYPE,
    KEY_REQUEST_CONTEXT,
    KEY_RESPONSE_TOPIC,
    KEY_SOURCE_TOPIC,
    KEY_STATUS,
    MessageType,
    PropertyKeys,
    Status,
)
from dasf_geo.protocol.frames import (
    ConsumerMessage,
    ProducerAck,
    ack_frame,
    b64decode,
    b64encode,
    build_producer_frame,
    is_base64_text,
    negative_ack_frame,
    parse_ack,
    parse_consumer_message,
    split_payload_frame,
)
from dasf_geo.protocol.jsontext import (
    MAX_JSON_DEPTH,
    loads_json,
    loads_strict_json,
    parse_json_object,
)

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_REQUEST_CONTEXT",
    "ConsumerMessage",
    "ProducerAck",
    "RequestContexts",
    "RequestHeader",
    "ack_frame",
    "b64decode",
    "b64encode",
    "build_producer_frame",
    "is_base64_text",
    "loads_json",
    "loads_strict_json",
    "negative_ack_frame",
    "new_request_context",
    "new_response_topic",
    "parse_ack",
    "parse_consumer_message",
    "parse_json_object",
    "parse_request_header",
    "reply_properties",
    "request_properties",
    "split_payload_frame",
]


# --- the DASF envelope -----------------------------------------------------


#: Request contexts stay below this: dasf-broker-django stores the
#: ``requestContext`` in a 32-bit integer column and closes the connection
#: (code 1011) on anything else; demessaging sends small integers too.
MAX_REQUEST_CONTEXT = 2**31


def new_request_context() -> str:
    """A random request context: a decimal integer below 2**31.

    Callers that send many requests use :class:`RequestContexts`, which
    never repeats one; this is for one-off requests.
    """
    return str(secrets.randbelow(MAX_REQUEST_CONTEXT))


class RequestContexts:
    """The request contexts of one caller: unique decimal integers below 2**31.

    Replies are matched by context within one caller's private response
    topic (whose name carries 128 random bits), so a context only has to be
    unique per caller, not unguessable: a counter from a random start,
    wrapping at 2**31, repeats only after 2**31 requests. Decimal integers
    are what every DASF peer accepts (see :data:`MAX_REQUEST_CONTEXT`).

    Args:
        start: the first context (default: random).
    """

    def __init__(self, start: int | None = None) -> None:
        if start is None:
            start = secrets.randbelow(MAX_REQUEST_CONTEXT)
        self._next = start % MAX_REQUEST_CONTEXT

    def next(self) -> str:
        """The next context."""
        value = self._next
        self._next = (value + 1) % MAX_REQUEST_CONTEXT
        return str(value)


def new_response_topic(topic: str) -> str:
    """A response topic for a caller of ``topic`` that nobody can guess.

    The reference uses 8 random letters (~38 bits); this uses 128 bits.
    """
    return f"{topic}_{secrets.token_hex(16)}"


def _enum_value(kind: Any, value: Any) -> str:
    """``kind(value).value``, without the enum call for a member of ``kind``."""
    if type(value) is kind:
        return value.value  # type: ignore[no-any-return]
    return kind(value).value  # type: ignore[no-any-return]


def request_properties(
    response_topic: str,
    request_context: str,
    message_type: MessageType | str = MessageType.REQUEST,
    **extra: Any,
) -> dict[str, Any]:
    """Properties of a DASF request (docs/protocol.md, "The DASF envelope")."""
    props: dict[str, Any] = {
        KEY_RESPONSE_TOPIC: response_topic,
        KEY_REQUEST_CONTEXT: request_context,
        KEY_MESSAGE_TYPE: _enum_value(MessageType, message_type),
    }
    if extra:
        props.update(extra)
    return props


@dataclass(frozen=True)
class RequestHeader:
    """The envelope of a valid DASF request."""

    response_topic: str
    request_context: str
    message_type: str


def _prop_str(props: Mapping[str, Any], key: PropertyKeys) -> str | None:
    value = props.get(key.value)
    # the reference's Python client sends an integer requestContext; the
    # reference backend accepts it through str(), so do we.
    if key is PropertyKeys.REQUEST_CONTEXT and type(value) is int:
        value = str(value)
    if not isinstance(value, str) or not value:
        return None
    return value


def parse_request_header(properties: Mapping[str, Any]) -> RequestHeader:
    """Return the DASF envelope of a request, or raise if it is not one.

    A message is a valid request only if ``response_topic``,
    ``requestContext`` and ``messageType`` are present and non-empty.

    Raises:
        ProtocolError: naming the first missing or invalid property.
    """
    get = properties.get
    response_topic = get(KEY_RESPONSE_TOPIC)
    request_context = get(KEY_REQUEST_CONTEXT)
    message_type = get(KEY_MESSAGE_TYPE)
    if not (
        type(response_topic) is str
        and response_topic
        and type(request_context) is str
        and request_context
        and type(message_type) is str
        and message_type
    ):
        # the general path: an integer context, str subclasses, or an error
        values = {}
        for key in (
            PropertyKeys.RESPONSE_TOPIC,
            PropertyKeys.REQUEST_CONTEXT,
            PropertyKeys.MESSAGE_TYPE,
        ):
            value = _prop_str(properties, key)
            if value is None:
                raise ProtocolError(
                    f"not a DASF request: property {key.value!r} is missing or not "
                    "a non-empty string"
                )
            values[key] = value
        response_topic = values[PropertyKeys.RESPONSE_TOPIC]
        request_context = values[PropertyKeys.REQUEST_CONTEXT]
        message_type = values[PropertyKeys.MESSAGE_TYPE]
    return RequestHeader(
        response_topic=response_topic,
        request_context=request_context,
        message_type=message_type,
    )


def reply_properties(
    header: RequestHeader,
    source_topic: str,
    message_type: MessageType | str = MessageType.RESPONSE,
    status: Status | str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Properties of a reply to the request with envelope ``header``."""
    props: dict[str, Any] = {
        KEY_REQUEST_CONTEXT: header.request_context,
        KEY_MESSAGE_TYPE: _enum_value(MessageType, message_type),
        KEY_SOURCE_TOPIC: source_topic,
    }
    if status is not None:
        props[KEY_STATUS] = _enum_value(Status, status)
    if extra:
        props.update(extra)
    return props
