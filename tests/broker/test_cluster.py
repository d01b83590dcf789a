"""Broker fronts over NATS JetStream, driven by a raw ``websockets`` client."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect

from dasf_geo.broker.cluster import ClusterBroker
from dasf_geo.exceptions import BrokerError, ConfigurationError
from tests.broker.cluster_helpers import (
    fronts,
    private_nats,
    requires_nats,
    requires_nats_server_binary,
)
from tests.broker.test_server import (
    consumer_path,
    message,
    producer_path,
    recv_json,
    refused,
)
from tests.conftest import free_port, timeout

pytestmark = requires_nats

SHARED = "?subscriptionType=Shared"


async def no_message(ws, n: float = 0.5) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(ws.recv(), timeout(n))


async def produce(producer, payload: bytes, context: str, **props) -> dict:
    await producer.send(message(payload, context=context, **props))
    return await recv_json(producer)


@pytest.mark.parametrize("domain", ["non-persistent", "persistent"])
async def test_a_message_produced_on_one_front_reaches_a_consumer_on_another(domain):
    async with fronts(2) as (a, b):
        url = b.url + consumer_path("my.topic", "sub", domain)
        async with connect(url) as consumer:
            await asyncio.sleep(timeout(0.3))  # the subscription reaches NATS
            async with connect(a.url + producer_path("my.topic", domain)) as producer:
                ack = await produce(producer, b"hello", "c1", messageType="request")
                assert ack["result"] == "ok" and ack["context"] == "c1"
                got = await recv_json(consumer)
            assert got["payload"] == "aGVsbG8="
            assert got["properties"] == {"messageType": "request"}
            assert got["context"] == "c1"
            assert got["redeliveryCount"] == 0
            await consumer.send(json.dumps({"messageId": got["messageId"]}))
            # a topic whose name differs only where NATS would split it
            # does not receive it
            other = b.url + consumer_path("my", "sub", domain)
            async with connect(other) as stranger:
                await no_message(stranger)


async def test_persistent_shared_spreads_over_fronts_each_message_once():
    async with fronts(2) as (a, b):
        path = consumer_path("work", "backends", "persistent") + SHARED
        ca = await connect(a.url + path + "&receiverQueueSize=4")
        cb = await connect(b.url + path + "&receiverQueueSize=4")
        await asyncio.sleep(timeout(0.3))
        async with connect(a.url + producer_path("work", "persistent")) as producer:
            for i in range(8):
                ack = await produce(producer, str(i).encode(), str(i))
                assert ack["result"] == "ok", ack
        got: dict[str, list[str]] = {"a": [], "b": []}
        for name, ws in (("a", ca), ("b", cb)):
            for _ in range(4):  # each front's consumer holds four unacked
                got[name].append((await recv_json(ws))["context"])
            await no_message(ws, 0.3)
        assert sorted(got["a"] + got["b"]) == [str(i) for i in range(8)]
        await ca.close()
        await cb.close()


async def test_persistent_messages_of_a_consumer_that_leaves_go_to_another_front():
    async with fronts(2) as (a, b):
        path = consumer_path("jobs", "w", "persistent") + SHARED
        async with connect(a.url + path) as ca:
            await asyncio.sleep(timeout(0.3))
            async with connect(b.url + producer_path("jobs", "persistent")) as producer:
                for i in range(3):
                    assert (await produce(producer, b"x", str(i)))["result"] == "ok"
            held = [await recv_json(ca) for _ in range(3)]
            assert [m["context"] for m in held] == ["0", "1", "2"]
            await ca.send(json.dumps({"messageId": held[0]["messageId"]}))
            await asyncio.sleep(timeout(0.3))  # the ack reaches JetStream
        # ca left without acking "1" and "2": a consumer on front b gets them
        async with connect(b.url + path) as cb:
            again = sorted([(await recv_json(cb, 10))["context"] for _ in range(2)])
            assert again == ["1", "2"]
            await no_message(cb)


@pytest.mark.parametrize("domain", ["non-persistent", "persistent"])
async def test_keyed_messages_of_a_shared_subscription_stay_at_one_consumer(domain):
    # the fragments of one payload share a key: one backend must get them all
    async with fronts(2) as (a, b):
        path = consumer_path("keys", "s", domain) + SHARED
        async with connect(a.url + path) as ca, connect(b.url + path) as cb:
            await asyncio.sleep(timeout(0.3))
            async with connect(a.url + producer_path("keys", domain)) as producer:
                for i in range(30):
                    frame = json.loads(message(b"x", context=str(i)))
                    frame["key"] = f"k{i % 3}"
                    await producer.send(json.dumps(frame))
                    assert (await recv_json(producer))["result"] == "ok"
            keys: dict[str, set[str]] = {}
            count = 0
            for name, ws in (("a", ca), ("b", cb)):
                while True:
                    try:
                        raw = await asyncio.wait_for(ws.recv(), timeout(1))
                    except asyncio.TimeoutError:
                        break
                    m = json.loads(raw)
                    count += 1
                    keys.setdefault(m["key"], set()).add(name)
                    await ws.send(json.dumps({"messageId": m["messageId"]}))
            assert count == 30
            assert {k: len(v) for k, v in keys.items()} == {"k0": 1, "k1": 1, "k2": 1}


async def test_non_persistent_shared_gives_each_message_to_one_front():
    async with fronts(2) as (a, b):
        path = consumer_path("np", "s") + SHARED
        async with connect(a.url + path) as ca, connect(b.url + path) as cb:
            await asyncio.sleep(timeout(0.3))
            async with connect(a.url + producer_path("np")) as producer:
                for i in range(40):
                    assert (await produce(producer, b"x", str(i)))["result"] == "ok"
            seen = []
            for ws in (ca, cb):
                while True:
                    try:
                        m = json.loads(await asyncio.wait_for(ws.recv(), timeout(0.5)))
                    except asyncio.TimeoutError:
                        break
                    seen.append(m["context"])
                    await ws.send(json.dumps({"messageId": m["messageId"]}))
            assert sorted(seen, key=int) == [str(i) for i in range(40)]


async def test_exclusive_across_fronts_is_refused_then_free_again():
    async with fronts(2) as (a, b):
        path = consumer_path("ex", "only", "persistent")
        first = await connect(a.url + path)
        await asyncio.sleep(timeout(0.5))  # the lease is taken and seen by b
        status, body = await refused(b.url + path)
        assert status == 409
        assert body.startswith(
            "Exclusive subscription 'only' of 'persistent://public/default/ex' "
            "already has a consumer (on broker front "
        )
        await first.close()
        await asyncio.sleep(timeout(0.5))
        async with connect(b.url + path) as second:
            await asyncio.sleep(timeout(0.5))
            async with connect(a.url + producer_path("ex", "persistent")) as producer:
                assert (await produce(producer, b"x", "c"))["result"] == "ok"
            assert (await recv_json(second))["context"] == "c"


async def test_failover_moves_to_the_front_that_waits():
    async with fronts(2, lease=1.0) as (a, b):
        path = consumer_path("fo", "f", "persistent") + "?subscriptionType=Failover"
        active = await connect(a.url + path)
        await asyncio.sleep(timeout(0.5))
        standby = await connect(b.url + path)
        await asyncio.sleep(timeout(0.3))
        async with connect(a.url + producer_path("fo", "persistent")) as producer:
            assert (await produce(producer, b"x", "1"))["result"] == "ok"
            assert (await recv_json(active))["context"] == "1"
            await no_message(standby, 0.3)
            await active.close()  # "1" was not acked: it goes to the standby
            assert (await recv_json(standby, 10))["context"] == "1"
            assert (await produce(producer, b"x", "2"))["result"] == "ok"
            assert (await recv_json(standby, 10))["context"] == "2"
        await standby.close()


async def test_bad_frames_get_the_embedded_brokers_error_acks():
    async with fronts(1) as (a,), connect(a.url + producer_path("t")) as producer:
        await producer.send("not json")
        ack = await recv_json(producer)
        assert ack["result"] == "send-error:3"
        await producer.send(json.dumps({"payload": "%%%", "context": "z"}))
        ack = await recv_json(producer)
        assert ack == {
            "result": "send-error:7",
            "errorMsg": ack["errorMsg"],
            "context": "z",
        }
        assert ack["errorMsg"].startswith("the payload is not valid base64")
        # the front keeps serving
        assert (await produce(producer, b"ok", "after"))["result"] == "ok"


async def test_a_message_above_the_nats_max_payload_is_refused_with_a_message():
    async with fronts(1) as (a,):
        limit = a.binding.max_payload
        async with connect(a.url + producer_path("big")) as producer:
            ack = await produce(producer, b"x" * limit, "big")
            assert ack["result"] == "send-error:8"
            assert ack["context"] == "big"
            assert "above the max_payload of" in ack["errorMsg"]
            assert f"{limit} bytes of NATS at nats://127.0.0.1:4222" in ack["errorMsg"]
            assert (await produce(producer, b"small", "s"))["result"] == "ok"


async def test_nats_down_at_start_is_a_clear_error_naming_the_url():
    port = free_port()
    front = ClusterBroker(port=0, cluster=f"nats://127.0.0.1:{port}", connect_timeout=2)
    with pytest.raises(BrokerError) as info:
        await front.start()
    assert str(info.value).startswith(f"cannot reach NATS at nats://127.0.0.1:{port}: ")
    assert str(info.value).endswith(
        "start nats-server with JetStream (nats-server -js) or give the right "
        "--cluster URL"
    )
    assert not front.running


async def test_a_start_that_fails_half_way_closes_both_nats_connections(
    monkeypatch: pytest.MonkeyPatch,
):
    from dasf_geo.broker.cluster_nats import NatsBinding

    async def no_stream(self: NatsBinding) -> None:
        raise BrokerError("JetStream refused the stream (test)")

    monkeypatch.setattr(NatsBinding, "_ensure_stream", no_stream)
    front = ClusterBroker(port=0, cluster="nats://127.0.0.1:4222", connect_timeout=5)
    with pytest.raises(BrokerError, match="JetStream refused the stream"):
        await front.start()
    binding = front.binding
    assert binding.nc.is_closed
    # the data connection, which would otherwise reconnect for ever
    assert binding.data is not None and binding.data._closing
    assert binding.data._proto is None and not binding.data._tasks
    assert not front.running


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        (
            {"cluster": "http://x:1"},
            "invalid NATS URL 'http://x:1': use nats://HOST:PORT",
        ),
        ({"cluster": ""}, "the cluster needs at least one NATS URL"),
        ({"cluster": "nats://h:99999"}, "invalid NATS URL 'nats://h:99999': Port out"),
        ({"cluster": "nats://h:1/path"}, "a NATS URL has no path, query or fragment"),
        ({"cluster_name": "a.b"}, "invalid cluster name 'a.b': use 1 to 32"),
        ({"cluster_name": "x" * 33}, "invalid cluster name"),
        ({"store": "x.sqlite"}, "a cluster front keeps no store"),
        ({"ack_wait": 0}, "ack_wait must be a number of seconds between 0.5"),
        ({"lease": "5"}, "lease must be a number of seconds between 0.5"),
    ],
)
def test_bad_cluster_options(kwargs, text):
    with pytest.raises(ConfigurationError) as info:
        ClusterBroker(port=0, **kwargs)
    assert text in str(info.value)


@requires_nats_server_binary
async def test_fronts_reconnect_after_a_nats_restart_and_keep_persistent_messages():
    port = free_port()
    with private_nats(port) as (url, proc):
        store = proc.args[-1]
        async with fronts(2, cluster=url, cluster_name="restart") as (a, b):
            path = consumer_path("kept", "w", "persistent") + SHARED
            consumer = await connect(b.url + path)
            await asyncio.sleep(timeout(0.3))
            async with connect(a.url + producer_path("kept", "persistent")) as producer:
                assert (await produce(producer, b"x", "before"))["result"] == "ok"
                assert (await recv_json(consumer))["context"] == "before"
                # NATS goes away and comes back on the same port and store
                proc.kill()
                proc.wait()
                with private_nats(port, store=store):
                    deadline = asyncio.get_running_loop().time() + timeout(20)
                    while True:
                        ack = await produce(producer, b"x", "after")
                        if ack["result"] == "ok":
                            break
                        assert ack["result"] == "send-error:8", ack
                        assert asyncio.get_running_loop().time() < deadline, ack
                        await asyncio.sleep(0.2)
                    # "before" was never acked: JetStream may hand it out
                    # again (at least once) before "after"
                    got = await recv_json(consumer, 30)
                    while got["context"] == "before":
                        got = await recv_json(consumer, 30)
                    assert got["context"] == "after"
            await consumer.close()


async def test_payloads_travel_decoded_and_base64_bodies_of_earlier_fronts_are_read():
    """Fronts send the decoded payload (DG2, a quarter smaller) and still
    deliver DG1 bodies (base64 text), which fronts of an earlier version
    stored in JetStream."""
    import base64

    import nats

    from dasf_geo.broker.names import TopicName

    data = bytes(range(256)) * 4000  # every byte value, 1 MB of base64
    async with fronts(2) as (a, b):
        names = a.binding.names
        live = TopicName(False, "public", "default", "raw.check")
        stored = TopicName(True, "public", "default", "old.bodies")
        nc = await nats.connect(a.binding.url)
        try:
            bodies: asyncio.Queue[bytes] = asyncio.Queue()

            async def seen(msg):
                await bodies.put(msg.data)

            await nc.subscribe(names.subject(live), cb=seen)
            await nc.flush()
            url = b.url + consumer_path("raw.check", "sub")
            async with connect(url, max_size=None) as consumer:
                await asyncio.sleep(timeout(0.3))
                async with connect(a.url + producer_path("raw.check")) as producer:
                    ack = await produce(producer, data, "big", n=1)
                    assert ack["result"] == "ok", ack
                got = await recv_json(consumer)
            assert base64.b64decode(got["payload"]) == data
            assert got["properties"] == {"n": 1}
            body = await asyncio.wait_for(bodies.get(), timeout(5))
            assert body.startswith(b"DG2\n")
            assert body.endswith(data)
            assert len(body) < len(data) + 200  # not the base64 text

            # a DG1 body in the stream, as an earlier front stored it
            path = consumer_path("old.bodies", "sub", "persistent")
            async with connect(b.url + path) as consumer:
                await asyncio.sleep(timeout(0.3))
                old = (
                    b'DG1\n{"messageType":"request"}\n"c7"\n\n'
                    b"2026-01-01T00:00:00Z\nolder-front-id\naGVsbG8="
                )
                await nc.jetstream().publish(names.subject(stored), old)
                got = await recv_json(consumer, 10)
            assert got["payload"] == "aGVsbG8="
            assert got["context"] == "c7"
            assert got["properties"] == {"messageType": "request"}
        finally:
            await nc.close()
