"""A broker restart: backends and callers reconnect; persistent topics lose nothing."""

from __future__ import annotations

import asyncio

import pytest

from dasf_geo.transport.client import AsyncClient
from tests.conftest import free_port, timeout
from tests.e2e.conftest import (
    MODULES,
    consumers_on,
    pulsar_config,
    start_backend,
    start_broker,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SERVICE = MODULES / "e2e_service.py"


def test_broker_restart_reconnects_and_keeps_stored_requests(tmp_path):
    port = free_port()
    store = tmp_path / "broker.sqlite"
    topic = "e2e-restart"
    broker = start_broker(port, store)
    backend = start_backend(SERVICE, topic, broker, persistent=True)
    try:
        config = pulsar_config(topic, broker.url, persistent=True)

        async def scenario() -> None:
            nonlocal broker, backend
            async with AsyncClient(config, timeout=timeout(60)) as client:
                assert await client.call({"func_name": "echo", "value": 1}) == {
                    "value": 1,
                    "tag": "",
                }
                # 1. the broker restarts under a running backend and caller
                broker.proc.stop()
                broker = start_broker(port, store)
                await asyncio.to_thread(
                    wait_until,
                    lambda: consumers_on(broker, topic) == 1,
                    "the backend to reconnect",
                    30,
                )
                reply = await client.call({"func_name": "echo", "value": 2})
                assert reply == {"value": 2, "tag": ""}
                # 2. a request sent while no backend runs waits in the store,
                #    also across another broker restart
                backend.stop()
                pending = asyncio.create_task(
                    client.call({"func_name": "echo", "value": 3, "tag": "kept"})
                )
                await asyncio.sleep(1.0)
                assert not pending.done()
                broker.proc.stop()
                broker = start_broker(port, store)
                backend = start_backend(
                    SERVICE, topic, broker, persistent=True, wait=False
                )
                assert await asyncio.wait_for(pending, timeout(60)) == {
                    "value": 3,
                    "tag": "kept",
                }

        asyncio.run(scenario())
    finally:
        backend.stop()
        broker.proc.stop()
