"""Invariants of BrokerCore under random sequences of client actions."""

from __future__ import annotations

import base64
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from dasf_geo.broker.core import BrokerCore, Consumer
from dasf_geo.broker.names import TopicName

T = TopicName(False, "public", "default", "t")

actions = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.sampled_from([None, "k1", "k2"])),
        st.tuples(st.just("subscribe"), st.integers(1, 3)),
        st.tuples(st.just("unsubscribe"), st.integers(0, 5)),
        st.tuples(st.just("send"), st.integers(0, 5)),
        st.tuples(st.just("ack"), st.integers(0, 5)),
        st.tuples(st.just("nack"), st.integers(0, 5)),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(actions, st.sampled_from(["Shared", "Failover", "Exclusive"]))
def test_no_loss_no_duplicates_bounded_state(steps, sub_type):
    core = BrokerCore(max_inflight_bytes=300)
    topic = core.add_producer(T)
    consumers: list[Consumer] = []
    received: dict[int, list[dict]] = {}  # consumer id -> sent, unacked frames
    published: list[int] = []
    acked: list[int] = []
    counter = 0

    def pick(i: int) -> Consumer | None:
        live = [c for c in consumers if not c.closed]
        return live[i % len(live)] if live else None

    for action, arg in steps:
        if action == "publish":
            counter += 1
            frame = {
                "payload": base64.b64encode(b"x" * 50).decode(),
                "properties": {"n": counter},
            }
            if arg is not None:
                frame["key"] = arg
            assert json.loads(core.publish(topic, json.dumps(frame).encode()))[
                "result"
            ] == ("ok")
            if any(not c.closed for c in consumers):
                published.append(counter)
        elif action == "subscribe":
            if sub_type == "Exclusive" and any(not c.closed for c in consumers):
                continue
            c = core.subscribe(T, "s", sub_type, receiver_queue_size=arg)
            consumers.append(c)
            received[c.id] = []
        elif (c := pick(arg)) is None:
            continue
        elif action == "unsubscribe":
            core.unsubscribe(c)
            received[c.id] = []
            if not any(not x.closed for x in consumers):
                # the non-persistent subscription is gone with its messages
                published = [n for n in published if n in acked]
        elif action == "send":
            while (f := core.next_frame(c)) is not None:
                received[c.id].append(json.loads(f))
        elif received[c.id]:
            msg = received[c.id].pop(0)
            ack = {"messageId": msg["messageId"]}
            if action == "nack":
                ack["type"] = "negativeAcknowledge"
            assert core.consumer_frame(c, json.dumps(ack).encode())
            if action == "ack":
                acked.append(msg["properties"]["n"])

        # invariants after every step
        live = [c for c in consumers if not c.closed]
        for c in live:
            assert len(c.inflight) <= c.receiver_queue_size or any(
                e.message.key is not None for e in c.inflight.values()
            )
            assert c.inflight_bytes == sum(e.message.size for e in c.inflight.values())
        in_flight = [e.message.seq for c in live for e in c.inflight.values()]
        assert len(in_flight) == len(set(in_flight)), "a message held twice"
        if sub_type != "Shared":
            assert all(not c.inflight for c in live[1:])
        held = {
            id(e.message): e.message
            for sub in topic.subscriptions.values()
            for e in list(sub.backlog)
            + [x for c in sub.consumers for x in c.inflight.values()]
        }
        assert topic.held_bytes == sum(m.size for m in held.values())
        assert core.held_bytes == topic.held_bytes
    assert len(acked) == len(set(acked)), "a message acked twice"

    # drain: whatever is still owed reaches a consumer, once
    live = [c for c in consumers if not c.closed]
    if not live:
        return
    remaining = set(published) - set(acked)
    for _ in range(len(remaining) + 5):
        for c in live:
            for msg in received[c.id]:
                core.consumer_frame(
                    c, json.dumps({"messageId": msg["messageId"]}).encode()
                )
                remaining.discard(msg["properties"]["n"])
            received[c.id] = []
            while (f := core.next_frame(c)) is not None:
                received[c.id].append(json.loads(f))
    for c in live:
        for msg in received[c.id]:
            remaining.discard(msg["properties"]["n"])
            ack = json.dumps({"messageId": msg["messageId"]}).encode()
            core.consumer_frame(c, ack)
    assert remaining == set()
    # everything delivered is acked: the broker holds nothing any more
    assert core.held_bytes == 0


# --- the JSON-free reading of plain producer frames gives what json gives -------

