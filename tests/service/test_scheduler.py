"""call_every: periodic runs, overruns, failures, hangs; sync and async."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from dasf_geo.service.scheduler import PeriodicTask
from tests.conftest import timeout


async def until(predicate, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_sync_and_async_functions_run_repeatedly():
    calls: list[str] = []

    def sync() -> None:
        calls.append(threading.current_thread().name)

    async def coro() -> None:
        calls.append("async")

    tasks = [PeriodicTask(sync, 0.05), PeriodicTask(coro, 0.05)]
    for t in tasks:
        t.start()
    await until(lambda: all(t.runs >= 3 for t in tasks), timeout(10))
    for t in tasks:
        await t.stop()
    assert "async" in calls
    # plain functions run in a thread of their own, never on the loop's
    assert any(name.startswith("dasf-geo ") for name in calls)
    assert tasks[0].failures == tasks[1].failures == 0


async def test_wait_first_skips_the_first_run():
    calls: list[float] = []
    task = PeriodicTask(lambda: calls.append(time.monotonic()), 30.0, wait_first=True)
    task.start()
    await asyncio.sleep(0.2)
    await task.stop()
    assert calls == []
    assert task.runs == 0


async def test_an_exception_is_logged_and_later_runs_go_on(caplog):
    def boom() -> None:
        raise RuntimeError("sensor offline")

    task = PeriodicTask(boom, 0.02)
    with caplog.at_level(logging.ERROR, "dasf_geo.service.scheduler"):
        task.start()
        await until(lambda: task.failures >= 3, timeout(10))
        await task.stop()
    records = [r for r in caplog.records if "boom" in r.getMessage()]
    assert records[0].getMessage() == (
        "periodic task test_an_exception_is_logged_and_later_runs_go_on.<locals>.boom "
        "raised (run 1); it runs again in 0.02 s"
    )
    assert records[0].exc_info is not None  # the traceback is logged
    assert "sensor offline" in caplog.text


async def test_an_overrun_is_logged_and_runs_never_pile_up(caplog):
    running = 0
    most = 0

    async def slow() -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.15)
        running -= 1

    task = PeriodicTask(slow, 0.05)
    with caplog.at_level(logging.WARNING, "dasf_geo.service.scheduler"):
        task.start()
        await until(lambda: task.runs >= 3, timeout(10))
        await task.stop()
    assert most == 1
    assert task.overruns >= 2
    assert (
        "periodic task test_an_overrun_is_logged_and_runs_never_pile_up.<locals>.slow "
        "is still running after 0.05 s, its interval; the next run starts when this "
        "one is done"
    ) in [r.getMessage() for r in caplog.records]


async def test_a_hanging_function_does_not_block_the_stop(caplog):
    release = threading.Event()

    def hang() -> None:
        release.wait(timeout(30))

    task = PeriodicTask(hang, 0.05)
    task.start()
    await until(lambda: task.running, timeout(10))
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, "dasf_geo.service.scheduler"):
        await task.stop(grace=0.1)
    assert time.monotonic() - started < timeout(10)
    assert any("did not finish within 0.1 s of the stop" in m for m in caplog.messages)
    release.set()


def test_a_periodic_task_of_a_running_service(broker, make_service):
    svc = make_service("ticker")
    done = threading.Event()

    @svc.entrypoint
    def ping() -> str:
        return "pong"

    @svc.call_every(0.05)
    def tick() -> None:
        svc.store(tick=time.time())
        if len(svc.monitor(["tick"])) >= 3:
            done.set()

    svc.start(broker=broker.url)
    assert done.wait(timeout(20))
    svc.stop()
    task = svc.periodic_tasks[0]
    runs = task.runs
    time.sleep(0.2)
    assert task.runs == runs  # stopped with the service
