"""Running a :class:`~dasf_geo.service.Service`: broker, listeners, tasks.

One event loop holds everything a running service does:

- a :class:`ServiceListener` on the service's topic (the shared
  subscription ``<name>-backend``, so N processes share the work) — or, for
  a shadow version, a :class:`ShadowListener` on its own subscription
  ``<name>-shadow-<version>`` (dots as dashes), which gets a copy of every
  request and answers none;
- a listener on the versioned topic ``<name>_<version>`` (dots as dashes),
  which answers the calls made to this version only
  (``call_service(..., service_version=)``);
- the periodic tasks of ``call_every`` and the store's clean-up.

Without a broker configured, an embedded broker is started first (and the
HTTP gateway beside it, when installed: see :func:`start_gateway`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import threading
from typing import Any

from dasf_geo._loop import run as run_loop
from dasf_geo._loop import until_signal
from dasf_geo.exceptions import ConfigurationError, TransportError
from dasf_geo.service import utilities
from dasf_geo.service._reserved import ServiceHandler, ServiceListener, ShadowListener
from dasf_geo.service._values import StoreError
from dasf_geo.service.scheduler import run_in_daemon_thread

__all__ = ["RunOptions", "Runtime", "start_gateway"]

logger = logging.getLogger(__name__)

#: ports tried for the embedded broker, in order
EMBEDDED_PORTS = range(8080, 8100)
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}\Z")
_ENV = (
    "DASF_GEO_SERVICE_NAME",
    "DASF_GEO_SERVICE_VERSION",
    "DASF_GEO_BROKER_URL",
    "DASF_GEO_GATEWAY_URL",
)


#: the entry point group of what starts beside an embedded broker
EMBEDDED_GROUP = "dasf_geo.embedded"


def start_gateway(broker_url: str, **options: Any) -> list[Any]:
    """Start what is installed to run beside an embedded broker (the gateway).

    The HTTP gateway belongs to a higher layer than services, so it is not
    imported here: it plugs in as an entry point of the group
    ``dasf_geo.embedded`` (``gateway = "dasf_geo.gateway:start_embedded"``),
    a callable taking the broker URL (and ``options``, e.g. ``port``) and
    returning an object with ``stop()`` (and ``url``). Without one
    installed, nothing starts; one that fails is logged and the service
    runs without it.
    """
    from importlib.metadata import entry_points

    started = []
    for entry in entry_points(group=EMBEDDED_GROUP):
        try:
            start = entry.load()
        except (ImportError, AttributeError) as exc:
            # declared, but that part of the package is not installed
            logger.debug("%s is not available: %s", entry.name, exc)
            continue
        try:
            started.append(start(broker_url, **options))
        except Exception:
            logger.exception("could not start %s beside the broker", entry.name)
    return started


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """The options of :meth:`Service.run <dasf_geo.service.Service.run>`.

    :meth:`~dasf_geo.service.Service.run` documents them;
    :meth:`~dasf_geo.service.Service.start` takes them as keywords.
    """

    name: str | None = None
    version: str | None = None
    shadow: bool = False
    broker: str | None = None
    websocket_url: str | None = None
    port: int | None = None
    http: bool = True
    http_port: int | None = None
    max_workers: int | None = None
    debug: bool = False

    def given(self) -> dict[str, Any]:
        """The options set to a true value (what ``dasf-geo serve`` takes)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v}


