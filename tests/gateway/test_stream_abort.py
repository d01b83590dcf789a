"""A raw NetCDF result passed on while it arrives: a reply that breaks late.

A fake backend (raw producer and consumer on the embedded broker, with the
API info of ``big_service``) answers ``make`` with a fragmented binary reply
that is whole, has a corrupt fragment, has fewer bytes than it announced,
or is an error. The gateway runs on a real uvicorn server, so that an
aborted response is seen the way an HTTP client sees it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dasf_geo.protocol.constants import (
    EXT_ENCODING,
    EXT_FEATURES,
    EXT_SIZE,
    KEY_MESSAGE_TYPE,
    KEY_REQUEST_CONTEXT,
    KEY_SOURCE_TOPIC,
    KEY_STATUS,
)
from dasf_geo.protocol.fragments import split_payload
from dasf_geo.protocol.messages import b64decode, b64encode
from tests.conftest import timeout
from tests.gateway.conftest import BIG_TOPIC, settings
from tests.transport.conftest import Config

pytestmark = [pytest.mark.timeout(180)]

FAKE_TOPIC = "gw_fake_stream"
#: the fake's result: 3 MB of bytes, about 8 fragments of 512,000 characters
RESULT = bytes(range(256)) * (3_000_000 // 256)
NETCDF_TYPE = "application/x-netcdf; xarray=Dataset"


class FakeBackend:
    """Answers ``make(megabytes, seed)``; ``seed`` picks how the reply breaks.

    0: whole; 1: fragment 3 fails its CRC-32; 2: the reply announces one
    byte more than it has; 3: an error reply.
    """

    def __init__(self, base: str, api_info: str) -> None:
        self.config = Config(base=base, topic=FAKE_TOPIC)
        self.api_info = api_info
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.producers: dict[str, Any] = {}
        self.consumer: Any = None

    def start(self) -> FakeBackend:
        from dasf_geo.transport.connection import AsyncConsumer

        self.thread.start()

        async def connect() -> None:
            self.consumer = AsyncConsumer(
                self.config.get_topic_url(FAKE_TOPIC, "fake")
                + "?subscriptionType=Shared",
                on_message=lambda msg: self.loop.create_task(self.answer(msg)),
            )
            await self.consumer.connect()

        asyncio.run_coroutine_threadsafe(connect(), self.loop).result(timeout(30))
        return self

    def stop(self) -> None:
        async def close() -> None:
            await self.consumer.close()
            for producer in self.producers.values():
                await producer.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout(30))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout(10))

    async def producer(self, topic: str) -> Any:
        from dasf_geo.transport.connection import AsyncProducer

        if topic not in self.producers:
            producer = AsyncProducer(self.config.get_topic_url(topic))
            await producer.connect()
            self.producers[topic] = producer
        return self.producers[topic]

    async def answer(self, msg: Any) -> None:
        self.consumer.ack_now(msg.message_id)
        props = msg.properties
        producer = await self.producer(props["response_topic"])
        base = {
            KEY_REQUEST_CONTEXT: props[KEY_REQUEST_CONTEXT],
            KEY_SOURCE_TOPIC: FAKE_TOPIC,
        }
        kind = props[KEY_MESSAGE_TYPE]
        if kind in ("ping", "api_info", "info"):
            reply = {
                **base,
                KEY_MESSAGE_TYPE: "pong" if kind == "ping" else kind,
                KEY_STATUS: "success",
                EXT_FEATURES: "parts",
            }
            if kind != "ping":
                reply[kind] = self.api_info
            await producer.send(b"", reply)
            return
        request = json.loads(b64decode(msg.payload, "request"))
        seed = request.get("seed", 0)
        if seed == 3:
            error = b"the function failed on purpose"
            await producer.send(
                b64encode(error),
                {**base, KEY_MESSAGE_TYPE: "response", KEY_STATUS: "error"},
            )
            return
        reply = {
            **base,
            KEY_MESSAGE_TYPE: "response",
            KEY_STATUS: "success",
            EXT_ENCODING: NETCDF_TYPE,
        }
        for fragment in split_payload(RESULT, 512_000):
            fprops = {**reply, **fragment.properties}
            payload = fragment.payload
            if seed == 1 and fprops["fragment"] == 3:
                payload = payload.replace(b"A", b"B", 1)  # the CRC no longer fits
            if seed == 2:
                fprops[EXT_SIZE] = len(RESULT) + 1
            await producer.send(payload, fprops)


@pytest.fixture(scope="module")
def fake_gateway(broker: Any, big_backend: Any) -> Iterator[str]:
    """The fake backend and a gateway on a real uvicorn server: its URL."""
    from dasf_geo.gateway import GatewayServer
    from dasf_geo.transport.caller import AsyncClient

    async def fetch_api_info() -> str:
        async with AsyncClient(Config(base=broker.url, topic=BIG_TOPIC)) as client:
            return json.dumps(await client.api_info(timeout=timeout(30)))

    fake = FakeBackend(broker.url, asyncio.run(fetch_api_info())).start()
    server = GatewayServer(settings(broker), "127.0.0.1", 0).start()
    try:
        yield server.url
    finally:
        server.stop()
        fake.stop()


def _make(url: str, seed: int) -> httpx.Response:
    with httpx.stream(
        "POST",
        f"{url}/services/{FAKE_TOPIC}/make",
        json={"megabytes": 3, "seed": seed},
        headers={"Accept": "application/x-netcdf"},
        timeout=timeout(60),
    ) as response:
        response.read()
    return response


def test_a_whole_reply_streams_through(fake_gateway: str) -> None:
    response = _make(fake_gateway, 0)
    assert response.status_code == 200
    assert response.headers["content-type"] == NETCDF_TYPE
    assert int(response.headers["content-length"]) == len(RESULT)
    assert response.content == RESULT


@pytest.mark.parametrize("seed", [1, 2], ids=["corrupt-fragment", "short-reply"])
def test_a_reply_that_breaks_late_aborts_the_response(
    fake_gateway: str, seed: int
) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        _make(fake_gateway, seed)
    # the gateway keeps serving: the next call is whole
    response = _make(fake_gateway, 0)
    assert response.status_code == 200
    assert response.content == RESULT


def test_the_aborted_body_is_never_whole(fake_gateway: str) -> None:
    received = bytearray()
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST",
            f"{fake_gateway}/services/{FAKE_TOPIC}/make",
            json={"megabytes": 3, "seed": 1},
            headers={"Accept": "application/x-netcdf"},
            timeout=timeout(60),
        ) as response,
    ):
        assert response.status_code == 200  # the first fragments were fine
        for chunk in response.iter_raw():
            received += chunk
    # nothing of or after the corrupt fragment 3 went out
    assert len(received) <= 3 * 384_000
    assert bytes(received) == RESULT[: len(received)]


def test_an_error_reply_keeps_its_status(fake_gateway: str) -> None:
    response = _make(fake_gateway, 3)
    assert response.status_code == 502
    assert "failed on purpose" in response.json()["detail"]
