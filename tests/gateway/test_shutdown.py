"""The gateway's shutdown is bounded, even when a task lost its cancellation.

On Python < 3.12, ``asyncio.wait_for`` returns the result of an operation
that completes as the waiting task is cancelled and drops the
cancellation. A notification consumer cancelled while it connects then
connects anyway and waits on its connection for good; a broker client or
an OGC job may likewise not stop. The gateway's lifespan shutdown used to
await such tasks without a bound (the app's teardown then hung until the
test timeout); it now closes what they wait on and stops waiting after a
few seconds. Each test runs the shutdown in a task of its own and checks
that it ends, so a regression fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest

from tests.gateway.conftest import settings

pytestmark = pytest.mark.timeout(60)


async def ends_within(coro: Any, seconds: float) -> float:
    """Run ``coro`` in a task; fail if it has not ended after ``seconds``."""
    task = asyncio.ensure_future(coro)
    start = time.monotonic()
    done, _ = await asyncio.wait([task], timeout=seconds)
    assert done, f"still running after {seconds:g} s"
    task.result()
    return time.monotonic() - start


async def test_a_notification_consumer_that_lost_its_cancellation(
    broker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dasf_geo.gateway import create_app
    from dasf_geo.transport.connection import AsyncConsumer

    real_connect = AsyncConsumer.connect
    connecting = asyncio.Event()

    async def connect(self: Any) -> None:
        connecting.set()
        # the connection completes as the cancellation comes
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.3)
        await real_connect(self)

    monkeypatch.setattr(AsyncConsumer, "connect", connect)
    app = create_app(settings(broker))

    async def start_and_stop() -> None:
        async with app.router.lifespan_context(app):
            await connecting.wait()  # stopped while its consumer connects

    took = await ends_within(start_and_stop(), 20)
    assert took < 5


async def test_a_broker_client_that_does_not_close(
    broker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dasf_geo.gateway import discovery

    monkeypatch.setattr(discovery, "CLOSE_TIMEOUT", 0.5)
    stopped: list[str] = []

    class Stuck:
        closed = False

        async def close(self) -> None:
            try:
                await asyncio.Event().wait()
            finally:
                stopped.append("cancelled")

    directory = discovery.ServiceDirectory(settings(broker))
    directory._clients[("stuck", ())] = Stuck()  # type: ignore[assignment]
    took = await ends_within(directory.close(), 10)
    assert 0.4 < took < 3
    await asyncio.sleep(0)
    assert stopped == ["cancelled"]  # not left running


async def test_a_job_that_does_not_stop(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dasf_geo.gateway import ogc
    from dasf_geo.gateway.jobs import JobStore

    monkeypatch.setattr(ogc, "CLOSE_TIMEOUT", 0.5)
    manager = ogc.JobManager(JobStore(tmp_path / "jobs.db"), owns_file=False)
    release = asyncio.Event()

    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # lost on the way
            await asyncio.sleep(3600)
        await release.wait()

    task = asyncio.get_running_loop().create_task(stubborn())
    manager.tasks["j1"] = task
    try:
        took = await ends_within(manager.close(), 10)
        assert 0.4 < took < 3
    finally:
        release.set()
        await task
