"""BrokerCore: one client cannot stall the others; hostile JSON gets a clear error."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dasf_geo.broker.core import BrokerCore, Consumer
from dasf_geo.broker.names import TopicName
from dasf_geo.exceptions import ProtocolError
from tests.broker.test_core import ack, drain, frame


def topic_name(name: str) -> TopicName:
    return TopicName(False, "public", "default", name)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fill(core: BrokerCore, name: str, size: int) -> tuple[object, Consumer]:
    """A topic whose consumer reads everything and never acks, filled up."""
    consumer = core.subscribe(topic_name(name), "hog", receiver_queue_size=100_000)
    topic = core.add_producer(topic_name(name))
    while not core.is_full(topic):
        result = json.loads(core.publish(topic, frame(b"h" * size)))
        assert result["result"] == "ok"
        drain(core, consumer)
    return topic, consumer


# --- 3. isolation -----------------------------------------------------------------


def test_a_full_broker_pauses_only_the_topics_that_fill_it():
    core = BrokerCore(
        max_topic_bytes=20_000, max_total_bytes=64_000, max_inflight_bytes=20_000
    )
    assert core.fair_share_bytes == 2000 and core.ceiling_bytes == 80_000
    hogs = [fill(core, f"hog{i}", 1000) for i in range(4)]
    assert core.held_bytes >= core.max_total_bytes
    assert all(core.is_full(topic) for topic, _ in hogs)
    # another topic, with a consumer that acks, keeps flowing
    other = core.add_producer(topic_name("rpc"))
    caller = core.subscribe(topic_name("rpc"), "s")
    for i in range(50):
        assert not core.is_full(other)
        ack_frame = json.loads(core.publish(other, frame(b"call %d" % i)))
        assert ack_frame["result"] == "ok"
        (msg,) = drain(core, caller)
        assert base64.b64decode(msg["payload"]) == b"call %d" % i
        assert ack(core, caller, msg)
    assert other.held_bytes == 0


def test_small_topics_pause_at_the_ceiling_and_resume_with_room():
    core = BrokerCore(
        max_topic_bytes=20_000, max_total_bytes=64_000, max_inflight_bytes=20_000
    )
    drained: list[object] = []
    core.on_drain = drained.append
    hogs = [fill(core, f"hog{i}", 1000) for i in range(4)]
    # many small topics, each below the fair share, up to the ceiling
    small = []
    while core.held_bytes < core.ceiling_bytes:
        n = len(small)
        topic = core.add_producer(topic_name(f"small{n}"))
        consumer = core.subscribe(topic_name(f"small{n}"), "s")
        core.publish(topic, frame(b"s" * 1400))
        small.append((topic, consumer))
    fresh = core.add_producer(topic_name("fresh"))
    assert core.is_full(fresh)  # the last resort: everybody waits
    # a hog that acks frees room: the small topics go on
    _, consumer = hogs[0]
    for token in list(consumer.inflight):
        core.consumer_frame(consumer, json.dumps({"messageId": token}).encode())
    assert not core.is_full(fresh)
    assert drained  # the server is told to resume waiting producers


def test_a_clients_consumers_share_its_quota():
    core = BrokerCore(max_inflight_bytes=100_000, max_client_bytes=5000)
    producers = []
    consumers = []
    for name in ("a", "b"):
        consumers.append(
            core.subscribe(
                topic_name(name), "s", receiver_queue_size=1000, quota="token-x"
            )
        )
        producers.append(core.add_producer(topic_name(name)))
    for _ in range(4):
        core.publish(producers[0], frame(b"a" * 1000))
    held_a = drain(core, consumers[0])
    assert len(held_a) == 4
    assert consumers[0].quota is consumers[1].quota
    assert consumers[0].quota.inflight_bytes >= 5000  # type: ignore[union-attr]
    for _ in range(3):
        core.publish(producers[1], frame(b"b" * 1000))
    # the other consumer of the same client gets one message only
    assert len(drain(core, consumers[1])) == 1
    # another client is not limited by it
    stranger = core.subscribe(topic_name("b"), "other", receiver_queue_size=1000)
    core.publish(producers[1], frame(b"c"))
    assert len(drain(core, stranger)) == 1
    # acks free the quota
    for msg in held_a:
        ack(core, consumers[0], msg)
    # (the two "b" messages waiting, and the "c" one: every subscription of
    # topic "b" gets every message)
    assert len(drain(core, consumers[1])) == 3
    core.unsubscribe(consumers[0])
    core.unsubscribe(consumers[1])
    assert core._quotas == {}


def test_a_stalled_consumer_is_disconnected_and_its_messages_redelivered():
    clock = Clock()
    core = BrokerCore(max_inflight_bytes=5000, stall_timeout=30, clock=clock)
    name = topic_name("t")
    reasons: list[str] = []
    hog = core.subscribe(
        name, "s", "Shared", receiver_queue_size=1000, disconnect=reasons.append
    )
    topic = core.add_producer(name)
    for _ in range(8):
        core.publish(topic, frame(b"m" * 1000))
    held = drain(core, hog)
    assert hog.inflight_bytes >= 5000
    core.tick()
    clock.now = 29.0
    core.tick()
    assert not hog.closed and not reasons
    clock.now = 30.5
    core.tick()
    assert hog.closed
    assert reasons == [
        f"held {hog_bytes(held)} bytes unacked for 30 s without acking any; they "
        "go back to the subscription"
    ]
    # the non-persistent subscription left with its only consumer
    assert core.held_bytes == 0


def hog_bytes(messages: list[dict]) -> int:
    return sum(
        len(m["payload"]) + len(json.dumps(m["properties"], separators=(",", ":")))
        for m in messages
    )


def test_stalled_messages_go_to_another_consumer_with_a_redelivery_count():
    clock = Clock()
    core = BrokerCore(max_inflight_bytes=3000, stall_timeout=10, clock=clock)
    name = topic_name("t")
    hog = core.subscribe(name, "s", "Shared", receiver_queue_size=1000)
    topic = core.add_producer(name)
    for i in range(4):
        core.publish(topic, frame(b"%d" % i + b"m" * 999))
    assert len(drain(core, hog)) == 3  # the byte limit stops the 4th
    good = core.subscribe(name, "s", "Shared", receiver_queue_size=1000)
    got = drain(core, good)
    assert len(got) == 1
    ack(core, good, got[0])
    core.tick()
    clock.now = 11.0
    core.tick()
    assert hog.closed
    redelivered = drain(core, good)
    assert [m["redeliveryCount"] for m in redelivered] == [1, 1, 1]
    assert sorted(base64.b64decode(m["payload"])[:1] for m in redelivered) == [
        b"0",
        b"1",
        b"2",
    ]


def test_while_the_broker_is_full_holding_a_fair_share_is_a_stall():
    """A hog's topic waits at the fair share, below the hog's own limit: it is
    still cut off after the stall timeout while the broker is full."""
    clock = Clock()
    core = BrokerCore(
        max_topic_bytes=20_000,
        max_total_bytes=64_000,
        max_inflight_bytes=40_000,
        stall_timeout=10,
        clock=clock,
    )
    reasons: list[str] = []
    hogs = [fill(core, f"hog{i}", 1000) for i in range(4)]
    for _, consumer in hogs:
        consumer.disconnect = reasons.append
    assert all(c.inflight_bytes < 40_000 for _, c in hogs)
    core.tick()
    clock.now = 11
    core.tick()
    assert all(c.closed for _, c in hogs)
    assert len(reasons) == 4 and core.held_bytes == 0


def test_without_memory_pressure_a_consumer_below_its_limit_stays():
    clock = Clock()
    core = BrokerCore(
        max_topic_bytes=20_000, max_inflight_bytes=40_000, stall_timeout=10, clock=clock
    )
    _, consumer = fill(core, "big", 1000)  # the topic limit stops it first
    assert consumer.inflight_bytes < 40_000
    core.tick()
    clock.now = 1000
    core.tick()
    assert not consumer.closed


def test_consumers_that_ack_or_hold_little_are_never_disconnected():
    clock = Clock()
    core = BrokerCore(max_inflight_bytes=3000, stall_timeout=10, clock=clock)
    name = topic_name("t")
    slow = core.subscribe(name, "slow", receiver_queue_size=2)  # long requests
    busy = core.subscribe(name, "busy", receiver_queue_size=1000)
    topic = core.add_producer(name)
    for step in range(40):
        core.publish(topic, frame(b"b" * 1000))
        msgs = drain(core, busy)
        drain(core, slow)
        if step % 3 == 0 and busy.inflight:  # acks now and then
            for token in list(busy.inflight)[:2]:
                core.consumer_frame(busy, json.dumps({"messageId": token}).encode())
        del msgs
        clock.now += 3
        core.tick()
    assert not slow.closed and not busy.closed


def test_no_stall_limit_when_switched_off():
    clock = Clock()
    core = BrokerCore(max_inflight_bytes=1000, stall_timeout=None, clock=clock)
    hog = core.subscribe(topic_name("t"), "s")
    topic = core.add_producer(topic_name("t"))
    core.publish(topic, frame(b"x" * 2000))
    drain(core, hog)
    clock.now = 1e6
    core.tick()
    assert not hog.closed


# --- 5. and 6. hostile JSON -------------------------------------------------------

DEEP = b"[" * 5000 + b"]" * 5000


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (
            b'{"payload": "", "properties": ' + b'{"a":' * 100 + b"1" + b"}" * 101,
            "the message nests arrays and objects more than 64 levels deep",
        ),
        (
            b'{"payload": "", "context": ' + DEEP + b"}",
            "the message nests arrays and objects more than 64 levels deep",
        ),
        (DEEP, "the message nests arrays and objects more than 64 levels deep"),
        (
            b'{"payload": "", "properties": {"x": NaN}}',
            "the message is not standard JSON: NaN is not a JSON number",
        ),
        (
            b'{"payload": "", "context": Infinity}',
            "the message is not standard JSON: Infinity is not a JSON number",
        ),
        (
            b'{"payload": "", "properties": {"x": [-Infinity]}}',
            "the message is not standard JSON: -Infinity is not a JSON number",
        ),
        (
            b'{"payload": "aGk=", "properties": {"x": 1e999}}',
            "the message is not standard JSON: the number 1e999 is too large for "
            "a float",
        ),
    ],
)
def test_deep_or_non_standard_json_is_refused_with_a_clear_error(raw, error):
    core = BrokerCore()
    consumer = core.subscribe(topic_name("t"), "s")
    topic = core.add_producer(topic_name("t"))
    result = json.loads(core.publish(topic, raw))
    assert result == {"result": "send-error:3", "errorMsg": error}
    assert drain(core, consumer) == []
    # the broker goes on
    assert json.loads(core.publish(topic, frame()))["result"] == "ok"


def test_sixty_four_levels_are_accepted():
    core = BrokerCore()
    consumer = core.subscribe(topic_name("t"), "s")
    topic = core.add_producer(topic_name("t"))
    nested = b'{"a":' * 62 + b"1" + b"}" * 62  # 64 levels with the two above
    raw = b'{"payload": "", "properties": {"deep": ' + nested + b"}}"
    assert json.loads(core.publish(topic, raw))["result"] == "ok"
    (msg,) = drain(core, consumer)
    assert json.dumps(msg["properties"]["deep"]).count("{") == 62


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (DEEP, "the consumer frame nests arrays and objects more than 64 levels deep"),
        (
            b'{"messageId": "x", "type": NaN}',
            "the consumer frame is not standard JSON: NaN is not a JSON number",
        ),
    ],
)
def test_hostile_consumer_frames_raise_protocol_errors(raw, error):
    core = BrokerCore()
    consumer = core.subscribe(topic_name("t"), "s")
    with pytest.raises(ProtocolError) as info:
        core.consumer_frame(consumer, raw)
    assert str(info.value) == error


def test_hostile_status_pings_get_a_result():
    core = BrokerCore()
    assert json.loads(core.status_ping(DEEP, lambda name: True)) == {
        "result": "send-error:3",
        "errorMsg": "the message nests arrays and objects more than 64 levels deep",
    }
    core.add_producer(TopicName(False, "public", "default", "svc"))
    deep_info = json.dumps({"a": json.loads("[" * 70 + "]" * 70)})
    raw = json.dumps(
        {
            "payload": "",
            "properties": {
                "source_topic": "svc",
                "messageType": "response",
                "api_info": deep_info,
            },
        }
    ).encode()
    assert json.loads(core.status_ping(raw, lambda name: True))["result"] == (
        "the api_info property is not JSON text"
    )


# --- the invariants hold with quotas and stalls -----------------------------------

steps = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.integers(0, 2)),
        st.tuples(st.just("subscribe"), st.integers(0, 2)),
        st.tuples(st.just("unsubscribe"), st.integers(0, 5)),
        st.tuples(st.just("send"), st.integers(0, 5)),
        st.tuples(st.just("ack"), st.integers(0, 5)),
        st.tuples(st.just("tick"), st.integers(1, 20)),
    ),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_quotas_and_stalls_keep_the_books_straight(actions):
    clock = Clock()
    core = BrokerCore(
        max_inflight_bytes=400,
        max_client_bytes=700,
        max_topic_bytes=2000,
        max_total_bytes=3000,
        stall_timeout=10,
        clock=clock,
    )
    names = [topic_name(f"t{i}") for i in range(3)]
    topics = [core.add_producer(n) for n in names]
    consumers: list[Consumer] = []
    received: dict[int, list[dict]] = {}
    for action, arg in actions:
        live = [c for c in consumers if not c.closed]
        if action == "publish":
            core.publish(topics[arg], frame(b"p" * 100))
        elif action == "subscribe":
            c = core.subscribe(
                names[arg], "s", "Shared", receiver_queue_size=5, quota="client"
            )
            consumers.append(c)
            received[c.id] = []
        elif action == "tick":
            clock.now += arg
            core.tick()
        elif not live:
            continue
        else:
            c = live[arg % len(live)]
            if action == "unsubscribe":
                core.unsubscribe(c)
            elif action == "send":
                received[c.id] += drain(core, c)
            elif received[c.id]:
                ack(core, c, received[c.id].pop(0))
        live = [c for c in consumers if not c.closed]
        quota = live[0].quota if live else None
        if quota is not None:
            assert quota.inflight_bytes == sum(c.inflight_bytes for c in live)
            assert quota.consumers == live
        for c in live:
            assert c.inflight_bytes == sum(e.message.size for e in c.inflight.values())
        assert core.held_bytes == sum(t.held_bytes for t in topics)
        assert core.held_bytes < core.ceiling_bytes + 2000
    for c in consumers:
        core.unsubscribe(c)
    assert core._quotas == {}
    assert core.held_bytes == 0
