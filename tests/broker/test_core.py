"""BrokerCore without sockets: frames in, acks and deliveries out."""

from __future__ import annotations

import base64
import json

import pytest

from dasf_geo.broker.core import KEY_AFFINITY, BrokerCore, SubscribeError
from dasf_geo.broker.names import TopicName
from dasf_geo.broker.store import MessageStore
from dasf_geo.exceptions import ProtocolError

T = TopicName(False, "public", "default", "t")
P = TopicName(True, "public", "default", "p")


def frame(payload: bytes = b"hi", props=None, context=None, **extra) -> bytes:
    obj = {"payload": base64.b64encode(payload).decode(), **extra}
    if props is not None:
        obj["properties"] = props
    if context is not None:
        obj["context"] = context
    return json.dumps(obj).encode()


def drain(core: BrokerCore, consumer) -> list[dict]:
    out = []
    while (f := core.next_frame(consumer)) is not None:
        out.append(json.loads(f))
    return out


def ack(core, consumer, msg, kind=None):
    obj = {"messageId": msg["messageId"]}
    if kind:
        obj["type"] = kind
    return core.consumer_frame(consumer, json.dumps(obj).encode())


def test_publish_is_acked_and_delivered_with_pulsar_fields():
    core = BrokerCore()
    c = core.subscribe(T, "s")
    topic = core.add_producer(T)
    answer = json.loads(core.publish(topic, frame(b"x", {"k": "v"}, "ctx-1")))
    assert answer["result"] == "ok" and answer["context"] == "ctx-1"
    assert isinstance(answer["messageId"], str) and answer["messageId"]
    [msg] = drain(core, c)
    assert base64.b64decode(msg["payload"]) == b"x"
    assert msg["properties"] == {"k": "v"}
    assert msg["redeliveryCount"] == 0
    assert msg["context"] == "ctx-1"
    assert msg["publishTime"].endswith("+00:00")
    assert ack(core, c, msg) is True
    assert core.held_bytes == 0


def test_integer_context_is_echoed_as_integer():
    # demessaging's client sends an int context and reads int(ack["context"])
    core = BrokerCore()
    topic = core.add_producer(T)
    answer = json.loads(core.publish(topic, frame(context=7)))
    assert answer == {"result": "ok", "messageId": answer["messageId"], "context": 7}


def test_empty_payload_is_accepted():
    core = BrokerCore()
    c = core.subscribe(T, "s")
    topic = core.add_producer(T)
    f = json.dumps({"payload": "", "properties": {"messageType": "pong"}}).encode()
    assert json.loads(core.publish(topic, f))["result"] == "ok"
    assert drain(core, c)[0]["payload"] == ""


@pytest.mark.parametrize(
    ("raw", "result", "error"),
    [
        (b"not json", "send-error:3", "the message is not valid JSON: Expecting value"),
        (b"[1, 2]", "send-error:3", "the message must be a JSON object, got list"),
        (b'"text"', "send-error:3", "the message must be a JSON object, got str"),
        (b"\xff\xfe", "send-error:3", "the message is not valid JSON"),
        (
            b'{"context": "c"}',
            "send-error:7",
            "the message has no 'payload': send the payload as a base64 string",
        ),
        (
            b'{"payload": 12, "context": "c"}',
            "send-error:7",
            "the 'payload' must be a base64 string, got int",
        ),
        (
            b'{"payload": "not base64!", "context": "c"}',
            "send-error:7",
            "the payload is not valid base64",
        ),
        (
            b'{"payload": "abc", "context": "c"}',
            "send-error:7",
            "the payload is not valid base64",
        ),
        (
            '{"payload": "é==", "context": "c"}'.encode(),
            "send-error:7",
            "the payload is not valid base64: it contains non-ASCII characters",
        ),
        (
            b'{"payload": "aGk=", "properties": [1], "context": "c"}',
            "send-error:3",
            "the 'properties' must be a JSON object, got list",
        ),
        (
            b'{"payload": "aGk=", "key": 5, "context": "c"}',
            "send-error:3",
            "the 'key' must be a string, got int",
        ),
    ],
)
def test_bad_frames_get_send_errors_and_nothing_is_delivered(raw, result, error):
    core = BrokerCore()
    c = core.subscribe(T, "s")
    topic = core.add_producer(T)
    answer = json.loads(core.publish(topic, raw))
    assert answer["result"] == result
    assert answer["errorMsg"].startswith(error)
    if b'"context"' in raw:
        assert answer["context"] == "c"
    assert drain(core, c) == []
    assert core.held_bytes == 0


