"""A real broker: a never-acking client cannot stop other topics; hostile JSON
is answered without a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from dasf_geo.broker import Broker
from dasf_geo.transport.client import AsyncClient
from tests.broker.test_server import consumer_path, message, producer_path, recv_json
from tests.conftest import timeout
from tests.transport.conftest import Config, Handler, running_listener

MIB = 1024 * 1024


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info]


async def test_a_never_acking_client_cannot_stop_other_topics(caplog):
    caplog.set_level(logging.INFO)
    async with Broker(
        port=0,
        max_topic_bytes=MIB,
        max_total_bytes=4 * MIB,
        max_inflight_bytes=MIB,
        stall_timeout=3,
    ) as broker:
        assert broker.core is not None
        hogs = []
        feeders = []
        payload = b"h" * 48_000  # 64,000 base64 characters
        async with contextlib.AsyncExitStack() as stack:
            for i in range(6):
                hog = await stack.enter_async_context(
                    connect(
                        broker.url + consumer_path(f"hog{i}", "s"),
                        max_size=None,
                    )
                )
                producer = await stack.enter_async_context(
                    # its acks are never read: keep them all, so that the
                    # client still reads the broker's close frame at the end
                    connect(broker.url + producer_path(f"hog{i}"), max_queue=None)
                )
                hogs.append(hog)
                for n in range(40):  # 2.5 MB per topic: more than it may hold
                    await producer.send(message(payload, context=n))
                feeders.append(producer)

            async def read_forever(ws) -> tuple[int, str]:  # never acks
                try:
                    while True:
                        await ws.recv()
                except ConnectionClosed as exc:
                    assert exc.rcvd is not None
                    return exc.rcvd.code, exc.rcvd.reason

            readers = [asyncio.create_task(read_forever(h)) for h in hogs]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout(20)
            while broker.core.held_bytes < broker.core.max_total_bytes:
                assert loop.time() < deadline, broker.core.held_bytes
                await asyncio.sleep(0.05)
            # the broker is full; a service on another topic keeps working
            config = Config(base=broker.url, topic="rpc")
            async with (
                running_listener(Handler("rpc"), config),
                AsyncClient(config, timeout=timeout(20)) as client,
            ):
                for i in range(20):
                    assert await client.call({"op": "echo", "value": i}) == i
                assert broker.core.held_bytes >= broker.core.max_total_bytes
                # after the stall timeout the hogs are told why and dropped
                closed = await asyncio.wait_for(asyncio.gather(*readers), timeout(30))
                for code, reason in closed:
                    assert code == 1008
                    assert reason.startswith("held ")
                    assert reason.endswith(
                        "bytes unacked for 3 s without acking any; they go back "
                        "to the subscription"
                    )
                # the non-persistent subscriptions left with them: memory is back
                await asyncio.sleep(0.2)
                assert await client.call({"op": "echo", "value": "after"}) == "after"
            for producer in feeders:
                await producer.close()
        assert broker.core.held_bytes == 0
    assert any("disconnecting consumer" in r.getMessage() for r in caplog.records)
    assert tracebacks(caplog) == []


DEEP = "[" * 3000 + "]" * 3000


async def test_hostile_json_gets_errors_not_tracebacks(caplog):
    async with (
        Broker(port=0) as broker,
        connect(broker.url + producer_path("t")) as producer,
        connect(broker.url + consumer_path("t", "s")) as consumer,
        connect(broker.websocket_url + "/status-ping") as ping,
    ):
        for raw, error in [
            (
                '{"payload": "", "properties": {"a": ' + DEEP + "}}",
                "the message nests arrays and objects more than 64 levels deep",
            ),
            (
                '{"payload": "", "properties": {"x": NaN}, "context": 1}',
                "the message is not standard JSON: NaN is not a JSON number",
            ),
            (
                '{"payload": "", "context": Infinity}',
                "the message is not standard JSON: Infinity is not a JSON number",
            ),
        ]:
            await producer.send(raw)
            assert await recv_json(producer) == {
                "result": "send-error:3",
                "errorMsg": error,
            }
        await ping.send(DEEP)
        assert await recv_json(ping) == {
            "result": "send-error:3",
            "errorMsg": "the message nests arrays and objects more than 64 levels deep",
        }
        await ping.send('{"payload": "", "properties": {"x": NaN}}')
        assert (await recv_json(ping))["result"] == "send-error:3"
        # the producer is still served; the consumer gets standard JSON only
        await producer.send(message(b"fine", n=1))
        assert (await recv_json(producer))["result"] == "ok"
        delivered = await asyncio.wait_for(consumer.recv(), timeout(5))
        assert json.loads(delivered)["properties"] == {"n": 1}
        # a hostile consumer frame closes that consumer, with its reason
        await consumer.send(DEEP)
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(consumer.recv(), timeout(5))
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (
            1008,
            "the consumer frame nests arrays and objects more than 64 levels deep",
        )
    assert tracebacks(caplog) == []
