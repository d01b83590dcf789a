"""Pulsar WebSocket frames (sans-I/O).

Frames (docs/protocol.md, "Frames"):

- producer -> broker: ``{"payload", "properties", "context"}``
- broker -> producer: ``{"result", "messageId", "context", "errorMsg"?}``
- broker -> consumer: ``{"messageId", "payload", "properties", "publishTime", …}``
- consumer -> broker: ``{"messageId"}`` (ack) or
  ``{"type": "negativeAcknowledge", "messageId"}``

Payloads are base64 text and can be hundreds of MB in total. Measured on the
reference machine, ``json.dumps`` of a large string runs at ~110 MB/s and
``str.encode`` at ~380 MB/s, while ``pybase64`` decodes bytes at ~1,400 MB/s.
So the hot path here stays in ``bytes``: frames are built by concatenation
(base64 never needs JSON escaping) and parsed by slicing the payload out
before handing the small rest to ``json.loads``. WebSocket libraries can send
such ``bytes`` as a *text* frame (picows: ``transport.send(WSMsgType.TEXT, data)``).

The DASF envelope on top of these frames is in
:mod:`dasf_geo.protocol.messages`; JSON parsing in
:mod:`dasf_geo.protocol.jsontext`.
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pybase64

from dasf_geo.exceptions import ProtocolError
from dasf_geo.protocol.constants import PropertyKeys
from dasf_geo.protocol.jsontext import (
    loads_json,
    loads_strict_json,
    parse_json_object,
)

__all__ = [
    "ConsumerMessage",
    "ProducerAck",
    "ack_frame",
    "b64decode",
    "b64encode",
    "build_producer_frame",
    "is_base64_text",
    "negative_ack_frame",
    "parse_ack",
    "parse_consumer_message",
    "split_payload_frame",
]

# ``"payload"`` key followed by the opening quote of its string value, with
# the optional white space that some JSON encoders put around the colon.
_PAYLOAD_KEY = re.compile(rb'"payload"\s*:\s*"')
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


def b64encode(data: bytes | bytearray | memoryview) -> bytes:
    """Base64-encode ``data`` (standard alphabet, with padding) to ASCII bytes."""
    return pybase64.b64encode(data)


def b64decode(
    data: bytes | bytearray | memoryview | str, what: str = "payload"
) -> bytes:
    """Decode standard base64, strictly.

    Args:
        data: base64 text as ``str`` or ASCII bytes.
        what: what the text is, for the error message.

    Raises:
        ProtocolError: ``data`` is not valid base64 (wrong characters or
            padding).
    """
    try:
        if isinstance(data, str):
            data = data.encode("ascii")
        return pybase64.b64decode(data, validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise ProtocolError(f"the {what} is not valid base64: {exc}") from exc


def _json_str(value: str) -> bytes:
    return json.dumps(value).encode("utf-8")


#: ``json.dumps(obj, separators=(",", ":"))`` without building an encoder
#: per call (a few microseconds for every frame sent).
_compact_json = json.JSONEncoder(separators=(",", ":")).encode


def build_producer_frame(
    payload: bytes | str,
    properties: Mapping[str, Any],
    context: str | None = None,
) -> bytes:
    """Build the frame a producer sends: ``{"payload", "properties", "context"}``.

    Args:
        payload: base64 text (``bytes`` or ``str``); it is inserted verbatim,
            so it must already be base64.
        properties: message properties (JSON-serialisable values).
        context: the producer's id for the message, echoed in the ack.

    Returns:
        The frame as UTF-8 bytes, to be sent as a WebSocket text frame.
    """
    if isinstance(payload, str):
        payload = payload.encode("ascii")
    parts = [
        b'{"payload":"',
        payload,
        b'","properties":',
        _compact_json(
            properties if type(properties) is dict else dict(properties)
        ).encode("utf-8"),
    ]
    if context is not None:
        parts += [b',"context":', _json_str(context)]
    parts.append(b"}")
    return b"".join(parts)


def ack_frame(message_id: str) -> bytes:
    """The consumer's acknowledgement of ``message_id``."""
    return b'{"messageId":' + _json_str(message_id) + b"}"


def negative_ack_frame(message_id: str) -> bytes:
    """The consumer's negative acknowledgement of ``message_id`` (Pulsar)."""
    return b'{"type":"negativeAcknowledge","messageId":' + _json_str(message_id) + b"}"