def test_payload_with_escaped_slash_takes_the_slow_path():
    core = BrokerCore()
    c = core.subscribe(T, "s")
    topic = core.add_producer(T)
    f = b'{"properties": {"payload": "nested"}, "payload": "YS9i\\/w=="}'
    assert json.loads(core.publish(topic, f))["result"] == "ok"
    [msg] = drain(core, c)
    assert msg["payload"] == "YS9i/w=="
    assert msg["properties"] == {"payload": "nested"}


def test_no_subscription_drops_the_message():
    core = BrokerCore()
    topic = core.add_producer(T)
    assert json.loads(core.publish(topic, frame()))["result"] == "ok"
    c = core.subscribe(T, "late")
    assert drain(core, c) == []


def test_every_subscription_gets_every_message():
    core = BrokerCore()
    a = core.subscribe(T, "a")
    b = core.subscribe(T, "b")
    topic = core.add_producer(T)
    core.publish(topic, frame(b"1"))
    assert len(drain(core, a)) == 1 and len(drain(core, b)) == 1


def test_exclusive_refuses_a_second_consumer():
    core = BrokerCore()
    core.subscribe(T, "s", "Exclusive")
    with pytest.raises(SubscribeError) as info:
        core.subscribe(T, "s", "Exclusive")
    assert info.value.status == 409
    assert str(info.value) == (
        "Exclusive consumer is already connected to subscription 's' of topic 't': "
        "use another subscription name or subscriptionType=Shared"
    )
    with pytest.raises(SubscribeError, match="Exclusive consumer is already"):
        core.subscribe(T, "s", "Shared")


def test_type_mismatch_is_refused():
    core = BrokerCore()
    core.subscribe(T, "s", "Shared")
    with pytest.raises(SubscribeError) as info:
        core.subscribe(T, "s", "Failover")
    assert str(info.value) == (
        "subscription 's' of topic 't' is of type Shared; connect with "
        "subscriptionType=Shared or use another subscription name"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"subscription_type": "Key_Shared"},
            "unsupported subscriptionType 'Key_Shared': use Exclusive, Shared, "
            "Failover",
        ),
        (
            {"receiver_queue_size": 0},
            "receiverQueueSize must be between 1 and 100000, got 0",
        ),
        (
            {"receiver_queue_size": 10**9},
            "receiverQueueSize must be between 1 and 100000, got 1000000000",
        ),
    ],
)
def test_bad_subscribe_arguments(kwargs, message):
    core = BrokerCore()
    with pytest.raises(SubscribeError) as info:
        core.subscribe(T, "s", **kwargs)
    assert info.value.status == 400 and str(info.value) == message


def test_shared_spreads_and_redelivers_unacked_of_a_leaving_consumer():
    core = BrokerCore()
    a = core.subscribe(T, "s", "Shared")
    b = core.subscribe(T, "s", "Shared")
    topic = core.add_producer(T)
    for i in range(4):
        core.publish(topic, frame(str(i).encode()))
    got_a, got_b = drain(core, a), drain(core, b)
    assert len(got_a) == 2 and len(got_b) == 2
    ack(core, b, got_b[0])
    core.unsubscribe(b)
    again = drain(core, a)
    assert [base64.b64decode(m["payload"]) for m in again] == [
        base64.b64decode(got_b[1]["payload"])
    ]
    assert again[0]["redeliveryCount"] == 1
    # the redelivered message has a fresh id; the old one is unknown now
    assert again[0]["messageId"] != got_b[1]["messageId"]


