"""Event loops that dasf_geo creates for itself (uvloop where available).

A small RPC call costs a few hundred microseconds of CPU per process, and a
good share of it is the asyncio event loop itself (its selector, handles,
timers and the self-pipe that wakes it from other threads). uvloop does the
same work in C. It is used only for the loops dasf_geo creates itself: the
background loop of the blocking :class:`~dasf_geo.transport.client.Client`,
``listen()`` / ``dasf-geo serve`` backends and the ``dasf-geo broker``.
Code that runs :class:`~dasf_geo.transport.client.AsyncClient` in its own
loop keeps whatever loop it chose; no event loop policy is ever installed.

Set ``DASF_GEO_UVLOOP=0`` to use the standard asyncio loop; without uvloop
installed (or on Windows) it is used anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["loop_factory", "new_event_loop", "run", "until_signal"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """The function that makes dasf_geo's own event loops.

    ``uvloop.new_event_loop`` unless ``DASF_GEO_UVLOOP`` is ``0`` (or
    ``false``/``no``/``off``) or uvloop cannot be imported; else
    :func:`asyncio.new_event_loop`.
    """
    if os.environ.get("DASF_GEO_UVLOOP", "").strip().lower() in {
        "0",
        "false",
        "no",
        "off",
    }:
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:  # not installed (e.g. on Windows): the standard loop
        return asyncio.new_event_loop
    return uvloop.new_event_loop  # type: ignore[no-any-return]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop of the kind :func:`loop_factory` says."""
    return loop_factory()()


def run(main: Coroutine[Any, Any, T]) -> T:
    """:func:`asyncio.run` on a loop of :func:`new_event_loop`."""
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            return runner.run(main)
    # Python 3.10 has no Runner: what asyncio.run does, on our own loop
    loop = new_event_loop()  # pragma: no cover - Python 3.10 only
    try:  # pragma: no cover
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:  # pragma: no cover
        try:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:  # pragma: no cover
    tasks = asyncio.all_tasks(loop)
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during dasf_geo run() shutdown",
                    "exception": task.exception(),
                    "task": task,
                }
            )


async def until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)``; SIGINT or SIGTERM sets ``stop``, a second one exits.

    ``main`` is expected to finish its in-flight work and return once
    ``stop`` is set. The handlers are installed only in the main thread (a
    background thread cannot receive signals) and removed afterwards.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if threading.current_thread() is threading.main_thread():

        def on_signal(sig: signal.Signals) -> None:
            if stop.is_set():
                raise SystemExit(1)  # second signal: stop at once
            logger.info("received %s: finishing in-flight work", sig.name)
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, on_signal, sig)
                installed.append(sig)
    try:
        await main(stop)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
