"""Backends and callers on different fronts of a broker cluster over NATS."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Iterator

import pytest

from dasf_geo.testing.processes import cluster_fronts
from dasf_geo.transport.client import AsyncClient
from tests.broker.cluster_helpers import (
    NATS_URL,
    cluster_name,
    requires_nats,
)
from tests.conftest import timeout
from tests.e2e.conftest import (
    MODULES,
    BrokerProc,
    Proc,
    consumers_on,
    pulsar_config,
    start_backend,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, requires_nats]

SERVICE = MODULES / "e2e_service.py"


@contextlib.contextmanager
def cluster(count: int = 2, *extra: str) -> Iterator[list[BrokerProc]]:
    """``count`` ``dasf-geo broker --cluster`` fronts of a new cluster."""
    with cluster_fronts(
        NATS_URL,
        count,
        *extra,
        name=cluster_name(),
        seconds=timeout(20),
        factory=Proc,
    ) as fronts:
        yield [BrokerProc(front.proc, front.port, None) for front in fronts]


@pytest.mark.parametrize("persistent", [False, True])
def test_a_call_through_one_front_reaches_a_backend_on_another(persistent):
    topic = f"e2e-cluster-{int(persistent)}"
    with cluster(2) as (a, b):
        backend = start_backend(SERVICE, topic, b, persistent=persistent, wait=False)
        try:
            config = pulsar_config(topic, a.url, persistent=persistent)

            async def scenario() -> None:
                async with AsyncClient(config, timeout=timeout(30)) as client:
                    await client.ping(timeout=timeout(30))
                    reply = await client.call({"func_name": "echo", "value": 7})
                    assert reply == {"value": 7, "tag": ""}
                    # a reply of several fragments crosses the fronts too
                    big = await client.call({"func_name": "blob", "n": 3_000_000})
                    assert big == "x" * 3_000_000

            wait_until(lambda: _ping(config), "the backend through front A", 30)
            asyncio.run(scenario())
        finally:
            backend.stop()


def _ping(config) -> bool:
    from dasf_geo.transport.client import Client

    with Client(config, timeout=2) as client:
        client.ping(timeout=2)
    return True


def test_shared_spreads_over_backends_on_two_fronts_each_request_once(tmp_path):
    topic = "e2e-cluster-shared"
    record = tmp_path / "record.txt"
    env = {"E2E_RECORD": str(record)}
    with cluster(2) as (a, b):
        backends = [
            start_backend(SERVICE, topic, front, env=env, persistent=True, wait=False)
            for front in (a, b)
        ]
        try:
            config = pulsar_config(topic, a.url, persistent=True)
            wait_until(lambda: _ping(config), "a backend through front A", 30)

            async def scenario() -> list[int]:
                async with AsyncClient(config, timeout=timeout(60)) as client:
                    calls = [
                        client.call({"func_name": "record", "token": f"t{i}"})
                        for i in range(60)
                    ]
                    return list(await asyncio.gather(*calls))

            # both backends must have subscribed before the burst
            for front in (a, b):
                wait_until(lambda f=front: consumers_on(f, topic) == 1, "backends", 30)
            pids = asyncio.run(scenario())
        finally:
            for proc in backends:
                proc.stop()
    lines = record.read_text().split()
    tokens = collections.Counter(lines[0::2])
    assert sorted(tokens) == sorted(f"t{i}" for i in range(60))
    assert set(tokens.values()) == {1}, "a request was executed twice"
    assert len(set(pids)) == 2, f"all 60 requests went to one backend: {set(pids)}"


@pytest.mark.parametrize("victim", ["front", "backend"])
def test_a_killed_front_or_backend_loses_no_persistent_request(tmp_path, victim):
    topic = f"e2e-cluster-kill-{victim}"
    record = tmp_path / "record.txt"
    env = {"E2E_RECORD": str(record)}
    with cluster(2, "--ack-wait", "3") as (a, b):
        backends = [
            start_backend(SERVICE, topic, front, env=env, persistent=True, wait=False)
            for front in (a, b)
        ]
        try:
            config = pulsar_config(topic, b.url, persistent=True)
            wait_until(lambda: _ping(config), "a backend through front B", 30)

            async def scenario() -> list[str]:
                async with AsyncClient(config, timeout=timeout(60)) as client:
                    answered: list[str] = []

                    async def one(i: int) -> None:
                        await client.call({"func_name": "record", "token": f"k{i}"})
                        answered.append(f"k{i}")

                    tasks = []
                    for i in range(40):
                        tasks.append(asyncio.create_task(one(i)))
                        await asyncio.sleep(0.05)
                        if i == 15:
                            # front A dies under its backend, or the backend
                            # on front A dies with requests in hand
                            (a.proc if victim == "front" else backends[0]).kill()
                    await asyncio.gather(*tasks)
                    return answered

            answered = asyncio.run(scenario())
        finally:
            for proc in backends:
                proc.stop()
    assert sorted(answered) == sorted(f"k{i}" for i in range(40))
    executed = collections.Counter(record.read_text().split()[0::2])
    assert set(executed) == set(answered)


@pytest.mark.parametrize("persistent", [False, True])
def test_large_requests_reach_one_backend_whole_across_fronts(persistent):
    # each request travels in fragments that share a key; with backends on
    # two fronts, every fragment of a request must reach the same backend
    topic = f"e2e-cluster-large-{int(persistent)}"
    with cluster(2) as (a, b):
        backends = [
            start_backend(SERVICE, topic, front, persistent=persistent, wait=False)
            for front in (a, b)
        ]
        try:
            config = pulsar_config(topic, a.url, persistent=persistent)
            wait_until(lambda: _ping(config), "a backend through front A", 30)
            for front in (a, b):
                wait_until(lambda f=front: consumers_on(f, topic) == 1, "backends", 30)

            async def scenario() -> list[int]:
                async with AsyncClient(config, timeout=timeout(60)) as client:
                    calls = [
                        client.call(
                            {"func_name": "size", "data": "z" * (3_000_000 + i)}
                        )
                        for i in range(6)
                    ]
                    return list(await asyncio.gather(*calls))

            assert asyncio.run(scenario()) == [3_000_000 + i for i in range(6)]
        finally:
            for proc in backends:
                proc.stop()
