"""Fixtures for transport tests: a real embedded broker and a test handler.

The handler here is a deliberately small stand-in for a backend module, so
that these tests exercise the transport alone; tests/e2e/ covers real
modules end to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel, Field, TypeAdapter

from dasf_geo.broker import EmbeddedBroker
from dasf_geo.protocol.progress import ProgressReport
from dasf_geo.testing.config import FakeMessagingConfig
from dasf_geo.transport.backend import Listener
from tests.conftest import timeout


@dataclass
class Config(FakeMessagingConfig):
    """A messaging config with what the transport reads (Pulsar URL layout)."""

    max_workers: int | None = 2
    producer_connection_timeout: float = 5.0


_REQUEST = TypeAdapter(dict)


class _Args(BaseModel):
    n: int = Field(ge=0)


class Handler:
    """Answers JSON requests ``{"op": …}``; counts what it executed."""

    debug = False

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.executed: list[Any] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.release.set()

    def handle(
        self, payload: bytes | bytearray, progress: Any = None, accept: Any = ()
    ) -> bytes:
        # like a backend module: invalid JSON is a pydantic ValidationError
        request = _REQUEST.validate_json(payload)
        with self.lock:
            self.executed.append(request.get("id"))
        op = request["op"]
        if op == "echo":
            return json.dumps(request["value"]).encode()
        if op == "size":
            return json.dumps(len(request["value"])).encode()
        if op == "blob":
            return json.dumps("x" * request["n"]).encode()
        if op == "sleep":
            time.sleep(request["seconds"])
            return b"null"
        if op == "wait":
            self.release.wait(timeout(30))
            return b"null"
        if op == "validate":
            _Args.model_validate(request["args"])
            return b"null"
        if op == "report":
            report = ProgressReport(step_message="working", steps=request["n"])
            report.attach(progress)
            with report:
                for i in range(request["n"]):
                    report.create_subreport(f"step {i}", submit=True).complete()
            return b"null"
        if op == "fail":
            raise RuntimeError("the function failed on purpose")
        raise KeyError(op)

    def info(self) -> str:
        return json.dumps({"title": "test schema"})

    def api_info(self) -> str:
        return json.dumps({"functions": [], "classes": [], "rpc_schema": {}})


@pytest.fixture
def broker():
    with EmbeddedBroker(host="127.0.0.1", port=0) as b:
        yield b


@pytest.fixture
def make_config(broker):
    def make(topic: str = "test-topic", **kwargs: Any) -> Config:
        return Config(base=broker.url, topic=topic, **kwargs)

    return make


async def raw_request(
    client: Any,
    config: Config,
    payload: bytes,
    message_type: str = "request",
    properties: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], asyncio.Future[Any]]:
    """Send a hand-made request with a plain websockets producer.

    The reply is awaited through ``client``'s response topic. ``properties``
    are added to the request's.

    Returns:
        The broker's ack and a future for the reply.
    """
    import websockets

    from dasf_geo.protocol import messages as m
    from dasf_geo.transport.client import _Pending

    context = m.new_request_context()
    fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    client._pending[context] = _Pending(fut, "a raw request")
    props = m.request_properties(client.response_topic, context)
    props["messageType"] = message_type
    props.update(properties or {})
    async with websockets.connect(config.get_topic_url(config.topic)) as raw:
        await raw.send(m.build_producer_frame(payload, props, "c1").decode())
        ack = json.loads(await asyncio.wait_for(raw.recv(), timeout(10)))
    return ack, fut


@contextlib.asynccontextmanager
async def running_listener(handler: Handler, config: Config):
    """Run a Listener in the current loop until the block ends."""
    listener = Listener(handler, config)
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    try:
        await asyncio.wait_for(listener.connected.wait(), timeout(10))
        yield listener
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout(30))


@contextlib.contextmanager
def listener_thread(handler: Handler, config: Config):
    """Run a Listener on an event loop of its own thread until the block ends.

    For tests of the blocking client, whose calls block the calling thread.
    """
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        async with running_listener(handler, config):
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),))
    thread.start()
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout(30))