def test_failover_sends_to_the_oldest_then_fails_over():
    core = BrokerCore()
    a = core.subscribe(T, "s", "Failover")
    b = core.subscribe(T, "s", "Failover")
    topic = core.add_producer(T)
    core.publish(topic, frame(b"1"))
    core.publish(topic, frame(b"2"))
    assert len(drain(core, a)) == 2 and drain(core, b) == []
    core.unsubscribe(a)
    redelivered = drain(core, b)
    assert [base64.b64decode(m["payload"]) for m in redelivered] == [b"1", b"2"]
    assert all(m["redeliveryCount"] == 1 for m in redelivered)


def test_unsent_deliveries_do_not_count_as_redelivered():
    core = BrokerCore()
    a = core.subscribe(T, "s", "Shared")
    topic = core.add_producer(T)
    core.publish(topic, frame(b"1"))
    b = core.subscribe(T, "s", "Shared")
    core.unsubscribe(a)  # never sent: outbox still held it
    [msg] = drain(core, b)
    assert msg["redeliveryCount"] == 0


def test_receiver_queue_size_bounds_unacked_messages():
    core = BrokerCore()
    c = core.subscribe(T, "s", receiver_queue_size=2)
    topic = core.add_producer(T)
    for i in range(5):
        core.publish(topic, frame(str(i).encode()))
    first = drain(core, c)
    assert len(first) == 2
    ack(core, c, first[0])
    second = drain(core, c)
    assert len(second) == 1
    assert base64.b64decode(second[0]["payload"]) == b"2"


def test_inflight_bytes_bound_but_one_message_always_fits():
    core = BrokerCore(max_inflight_bytes=1000)
    c = core.subscribe(T, "s")
    topic = core.add_producer(T)
    core.publish(topic, frame(b"x" * 3000))
    core.publish(topic, frame(b"y"))
    assert len(drain(core, c)) == 1


def test_negative_ack_redelivers_with_count():
    core = BrokerCore()
    c = core.subscribe(T, "s")
    topic = core.add_producer(T)
    core.publish(topic, frame(b"1"))
    [msg] = drain(core, c)
    assert ack(core, c, msg, "negativeAcknowledge") is True
    [again] = drain(core, c)
    assert again["redeliveryCount"] == 1
    assert base64.b64decode(again["payload"]) == b"1"


def test_pull_mode_waits_for_permits():
    core = BrokerCore()
    c = core.subscribe(T, "s", pull_mode=True)
    topic = core.add_producer(T)
    for i in range(3):
        core.publish(topic, frame(str(i).encode()))
    assert drain(core, c) == []
    core.consumer_frame(c, b'{"type": "permit", "permitMessages": 2}')
    assert len(drain(core, c)) == 2


def test_acks_from_another_consumer_or_unknown_ids_are_ignored():
    core = BrokerCore()
    a = core.subscribe(T, "s", "Shared")
    b = core.subscribe(T, "s", "Shared")
    topic = core.add_producer(T)
    core.publish(topic, frame(b"1"))
    [msg] = drain(core, a) or drain(core, b)
    holder, other = (a, b) if a.inflight else (b, a)
    assert ack(core, other, msg) is False
    assert holder.inflight
    assert ack(core, holder, {"messageId": "guess"}) is False
    assert ack(core, holder, msg) is True
    assert ack(core, holder, msg) is False  # a duplicate ack


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"nope", "the consumer frame is not valid JSON"),
        (b"[]", "the consumer frame must be a JSON object, got list"),
        (b"{}", "the consumer frame has no 'messageId' string"),
        (b'{"messageId": 5}', "the consumer frame has no 'messageId' string"),
        (b'{"type": "bogus"}', "unknown frame type 'bogus'"),
        (
            b'{"type": "permit", "permitMessages": -1}',
            "'permitMessages' must be a positive integer, got -1",
        ),
        (
            b'{"type": "permit", "permitMessages": "5"}',
            "'permitMessages' must be a positive integer, got '5'",
        ),
    ],
)
def test_bad_consumer_frames_raise(raw, message):
    core = BrokerCore()
    c = core.subscribe(T, "s")
    with pytest.raises(ProtocolError) as info:
        core.consumer_frame(c, raw)
    assert str(info.value).startswith(message)


