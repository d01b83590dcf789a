"""The blocking caller: :class:`Client` and the shared clients of the process.

:class:`Client` runs the asyncio client (:mod:`dasf_geo.transport.caller`) on
one background event loop shared by all blocking clients of the process;
:func:`get_client` keeps one client per messaging config and topic, which
:func:`~dasf_geo.service.client.send_request` (the ``send_request`` of a
backend module, in the service layer; its old import path here still works)
uses.

The bridge uses only the explicit internal API of
:class:`~dasf_geo.transport.caller.AsyncClient` (:meth:`~AsyncClient.check_size`,
:meth:`~AsyncClient.send_at_once`, :meth:`~AsyncClient.request`,
:meth:`~AsyncClient.forget`, :attr:`~AsyncClient.closed`): a small request is
sent at once from the event loop thread and its reply completes a
:class:`_ThreadWaiter`, a lock the calling thread blocks on.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import threading
from collections.abc import Awaitable, Coroutine, Iterable
from typing import Any, TypeVar

from dasf_geo._loop import new_event_loop
from dasf_geo._moved import moved_names
from dasf_geo.protocol.constants import (
    DEFAULT_MAX_PAYLOAD_SIZE,
    MessageType,
)
from dasf_geo.protocol.options import (
    TransferOptions,
)
from dasf_geo.transport._common import (
    MessagingSettings,
    OutgoingParts,
    header_of,
    setting,
    shorten_switch_interval,
)
from dasf_geo.transport.caller import AsyncClient
from dasf_geo.transport.matching import (
    ProgressCallback,
    _request_payload,
    describe_request,
)
from dasf_geo.transport.replies import (
    Reply,
)

__all__ = [
    "Client",
    "close_clients",
    "get_client",
    "run_in_background",
]

#: names that moved to the service layer, still importable from here
MOVED = dict.fromkeys(
    ("PROBE_TIMEOUT", "binary_accept", "send_request"), "dasf_geo.service.client"
)
__getattr__ = moved_names(__name__, MOVED)

logger = logging.getLogger("dasf_geo.transport.client")

T = TypeVar("T")


class _ThreadWaiter:
    """A reply a blocking thread waits for; completed on the event loop.

    It offers the few methods of an asyncio future that the client uses
    (``done``, ``set_result``, ``set_exception``, ``cancel``), and a lock
    the waiting thread blocks on — the cheapest hand-over between threads.
    """

    __slots__ = (
        "_done",
        "_lock",
        "abandoned",
        "context",
        "error",
        "reply",
        "task",
        "timeout",
    )

    def __init__(self, timeout: float) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._done = False
        self.timeout = timeout
        self.reply: Reply | None = None
        self.error: BaseException | None = None
        self.context: str | None = None
        self.task: asyncio.Task[None] | None = None
        self.abandoned = False

    def done(self) -> bool:
        return self._done

    def set_result(self, reply: Reply) -> None:
        if not self._done:
            self._done = True
            self.reply = reply
            self._lock.release()

    def set_exception(self, error: BaseException) -> None:
        if not self._done:
            self._done = True
            self.error = error
            self._lock.release()

    def cancel(self) -> None:
        self.set_exception(asyncio.CancelledError())

    def wait(self, timeout: float) -> bool:
        """Block until completed or ``timeout`` seconds passed."""
        return self._lock.acquire(True, timeout)


def _start_for_thread(
    client: AsyncClient,
    waiter: _ThreadWaiter,
    payload: bytes | OutgoingParts,
    message_type: MessageType | str,
    what: str,
    progress: ProgressCallback | None,
    accept: Iterable[str] | None,
    options: TransferOptions,
) -> None:
    """On the event loop: start a request a blocking thread waits for.

    A small request is sent at once and its reply completes ``waiter``
    directly (no task, no asyncio future); anything else runs
    :meth:`AsyncClient.request` in a task. The blocking thread times out by itself
    and then calls :func:`_abandon`.
    """
    if waiter.abandoned:
        return
    try:
        context = client.send_at_once(
            payload, message_type, what, progress, accept, waiter, options
        )
    except Exception as exc:
        waiter.set_exception(exc)
        return
    if context is not None:
        waiter.context = context
        return

    async def slow() -> None:
        try:
            reply = await client.request(
                payload,
                message_type=message_type,
                timeout=waiter.timeout,
                what=what,
                progress=progress,
                accept=accept,
                options=options,
            )
        except BaseException as exc:  # handed to the waiting thread
            waiter.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            waiter.set_result(reply)

    waiter.task = asyncio.get_running_loop().create_task(slow())


def _abandon(client: AsyncClient, waiter: _ThreadWaiter) -> None:
    """On the event loop: the blocking thread stopped waiting."""
    waiter.abandoned = True
    if waiter.context is not None:
        client.forget(waiter.context)
    if waiter.task is not None:
        waiter.task.cancel()


class _LoopThread:
    """One daemon thread running the event loop of all blocking clients."""

    def __init__(self) -> None:
        shorten_switch_interval()
        self.loop = new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name="dasf-geo-client", daemon=True
        )
        self.thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except BaseException:
            fut.cancel()
            raise


_loop_lock = threading.Lock()
_loop_thread: _LoopThread | None = None
_loop_pid: int | None = None


def _background() -> _LoopThread:
    global _loop_thread, _loop_pid
    with _loop_lock:
        if _loop_thread is None or _loop_pid != os.getpid():
            _loop_thread = _LoopThread()
            _loop_pid = os.getpid()
        return _loop_thread


def run_in_background(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on the blocking clients' background event loop; wait for it.

    For synchronous code (a service's notification, a blocking helper) that
    needs one asynchronous exchange without an event loop of its own. The
    loop is the one :class:`Client` uses (one per process, started on first
    use).

    Raises:
        TimeoutError: ``timeout`` seconds passed (``coro`` is cancelled).
        Exception: whatever ``coro`` raised.
    """
    return _background().run(coro, timeout)


