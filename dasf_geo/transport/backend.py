"""A backend's side: serve a backend module on its topic.

This module is the backend's public face: the blocking entry points
:func:`listen` (until SIGINT/SIGTERM), :class:`BackgroundListener` (a
backend in a thread of this process) and :func:`test_connect`, and the
names of the modules below, re-exported. How a topic is consumed, how many
requests run at once, when requests are acknowledged and how errors and
multipart requests are answered is described in
:mod:`dasf_geo.transport.listener`; the handler of a backend module
(validation, execution, replies) is :mod:`dasf_geo.transport.handler`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from dasf_geo._loop import run as run_loop
from dasf_geo._loop import until_signal
from dasf_geo.exceptions import (
    TransportError,
)
from dasf_geo.transport._common import (
    shorten_switch_interval,
)
from dasf_geo.transport.answers import (  # noqa: F401  (re-exported)
    _is_json_error,
    _too_large,
)
from dasf_geo.transport.connection import (
    AsyncConsumer,
    AsyncProducer,
    redact_url,
)
from dasf_geo.transport.dispatch import (  # noqa: F401  (re-exported)
    _ANSWERS,
    _FRAGMENT,
    DEFAULT_MAX_INCOMPLETE,
    DEFAULT_MAX_INCOMPLETE_BYTES,
    REMEMBER_FAILED,
    _Incoming,
    _parts_over,
)
from dasf_geo.transport.handler import (  # noqa: F401  (re-exported)
    MAX_ERRORS,
    MAX_INPUT_CHARS,
    FunctionReply,
    ModuleHandler,
    RequestHandler,
    _json_safe,
    _member_label,
    _over_limit,
    _RequestError,
    _RequestTooLarge,
    attach_reporters,
    binary_reply,
    default_subscription,
    parse_accept,
    structured_errors,
    with_findings,
)
from dasf_geo.transport.listener import (  # noqa: F401  (re-exported)
    MAX_REPLY_REDELIVERIES,
    RECONNECT_FIRST_DELAY,
    RECONNECT_MAX_DELAY,
    Listener,
    on_listening,
)

__all__ = [
    "BackgroundListener",
    "FunctionReply",
    "Listener",
    "ModuleHandler",
    "RequestHandler",
    "default_subscription",
    "listen",
    "on_listening",
    "test_connect",
]

logger = logging.getLogger(__name__)

#: Seconds to wait before each further attempt to open a reply's producer
#: (read here by :class:`~dasf_geo.transport.listener.Listener` at each reply).
REPLY_CONNECT_DELAYS = (0.1, 0.5)


def _config_of(module_cls: Any) -> Any:
    return module_cls.backend_config.messaging_config


def listen(module_cls: Any, *, handler: RequestHandler | None = None) -> None:
    """Serve ``module_cls`` until SIGINT or SIGTERM (blocking).

    In-flight requests are finished before returning; a second signal stops
    at once.

    Raises:
        ConnectionFailed: the broker cannot be reached at start.
    """
    handler = handler or ModuleHandler(module_cls)
    config = _config_of(module_cls)
    shorten_switch_interval()  # requests run in worker threads
    run_loop(until_signal(Listener(handler, config).run))


class BackgroundListener:
    """Serve a backend module from a background thread of this process.

    For notebooks, tests and examples: the module answers requests while the
    program goes on. ``with BackgroundListener(module_cls):`` starts it and
    waits until it consumes its topic; leaving the block finishes the
    requests in progress and stops it.

    Args:
        module_cls: a :class:`dasf_geo.backend.BackendModule` subclass.
        handler: runs the requests (default: the module itself).
    """

    def __init__(self, module_cls: Any, *, handler: RequestHandler | None = None):
        self.listener = Listener(
            handler or ModuleHandler(module_cls), _config_of(module_cls)
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self, timeout: float = 30.0) -> BackgroundListener:
        """Start serving; return once the topic is consumed.

        Raises:
            ConnectionFailed: the broker cannot be reached.
            TransportError: the listener did not connect within ``timeout``.
        """
        ready = threading.Event()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            task = asyncio.create_task(self.listener.run(self._stop))
            waiter = asyncio.create_task(self.listener.connected.wait())
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            ready.set()
            waiter.cancel()
            await task

        def run() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:  # reported by start() or stop()
                self._error = exc
            finally:
                ready.set()

        self._thread = threading.Thread(
            target=run, name=f"dasf-geo listener {self.listener.topic}", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout) or (
            self._error is None and not self.listener.connected.is_set()
        ):
            self.stop()
            raise TransportError(
                f"the listener on topic {self.listener.topic!r} did not connect "
                f"within {timeout:g} s"
            )
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the requests in progress and stop (idempotent)."""
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> BackgroundListener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def test_connect(module_cls: Any) -> bool:
    """Check that the broker accepts this backend's consumer and producer.

    Prints what was checked; returns True if both connections opened.
    """
    config = _config_of(module_cls)
    listener = Listener(ModuleHandler(module_cls), config)

    async def check() -> None:
        consumer = AsyncConsumer(
            listener.consumer_url,
            listener.header,
            open_timeout=listener.open_timeout,
            # left unacked: the broker hands them on once this check closes
            on_message=lambda msg: None,
        )
        producer = AsyncProducer(
            config.get_topic_url(listener.topic),
            listener.header,
            open_timeout=listener.open_timeout,
        )
        try:
            await consumer.connect()
            await producer.connect()
        finally:
            await consumer.close()
            await producer.close()

    try:
        asyncio.run(check())
    except TransportError as exc:
        print(f"connection test failed: {exc}")
        return False
    print(
        f"connection test succeeded: consumer and producer of topic "
        f"{listener.topic!r} at {redact_url(listener.consumer_url)}"
    )
    return True


test_connect.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