def test_full_topic_pauses_and_drains():
    core = BrokerCore(max_topic_bytes=6000)
    drained = []
    core.on_drain = drained.append
    c = core.subscribe(T, "s", receiver_queue_size=1)
    topic = core.add_producer(T)
    for _ in range(3):
        core.publish(topic, frame(b"x" * 2000))
    assert core.is_full(topic)
    [msg] = drain(core, c)
    ack(core, c, msg)
    assert not core.is_full(topic)
    assert drained == [topic]


def test_leaving_last_consumer_drops_non_persistent_messages():
    core = BrokerCore()
    c = core.subscribe(T, "s", receiver_queue_size=1)
    topic = core.add_producer(T)
    core.publish(topic, frame(b"1"))
    core.publish(topic, frame(b"2"))
    core.unsubscribe(c)
    assert core.held_bytes == 0 and topic.held_bytes == 0
    assert "s" not in topic.subscriptions


def test_topics_are_forgotten_when_unused():
    core = BrokerCore()
    c = core.subscribe(T, "s")
    topic = core.add_producer(T)
    core.remove_producer(topic)
    core.unsubscribe(c)
    assert core.topics == {}


def test_persistent_messages_survive_a_restart(tmp_path):
    store = MessageStore(tmp_path / "b.sqlite")
    core = BrokerCore(store)
    c = core.subscribe(P, "durable", "Shared")
    topic = core.add_producer(P)
    for i in range(3):
        core.publish(topic, frame(str(i).encode(), {"i": i}, context=f"c{i}"))
    msgs = drain(core, c)
    ack(core, c, msgs[0])
    store.close()  # the broker dies without the consumer acking the rest

    store2 = MessageStore(tmp_path / "b.sqlite")
    core2 = BrokerCore(store2)
    assert core2.topics[P.full].subscriptions["durable"].durable
    c2 = core2.subscribe(P, "durable", "Shared")
    again = drain(core2, c2)
    assert [m["properties"]["i"] for m in again] == [1, 2]
    assert [m["context"] for m in again] == ["c1", "c2"]
    for m in again:
        ack(core2, c2, m)
    # a new message continues the sequence
    t2 = core2.add_producer(P)
    core2.publish(t2, frame(b"3"))
    assert len(drain(core2, c2)) == 1
    store2.close()
    core3 = BrokerCore(MessageStore(tmp_path / "b.sqlite"))
    c3 = core3.subscribe(P, "durable", "Shared")
    assert [base64.b64decode(m["payload"]) for m in drain(core3, c3)] == [b"3"]


def test_persistent_subscription_keeps_messages_without_consumers(tmp_path):
    store = MessageStore(tmp_path / "b.sqlite")
    core = BrokerCore(store)
    c = core.subscribe(P, "d")
    core.unsubscribe(c)
    topic = core.add_producer(P)
    core.publish(topic, frame(b"while away"))
    c = core.subscribe(P, "d")
    [msg] = drain(core, c)
    assert base64.b64decode(msg["payload"]) == b"while away"
    assert core.delete_subscription(P, "other") is False
    with pytest.raises(SubscribeError, match="has connected consumers"):
        core.delete_subscription(P, "d")
    core.unsubscribe(c)
    assert core.delete_subscription(P, "d") is True
    assert MessageStore(tmp_path / "b.sqlite").subscriptions() == []