class Client:
    """Blocking client for one backend topic (see :class:`AsyncClient`).

    Safe to use from several threads at once; all requests share one pair of
    connections.
    """

    def __init__(
        self,
        config: MessagingSettings,
        topic: str | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        self._bg = _background()
        self._async = AsyncClient(config, topic, timeout=timeout)
        self._run(self._async.start())

    @property
    def topic(self) -> str:
        """The backend's topic."""
        return self._async.topic

    @property
    def timeout(self) -> float:
        """Default seconds to wait for a reply."""
        return self._async.timeout

    @property
    def features(self) -> frozenset[str] | None:
        """See :attr:`AsyncClient.features`.

        Settable: a caller that gave up asking the backend (e.g. its ``ping``
        timed out) sets ``frozenset()`` to send it plain JSON requests.
        """
        return self._async.features

    @features.setter
    def features(self, features: frozenset[str] | None) -> None:
        self._async.features = features

    @property
    def closed(self) -> bool:
        """True once the client was closed (see :attr:`AsyncClient.closed`)."""
        return self._async.closed

    @property
    def supports_parts(self) -> bool:
        """See :attr:`AsyncClient.supports_parts`."""
        return self._async.supports_parts

    def _run(self, coro: Awaitable[T]) -> T:
        return self._bg.run(coro)  # type: ignore[arg-type]

    def request(
        self,
        payload: bytes | OutgoingParts,
        *,
        message_type: MessageType | str = MessageType.REQUEST,
        timeout: float | None = None,
        what: str | None = None,
        progress: ProgressCallback | None = None,
        accept: Iterable[str] | None = None,
        options: TransferOptions | None = None,
    ) -> Reply:
        """Blocking :meth:`AsyncClient.request`.

        The calling thread hands the request to the event loop thread and
        waits on a lock that the reply releases.
        """
        client = self._async
        timeout, what, opts = client.settle(
            payload, message_type, timeout, what, options
        )
        waiter = _ThreadWaiter(timeout)
        loop = self._bg.loop
        loop.call_soon_threadsafe(
            _start_for_thread,
            client,
            waiter,
            payload,
            message_type,
            what,
            progress,
            accept,
            opts,
        )
        try:
            completed = waiter.wait(timeout)
            if not completed and waiter.task is not None:
                # the slow path's own timer raises a moment later
                completed = waiter.wait(1.0)
        except BaseException:  # e.g. KeyboardInterrupt
            loop.call_soon_threadsafe(_abandon, client, waiter)
            raise
        if not completed:
            loop.call_soon_threadsafe(_abandon, client, waiter)
            raise client.no_reply(what, timeout)
        if waiter.error is not None:
            raise waiter.error
        assert waiter.reply is not None
        return waiter.reply

    def call(
        self,
        request: dict[str, Any],
        *,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
        accept: Iterable[str] | None = None,
        parts: Any = None,
        options: TransferOptions | None = None,
    ) -> Any:
        """Blocking :meth:`AsyncClient.call`."""
        payload = _request_payload(request, parts)
        reply = self.request(
            payload,
            timeout=timeout,
            what=describe_request(request),
            progress=progress,
            accept=accept,
            options=options,
        )
        return self._async.result_of(reply)

    @property
    def last_reply(self) -> Reply | None:
        """See :attr:`AsyncClient.last_reply`."""
        return self._async.last_reply

    def ping(self, timeout: float | None = None) -> float:
        """Blocking :meth:`AsyncClient.ping`."""
        return self._run(self._async.ping(timeout))

    def api_info(self, timeout: float | None = None) -> dict[str, Any]:
        """Blocking :meth:`AsyncClient.api_info`."""
        return self._run(self._async.api_info(timeout))

    def info(self, timeout: float | None = None) -> dict[str, Any]:
        """Blocking :meth:`AsyncClient.info`."""
        return self._run(self._async.info(timeout))

    def close(self) -> None:
        """Close the connections."""
        with contextlib.suppress(Exception):
            self._run(self._async.close())

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_clients: dict[tuple[Any, ...], Client] = {}
_clients_lock = threading.Lock()


def _client_key(config: Any, topic: str) -> tuple[Any, ...]:
    return (
        os.getpid(),
        config.get_topic_url(topic),
        tuple(sorted(header_of(config).items())),
        setting(config, "max_payload_size", DEFAULT_MAX_PAYLOAD_SIZE),
    )


def get_client(config: Any, topic: str | None = None) -> Client:
    """A shared blocking client for ``topic`` (connections are reused).

    Raises:
        ConnectionFailed: the broker cannot be reached.
    """
    topic = topic or config.topic
    key = _client_key(config, topic)
    with _clients_lock:
        client = _clients.get(key)
        if client is None or client.closed:
            client = _clients[key] = Client(config, topic)
        return client


@atexit.register
def close_clients() -> None:
    """Close every shared client of :func:`get_client` (they reconnect lazily).

    Call it when the broker they talk to goes away for good (e.g. in tests),
    so that they stop trying to reconnect.
    """
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()
