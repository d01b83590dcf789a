"""The broker's frame codec: what producers and consumers send, what it sends.

Pure functions over bytes, no state and no I/O (Pulsar's WebSocket API,
docs/protocol.md, "Frames"):

- :func:`read_producer_frame` reads a producer's message frame into the raw
  JSON text of its parts, which messages keep as they are (the base64
  payload is a view into the frame, and also given decoded, as checking
  it decodes it anyway: a cluster front sends that on), or returns the
  ``send-error`` ack that refuses it;
- :func:`read_consumer_frame` reads an ack, a negative ack or a permit;
- :func:`_ok`, :func:`_send_error`, :func:`_status_ack` and
  :data:`_DELIVERY` write the broker's frames by concatenation, so that a
  payload is copied once and never goes through a JSON encoder.

Every frame the broker writes is standard JSON; what it reads must be
standard JSON too (no ``NaN``, at most 64 levels deep).
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Callable
from json.encoder import encode_basestring_ascii
from typing import Any, NamedTuple

from pybase64 import b64decode as _b64decode  # as dasf_geo.protocol.messages

from dasf_geo.broker.model import SendErrorCode
from dasf_geo.exceptions import ProtocolError
from dasf_geo.protocol.messages import parse_json_object
from dasf_geo.protocol.messages import split_payload_frame as _split_payload_frame

__all__ = ["ProducerFrame", "read_consumer_frame", "read_producer_frame"]


class ProducerFrame(NamedTuple):
    """What :func:`read_producer_frame` reads from an accepted producer frame.

    Attributes:
        payload: the base64 payload as sent (a read-only view into the
            frame where it could be cut out as is, else bytes).
        properties: the properties as compact JSON object text.
        context: the ``context`` as JSON text, or None.
        key: the ``key`` as JSON text, or None.
        data: the payload decoded (the check decodes it anyway).
    """

    payload: bytes | memoryview
    properties: bytes
    context: bytes | None
    key: bytes | None
    data: bytes


def _with_context(head: bytes, context: bytes | None) -> bytes:
    """``head`` (an unclosed JSON object) with ``"context"`` if any, closed."""
    if context is None:
        return head + b"}"
    return head + b',"context":' + context + b"}"


def _send_error(code: int, message: str, context: bytes | None) -> bytes:
    """The ack that refuses a producer frame: ``send-error:<code>`` and why."""
    return _with_context(
        b'{"result":"send-error:%d","errorMsg":%s'
        % (code, json.dumps(message).encode("utf-8")),
        context,
    )


def _ok(message_id: str, context: bytes | None) -> bytes:
    """The ack of an accepted producer frame."""
    # one formatting, no helper: this runs for every message published
    return b'{"result":"ok","messageId":"%s"%s}' % (
        message_id.encode("ascii"),
        b"" if context is None else b',"context":' + context,
    )


def _status_ack(result: str, message_id: str, context: bytes | None) -> bytes:
    """The ack of a frame sent to ``/ws/status-ping``."""
    return _with_context(
        b'{"messageId":"%s","result":%s'
        % (message_id.encode("ascii"), json.dumps(result).encode("utf-8")),
        context,
    )


# a delivery: id, payload, properties, publishTime, redeliveryCount, then
# ',"context":…' and ',"key":…' or nothing; bytes formatting copies the
# payload once, faster than joining a list of parts
_DELIVERY = (
    b'{"messageId":"%s","payload":"%s","properties":%s,"publishTime":"%s",'
    b'"redeliveryCount":%d%s%s}'
)


def _compact_encoder() -> Callable[[Any], str]:
    """``json.dumps(value, separators=(",", ":"))``, made once.

    ``json.dumps`` with arguments builds a new encoder on every call; the
    values dumped here come from ``json.loads`` (no cycles, only JSON
    types), so one C encoder without cycle markers gives the same text.
    """
    encoder = json.JSONEncoder(separators=(",", ":"))
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has the C encoder
        return encoder.encode
    c_encode = make(
        None,
        encoder.default,
        encode_basestring_ascii,
        None,
        ":",
        ",",
        False,
        False,
        True,
    )

    def encode(value: Any) -> str:
        return "".join(c_encode(value, 0))

    return encode


_encode = _compact_encoder()


def _dump(value: Any) -> bytes:
    """Compact JSON text of ``value`` (a value read by ``json.loads``)."""
    kind = type(value)
    if kind is str:
        return encode_basestring_ascii(value).encode("ascii")
    if kind is int:
        return int.__repr__(value).encode("ascii")
    return _encode(value).encode("utf-8")


# the plain ack {"messageId": "<id>"} as dasf_geo and the benchmarks send it:
# read without a JSON parser (ids the broker hands out are URL-safe base64)
_PLAIN_ACK = re.compile(rb'\{"messageId":"([A-Za-z0-9_\-]+)"\}')


def _parse_object(frame: bytes, what: str) -> dict[str, Any]:
    """A frame as a JSON object: standard JSON only, nested 64 levels at most.

    Raises:
        ProtocolError: it is not such an object; the text says why.
    """
    return parse_json_object(frame, what, strict=True)


def _decode(payload: bytes | memoryview) -> bytes:
    """The payload decoded (strict base64: nothing but its alphabet).

    Raises:
        binascii.Error, ValueError: it is not base64.
    """
    return _b64decode(payload, validate=True) if payload else b""


def _decoded(
    payload: bytes | memoryview, context: bytes | None
) -> tuple[bytes, None] | tuple[None, bytes]:
    """``(data, None)``: the payload decoded; or ``(None, ack)``: the
    ``send-error`` ack for a payload that is not base64."""
    try:
        return _decode(payload), None
    except (binascii.Error, ValueError) as exc:
        # as dasf_geo.protocol.messages.b64decode words it
        return None, _send_error(
            SendErrorCode.PAYLOAD_ENCODING,
            f"the payload is not valid base64: {exc}",
            context,
        )


def _read_frame(frame: bytes) -> ProducerFrame | bytes:
    """Read a producer frame of any shape, or say what is wrong with it.

    Returns:
        The frame's parts (:class:`ProducerFrame`), or the ``send-error``
        ack for the producer.
    """
    split = _split_payload_frame(frame, strict=True)
    if split is None:
        try:
            obj = _parse_object(frame, "message")
        except ProtocolError as exc:
            return _send_error(SendErrorCode.JSON, str(exc), None)
        raw = obj.get("payload")
        context = None if "context" not in obj else _dump(obj["context"])
        if raw is None:
            return _send_error(
                SendErrorCode.PAYLOAD_ENCODING,
                "the message has no 'payload': send the payload as a base64 "
                "string (empty for no payload)",
                context,
            )
        if not isinstance(raw, str):
            return _send_error(
                SendErrorCode.PAYLOAD_ENCODING,
                f"the 'payload' must be a base64 string, got {type(raw).__name__}",
                context,
            )
        if not raw.isascii():
            return _send_error(
                SendErrorCode.PAYLOAD_ENCODING,
                "the payload is not valid base64: it contains non-ASCII characters",
                context,
            )
        payload = raw.encode("ascii")
    else:
        obj, payload = split
        context = None if "context" not in obj else _dump(obj["context"])
    data, invalid = _decoded(payload, context)
    if invalid is not None:
        return invalid
    assert data is not None
    props = obj.get("properties")
    if props is None:
        props = {}
    if not isinstance(props, dict):
        return _send_error(
            SendErrorCode.JSON,
            f"the 'properties' must be a JSON object, got {type(props).__name__}",
            context,
        )
    key = obj.get("key")
    if key is not None and not isinstance(key, str):
        return _send_error(
            SendErrorCode.JSON,
            f"the 'key' must be a string, got {type(key).__name__}",
            context,
        )
    return ProducerFrame(
        payload, _dump(props), context, None if key is None else _dump(key), data
    )


# a JSON string without escapes (what json.dumps writes for printable ASCII
# text) and an integer as json.dumps writes it
_J_STR = rb'"[^"\\\x00-\x1f\x80-\xff]*"'
_J_VALUE = rb"(?:" + _J_STR + rb"|-?[1-9][0-9]*|0)"
_J_PAIR = _J_STR + rb":" + _J_VALUE
# the rest of a producer frame after its payload, as dasf_geo and most
# clients write it: compact properties of strings and integers, a context
_PLAIN_TAIL = re.compile(
    rb'","properties":(\{(?:' + _J_PAIR + rb"(?:," + _J_PAIR + rb")*)?\})"
    rb'(?:,"context":(' + _J_VALUE + rb"))?\}"
)
# name and value after name and value, from the start of the properties
# (a search for strings followed by ':' alone could start at the closing
# quote of a value)
_PAIRS = re.compile(rb"(" + _J_STR + rb"):" + _J_VALUE)


def read_producer_frame(frame: bytes) -> ProducerFrame | bytes:
    """The parts of a producer frame (raw JSON bytes of each, as messages
    keep them, and the payload decoded), or the ``send-error`` ack frame
    that refuses it.

    The frame must be a JSON object with a base64 ``payload`` string and
    optional ``properties`` (object), ``context`` and ``key``. The common
    plain frame is read without the JSON parser; anything else (and a
    plain frame whose payload does not decode, which may hold escapes)
    goes through the checked parser.
    """
    plain = _read_plain_frame(frame)
    return _read_frame(frame) if plain is None else plain


def _read_plain_frame(frame: bytes) -> ProducerFrame | None:
    """Read ``{"payload":"…","properties":{…},"context":…}`` without JSON.

    Only for the compact shape whose properties are strings without escapes
    and integers (no repeated names) and whose context is one such value,
    and whose payload is valid base64 (so holds no escape and no
    non-ASCII character): that text is exactly what ``json.dumps`` writes
    back for what ``json.loads`` reads from it, so the result is the one
    :func:`_read_frame` gives. The payload is a view into ``frame``, not a
    copy. Returns None for anything else.
    """
    if not frame.startswith(b'{"payload":"'):
        return None
    end = frame.find(b'"', 12)
    if end < 0:
        return None
    match = _PLAIN_TAIL.fullmatch(frame, end)
    if match is None:
        return None
    properties, context = match.groups()
    names = _PAIRS.findall(properties)
    if len(names) != len(set(names)):
        return None  # json.loads keeps the last of repeated names
    payload = memoryview(frame)[12:end].toreadonly()
    try:
        data = _decode(payload)
    except (binascii.Error, ValueError):
        return None  # an escape, or not base64: the checked parser says which
    return ProducerFrame(payload, properties, context, None, data)


def read_consumer_frame(frame: bytes) -> tuple[Any, Any, int]:
    """``(type, messageId, permitMessages)`` of a frame a consumer sent.

    The type is None for a plain ack, ``"ack"``, ``"negativeAcknowledge"``
    or ``"permit"``; a permit has no message id, the others no permits (0).

    Raises:
        ProtocolError: the frame is not JSON, not an object, has no
            ``messageId`` string, has an unknown ``type``, or a permit's
            ``permitMessages`` is not a positive integer.
    """
    plain = _PLAIN_ACK.fullmatch(frame)
    if plain is not None:
        return None, plain.group(1).decode("ascii"), 0
    obj = _parse_object(frame, "consumer frame")
    kind = obj.get("type")
    if kind == "permit":
        permits = obj.get("permitMessages")
        if type(permits) is not int or permits < 1:
            raise ProtocolError(
                f"'permitMessages' must be a positive integer, got {permits!r:.40}"
            )
        return kind, None, permits
    if kind not in (None, "ack", "negativeAcknowledge"):
        raise ProtocolError(
            f"unknown frame type {str(kind)[:40]!r}: send {{'messageId': …}} "
            "to acknowledge, type 'negativeAcknowledge' or 'permit'"
        )
    token = obj.get("messageId")
    if not isinstance(token, str) or not token:
        raise ProtocolError(
            "the consumer frame has no 'messageId' string: acknowledge with "
            '{"messageId": "<id of the message>"}'
        )
    return kind, token, 0
