"""A front sends a producer's persistent messages to JetStream without a round
trip between two of them; acks still come once stored, and in order."""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.client import connect

from tests.broker.cluster_helpers import fronts, requires_nats
from tests.broker.test_server import consumer_path, message, producer_path, recv_json
from tests.conftest import timeout

pytestmark = requires_nats


async def test_pipelined_persistent_messages_are_acked_and_delivered_in_order():
    count = 300  # more than a front keeps unconfirmed per producer
    bad = 150
    async with fronts(2) as (a, b):
        path = consumer_path("stream.of.work", "s", "persistent")
        async with connect(b.url + path + "?receiverQueueSize=1000") as consumer:
            await asyncio.sleep(timeout(0.3))  # the subscription reaches NATS
            url = a.url + producer_path("stream.of.work", "persistent")
            async with connect(url) as producer:
                for i in range(count):
                    if i == bad:  # refused by the front, between stored ones
                        await producer.send(
                            json.dumps({"payload": "not base64!", "context": str(i)})
                        )
                    else:
                        await producer.send(message(b"m%d" % i, context=str(i)))
                acks = [await recv_json(producer, 30) for _ in range(count)]
            assert [ack["context"] for ack in acks] == [str(i) for i in range(count)]
            assert acks[bad]["result"].startswith("send-error")
            assert all(
                ack["result"] == "ok" for i, ack in enumerate(acks) if i != bad
            ), [ack for ack in acks if ack["result"] != "ok"][:3]
            got = []
            for _ in range(count - 1):
                delivery = await recv_json(consumer, 30)
                got.append(delivery["context"])
                await consumer.send(json.dumps({"messageId": delivery["messageId"]}))
            assert got == [str(i) for i in range(count) if i != bad]