class Runtime:
    """One run of a service (see :meth:`Service.run`)."""

    def __init__(self, service: Any, options: RunOptions) -> None:
        if options.name is not None:
            service._name = options.name
        if options.version is not None:
            service._version = options.version
        if not _VERSION.match(service.version):
            raise ConfigurationError(
                f"invalid service version {service.version!r:.80}: use letters, "
                "digits, '.', '-' and '_' (e.g. 1.2.0)"
            )
        store = service._monitoring
        if store is not None and (store.service, store.version) != (
            service.name,
            service.version,
        ):
            service.configure_store(**service._store_options)  # reopened by name
        self.service = service
        self.shadow = bool(options.shadow)
        self.broker = options.broker
        self.websocket_url = options.websocket_url
        self.port = options.port
        self.http = options.http
        self.http_port = options.http_port
        self.gateway_url: str | None = None
        self.max_workers = options.max_workers
        self.debug = options.debug
        self.broker_url: str | None = None
        self.listeners: list[Any] = []
        self._embedded: Any = None
        self._gateway: list[Any] = []
        self._env: dict[str, str | None] = {}
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._ready = threading.Event()
        #: export the service's name, version and broker to the environment
        #: (a service process; not a service in a thread of another program)
        self.export_env = False

    # --- set-up and tear-down ---------------------------------------------------

    def _start_broker(self) -> None:
        from dasf_geo.broker import EmbeddedBroker

        if self.port is not None:
            self._embedded = EmbeddedBroker(host="127.0.0.1", port=self.port).start()
        else:
            self._embedded = EmbeddedBroker.start_on_free_port(
                EMBEDDED_PORTS.start, attempts=len(EMBEDDED_PORTS), host="127.0.0.1"
            )
        self.broker_url = self._embedded.url
        print(f"embedded broker listening on {self.broker_url}", flush=True)
        if self.http:
            options = {} if self.http_port is None else {"port": self.http_port}
            self._gateway = start_gateway(self.broker_url, **options)
            urls = [getattr(g, "url", None) for g in self._gateway]
            self.gateway_url = next((u for u in urls if isinstance(u, str)), None)

    def _set_env(self) -> None:
        svc = self.service
        values = {
            "DASF_GEO_SERVICE_NAME": svc.name,
            "DASF_GEO_SERVICE_VERSION": svc.version,
            "DASF_GEO_BROKER_URL": self.broker_url or self.websocket_url,
            "DASF_GEO_GATEWAY_URL": self.gateway_url,
        }
        for key in _ENV:
            self._env[key] = os.environ.get(key)
            if values[key]:
                os.environ[key] = values[key]  # type: ignore[assignment]

    def _restore_env(self) -> None:
        for key, old in self._env.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        self._env.clear()

    def _make_listeners(self) -> list[Any]:
        from dasf_geo.service.dynamic import messaging_config

        svc = self.service
        extra: dict[str, Any] = {}
        if self.max_workers is not None:
            extra["max_workers"] = self.max_workers
        config = messaging_config(
            svc.name,
            None if self.websocket_url else self.broker_url,
            websocket_url=self.websocket_url,
            header=utilities.get_headers() or None,
            **extra,
        )
        module_cls = svc.module_model(config, debug=self.debug)
        versioned = utilities.versioned_topic(svc.name, svc.version)
        listeners: list[Any] = []
        if self.shadow:
            shadow_config = config.model_copy(
                update={
                    "subscription_name": f"{svc.name}-shadow-"
                    + svc.version.replace(".", "-")
                }
            )
            listeners.append(
                ShadowListener(ServiceHandler(module_cls, svc, svc.name), shadow_config)
            )
        else:
            listeners.append(
                ServiceListener(ServiceHandler(module_cls, svc, svc.name), config)
            )
        listeners.append(
            ServiceListener(ServiceHandler(module_cls, svc, versioned), config)
        )
        return listeners

    async def _clean_store(self) -> None:
        """Apply the store's retention now and every clean interval."""
        svc = self.service
        try:
            interval = utilities.get_db_clean_interval_seconds()
        except ValueError as exc:
            logger.error("monitoring store not cleaned: %s", exc)
            return
        while True:
            try:
                removed = await run_in_daemon_thread(
                    svc.monitoring.clean, "dasf-geo store clean"
                )
            except (StoreError, ValueError) as exc:
                logger.error("monitoring store not cleaned: %s", exc)
            else:
                if removed:
                    logger.info("monitoring store: removed %d old row(s)", removed)
            await asyncio.sleep(interval)

    # --- the loop -----------------------------------------------------------------

    async def main(self, stop: asyncio.Event) -> None:
        """Run the service until ``stop`` is set.

        Raises:
            ConfigurationError: no entrypoints or invalid options.
            ConnectionFailed: the broker cannot be reached.
        """
        svc = self.service
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stop = stop
        self.broker_url = self.broker or (
            None if self.websocket_url else utilities.get_broker_url()
        )
        tasks: list[asyncio.Task[Any]] = []
        started: list[Any] = []
        try:
            if self.broker_url is None and self.websocket_url is None:
                await asyncio.to_thread(self._start_broker)
            if self.export_env:
                self._set_env()
            svc._shadow = self.shadow
            svc._loop = loop
            # tasks created from here on (periodic tasks) see the service
            utilities.current_service.set(svc)
            svc._runtime = self
            self.listeners = self._make_listeners()
            try:
                await asyncio.to_thread(svc.monitoring.open)
            except (StoreError, ValueError) as exc:
                logger.error(
                    "monitoring store unavailable (the service runs without it): %s",
                    exc,
                )
            runs = [loop.create_task(listener.run(stop)) for listener in self.listeners]
            tasks.extend(runs)
            await self._wait_connected(runs)
            for task in svc._tasks:
                task.start()
                started.append(task)
            tasks.append(loop.create_task(self._clean_store()))
            role = "shadow version" if self.shadow else "version"
            where = self.broker_url or self.websocket_url
            print(
                f"serving {svc.name!r} {role} {svc.version} on topics "
                f"{svc.name!r} and "
                f"{utilities.versioned_topic(svc.name, svc.version)!r} at {where}",
                flush=True,
            )
            self._ready.set()
            await asyncio.gather(*runs)
        finally:
            for task in started:
                await task.stop()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
            svc._loop = None
            svc._shadow = False
            if svc._runtime is self:
                svc._runtime = None
            with contextlib.suppress(Exception):
                svc.monitoring.close()
            self._restore_env()
            self._shutdown_broker()

    async def _wait_connected(self, runs: list[asyncio.Task[Any]]) -> None:
        """Wait until every listener consumes its topic; raise a failed one's error."""
        waits = [
            asyncio.ensure_future(listener.connected.wait())
            for listener in self.listeners
        ]
        pending = set(waits) | set(runs)
        try:
            while not all(w.done() for w in waits):
                done, pending = await asyncio.wait(
                    pending, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    if task in runs:
                        task.result()  # raises the connection error
                        raise TransportError("a listener stopped before it connected")
        finally:
            for w in waits:
                w.cancel()
            if not all(w.done() and not w.cancelled() for w in waits):
                for task in runs:
                    task.cancel()

    def _shutdown_broker(self) -> None:
        from dasf_geo.service.communication import close_connections

        close_connections()  # call_service's, before their broker goes away
        started, self._gateway = self._gateway, []
        for extra in started:
            with contextlib.suppress(Exception):
                extra.stop()
        broker, self._embedded = self._embedded, None
        if broker is not None:
            broker.stop()

    # --- blocking and background ------------------------------------------------

    def run_forever(self) -> None:
        """Run until SIGINT or SIGTERM (a second one stops at once)."""
        if not logging.getLogger().handlers:
            logging.basicConfig(
                level=logging.INFO,
                format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            )
        from dasf_geo.transport._common import shorten_switch_interval

        shorten_switch_interval()
        self.export_env = True
        with contextlib.suppress(KeyboardInterrupt):
            run_loop(until_signal(self.main))

    def start_background(self, timeout: float) -> None:
        """Run in a daemon thread; return once every listener is connected.

        Raises:
            ConnectionFailed: the broker cannot be reached.
            TransportError: not started within ``timeout`` seconds.
        """

        async def main() -> None:
            await self.main(asyncio.Event())

        def target() -> None:
            try:
                run_loop(main())
            except BaseException as exc:
                self._error = exc
            finally:
                self._ready.set()

        self._thread = threading.Thread(
            target=target, name=f"dasf-geo service {self.service.name}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop_background(timeout)
            raise TransportError(
                f"service {self.service.name!r} did not start within {timeout:g} s"
            )
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def stop_background(self, timeout: float = 30.0) -> None:
        """Stop a background run (finishing requests in progress)."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