@dataclass(frozen=True)
class ProducerAck:
    """The broker's answer to a produced message.

    Attributes:
        result: ``"ok"`` or an error code such as ``"send-error:…"``.
        message_id: the id the broker gave the message ("" on errors).
        context: the producer's context, echoed.
        error: the broker's error text, if any.
    """

    result: str
    message_id: str = ""
    context: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True if the broker accepted the message."""
        return self.result == "ok"


def parse_ack(frame: bytes | bytearray | str) -> ProducerAck:
    """Parse the broker's ack frame on a producer connection.

    Any ``result`` other than ``"ok"`` is a failed send (docs/protocol.md, "Frames").

    Raises:
        ProtocolError: the frame is not an ack.
    """
    obj = parse_json_object(frame, "producer ack")
    result = obj.get("result")
    if not isinstance(result, str):
        raise ProtocolError(f"the producer ack has no 'result' string: {obj!r:.200}")
    context = obj.get("context")
    error = obj.get("errorMsg")
    return ProducerAck(
        result=result,
        message_id=str(obj.get("messageId") or ""),
        context=None if context is None else str(context),
        error=None if error is None else str(error),
    )


@dataclass
class ConsumerMessage:
    """A message the broker pushed to a consumer.

    Attributes:
        message_id: the broker's id, to be echoed in the ack.
        payload: the base64 payload as ASCII bytes (``b""`` when empty).
        properties: the message properties.
        publish_time: the broker's publish time, if sent.
        redelivery_count: how often the broker delivered it before.
        context: the producer's context, if the broker forwards it.
        extra: any other top-level keys.
    """

    message_id: str
    payload: bytes
    properties: dict[str, Any]
    publish_time: str | None = None
    redelivery_count: int = 0
    context: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def prop(self, key: str | PropertyKeys) -> Any:
        """Return property ``key`` (an enum member or its string), else None."""
        if isinstance(key, PropertyKeys):
            key = key.value
        return self.properties.get(key)


def split_payload_frame(
    frame: bytes, *, strict: bool = False
) -> tuple[dict[str, Any], bytes] | None:
    """Fast path: cut the payload out of ``frame`` and JSON-parse the rest.

    Returns None whenever the shape is not the plain one (escapes in the
    payload, a nested ``"payload"`` key matched first, …) or the rest is
    not (``strict``: standard) JSON; the caller then falls back to a full
    parse, so this can never change a result.
    """
    match = _PAYLOAD_KEY.search(frame)
    if match is None:
        return None
    start = match.end()
    end = frame.find(b'"', start)
    if end < 0:
        return None
    payload = frame[start:end]
    if b"\\" in payload or not payload.isascii():
        return None
    try:
        # "#" is not base64: if the top-level payload reads "#", the cut was
        # the top-level one (a nested "payload" key matched first would
        # leave the real payload, never "#", at the top)
        rest = frame[:start] + b"#" + frame[end:]
        obj = loads_strict_json(rest) if strict else loads_json(rest)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict) or obj.get("payload") != "#":
        return None
    return obj, payload


def parse_consumer_message(frame: bytes | bytearray | str) -> ConsumerMessage:
    """Parse a frame the broker pushed on a consumer connection.

    Raises:
        ProtocolError: not a JSON object, no ``messageId``, or a payload or
            properties of the wrong type.
    """
    if isinstance(frame, str):
        frame = frame.encode("utf-8")
    elif isinstance(frame, bytearray):
        frame = bytes(frame)
    split = split_payload_frame(frame)
    if split is None:
        obj = parse_json_object(frame, "consumer message")
        raw_payload = obj.get("payload", "")
        if raw_payload is None:
            raw_payload = ""
        if not isinstance(raw_payload, str):
            raise ProtocolError(
                "the consumer message's 'payload' must be a base64 string, got "
                f"{type(raw_payload).__name__}"
            )
        try:
            payload = raw_payload.encode("ascii")
        except UnicodeEncodeError as exc:
            raise ProtocolError("the consumer message's payload is not base64") from exc
    else:
        obj, payload = split
    message_id = obj.pop("messageId", None)
    if message_id is None or message_id == "":
        raise ProtocolError("the consumer message has no 'messageId'")
    properties = obj.pop("properties", None) or {}
    if not isinstance(properties, dict):
        raise ProtocolError(
            "the consumer message's 'properties' must be an object, got "
            f"{type(properties).__name__}"
        )
    obj.pop("payload", None)
    redelivery = obj.pop("redeliveryCount", 0)
    context = obj.pop("context", None)
    publish_time = obj.pop("publishTime", None)
    return ConsumerMessage(
        message_id=str(message_id),
        payload=payload,
        properties=properties,
        publish_time=None if publish_time is None else str(publish_time),
        redelivery_count=redelivery if isinstance(redelivery, int) else 0,
        context=None if context is None else str(context),
        extra=obj,
    )


def is_base64_text(data: bytes) -> bool:
    """True if ``data`` only contains characters of the base64 alphabet."""
    return not data.translate(None, _B64_ALPHABET)
