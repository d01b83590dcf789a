"""Flow control of non-persistent topics across fronts (cluster_flow)."""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.client import connect

from tests.broker.cluster_helpers import fronts, requires_nats
from tests.broker.test_server import (
    consumer_path,
    message,
    producer_path,
    recv_json,
)
from tests.conftest import timeout

pytestmark = requires_nats

MIB = 1024 * 1024


async def test_a_slow_consumer_on_one_front_pauses_a_producer_on_another():
    count = 120  # 16 MB of base64 payload, twice the topic limit
    async with fronts(2, max_topic_bytes=8 * MIB) as (a, b):
        url = b.url + consumer_path("flow", "s") + "?receiverQueueSize=1000"
        async with connect(url, max_size=None) as consumer:
            await asyncio.sleep(timeout(0.3))  # the subscription reaches NATS
            async with connect(a.url + producer_path("flow")) as producer:
                payload = b"x" * 100_000
                # one message at a time, nothing acked by the consumer: its
                # front asks for a pause once it holds a quarter of the
                # limit, and the producer's next frame is not acknowledged
                acks = 0
                paused = False
                while acks < count:
                    await producer.send(message(payload, context=str(acks)))
                    try:
                        ack = await recv_json(producer, 2)
                    except asyncio.TimeoutError:
                        paused = True
                        break
                    assert ack["result"] == "ok", ack
                    acks += 1
                assert paused, f"{acks} messages went through without a pause"
                assert 2 * MIB // 133_000 <= acks < 8 * MIB // 133_000
                got = []
                while len(got) < acks + 1:
                    delivered = await recv_json(consumer, 10)
                    got.append(delivered["context"])
                    await consumer.send(
                        json.dumps({"messageId": delivered["messageId"]})
                    )
                # the consumer caught up: the producer goes on, nothing lost
                assert (await recv_json(producer, 10))["result"] == "ok"
                assert got == [str(i) for i in range(acks + 1)]
                assert b.dropped == 0