def test_status_ping_records_pong_and_api_info():
    core = BrokerCore()
    backend = core.subscribe(TopicName(False, "public", "default", "svc"), "b")
    pong = json.dumps(
        {
            "payload": "",
            "context": "1",
            "properties": {"messageType": "pong", "source_topic": "svc"},
        }
    ).encode()
    answer = json.loads(core.status_ping(pong, lambda name: True))
    assert answer["result"] == "ok" and answer["context"] == "1"
    api = json.dumps(
        {
            "payload": "",
            "properties": {
                "messageType": "response",
                "source_topic": "svc",
                "api_info": json.dumps({"functions": []}),
            },
        }
    ).encode()
    assert json.loads(core.status_ping(api, lambda name: True))["result"] == "ok"
    [entry] = core.stats()["topics"]
    assert entry["name"] == "svc" and entry["last_pong"] and entry["api_info"]
    refused = json.loads(core.status_ping(pong, lambda name: False))
    assert refused["result"] == "User is not allowed to publish to this topic"
    unknown = json.loads(
        core.status_ping(pong.replace(b'"svc"', b'"nobody"'), lambda name: True)
    )
    assert unknown["result"] == "User is not allowed to publish to this topic"
    assert [t["name"] for t in core.stats()["topics"]] == ["svc"]
    missing = json.loads(core.status_ping(b'{"payload": ""}', lambda n: True))
    assert missing["result"] == "No source topic found."
    bad = json.loads(core.status_ping(b"{", lambda n: True))
    assert bad["result"] == "send-error:3"
    core.unsubscribe(backend)
    assert core.stats()["topics"] == []


def test_stats_show_backlog_and_consumers():
    core = BrokerCore()
    c = core.subscribe(T, "s", receiver_queue_size=1)
    topic = core.add_producer(T)
    core.publish(topic, frame(b"1"))
    core.publish(topic, frame(b"2"))
    [entry] = core.stats()["topics"]
    assert entry["producers"] == 1 and entry["published"] == 2
    assert entry["subscriptions"] == [
        {
            "name": "s",
            "type": "Exclusive",
            "durable": False,
            "consumers": 1,
            "backlog": 2,
            "unacked": 1,
        }
    ]
    assert core.counts() == {
        "topics": 1,
        "producers": 1,
        "consumers": 1,
        "held_bytes": topic.held_bytes,
    }
    assert c.inflight


def test_shared_keeps_messages_of_one_key_on_one_consumer():
    clock = FakeClock()
    core = BrokerCore(max_inflight_bytes=400, clock=clock)  # room for 3 k1 messages
    a = core.subscribe(T, "s", "Shared", receiver_queue_size=3)
    b = core.subscribe(T, "s", "Shared", receiver_queue_size=3)
    topic = core.add_producer(T)
    for i in range(4):
        core.publish(topic, frame(f"k1-{i}".encode() * 30, key="k1"))
    core.publish(topic, frame(b"k2-0", key="k2"))
    got_a, got_b = drain(core, a), drain(core, b)
    holder, holder_msgs = (a, got_a) if got_a[0]["key"] == "k1" else (b, got_b)
    other_msgs = got_b if holder is a else got_a
    # k1 sticks to one consumer until its byte bound; k2 went to the other
    assert [m["key"] for m in holder_msgs] == ["k1"] * 3
    assert [m["key"] for m in other_msgs] == ["k2"]
    # the 4th k1 message waits for the holder, not for the other consumer
    ack(core, holder, holder_msgs[0])
    [fourth] = drain(core, holder)
    assert base64.b64decode(fourth["payload"]) == b"k1-3" * 30
    # once every k1 message is acked, the key stays with its holder for
    # KEY_AFFINITY seconds (more fragments may follow), then it is free
    for m in [*holder_msgs[1:], fourth]:
        ack(core, holder, m)
    assert holder.subscription.key_owners[b'"k1"'] == (holder, 0)
    clock.now += KEY_AFFINITY - 1
    core.tick()
    assert b'"k1"' in holder.subscription.key_owners
    clock.now += 1
    core.tick()
    assert b'"k1"' not in holder.subscription.key_owners
    assert not holder.subscription.key_released


