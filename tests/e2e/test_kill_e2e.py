"""kill -9 of the broker: the running backend and caller recover by themselves.

A broker process is killed with SIGKILL while requests wait in its store,
one runs in the backend and replies are on their way, then started again
on the same port. Nothing is restarted by hand on the client side: the
backend's consume loop and the caller's reply watcher reconnect with
backoff, and every persistent request is answered, once to its caller.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from dasf_geo.exceptions import ReplyLost
from dasf_geo.testing.calls import call_stored
from dasf_geo.transport.client import AsyncClient, describe_request
from tests.conftest import free_port, timeout
from tests.e2e.conftest import (
    MODULES,
    BrokerProc,
    consumers_on,
    pulsar_config,
    start_backend,
    start_broker,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SERVICE = MODULES / "e2e_service.py"


def kill_and_restart(broker: BrokerProc) -> BrokerProc:
    """SIGKILL the broker, then start it again on the same port and store."""
    broker.proc.stop(signal.SIGKILL)
    return start_broker(broker.port, broker.store)


def test_sigkill_of_the_broker_loses_no_persistent_request(tmp_path):
    port = free_port()
    broker = start_broker(port, tmp_path / "broker.sqlite")
    topic = "e2e-kill"
    backend = start_backend(SERVICE, topic, broker, persistent=True)
    pid = backend.popen.pid if backend.popen else None
    replies: dict[str, int] = {}
    try:
        config = pulsar_config(topic, broker.url, persistent=True)

        async def scenario() -> None:
            nonlocal broker
            async with AsyncClient(config, timeout=timeout(120)) as client:
                handle = client._handle_reply

                def counting(msg):  # type: ignore[no-untyped-def]
                    context = str(msg.properties.get("requestContext"))
                    replies[context] = replies.get(context, 0) + 1
                    handle(msg)

                client._handle_reply = counting  # type: ignore[method-assign]
                value = 0
                for cycle in range(3):
                    # the backend's one worker is busy; 60 requests wait in
                    # the broker's store behind it
                    (busy,) = await call_stored(
                        client, [{"func_name": "sleep", "seconds": 1.0}]
                    )
                    values = list(range(value + 1, value + 61))
                    value += 60
                    tasks = await call_stored(
                        client,
                        [{"func_name": "echo", "value": v, "tag": "k"} for v in values],
                    )
                    calls = list(zip(values, tasks, strict=True))
                    await asyncio.sleep(0.3 * cycle)  # some replies on their way
                    broker = await asyncio.to_thread(kill_and_restart, broker)
                    assert await asyncio.wait_for(busy, timeout(120)) == 1.0
                    for expected, task in calls:
                        assert await asyncio.wait_for(task, timeout(120)) == {
                            "value": expected,
                            "tag": "k",
                        }
                # a new caller is served too
                async with AsyncClient(config, timeout=timeout(60)) as fresh:
                    assert await fresh.call({"func_name": "echo", "value": -1}) == {
                        "value": -1,
                        "tag": "",
                    }

        asyncio.run(scenario())
        # the backend recovered by itself: the same process, consuming again
        assert backend.alive() and backend.popen and backend.popen.pid == pid
        assert consumers_on(broker, topic) == 1
        # 183 calls, each answered (duplicate deliveries are possible after a
        # kill -9, before the caller's ack was stored, and are dropped)
        assert len(replies) >= 183
        assert "Traceback" not in broker.proc.output()
    finally:
        backend.stop()
        broker.proc.stop()


def test_sigkill_fails_calls_in_flight_on_a_non_persistent_topic_at_once():
    port = free_port()
    broker = start_broker(port)
    topic = "e2e-kill-np"
    backend = start_backend(SERVICE, topic, broker)
    try:
        config = pulsar_config(topic, broker.url)

        async def scenario() -> None:
            nonlocal broker
            async with AsyncClient(config, timeout=timeout(600)) as client:
                request = {"func_name": "sleep", "seconds": 2.0}
                call = asyncio.create_task(client.call(request))
                await asyncio.sleep(0.5)
                start = time.monotonic()
                broker.proc.stop(signal.SIGKILL)
                with pytest.raises(ReplyLost) as info:
                    await asyncio.wait_for(call, timeout(60))
                assert time.monotonic() - start < timeout(30)  # not after 600 s
                assert str(info.value).startswith(
                    f"the reply to {describe_request(request)} from topic "
                    "'e2e-kill-np' may be lost: the connection for replies closed"
                )
                broker = await asyncio.to_thread(start_broker, port)
                await asyncio.to_thread(
                    wait_until,
                    lambda: consumers_on(broker, topic) == 1,
                    "the backend to reconnect",
                    60,
                )
                # the same caller goes on
                assert await client.call({"func_name": "echo", "value": 5}) == {
                    "value": 5,
                    "tag": "",
                }

        asyncio.run(scenario())
        assert backend.alive()
    finally:
        backend.stop()
        broker.proc.stop()
