"""Property-based fuzz of every parser that reads what a peer sends.

Each parser either returns a result or raises the library's own error
(:class:`~dasf_geo.exceptions.ProtocolError` and its subclasses) — never a
``RecursionError``, ``KeyError``, ``TypeError`` or anything else — and the
broker's answers and deliveries are always standard JSON.

The default run is bounded (a few hundred examples per parser); set
``DASF_GEO_FUZZ_LONG=1`` for a longer one (see docs/reliability.md).
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dasf_geo.broker.core import BrokerCore
from dasf_geo.broker.names import TopicName
from dasf_geo.exceptions import FragmentError, ProtocolError
from dasf_geo.protocol import messages as m
from dasf_geo.protocol.fragments import Reassembler
from dasf_geo.protocol.options import TransferOptions
from dasf_geo.transport._common import GrowingBuffer, buffer_factory

LONG = bool(os.environ.get("DASF_GEO_FUZZ_LONG"))
EXAMPLES = 200
LONG_EXAMPLES = 20_000

T = TopicName(False, "public", "default", "fuzz")

# --- strategies -----------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
KEYS = [
    "payload",
    "properties",
    "context",
    "key",
    "messageId",
    "type",
    "permitMessages",
    "result",
    "errorMsg",
    "redeliveryCount",
    "publishTime",
    "response_topic",
    "requestContext",
    "messageType",
    "fragment",
    "num_fragments",
    "dasfGeoSize",
    "dasfGeoCrc32",
    "dasfGeoTransfer",
    "dasfGeoFragmentSize",
    "dasfGeoMaxSize",
    "dasfGeoCompression",
    "source_topic",
    "api_info",
]
field_values = st.one_of(
    json_values,
    st.sampled_from(["", "aGk=", "not base64!", "ok", "request", "ping", "0"]),
    st.builds(lambda b: base64.b64encode(b).decode(), st.binary(max_size=40)),
)
objects = st.dictionaries(st.sampled_from(KEYS), field_values, max_size=8)


def nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


texts = st.one_of(
    objects.map(lambda o: json.dumps(o)),
    json_values.map(lambda v: json.dumps(v)),
    st.builds(
        lambda o, d: json.dumps({**o, "properties": "§"}).replace('"§"', nested(d)),
        objects,
        st.integers(0, 3000),
    ),
    st.builds(
        lambda o, d: json.dumps({**o, "context": "§"}).replace(
            '"§"', '{"a":' * d + "1" + "}" * d
        ),
        objects,
        st.integers(0, 200),
    ),
    st.sampled_from(
        [
            '{"payload": "", "properties": {"x": NaN}}',
            '{"payload": "", "context": Infinity}',
            '{"payload": "aGk=", "properties": {"x": 1e999}}',
            '{"payload": "aGk=", "properties": {"x": -Infinity}}',
            '{"payload": "aGk=", "properties": {"n": ' + "9" * 5000 + "}}",
            '{"messageId": "x", "type": "permit", "permitMessages": 1e400}',
            '{"payload": "aGk\\u003d"}',
            '{"payload": "aGk=", "payload": 5}',
            "\ufeff{}",
            "{" * 100_000,
        ]
    ),
)
frames = st.one_of(
    texts.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=300),
    st.builds(
        lambda t, pos, junk: (lambda b: b[:pos] + junk + b[pos:])(
            t.encode("utf-8", "surrogatepass")
        ),
        texts,
        st.integers(0, 200),
        st.binary(min_size=1, max_size=5),
    ),
)


def fuzz_settings(test: Any) -> Any:
    return settings(
        max_examples=LONG_EXAMPLES if LONG else EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )(test)


def strict_json(data: bytes) -> Any:
    """Parse ``data`` as a strict JSON parser (a browser) would."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"non-standard JSON number {name} in {data[:200]!r}")

    value = json.loads(data, parse_constant=refuse)
    for number in _numbers(value):
        assert math.isfinite(number), data[:200]
    return value


def _numbers(value: Any) -> Any:
    if isinstance(value, float):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _numbers(item)


# --- the parsers --------------------------------------------------------------


@fuzz_settings
@given(frames)
def test_consumer_messages_parse_or_raise_protocol_error(frame):
    try:
        msg = m.parse_consumer_message(frame)
    except ProtocolError:
        return
    assert isinstance(msg.properties, dict)
    assert isinstance(msg.payload, bytes)


@fuzz_settings
@given(frames)
def test_acks_parse_or_raise_protocol_error(frame):
    try:
        ack = m.parse_ack(frame)
    except ProtocolError:
        return
    assert isinstance(ack.result, str)


@fuzz_settings
@given(frames, st.booleans())
def test_json_objects_parse_or_raise_protocol_error(frame, strict):
    try:
        obj = m.parse_json_object(frame, "frame", strict=strict)
    except ProtocolError as exc:
        assert str(exc).startswith("the frame ")
        return
    assert isinstance(obj, dict)
    if strict:
        strict_json(json.dumps(obj).encode())


@fuzz_settings
@given(objects)
def test_request_envelopes_and_options_raise_protocol_error_only(props):
    try:
        header = m.parse_request_header(props)
    except ProtocolError as exc:
        assert "not a DASF request" in str(exc)
    else:
        assert header.response_topic and header.request_context
    with contextlib.suppress(ProtocolError):
        TransferOptions.from_properties(props)


@fuzz_settings
@given(st.lists(st.tuples(objects, st.binary(max_size=64)), max_size=6))
def test_reassembly_raises_fragment_errors_only_and_holds_what_arrived(messages):
    r = Reassembler(max_size=10_000, buffer_factory=buffer_factory(1 << 20))
    received = 0
    for props, data in messages:
        payload = base64.b64encode(data)
        try:
            r.add("k", props, payload)
        except FragmentError:
            continue
        received += len(data)
        for transfer in r._transfers.values():
            if isinstance(transfer.buffer, GrowingBuffer):
                # memory held is what arrived, never the announced size
                assert transfer.buffer.held <= received


@fuzz_settings
@given(frames)
def test_the_broker_answers_every_producer_frame_with_standard_json(frame):
    core = BrokerCore()
    consumer = core.subscribe(T, "s")
    topic = core.add_producer(T)
    ack = strict_json(core.publish(topic, frame))
    assert isinstance(ack, dict) and isinstance(ack["result"], str)
    if ack["result"] == "ok":
        while (delivery := core.next_frame(consumer)) is not None:
            strict_json(delivery)
    else:
        assert ack["result"].startswith("send-error:")
        assert ack["result"] != "send-error:8"  # reserved for store failures
        assert isinstance(ack["errorMsg"], str) and ack["errorMsg"]


@fuzz_settings
@given(frames)
def test_the_broker_reads_consumer_frames_or_raises_protocol_error(frame):
    core = BrokerCore()
    consumer = core.subscribe(T, "s")
    topic = core.add_producer(T)
    core.publish(topic, b'{"payload": "aGk="}')
    core.next_frame(consumer)
    with contextlib.suppress(ProtocolError):
        core.consumer_frame(consumer, frame)
    assert core.held_bytes >= 0


@fuzz_settings
@given(frames)
def test_the_broker_answers_every_status_ping_with_standard_json(frame):
    core = BrokerCore()
    core.add_producer(TopicName(False, "public", "default", "svc"))
    answer = strict_json(core.status_ping(frame, lambda name: True))
    assert isinstance(answer["result"], str)
