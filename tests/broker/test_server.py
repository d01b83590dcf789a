"""The broker over real sockets, driven by a raw ``websockets`` client."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import urllib.error
import urllib.request
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from dasf_geo.broker import Broker, EmbeddedBroker
from dasf_geo.exceptions import BrokerError, ConfigurationError
from tests.conftest import timeout

PULSAR = "/ws/v2/{kind}/{domain}/public/default/{topic}"


def producer_path(topic: str, domain: str = "non-persistent") -> str:
    return PULSAR.format(kind="producer", domain=domain, topic=topic)


def consumer_path(topic: str, sub: str, domain: str = "non-persistent") -> str:
    return PULSAR.format(kind="consumer", domain=domain, topic=topic) + f"/{sub}"


def message(payload: bytes = b"hello", context: Any = "c1", **props: Any) -> str:
    return json.dumps(
        {
            "payload": base64.b64encode(payload).decode(),
            "properties": props,
            "context": context,
        }
    )


async def recv_json(ws: Any, n: float = 5) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout(n)))


async def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    def get() -> tuple[int, str]:
        request = urllib.request.Request(url, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=timeout(5)) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    return await asyncio.to_thread(get)


async def refused(url: str, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, open_timeout=timeout(5), **kwargs):
            pass
    response = info.value.response
    return response.status_code, response.body.decode().strip()


@pytest.fixture
async def broker():
    b = Broker(port=0)
    await b.start()
    yield b
    await b.stop()


async def test_pulsar_layout_round_trip(broker):
    url = broker.url
    async with (
        connect(url + consumer_path("t", "sub")) as consumer,
        connect(url + producer_path("t")) as producer,
    ):
        await producer.send(message(b"hello", "ctx", messageType="request"))
        ack = await recv_json(producer)
        assert ack["result"] == "ok" and ack["context"] == "ctx"
        assert set(ack) == {"result", "messageId", "context"}
        msg = await recv_json(consumer)
        assert set(msg) == {
            "messageId",
            "payload",
            "properties",
            "publishTime",
            "redeliveryCount",
            "context",
        }
        assert base64.b64decode(msg["payload"]) == b"hello"
        assert msg["properties"] == {"messageType": "request"}
        await consumer.send(json.dumps({"messageId": msg["messageId"]}))
    _, body = await http_get(broker.http_url + "/topics")
    # everyone left: the non-persistent topic is gone
    assert json.loads(body) == {"topics": []}


async def test_plain_layout_reaches_the_same_topic(broker):
    async with (
        connect(broker.websocket_url + "/svc/backend-module-2026-11-23T21:34:15") as c,
        connect(broker.url + producer_path("svc")) as pulsar_producer,
        connect(broker.websocket_url + "/svc") as plain_producer,
    ):
        await pulsar_producer.send(message(b"one"))
        await plain_producer.send(message(b"two"))
        assert (await recv_json(pulsar_producer))["result"] == "ok"
        assert (await recv_json(plain_producer))["result"] == "ok"
        got = {base64.b64decode((await recv_json(c))["payload"]) for _ in range(2)}
        assert got == {b"one", b"two"}


async def test_status_ping_route(broker):
    async with (
        connect(broker.websocket_url + "/svc/backend") as backend,
        connect(broker.websocket_url + "/status-ping") as ws,
    ):
        await ws.send(
            json.dumps(
                {
                    "payload": "",
                    "context": "9",
                    "properties": {"messageType": "pong", "source_topic": "svc"},
                }
            )
        )
        ack = await recv_json(ws)
        assert ack["result"] == "ok" and ack["context"] == "9"
        _, body = await http_get(broker.http_url + "/topics")
        [topic] = json.loads(body)["topics"]
        assert topic["name"] == "svc" and topic["last_pong"]
        assert backend.state.name == "OPEN"


async def test_health_and_topics(broker):
    async with connect(broker.url + consumer_path("t", "s")):
        status, body = await http_get(broker.http_url + "/health")
        assert status == 200
        health = json.loads(body)
        assert health["status"] == "ok" and health["consumers"] == 1
        status, body = await http_get(broker.http_url + "/topics")
        assert status == 200
        [topic] = json.loads(body)["topics"]
        assert topic["topic"] == "non-persistent://public/default/t"
        assert topic["subscriptions"][0]["consumers"] == 1


@pytest.mark.parametrize(
    ("path", "status", "text"),
    [
        ("/nowhere", 404, "no route '/nowhere' on this dasf-geo broker: connect to"),
        ("/ws/..", 400, "invalid topic name '..': use letters, digits"),
        ("/ws/t/%2e%2e", 400, "invalid subscription name '%2e%2e'"),
        (
            "/ws/v2/producer/other/public/default/t",
            400,
            "invalid topic domain 'other': use 'persistent' or 'non-persistent'",
        ),
        (
            consumer_path("t", "s") + "?receiverQueueSize=lots",
            400,
            "receiverQueueSize must be an integer, got 'lots'",
        ),
        (
            consumer_path("t", "s") + "?subscriptionType=Key_Shared",
            400,
            "unsupported subscriptionType 'Key_Shared': use Exclusive, Shared, "
            "Failover",
        ),
        (
            consumer_path("t", "s") + "?pullMode=maybe",
            400,
            "pullMode must be true or false, got 'maybe'",
        ),
        (
            "/ws/t/s?receiverQueueSize=0",
            400,
            "receiverQueueSize must be between 1 and 100000, got 0",
        ),
        (
            consumer_path("t", "s") + "?ackTimeoutMillis=-5",
            400,
            "ackTimeoutMillis must be a non-negative integer, got '-5'",
        ),
    ],
)
async def test_bad_paths_are_refused_with_a_reason(broker, path, status, text):
    code, body = await refused(broker.url + path)
    assert code == status
    assert body.startswith(text)


async def test_plain_http_on_a_websocket_path_is_refused(broker):
    status, _ = await http_get(broker.http_url + producer_path("t"))
    assert status == 426


async def test_exclusive_second_consumer_is_refused(broker):
    async with connect(broker.url + consumer_path("t", "only")):
        status, body = await refused(broker.url + consumer_path("t", "only"))
    assert status == 409
    assert body == (
        "Exclusive consumer is already connected to subscription 'only' of topic "
        "'t': use another subscription name or subscriptionType=Shared"
    )


async def test_shared_spreads_and_redelivers_after_disconnect(broker):
    shared = consumer_path("t", "work") + "?subscriptionType=Shared"
    async with (
        connect(broker.url + shared) as a,
        connect(broker.url + producer_path("t")) as producer,
    ):
        b = await connect(broker.url + shared)
        for i in range(4):
            await producer.send(message(str(i).encode(), context=str(i)))
            assert (await recv_json(producer))["result"] == "ok"
        got_a = [await recv_json(a) for _ in range(2)]
        got_b = [await recv_json(b) for _ in range(2)]
        await b.close()  # b goes away without acking
        again = [await recv_json(a) for _ in range(2)]
        assert {m["context"] for m in again} == {m["context"] for m in got_b}
        assert all(m["redeliveryCount"] == 1 for m in again)
        assert {m["context"] for m in got_a + again} == {"0", "1", "2", "3"}


async def test_persistent_topic_survives_restart(tmp_path):
    store = tmp_path / "broker.sqlite"
    first = Broker(port=0, store=store)
    await first.start()
    sub = consumer_path("jobs", "workers", "persistent") + "?subscriptionType=Shared"
    async with connect(first.url + sub) as consumer:
        async with connect(first.url + producer_path("jobs", "persistent")) as p:
            for i in range(3):
                await p.send(message(str(i).encode(), context=i))
                assert (await recv_json(p))["result"] == "ok"
        msg = await recv_json(consumer)
        await consumer.send(json.dumps({"messageId": msg["messageId"]}))
        # ack round trip: /topics reflects it once the ack was handled
        deadline = asyncio.get_running_loop().time() + timeout(10)
        while asyncio.get_running_loop().time() < deadline:
            _, body = await http_get(first.http_url + "/topics")
            if json.loads(body)["topics"][0]["subscriptions"][0]["backlog"] == 2:
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail(f"the ack was not handled within {timeout(10)} s: {body}")
    await first.stop()

    second = Broker(port=0, store=store)
    await second.start()
    try:
        async with connect(second.url + sub) as consumer:
            got = [await recv_json(consumer) for _ in range(2)]
            assert [m["context"] for m in got] == [1, 2]
            for m in got:
                await consumer.send(json.dumps({"messageId": m["messageId"]}))
    finally:
        await second.stop()


async def test_oversize_frame_closes_with_1009_and_others_keep_working():
    async with (
        Broker(port=0, max_frame_size=64 * 1024) as b,
        connect(b.url + consumer_path("t", "s")) as consumer,
        connect(b.url + producer_path("t")) as good,
        connect(b.url + producer_path("t"), max_size=None) as hostile,
    ):
        await hostile.send(message(b"x" * 100_000))
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(hostile.recv(), timeout(5))
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 1009
        assert "65536" in info.value.rcvd.reason  # the reason names the limit
        await good.send(message(b"fine"))
        assert (await recv_json(good))["result"] == "ok"
        assert base64.b64decode((await recv_json(consumer))["payload"]) == b"fine"


async def test_binary_and_garbage_frames_get_error_acks(broker):
    async with connect(broker.url + producer_path("t")) as producer:
        await producer.send(b"\x00\x01\x02 binary garbage")
        ack = await recv_json(producer)
        assert ack["result"] == "send-error:3"
        assert ack["errorMsg"].startswith("the message is not valid JSON")
        await producer.send('{"payload": "***", "context": 4}')
        ack = await recv_json(producer)
        assert ack == {
            "result": "send-error:7",
            "errorMsg": ack["errorMsg"],
            "context": 4,
        }
        assert ack["errorMsg"].startswith("the payload is not valid base64")
        # the connection still works
        await producer.send(message())
        assert (await recv_json(producer))["result"] == "ok"


async def test_consumer_garbage_closes_that_consumer_with_a_reason(broker):
    async with connect(broker.url + consumer_path("t", "s")) as consumer:
        await consumer.send("not json")
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(consumer.recv(), timeout(5))
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008
    assert info.value.rcvd.reason.startswith("the consumer frame is not valid JSON")


async def test_hostile_clients_do_not_disturb_a_good_one(tmp_path):
    auth = tmp_path / "auth.yaml"
    auth.write_text(
        "tokens:\n  - {name: good, token: good-token, produce: ['*'], consume: ['*']}\n"
    )
    n = 200
    async with Broker(port=0, auth=auth, max_frame_size=256 * 1024) as b:
        good = {"Authorization": "Bearer good-token"}

        async def hostile() -> None:
            for _ in range(5):
                status, _ = await refused(b.url + producer_path("t"))
                assert status == 401
                status, _ = await refused(b.url + producer_path("t") + "?token=nope")
                assert status == 401
                async with connect(
                    b.url + producer_path("t"), additional_headers=good, max_size=None
                ) as ws:
                    await ws.send("{{{{")
                    assert (await recv_json(ws))["result"] == "send-error:3"
                    await ws.send(b"\xff" * 1000)
                    assert (await recv_json(ws))["result"] == "send-error:3"
                    await ws.send("x" * 300_000)
                    with pytest.raises(ConnectionClosed):
                        await asyncio.wait_for(ws.recv(), timeout(5))

        async def well_behaved() -> list[bytes]:
            got = []
            async with (
                connect(
                    b.url + consumer_path("t", "s"), additional_headers=good
                ) as consumer,
                connect(b.url + producer_path("t"), additional_headers=good) as p,
            ):
                for i in range(n):
                    await p.send(message(str(i).encode(), context=i))
                    assert (await recv_json(p))["result"] == "ok"
                    msg = await recv_json(consumer)
                    got.append(base64.b64decode(msg["payload"]))
                    await consumer.send(json.dumps({"messageId": msg["messageId"]}))
            return got

        got, _ = await asyncio.gather(well_behaved(), hostile())
        assert got == [str(i).encode() for i in range(n)]


async def test_auth_tokens_by_query_and_headers(tmp_path):
    auth = tmp_path / "auth.yaml"
    auth.write_text(
        "tokens:\n"
        "  - {name: caller, token: caller-token, produce: [svc], consume: ['svc_*']}\n"
    )
    async with Broker(port=0, auth=auth) as b:
        for kwargs in (
            {"url": b.url + producer_path("svc") + "?token=caller-token"},
            {
                "url": b.url + producer_path("svc"),
                "additional_headers": {"Authorization": "Bearer caller-token"},
            },
            {
                "url": b.websocket_url + "/svc",
                "additional_headers": {"Authorization": "Token caller-token"},
            },
        ):
            url = kwargs.pop("url")
            async with connect(url, **kwargs) as ws:
                await ws.send(message())
                assert (await recv_json(ws))["result"] == "ok"
        status, body = await refused(b.url + producer_path("svc"))
        assert (status, body) == (
            401,
            "this broker requires a token: pass ?token=… or an 'Authorization: "
            "Bearer …' header",
        )
        status, body = await refused(b.url + producer_path("svc") + "?token=wrong")
        assert (status, body) == (401, "the token is not known to this broker")
        status, body = await refused(
            b.url + consumer_path("svc", "s") + "?token=caller-token"
        )
        assert (status, body) == (403, "'caller' may not consume topic 'svc'")
        status, body = await refused(b.url + producer_path("other?token=caller-token"))
        assert (status, body) == (403, "'caller' may not produce topic 'other'")
        assert (await http_get(b.http_url + "/topics"))[0] == 401
        status, _ = await http_get(
            b.http_url + "/topics", {"Authorization": "Bearer caller-token"}
        )
        assert status == 200
        assert (await http_get(b.http_url + "/health"))[0] == 200


async def test_slow_consumer_pauses_the_producer_with_bounded_memory():
    limit = 200_000
    async with (
        Broker(port=0, max_topic_bytes=limit) as b,
        connect(b.url + consumer_path("t", "s") + "?receiverQueueSize=2") as c,
        connect(b.url + producer_path("t")) as producer,
    ):
        payload = b"z" * 30_000  # 40,000 base64 characters
        for i in range(12):
            await producer.send(message(payload, context=i))
        # each message holds 40,000+ bytes: after the 5th the topic holds
        # the limit and the broker stops reading the producer's socket
        acks = [await recv_json(producer) for _ in range(5)]
        with pytest.raises(asyncio.TimeoutError):
            acks.append(await recv_json(producer, 0.3))
        assert b.core is not None
        assert limit <= b.core.held_bytes < limit + 50_000
        # acking resumes the flow, and nothing is lost
        got = []
        while len(got) < 12:
            msg = await recv_json(c)
            got.append(msg["context"])
            await c.send(json.dumps({"messageId": msg["messageId"]}))
        assert got == list(range(12))
        while len(acks) < 12:
            acks.append(await recv_json(producer))
        assert all(a["result"] == "ok" for a in acks)


async def test_pull_mode_permits(broker):
    async with (
        connect(broker.url + consumer_path("t", "s") + "?pullMode=true") as c,
        connect(broker.url + producer_path("t")) as producer,
    ):
        for i in range(3):
            await producer.send(message(context=i))
            await recv_json(producer)
        with pytest.raises(asyncio.TimeoutError):
            await recv_json(c, 0.3)
        await c.send(json.dumps({"type": "permit", "permitMessages": 2}))
        assert [(await recv_json(c))["context"] for _ in range(2)] == [0, 1]


async def test_negative_ack_redelivers(broker):
    async with (
        connect(broker.url + consumer_path("t", "s")) as c,
        connect(broker.url + producer_path("t")) as producer,
    ):
        await producer.send(message(b"again"))
        await recv_json(producer)
        msg = await recv_json(c)
        await c.send(
            json.dumps({"type": "negativeAcknowledge", "messageId": msg["messageId"]})
        )
        again = await recv_json(c)
        assert again["redeliveryCount"] == 1
        assert base64.b64decode(again["payload"]) == b"again"


# --- life cycle and options -----------------------------------------------------


def test_embedded_broker_properties_and_restart():
    broker = EmbeddedBroker(port=0)
    with pytest.raises(BrokerError, match="has not started yet"):
        _ = broker.port
    with broker as b:
        assert b.running and b.port > 0
        assert b.url == f"ws://127.0.0.1:{b.port}"
        assert b.http_url == f"http://127.0.0.1:{b.port}"
        assert b.websocket_url == f"ws://127.0.0.1:{b.port}/ws"
        with urllib.request.urlopen(b.http_url + "/health", timeout=timeout(5)) as r:
            assert json.loads(r.read())["status"] == "ok"
    assert not broker.running
    broker.stop()  # idempotent


def test_port_taken_is_a_clear_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(BrokerError) as info:
            EmbeddedBroker(port=port).start()
        assert str(info.value) == (
            f"cannot start the broker: port {port} on 127.0.0.1 is already in use; "
            "stop the other server, pick another port (--port), or use port 0 for "
            "a free one"
        )
        broker = EmbeddedBroker.start_on_free_port(port, attempts=5)
        try:
            assert broker.port != port and port < broker.port < port + 5
        finally:
            broker.stop()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"host": "0.0.0.0"},
            "refusing to serve on the non-loopback address '0.0.0.0' without "
            "authentication: give an auth file (--auth FILE), bind 127.0.0.1, or "
            "pass --insecure if the network is trusted",
        ),
        (
            {"port": 70000},
            "the broker port must be an integer between 0 and 65535 (0 picks a free "
            "port), got 70000",
        ),
        (
            {"port": "8080"},
            "the broker port must be an integer between 0 and 65535 (0 picks a free "
            "port), got '8080'",
        ),
        (
            {"host": ""},
            "the broker host must be a non-empty string such as '127.0.0.1', got ''",
        ),
        (
            {"max_frame_size": 10},
            "max_frame_size must be an integer of at least 1024 bytes, got 10",
        ),
        (
            {"subscription_expiry": 0},
            "subscription_expiry must be a number of seconds > 0 (or None for "
            "never), got 0",
        ),
    ],
)
def test_bad_options(kwargs, message):
    with pytest.raises(ConfigurationError) as info:
        EmbeddedBroker(**kwargs)
    assert str(info.value) == message


def test_non_loopback_allowed_with_insecure_or_auth(tmp_path):
    EmbeddedBroker(host="0.0.0.0", insecure=True)
    auth = tmp_path / "a.yaml"
    auth.write_text("tokens: []\n")
    EmbeddedBroker(host="192.0.2.1", auth=auth)
    EmbeddedBroker(host="::1")
    EmbeddedBroker(host="localhost")


def test_bad_store_path_fails_start(tmp_path):
    with pytest.raises(BrokerError, match="is a directory"):
        EmbeddedBroker(port=0, store=tmp_path).start()


async def test_an_internal_error_is_answered_not_fatal(broker, monkeypatch):
    def boom(topic: Any, frame: bytes) -> bytes:
        raise RuntimeError("boom")

    async with connect(broker.url + producer_path("t")) as producer:
        with monkeypatch.context() as patch:
            patch.setattr(broker.core, "publish", boom)
            await producer.send(message())
            assert await recv_json(producer) == {
                "result": "send-error:8",
                "errorMsg": "the broker failed to handle the message: RuntimeError: "
                "boom",
            }
        await producer.send(message())
        assert (await recv_json(producer))["result"] == "ok"


async def test_acks_of_unknown_ids_are_ignored(broker):
    async with (
        connect(broker.url + consumer_path("t", "s")) as c,
        connect(broker.url + producer_path("t")) as producer,
    ):
        await c.send(json.dumps({"messageId": "made-up"}))
        await producer.send(message(b"still here"))
        await recv_json(producer)
        msg = await recv_json(c)
        assert base64.b64decode(msg["payload"]) == b"still here"


async def test_plain_layout_consumers_each_get_every_message(broker):
    # as dasf-broker-django: every connected consumer of a topic gets every
    # message, whatever its subscription name, unless it asks for a type
    plain = broker.websocket_url + "/news/reader"
    async with (
        connect(plain) as one,
        connect(plain) as two,
        connect(plain + "?subscriptionType=Shared") as shared_a,
        connect(plain + "?subscriptionType=Shared") as shared_b,
        connect(broker.websocket_url + "/news") as producer,
    ):
        for i in range(2):
            await producer.send(message(context=i))
            assert (await recv_json(producer))["result"] == "ok"
        assert [(await recv_json(one))["context"] for _ in range(2)] == [0, 1]
        assert [(await recv_json(two))["context"] for _ in range(2)] == [0, 1]
        shared = [await recv_json(shared_a), await recv_json(shared_b)]
        assert sorted(m["context"] for m in shared) == [0, 1]


async def test_ack_timeout_redelivers(broker):
    url = broker.url + consumer_path("t", "s") + "?ackTimeoutMillis=1000"
    async with (
        connect(url) as c,
        connect(broker.url + producer_path("t")) as producer,
    ):
        await producer.send(message(b"slow"))
        await recv_json(producer)
        first = await recv_json(c)
        again = await recv_json(c, 10)  # not acked: back after about a second
        assert again["redeliveryCount"] == 1
        assert again["messageId"] != first["messageId"]
        assert base64.b64decode(again["payload"]) == b"slow"


async def test_exclusive_subscription_is_free_again_after_disconnect(broker):
    url = broker.url + consumer_path("t", "only")
    async with connect(url):
        pass
    # the first consumer left: a reconnecting consumer (demessaging's
    # run_forever(reconnect=…)) is accepted once the broker saw it go
    deadline = asyncio.get_running_loop().time() + timeout(5)
    while True:
        try:
            again = await connect(url)
            break
        except InvalidStatus as exc:
            assert exc.response.status_code == 409
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
    async with (
        again,
        connect(broker.url + producer_path("t")) as producer,
    ):
        await producer.send(message(b"back"))
        await recv_json(producer)
        assert base64.b64decode((await recv_json(again))["payload"]) == b"back"


async def test_failover_moves_to_the_next_consumer(broker):
    url = broker.url + consumer_path("t", "f") + "?subscriptionType=Failover"
    async with (
        connect(url) as active,
        connect(url) as standby,
        connect(broker.url + producer_path("t")) as producer,
    ):
        await producer.send(message(context=1))
        await recv_json(producer)
        assert (await recv_json(active))["context"] == 1
        with pytest.raises(asyncio.TimeoutError):
            await recv_json(standby, 0.3)
        await active.close()
        moved = await recv_json(standby)
        assert moved["context"] == 1 and moved["redeliveryCount"] == 1


# --- frames, hostile peers, keepalive and stop (the picows server) ---------------


async def raw_handshake(port: int, path: str) -> tuple[Any, Any]:
    """A WebSocket opened by hand, for peers no library would play."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(b"0123456789abcdef").decode()
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout(5))
    assert head.startswith(b"HTTP/1.1 101")
    return reader, writer


