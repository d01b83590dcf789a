"""A backend and a caller given both fronts of a cluster lose their front.

Both are started with ``--broker ws://A,ws://B`` (the backend through
``dasf-geo serve``, the caller through ``messaging_config``); front A,
which both use, is killed in the middle of a run of calls. On a
persistent topic every call is answered, once; on a non-persistent one
the calls in flight fail with ReplyLost and later calls are answered
through front B.
"""

from __future__ import annotations

import asyncio
import collections
import sys

import pytest

from dasf_geo.exceptions import ReplyLost, RequestTimeout
from dasf_geo.transport.client import AsyncClient
from dasf_geo.transport.dynamic import messaging_config
from tests.broker.cluster_helpers import requires_nats
from tests.conftest import timeout
from tests.e2e.conftest import MODULES, Proc, wait_until
from tests.e2e.test_cluster_e2e import _ping, cluster

pytestmark = [pytest.mark.e2e, pytest.mark.slow, requires_nats]

SERVICE = MODULES / "e2e_service.py"


def serve(topic: str, brokers: str, *, persistent: bool, env=None) -> Proc:
    """``dasf-geo serve`` of the e2e module on both fronts (A first)."""
    args = [
        sys.executable,
        "-m",
        "dasf_geo.cli.tool",
        "serve",
        str(SERVICE),
        "--topic",
        topic,
        "--broker",
        brokers,
        "--no-http",
        "--max-workers",
        "8",
        "--log-level",
        "WARNING",
    ]
    if persistent:
        args.append("--persistent")
    return Proc(args, env=dict(env or {})).start()


def test_persistent_calls_are_all_answered_once_when_the_front_dies(tmp_path):
    topic = "e2e-failover-persistent"
    record = tmp_path / "record.txt"
    with cluster(2, "--ack-wait", "3", "--lease", "2") as (a, b):
        brokers = f"{a.url},{b.url}"
        backend = serve(
            topic, brokers, persistent=True, env={"E2E_RECORD": str(record)}
        )
        try:
            config = messaging_config(topic, brokers, persistent=True)
            wait_until(lambda: _ping(config), "the backend through front A", 60)

            async def scenario() -> tuple[collections.Counter[str], int]:
                answered: collections.Counter[str] = collections.Counter()
                async with AsyncClient(config, timeout=timeout(90)) as client:

                    async def one(i: int) -> None:
                        await client.call({"func_name": "record", "token": f"f{i}"})
                        answered[f"f{i}"] += 1

                    tasks = []
                    for i in range(40):
                        tasks.append(asyncio.create_task(one(i)))
                        await asyncio.sleep(0.05)
                        if i == 15:
                            a.proc.kill()  # the front both of them use
                    await asyncio.gather(*tasks)
                    return answered, client._fronts.index

            answered, front = asyncio.run(scenario())
            output = backend.output()
        finally:
            backend.stop()
    assert answered == {f"f{i}": 1 for i in range(40)}
    assert front == 1, "the caller did not move to front B"
    # a request the dead front had handed out may run twice (at least once)
    executed = collections.Counter(record.read_text().split()[0::2])
    assert set(executed) == set(answered)
    assert f"moved to the broker front {b.url} (2 of 2)" in output, output[-3000:]


def test_non_persistent_calls_in_flight_fail_with_reply_lost_then_calls_work():
    topic = "e2e-failover-non-persistent"
    with cluster(2) as (a, b):
        brokers = f"{a.url},{b.url}"
        backend = serve(topic, brokers, persistent=False)
        try:
            config = messaging_config(topic, brokers)
            wait_until(lambda: _ping(config), "the backend through front A", 60)

            async def scenario() -> tuple[list[object], list[int], int]:
                async with AsyncClient(config, timeout=timeout(60)) as client:
                    assert await client.call({"func_name": "echo", "value": 1}) == {
                        "value": 1,
                        "tag": "",
                    }
                    in_flight = [
                        asyncio.create_task(
                            client.call({"func_name": "sleep", "seconds": 5.0})
                        )
                        for _ in range(4)
                    ]
                    await asyncio.sleep(1.0)  # sent, acknowledged, running
                    a.proc.kill()
                    lost = await asyncio.gather(*in_flight, return_exceptions=True)
                    # until the backend is on front B too, a request may find
                    # nobody (non-persistent: dropped); then calls work
                    for _ in range(60):
                        try:
                            await client.call(
                                {"func_name": "echo", "value": 0}, timeout=timeout(2)
                            )
                            break
                        except (RequestTimeout, ReplyLost):
                            await asyncio.sleep(0.5)
                    later = [
                        (await client.call({"func_name": "echo", "value": i}))["value"]
                        for i in range(10)
                    ]
                    return lost, later, client._fronts.index

            lost, later, front = asyncio.run(scenario())
            output = backend.output()
        finally:
            backend.stop()
    assert [type(exc) for exc in lost] == [ReplyLost] * 4, lost
    assert all("sleep()" in str(exc) for exc in lost)
    assert later == list(range(10))
    assert front == 1
    assert f"moved to the broker front {b.url} (2 of 2)" in output, output[-3000:]
