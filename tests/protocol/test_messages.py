"""Frames and the DASF envelope: built and parsed message-in, message-out."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dasf_geo.exceptions import ProtocolError
from dasf_geo.protocol import messages as m
from dasf_geo.protocol.constants import MessageType, Status

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)


def full_parse(frame: bytes) -> dict:
    obj = json.loads(frame)
    return obj


@given(
    payload=st.binary(max_size=300),
    properties=st.dictionaries(st.text(max_size=12), json_values, max_size=5),
    context=st.none() | st.text(max_size=20),
    extra=st.dictionaries(
        st.sampled_from(["publishTime", "redeliveryCount", "key", "payload2"]),
        json_values,
        max_size=2,
    ),
    indent=st.sampled_from([None, 1]),
    separators=st.sampled_from([(",", ":"), (", ", ": ")]),
    nested_payload=st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_fast_parse_agrees_with_json(
    payload, properties, context, extra, indent, separators, nested_payload
):
    """Whatever the key order and spacing, the fast path never changes a result."""
    text = base64.b64encode(payload).decode()
    if nested_payload:
        properties = dict(properties, payload="c2VjcmV0")
    obj = {"messageId": "id-1", "properties": properties, **extra, "payload": text}
    if context is not None:
        obj["context"] = context
    if "redeliveryCount" in obj and not isinstance(obj["redeliveryCount"], int):
        obj["redeliveryCount"] = 0
    frame = json.dumps(obj, indent=indent, separators=separators).encode()
    msg = m.parse_consumer_message(frame)
    assert msg.message_id == "id-1"
    assert msg.payload == text.encode()
    assert msg.properties == properties
    assert msg.context == (None if context is None else str(context))


def test_parse_consumer_message_pulsar_shape():
    frame = json.dumps(
        {
            "messageId": "CAAQAw==",
            "payload": "aGk=",
            "properties": {"messageType": "request"},
            "publishTime": "2026-11-22T12:00:00.000Z",
            "redeliveryCount": 2,
            "key": "k",
        }
    )
    msg = m.parse_consumer_message(frame)
    assert msg.payload == b"aGk="
    assert msg.publish_time == "2026-11-22T12:00:00.000Z"
    assert msg.redelivery_count == 2
    assert msg.extra == {"key": "k"}
    assert msg.prop(m.PropertyKeys.MESSAGE_TYPE) == "request"


def test_escaped_payload_falls_back_to_full_parse():
    frame = b'{"messageId":"1","payload":"aGk\\u003d","properties":{}}'
    assert m.parse_consumer_message(frame).payload == b"aGk="


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, got list"),
        (b'"text"', "must be a JSON object, got str"),
        (b'{"payload": "aGk="}', "no 'messageId'"),
        (b'{"messageId": "", "payload": "aGk="}', "no 'messageId'"),
        (b'{"messageId": "1", "payload": 5}', "must be a base64 string, got int"),
        (b'{"messageId": "1", "payload": "\xc3\xa9"}', "not base64"),
        (b'{"messageId": "1", "payload": "", "properties": [1]}', "must be an object"),
    ],
)
def test_parse_consumer_message_rejects_garbage(frame, message):
    with pytest.raises(ProtocolError, match=message):
        m.parse_consumer_message(frame)


def test_build_producer_frame_is_valid_json_with_verbatim_payload():
    frame = m.build_producer_frame(b"aGk=", {"a": "b", "n": 1, "u": "é"}, 'ctx"1')
    assert json.loads(frame) == {
        "payload": "aGk=",
        "properties": {"a": "b", "n": 1, "u": "é"},
        "context": 'ctx"1',
    }
    assert json.loads(m.build_producer_frame("", {})) == {
        "payload": "",
        "properties": {},
    }


def test_ack_frames():
    assert json.loads(m.ack_frame('a"b')) == {"messageId": 'a"b'}
    assert json.loads(m.negative_ack_frame("x")) == {
        "type": "negativeAcknowledge",
        "messageId": "x",
    }


def test_parse_ack():
    ok = m.parse_ack('{"result": "ok", "messageId": "m1", "context": "7"}')
    assert ok.ok and ok.message_id == "m1" and ok.context == "7"
    err = m.parse_ack(
        '{"result": "send-error:bad-payload", "errorMsg": "not base64", "context": 7}'
    )
    assert not err.ok and err.error == "not base64" and err.context == "7"
    with pytest.raises(ProtocolError, match="no 'result' string"):
        m.parse_ack('{"messageId": "m1"}')
    with pytest.raises(ProtocolError, match="not valid JSON"):
        m.parse_ack("{")


def test_b64decode_strict():
    assert m.b64decode("aGk=") == b"hi"
    assert m.b64decode(b"aGk=") == b"hi"
    for bad in ["aGk", "a$k=", "aGk=\n", "é"]:
        with pytest.raises(ProtocolError, match="the payload is not valid base64"):
            m.b64decode(bad)


def test_is_base64_text():
    assert m.is_base64_text(b"aGk=")
    assert not m.is_base64_text(b"a k=")


def test_request_and_reply_envelope():
    ctx = m.new_request_context()
    topic = m.new_response_topic("hello")
    props = m.request_properties(topic, ctx)
    header = m.parse_request_header(props)
    assert header == m.RequestHeader(topic, ctx, "request")
    reply = m.reply_properties(header, "hello", status=Status.SUCCESS)
    assert reply == {
        "requestContext": ctx,
        "messageType": "response",
        "source_topic": "hello",
        "status": "success",
    }
    pong = m.reply_properties(header, "hello", MessageType.PONG)
    assert pong["messageType"] == "pong" and "status" not in pong


def test_request_contexts_are_unique_integers_every_peer_accepts():
    contexts = m.RequestContexts()
    values = [contexts.next() for _ in range(1000)]
    assert len(set(values)) == 1000
    assert all(v.isdigit() and 0 <= int(v) < 2**31 for v in values)
    assert [int(v) for v in values[:2]] == [int(values[0]), int(values[0]) + 1]
    wrapping = m.RequestContexts(start=2**31 - 1)
    assert [wrapping.next(), wrapping.next()] == [str(2**31 - 1), "0"]
    one_off = m.new_request_context()
    assert one_off.isdigit() and int(one_off) < 2**31


def test_response_topic_is_unguessable():
    topic = m.new_response_topic("t")
    assert topic.startswith("t_") and len(topic) == 2 + 32  # 128 bits of hex
    assert m.new_response_topic("t") != topic


def test_reference_integer_context_is_accepted():
    header = m.parse_request_header(
        {"response_topic": "r", "requestContext": 0, "messageType": "request"}
    )
    assert header.request_context == "0"


@pytest.mark.parametrize(
    ("props", "missing"),
    [
        ({}, "response_topic"),
        (
            {"response_topic": "", "requestContext": "1", "messageType": "r"},
            "response_topic",
        ),
        ({"response_topic": "r", "messageType": "request"}, "requestContext"),
        (
            {"response_topic": "r", "requestContext": True, "messageType": "r"},
            "requestContext",
        ),
        (
            {"response_topic": "r", "requestContext": "1", "messageType": 3},
            "messageType",
        ),
        (
            {"response_topic": ["r"], "requestContext": "1", "messageType": "r"},
            "response_topic",
        ),
    ],
)
def test_invalid_request_header_names_the_property(props, missing):
    with pytest.raises(ProtocolError, match=f"property '{missing}' is missing"):
        m.parse_request_header(props)