def masked_header(length: int, opcode: int = 1) -> bytes:
    """A client frame header (fin, zero mask) announcing ``length`` bytes."""
    if length < 126:
        return bytes([0x80 | opcode, 0x80 | length]) + bytes(4)
    return bytes([0x80 | opcode, 0x80 | 126]) + length.to_bytes(2, "big") + bytes(4)


async def read_all(reader: Any) -> bytes:
    """What the broker sends until it hangs up (a reset counts as hanging up)."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := await asyncio.wait_for(reader.read(65536), timeout(10)):
            data += chunk
    return data


async def test_fragmented_messages_are_joined_and_bounded():
    async with (
        Broker(port=0, max_frame_size=64 * 1024) as b,
        connect(b.url + consumer_path("t", "s")) as consumer,
        connect(b.url + producer_path("t")) as producer,
        connect(b.url + producer_path("t"), max_size=None) as hostile,
    ):
        text = message(b"y" * 30_000, context="joined")
        await producer.send([text[:100], text[100:20_000], text[20_000:]])
        assert (await recv_json(producer))["context"] == "joined"
        got = await recv_json(consumer)
        assert base64.b64decode(got["payload"]) == b"y" * 30_000
        # each fragment fits, the message does not
        await hostile.send([message(b"z" * 30_000)] * 3)
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(hostile.recv(), timeout(5))
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        assert "exceeds limit of 65536 bytes" in info.value.rcvd.reason
        await producer.send(message(b"after"))
        assert (await recv_json(producer))["result"] == "ok"


async def test_garbage_huge_half_open_and_vanishing_peers(broker):
    port = broker.port
    # garbage instead of an HTTP request: 400, connection closed
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"\x16\x03\x01 not http at all\r\n\r\n")
    assert (await read_all(reader)).startswith(b"HTTP/1.1 400")
    writer.close()
    # headers without end: dropped once they pass the limit
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 100_000)
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    assert b"200" not in await read_all(reader)
    writer.close()
    # a connection that never sends a request, and producers that vanish
    # in the middle of a frame
    half_open = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(3):
        _, writer = await raw_handshake(port, producer_path("t"))
        writer.write(masked_header(1000) + b"0123456789")
        await writer.drain()
        writer.transport.abort()
    async with (
        connect(broker.url + consumer_path("t", "s")) as consumer,
        connect(broker.url + producer_path("t")) as producer,
    ):
        await producer.send(message(b"still served"))
        assert (await recv_json(producer))["result"] == "ok"
        got = await recv_json(consumer)
        assert base64.b64decode(got["payload"]) == b"still served"
        # the vanished producers are gone
        deadline = asyncio.get_running_loop().time() + timeout(10)
        while (
            json.loads((await http_get(broker.http_url + "/health"))[1])["producers"]
            != 1
        ):
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
    half_open[1].close()


async def test_keepalive_closes_silent_peers_and_keeps_live_ones(monkeypatch):
    from dasf_geo.broker import connections

    monkeypatch.setattr(connections, "_PING_INTERVAL", 1.0)
    monkeypatch.setattr(connections, "_PING_TIMEOUT", 1.0)
    async with (
        Broker(port=0) as b,
        connect(b.url + consumer_path("t", "live"), ping_interval=None) as live,
    ):
        reader, writer = await raw_handshake(b.port, consumer_path("t", "dead"))
        # the dead peer reads but never answers: a ping, then a close (1011)
        data = await read_all(reader)
        assert data[:2] == b"\x89\x00"
        assert b"\x88" in data and (1011).to_bytes(2, "big") in data
        writer.close()
        # the live one answered its pings (websockets does) and still works
        async with connect(b.url + producer_path("t")) as producer:
            await producer.send(message(b"alive"))
            assert (await recv_json(producer))["result"] == "ok"
        assert base64.b64decode((await recv_json(live))["payload"]) == b"alive"


async def test_stop_closes_connections_with_1001_and_echoes_close_codes():
    b = Broker(port=0)
    await b.start()
    async with connect(b.url + producer_path("t")) as producer:
        await producer.close(code=4000, reason="done")
    close = producer.protocol.close_rcvd
    assert close is not None and close.code == 4000
    consumer = await connect(b.url + consumer_path("t", "s"))
    await b.stop()
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(consumer.recv(), timeout(5))
    assert consumer.close_code == 1001
    assert not b.running


async def test_a_producer_not_reading_its_acks_is_not_read_either():
    # a small, fixed receive buffer: the kernel may not absorb the acks
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    async with Broker(port=0) as b:
        sock.connect(("127.0.0.1", b.port))
        sock.setblocking(False)
        producer = await connect(b.url + producer_path("t"), sock=sock, max_size=None)
        # acks echo the context: 300 acks of 50 kB are more than the
        # kernel's buffers and the 1 MiB the broker holds per connection
        big = "c" * 50_000
        n = 300

        async def send_all() -> None:
            for i in range(n):
                await producer.send(message(str(i).encode(), context=[i, big]))

        sending = asyncio.ensure_future(send_all())
        [connection] = list(b._open)
        deadline = asyncio.get_running_loop().time() + timeout(30)
        while not (connection.write_blocked and connection.read_paused):
            assert asyncio.get_running_loop().time() < deadline, "never paused"
            await asyncio.sleep(0.02)
        assert b.core is not None
        [topic] = b.core.topics.values()
        assert topic.published < n  # the rest waits in the sockets
        acks = [await recv_json(producer, 10) for _ in range(n)]
        await sending
        assert [a["context"][0] for a in acks] == list(range(n))
        assert all(a["result"] == "ok" for a in acks)
        assert topic.published == n and not connection.read_paused
        await producer.close()