def test_fragments_stick_to_a_consumer_that_acks_each_on_arrival():
    # a backend acks each fragment of a large request as it arrives; the
    # next fragment must still reach it, not the other backend
    core = BrokerCore()
    a = core.subscribe(T, "s", "Shared", receiver_queue_size=16)
    b = core.subscribe(T, "s", "Shared", receiver_queue_size=16)
    topic = core.add_producer(T)
    got: dict[str, list[int]] = {"a": [], "b": []}
    for i in range(10):
        core.publish(topic, frame(b"f" * 100, {"i": i}, key="transfer-1"))
        for name, consumer in (("a", a), ("b", b)):
            for m in drain(core, consumer):
                got[name].append(int(m["properties"]["i"]))
                ack(core, consumer, m)
    assert sorted(got["a"] + got["b"]) == list(range(10))
    assert got["a"] == [] or got["b"] == [], got


def test_rest_of_a_held_key_is_bounded_by_bytes_not_count():
    # a backend that acks a request's fragments after replying must still
    # get every fragment of it, whatever its receiverQueueSize
    for sub_type in ("Exclusive", "Shared", "Failover"):
        core = BrokerCore(max_inflight_bytes=10_000)
        c = core.subscribe(T, "s", sub_type, receiver_queue_size=2)
        topic = core.add_producer(T)
        for i in range(5):
            core.publish(topic, frame(b"f" * 100, key="transfer-1", i=i))
        core.publish(topic, frame(b"other", key="transfer-2"))
        core.publish(topic, frame(b"unkeyed"))
        got = drain(core, c)
        assert [m["key"] for m in got] == ["transfer-1"] * 5, sub_type
        # the byte bound still holds
        for _ in range(100):
            core.publish(topic, frame(b"f" * 100, key="transfer-1"))
        assert c.inflight_bytes < 10_000 + 200


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_ack_timeout_redelivers_unacked_messages():
    clock = FakeClock()
    core = BrokerCore(clock=clock)
    c = core.subscribe(T, "s", ack_timeout=30.0)
    topic = core.add_producer(T)
    core.publish(topic, frame(b"1"))
    core.publish(topic, frame(b"2"))
    first = drain(core, c)
    ack(core, c, first[1])
    clock.now = 29.0
    core.tick()
    assert drain(core, c) == []
    clock.now = 30.0
    core.tick()
    [again] = drain(core, c)
    assert base64.b64decode(again["payload"]) == b"1"
    assert again["redeliveryCount"] == 1
    assert ack(core, c, first[0]) is False  # the old id is gone
    assert ack(core, c, again) is True
    clock.now = 100.0
    core.tick()
    assert drain(core, c) == [] and core.held_bytes == 0


def test_no_ack_timeout_by_default():
    clock = FakeClock()
    core = BrokerCore(clock=clock)
    c = core.subscribe(T, "s")
    topic = core.add_producer(T)
    core.publish(topic, frame(b"1"))
    drain(core, c)
    clock.now = 10**6
    core.tick()
    assert drain(core, c) == []


def test_idle_durable_subscriptions_expire(tmp_path):
    clock = FakeClock()
    core = BrokerCore(
        MessageStore(tmp_path / "b.sqlite"), subscription_expiry=60, clock=clock
    )
    c = core.subscribe(P, "old")
    keep = core.subscribe(P, "active")
    core.unsubscribe(c)
    topic = core.add_producer(P)
    core.publish(topic, frame(b"1"))
    clock.now = 59.0
    core.tick()
    assert "old" in core.topics[P.full].subscriptions
    clock.now = 60.0
    core.tick()
    assert set(core.topics[P.full].subscriptions) == {"active"}
    assert keep.inflight
    assert core.store is not None
    assert [name for _, name, _ in core.store.subscriptions()] == ["active"]


