"""The broker in a background thread, for synchronous code and tests."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from dasf_geo._loop import new_event_loop
from dasf_geo.broker.server import (
    DEFAULT_PORT,
    Broker,
    _PortInUse,
)
from dasf_geo.exceptions import BrokerError

__all__ = ["EmbeddedBroker"]


class EmbeddedBroker:
    """A :class:`Broker` running in a background thread with its own loop.

    Usable as a context manager or with :meth:`start` / :meth:`stop`; takes
    the same arguments as :class:`Broker`. ``port=0`` picks a free port;
    :meth:`start_on_free_port` tries 8080 and the following ports, which is
    what ``dasf-geo serve`` uses.

    Example:
        >>> with EmbeddedBroker(port=0) as broker:  # doctest: +SKIP
        ...     url = f"{broker.url}/ws/v2/producer/non-persistent/public/default/t"

    Raises:
        ConfigurationError: an option is invalid (see :class:`Broker`).
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, **options: Any
    ) -> None:
        #: the broker this thread runs (``store``, ``auth``, limits… in ``options``)
        self.broker = Broker(host, port, **options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    @classmethod
    def start_on_free_port(
        cls, preferred: int = DEFAULT_PORT, *, attempts: int = 20, **kwargs: Any
    ) -> EmbeddedBroker:
        """Start a broker on ``preferred`` or the next free port after it.

        Args:
            preferred: the first port to try (Pulsar's 8080 by default).
            attempts: how many consecutive ports to try.
            kwargs: further :class:`EmbeddedBroker` arguments (host, store…).

        Returns:
            The started broker; see its :attr:`port` and :attr:`url`.

        Raises:
            BrokerError: none of the ports is free, or the broker cannot start.
        """
        last: BrokerError | None = None
        for port in range(preferred, min(preferred + attempts, 65536)):
            broker = cls(port=port, **kwargs)
            try:
                broker.start()
            except _PortInUse as exc:
                last = exc
                continue
            return broker
        raise BrokerError(
            f"cannot start the broker: ports {preferred} to "
            f"{preferred + attempts - 1} are all in use ({last})"
        )

    @property
    def host(self) -> str:
        """The bound address."""
        return self.broker.host

    @property
    def port(self) -> int:
        """The port (the real one once started with port 0)."""
        return self.broker.port

    @property
    def url(self) -> str:
        """``ws://HOST:PORT`` (no trailing slash)."""
        return self.broker.url

    @property
    def http_url(self) -> str:
        """``http://HOST:PORT``."""
        return self.broker.http_url

    @property
    def websocket_url(self) -> str:
        """``ws://HOST:PORT/ws``, the plain layout's ``websocket_url``."""
        return self.broker.websocket_url

    @property
    def running(self) -> bool:
        """True while the background thread serves."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        """Start serving in a background thread; return ``self``.

        Raises:
            BrokerError: the broker cannot start (e.g. the port is taken) or
                did not start within ``timeout`` seconds.
        """
        if self.running:
            return self
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            # uvloop where available, as for dasf-geo broker (dasf_geo._loop)
            loop = new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def main() -> None:
                self._stopped = asyncio.Event()
                try:
                    await self.broker.start()
                except BaseException as exc:
                    failure.append(exc)
                    started.set()
                    return
                started.set()
                try:
                    await self._stopped.wait()
                finally:
                    await self.broker.stop()

            try:
                loop.run_until_complete(main())
            finally:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(
            target=run, name=f"dasf-geo broker {self.broker.host}", daemon=True
        )
        self._thread.start()
        if not started.wait(timeout):
            raise BrokerError(f"the broker did not start within {timeout:g} s")
        if failure:
            self._thread.join(timeout)
            self._thread = None
            exc = failure[0]
            if isinstance(exc, BrokerError):
                raise exc
            raise BrokerError(f"cannot start the broker: {exc}") from exc
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Close every connection and stop the thread (idempotent)."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if self._stopped is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._stopped.set)
        thread.join(timeout)
        self._thread = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<EmbeddedBroker {self.broker.host}:{self.broker._port} {state}>"