_simple_texts = st.text(alphabet="abcXYZ09_-:./ ,{}[]", max_size=6)
_odd_texts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6
) | st.sampled_from(['q"uote', "back\\slash", "é", "\x7f", "tab\t"])
_simple_values = _simple_texts | st.integers(-(10**20), 10**20)
_odd_values = (
    _odd_texts
    | st.sampled_from([-0, 1.5, -0.0, 1e100, True, False, None])
    | st.lists(_simple_values, max_size=2)
)


def _often(draw, simple, odd):
    """``simple`` four times in five, else ``odd``."""
    return draw(simple if draw(st.integers(0, 4)) else odd)


@st.composite
def producer_frames(draw) -> bytes:
    payload = _often(
        draw,
        st.sampled_from(["", "aGk=", "aGVsbG8="]),
        st.sampled_from(["aGk", "a\\/b", "***", "é", "aGk=\n"]),
    )
    props = {}
    for _ in range(draw(st.integers(0, 4))):
        name = _often(draw, _simple_texts, _odd_texts)
        props[name] = _often(draw, _simple_values, _odd_values)
    parts = [f'"payload":{json.dumps(payload)}']
    if draw(st.integers(0, 4)):
        text = json.dumps(props, separators=(",", ":"))
        if props and not draw(st.integers(0, 4)):  # a repeated name
            first = json.dumps(next(iter(props)))
            text = text[:-1] + f",{first}:1}}"
        parts.append(f'"properties":{text}')
    if draw(st.integers(0, 4)):
        parts.append(
            f'"context":{json.dumps(_often(draw, _simple_values, _odd_values))}'
        )
    if not draw(st.integers(0, 4)):
        parts.append(f'"key":{json.dumps(draw(_simple_texts))}')
    separator = _often(draw, st.just(","), st.just(", "))
    return ("{" + separator.join(parts) + "}").encode("utf-8")


@settings(max_examples=400, deadline=None)
@given(producer_frames())
def test_plain_frames_read_as_json_reads_them(frame):
    from dasf_geo.broker import frames

    plain = frames._read_plain_frame(frame)
    expected = frames._read_frame(frame)
    if plain is None:
        return
    # the fast path takes only frames whose payload decodes: the checked
    # parser accepts them too, with the same parts and the same bytes
    assert not isinstance(expected, bytes)
    assert expected == plain
    assert frames.read_producer_frame(frame) == expected


def test_plain_shaped_frames_with_escapes_or_bad_base64_take_the_checked_path():
    from dasf_geo.broker import frames

    # "\/" is an escaped "/" in JSON: the payload is "a/8=" once read
    escaped = b'{"payload":"a\\/8=","properties":{}}'
    assert frames._read_plain_frame(escaped) is None
    read = frames.read_producer_frame(escaped)
    assert not isinstance(read, bytes)
    assert bytes(read.payload) == b"a/8="
    assert read.data == b"k\xff"
    for bad in (
        b'{"payload":"not base64!","properties":{},"context":"c"}',
        b'{"payload":"aGk","properties":{}}',  # missing padding
        '{"payload":"aGk\u00e9","properties":{}}'.encode(),
    ):
        assert frames._read_plain_frame(bad) is None
        ack = frames.read_producer_frame(bad)
        assert isinstance(ack, bytes)
        reply = json.loads(ack)
        assert reply["result"] == "send-error:7"
        assert "base64" in reply["errorMsg"]
    assert (
        json.loads(
            frames.read_producer_frame(
                b'{"payload":"not base64!","properties":{},"context":"c"}'
            )
        )["context"]
        == "c"
    )


def test_plain_frames_take_the_fast_path():
    from dasf_geo.broker import frames

    frame = (
        b'{"payload":"aGk=","properties":{"messageType":"request","n":-12,'
        b'"z":0},"context":"7"}'
    )
    read = frames._read_plain_frame(frame)
    assert read == (
        b"aGk=",
        b'{"messageType":"request","n":-12,"z":0}',
        b'"7"',
        None,
        b"hi",
    )
    # the payload is a view into the frame, not a copy
    assert isinstance(read.payload, memoryview)
    assert read.payload.obj is frame
    for other in (
        b'{"payload":"aGk=","properties":{"a":1,"a":2}}',  # repeated name
        b'{"payload":"","properties":{":":"",":":1}}',  # hidden by the values
        b'{"payload":"aGk=","properties":{"a":1.5}}',  # a float
        b'{"payload":"aGk=", "properties":{}}',  # not compact
        b'{"payload":"aGk=","properties":{"a":"\\u00e9"}}',  # an escape
        b'{"payload":"aGk=","properties":{},"key":"k"}',  # a key
    ):
        assert frames._read_plain_frame(other) is None
        assert not isinstance(frames._read_frame(other), bytes)