def test_persistent_topic_without_store_is_not_durable():
    core = BrokerCore()
    c = core.subscribe(P, "s")
    assert not c.subscription.durable
    core.unsubscribe(c)
    assert core.topics == {}


# --- the cheap per-message helpers give what the json module gives ---------------


@pytest.mark.parametrize(
    "value",
    [
        "7",
        'é ☃ "quoted" \\ \n \ud800',
        "",
        0,
        -12,
        2**70,
        True,
        None,
        1.5,
        float("nan"),
        [1, "a", {"b": None}],
        {"messageType": "request", "n": 1, "nested": {"x": [1.0, False]}},
        {},
    ],
)
def test_dump_is_compact_json_dumps(value):
    from dasf_geo.broker.core import _dump

    assert _dump(value) == json.dumps(value, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    "raw",
    [
        b'{"payload": "aGk=", "context": 1}',
        '{"a": "é"}'.encode("utf-16"),
        '{"a": "é"}'.encode("utf-16-le"),
        '{"a": "é"}'.encode("utf-8-sig"),
        b'{"a": "\xed\xa0\x80"}',  # a lone surrogate, as json.loads reads it
        b"[1, 2]",
        b'  {"a": 1}  ',
    ],
)
def test_loads_reads_what_json_loads_reads(raw):
    from dasf_geo.protocol.messages import loads_json as _loads

    assert _loads(raw) == json.loads(raw)


@pytest.mark.parametrize("raw", [b'{"a": 1} x', b"{\xff}", b"{", b'{"a":\x001}'])
def test_loads_fails_as_json_loads_does(raw):
    from dasf_geo.protocol.messages import loads_json as _loads

    with pytest.raises((ValueError, UnicodeDecodeError)) as ours:
        _loads(raw)
    with pytest.raises((ValueError, UnicodeDecodeError)) as theirs:
        json.loads(raw)
    assert str(ours.value) == str(theirs.value)


def test_now_iso_matches_datetime_isoformat(monkeypatch):
    from datetime import datetime, timezone

    from dasf_geo.broker import core

    for ns in (0, 1_764_000_000_999_999_999, 1_764_000_001_000_000_000, 1_000_500):
        monkeypatch.setattr(core.time, "time_ns", lambda ns=ns: ns)
        expected = datetime.fromtimestamp(ns // 1000 / 1e6, timezone.utc).isoformat(
            timespec="milliseconds"
        )
        assert core._now_iso() == expected
        assert core._now_iso() == expected  # from the cache


def test_message_ids_are_16_url_safe_characters_and_unique():
    import re

    core = BrokerCore()
    ids = [core._tokens.next() for _ in range(3000)]  # three random blocks
    assert all(re.fullmatch(r"[A-Za-z0-9_\-]{16}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_plain_and_spelled_out_acks_are_the_same():
    core = BrokerCore()
    consumer = core.subscribe(T, "s", receiver_queue_size=10)
    topic = core.add_producer(T)
    for i in range(3):
        core.publish(topic, frame(context=i))
    one, two, three = drain(core, consumer)
    assert core.consumer_frame(
        consumer, f'{{"messageId":"{one["messageId"]}"}}'.encode()
    )
    assert core.consumer_frame(
        consumer, f'{{ "messageId" : "{two["messageId"]}" }}'.encode()
    )
    assert not core.consumer_frame(consumer, b'{"messageId":"unknown"}')
    assert list(consumer.inflight) == [three["messageId"]]
    with pytest.raises(ProtocolError, match="no 'messageId' string"):
        core.consumer_frame(consumer, b'{"messageId":""}')
