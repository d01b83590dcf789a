"""Periodic tasks (``service.call_every``): start with the service, stop with it.

A task calls its function every ``seconds``, measured from the start of one
run to the start of the next. Runs never overlap: a run that takes longer
than the interval is logged as a warning and the next one starts as soon as
it is done (no pile-up of missed runs). An exception is logged with its
traceback and the task goes on. Plain functions run in a thread of their own
(so that a slow one never blocks the service's event loop); ``async``
functions run on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PeriodicTask", "run_in_daemon_thread"]

logger = logging.getLogger(__name__)


async def run_in_daemon_thread(func: Callable[[], Any], name: str) -> Any:
    """Run ``func()`` in a new daemon thread; await its result.

    A daemon thread, not an executor's: a function that hangs must not keep
    the process alive once the service stops.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()  # e.g. the current service

    def settle(error: BaseException | None, value: Any) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def target() -> None:
        try:
            value = context.run(func)
        except BaseException as exc:  # handed to the awaiting task
            with contextlib.suppress(RuntimeError):  # the loop is closed
                loop.call_soon_threadsafe(settle, exc, None)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, None, value)

    threading.Thread(target=target, name=name, daemon=True).start()
    return await future


@dataclass
class PeriodicTask:
    """A function called every ``seconds`` while the service runs.

    Attributes:
        func: the function (no arguments; sync or async).
        seconds: the interval.
        wait_first: wait one interval before the first run.
        runs: runs started so far.
        failures: runs that raised.
        overruns: runs that took longer than the interval.
    """

    func: Callable[[], Any]
    seconds: float
    wait_first: bool = False
    runs: int = 0
    failures: int = 0
    overruns: int = 0
    running: bool = False
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """The function's qualified name."""
        return getattr(self.func, "__qualname__", repr(self.func))

    def start(self) -> asyncio.Task[None]:
        """Start the task on the running loop."""
        self._task = asyncio.get_running_loop().create_task(
            self._loop(), name=f"dasf-geo call_every {self.name}"
        )
        return self._task

    async def stop(self, grace: float = 5.0) -> None:
        """Stop the task; a run in progress gets ``grace`` seconds to finish."""
        task, self._task = self._task, None
        if task is None:
            return
        if self.running:
            # let the current run finish (it may be storing its result)
            done, _ = await asyncio.wait({task}, timeout=grace)
            if not done:
                logger.warning(
                    "periodic task %s did not finish within %g s of the stop; "
                    "abandoning it",
                    self.name,
                    grace,
                )
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    async def _run_once(self) -> None:
        if inspect.iscoroutinefunction(self.func):
            await self.func()
            return
        result = await run_in_daemon_thread(self.func, f"dasf-geo {self.name}")
        if inspect.isawaitable(result):
            await result

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_start = loop.time() + (self.seconds if self.wait_first else 0.0)
        while True:
            delay = next_start - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            started = loop.time()
            self.runs += 1
            self.running = True
            run = asyncio.ensure_future(self._run_once())
            try:
                done, _ = await asyncio.wait({run}, timeout=self.seconds)
                if not done:
                    self.overruns += 1
                    logger.warning(
                        "periodic task %s is still running after %g s, its "
                        "interval; the next run starts when this one is done",
                        self.name,
                        self.seconds,
                    )
                await run
            except asyncio.CancelledError:
                run.cancel()
                raise
            except Exception:
                self.failures += 1
                logger.exception(
                    "periodic task %s raised (run %d); it runs again in %g s",
                    self.name,
                    self.runs,
                    self.seconds,
                )
            finally:
                self.running = False
            next_start = max(started + self.seconds, loop.time())
