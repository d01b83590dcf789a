"""The :class:`Service` object: entrypoints, store, periodic tasks, parameters.

``from dasf_geo import service`` gives the default instance; its methods
have daeploy's names and signatures. Entrypoints become DASF functions on
the service's topic (its name) when :meth:`Service.run` starts it.

The module stays a little above 600 lines by choice: it is the one public
object whose methods mirror daeploy's one to one, a third of it is their
docstrings, and the work behind them already lives in ``_runtime``,
``_reserved``, ``_parameters``, ``scheduler`` and ``monitor_db``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dasf_geo.service import utilities
from dasf_geo.service._parameters import Parameters
from dasf_geo.service._reserved import describe_service, generate_client
from dasf_geo.service._values import StoreError
from dasf_geo.service.communication import check_method
from dasf_geo.service.scheduler import PeriodicTask

if TYPE_CHECKING:  # pragma: no cover
    from dasf_geo.service.monitor_db import MonitorStore

__all__ = ["Entrypoint", "Service"]

logger = logging.getLogger(__name__)

#: seconds between two logged store errors of one kind
_STORE_ERROR_EVERY = 60.0


@dataclass
class Entrypoint:
    """An entrypoint: the user's function and how it is served."""

    func: Callable[..., Any]
    method: str = "POST"
    monitor: bool = False
    disable_http_logs: bool = False
    route_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The entrypoint's name (its function's name)."""
        return self.func.__name__


class Service:
    """A daeploy-style service on a DASF broker.

    Args:
        name: the service name, also its topic (default
            ``DASF_GEO_SERVICE_NAME`` or the script's name).
        version: the service version (default ``DASF_GEO_SERVICE_VERSION``
            or ``0.0.0``).
    """

    def __init__(self, name: str | None = None, version: str | None = None) -> None:
        self._setup(name, version)

    def _setup(self, name: str | None, version: str | None) -> None:
        self._name = name
        self._version = version
        self._entrypoints: dict[str, Entrypoint] = {}
        self._tasks: list[PeriodicTask] = []
        self.parameters = Parameters(on_update=self._parameter_updated)
        self._monitoring: MonitorStore | None = None
        self._store_options: dict[str, Any] = {}
        self._store_lock = threading.Lock()
        self._store_errors: dict[str, float] = {}
        self._shadow = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deferred: dict[str, Any] | None = None
        self._runtime: Any = None

    def __repr__(self) -> str:
        return f"<dasf_geo service {self.name!r} {self.version}>"

    # --- identity ---------------------------------------------------------------

    @property
    def name(self) -> str:
        """The service name (its topic)."""
        return self._name or utilities.default_service_name()

    @property
    def version(self) -> str:
        """The service version."""
        return self._version or utilities.default_service_version()

    @property
    def shadow(self) -> bool:
        """True while the service runs as a shadow version."""
        return self._shadow

    @property
    def entrypoints(self) -> dict[str, Entrypoint]:
        """The registered entrypoints by name."""
        return dict(self._entrypoints)

    @property
    def periodic_tasks(self) -> list[PeriodicTask]:
        """The functions registered with :meth:`call_every`."""
        return list(self._tasks)

    # --- entrypoints --------------------------------------------------------------

    def entrypoint(
        self,
        func: Callable[..., Any] | None = None,
        method: str = "POST",
        monitor: bool = False,
        disable_http_logs: bool = False,
        **route_kwargs: Any,
    ) -> Callable[..., Any]:
        """Registers a function as an entrypoint.

        The function becomes a DASF function on the service's topic (reached
        with ``dasf-geo call``, ``dasf_geo.connect``, generated clients and
        demessaging clients) and an HTTP route of the gateway with
        ``method``. Use it bare (``@service.entrypoint``) or with arguments
        (``@service.entrypoint(method="GET", monitor=True)``). Annotate the
        arguments and the return value: they are validated and encoded from
        the annotations. ``async def`` functions run on the service's loop.

        Args:
            func: the decorated function.
            method: HTTP method of the entrypoint's gateway route.
            monitor: save the arguments and result (or error) of every call,
                and its duration, to the monitoring store.
            disable_http_logs: the gateway does not log the route's accesses.
            **route_kwargs: options of the gateway route (``summary``,
                ``description``, ``tags``…), published in the API info.

        Returns:
            the decorated function itself (or a decorator, without ``func``).

        Raises:
            TypeError: ``func`` is not callable.
            ValueError: ``method`` is not a valid HTTP method.
        """
        checked = check_method(method)
        if func is None:
            return functools.partial(
                self.entrypoint,
                method=checked,
                monitor=monitor,
                disable_http_logs=disable_http_logs,
                **route_kwargs,
            )
        if not callable(func):
            raise TypeError(
                f"an entrypoint must be a function, got {type(func).__name__} "
                f"{func!r:.60}"
            )
        name = getattr(func, "__name__", None)
        if not isinstance(name, str) or not name.isidentifier():
            raise TypeError(
                f"an entrypoint must be a named function (def), got {func!r:.60}"
            )
        self._entrypoints[name] = Entrypoint(
            func,
            checked,
            bool(monitor),
            bool(disable_http_logs),
            dict(route_kwargs),
        )
        return func

    def _wrap(
        self, func: Callable[..., Any], name: str, monitor: bool
    ) -> Callable[..., Any]:
        """The function served: runs ``func`` and records monitored calls."""
        is_async = inspect.iscoroutinefunction(func)
        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            record = monitor or self._shadow
            token = utilities.current_service.set(self)
            started = time.perf_counter()
            try:
                if is_async:
                    result = self._run_coroutine(func(*args, **kwargs))
                else:
                    result = func(*args, **kwargs)
            except BaseException as exc:
                if record:
                    self._record_call(name, signature, args, kwargs, started, error=exc)
                raise
            finally:
                utilities.current_service.reset(token)
            if record:
                self._record_call(name, signature, args, kwargs, started, result)
            return result

        # a sync function to the backend layer, whatever ``func`` is
        wrapper.__wrapped__ = func  # type: ignore[attr-defined]
        return wrapper

    def _run_coroutine(self, coro: Any) -> Any:
        loop = self._loop
        if loop is not None and loop.is_running():
            return asyncio.run_coroutine_threadsafe(coro, loop).result()
        return asyncio.run(coro)

    def _record_call(
        self,
        name: str,
        signature: inspect.Signature,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        started: float,
        result: Any = None,
        error: BaseException | None = None,
    ) -> None:
        seconds = time.perf_counter() - started
        try:
            arguments = dict(signature.bind_partial(*args, **kwargs).arguments)
        except TypeError:
            arguments = {**{str(i): a for i, a in enumerate(args)}, **kwargs}
        entry: dict[str, Any] = {"arguments": arguments, "seconds": seconds}
        if error is None:
            entry["result"] = result
        else:
            entry["error"] = f"{type(error).__name__}: {error}"
        self._safe_record({name: entry})

    # --- the monitoring store -------------------------------------------------

    def configure_store(
        self,
        *,
        url: str | None = None,
        path: str | os.PathLike[str] | None = None,
        limit: str | None = None,
    ) -> None:
        """Choose the monitoring database (before the first value is stored).

        Args:
            url: a SQLAlchemy URL (default ``DASF_GEO_STORE_URL``).
            path: the SQLite file (default ``DASF_GEO_STORE_PATH``, else
                :func:`~dasf_geo.service.monitor_db.default_path`).
            limit: retention, e.g. ``"90 days"`` or ``"10000 rows"``
                (default ``DASF_GEO_STORE_LIMIT``).

        Raises:
            ValueError: ``limit`` is not a valid retention setting.
        """
        options = {"url": url, "path": path, "limit": limit}
        if limit is not None:
            from dasf_geo.service.utilities import (
                STORE_LIMIT_UNITS,
                match_limit_and_unit,
            )

            match_limit_and_unit(limit, STORE_LIMIT_UNITS)
        with self._store_lock:
            self._store_options = {k: v for k, v in options.items() if v is not None}
            if self._monitoring is not None:
                self._monitoring.close()
                self._monitoring = None

    @property
    def monitoring(self) -> MonitorStore:
        """The monitoring store (opened on first use).

        Raises:
            ValueError: ``DASF_GEO_STORE_LIMIT`` is invalid.
        """
        with self._store_lock:
            if self._monitoring is None:
                options = dict(self._store_options)
                url = options.get("url") or os.environ.get("DASF_GEO_STORE_URL")
                path = options.get("path") or os.environ.get("DASF_GEO_STORE_PATH")
                if "limit" in options:
                    limit = options["limit"]
                else:
                    number, unit = utilities.get_db_table_limit()
                    limit = f"{number} {unit}"
                # SQLAlchemy is imported when a service first stores a value
                from dasf_geo.service.monitor_db import MonitorStore

                self._monitoring = MonitorStore(
                    self.name, self.version, url=url, path=path, limit=limit
                )
            return self._monitoring

    def store(self, **variables: Any) -> None:
        """Saves variables to the service's monitoring database.

        Numbers are saved as numbers and strings as strings; other values as
        JSON (with ``json.dumps``), xarray/pandas/numpy values as a summary
        (type, dims, sizes, variables, checksum). A value that cannot be
        written as JSON is saved as its ``repr`` (logged once).

        Args:
            **variables: variables to save to the database.

        Raises:
            StoreError: the database cannot be written (read-only, corrupt,
                unreachable), a name is invalid or a value too large.
        """
        self.monitoring.record(variables)

    def _safe_record(self, variables: dict[str, Any]) -> None:
        """Store for the service itself (monitored calls, parameters): a
        failure is logged (at most once a minute per message), never raised."""
        try:
            self.monitoring.record(variables)
        except (StoreError, ValueError) as exc:
            text = str(exc)
            now = time.monotonic()
            last = self._store_errors.get(text)
            if last is None or now - last > _STORE_ERROR_EVERY:
                self._store_errors[text] = now
                logger.error("monitoring: %s", text)

    def monitor(
        self,
        variables: list[str] | None = None,
        start: Any = None,
        end: Any = None,
    ) -> list[dict[str, Any]]:
        """The stored values, oldest first (``[{variable, value, timestamp}]``).

        Raises:
            ValueError: ``start``/``end`` are not ISO 8601 times.
            StoreError: the database cannot be read.
        """
        return self.monitoring.query(variables, start, end)

    # --- periodic tasks ----------------------------------------------------------

    def call_every(
        self, seconds: float, wait_first: bool = False
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Returns a decorator that makes a function run every ``seconds``.

        Decorate a function with this method to make it run repeatedly
        while the service runs::

            @service.call_every(seconds=10)
            def my_function():
                ...

        Runs never overlap: one that takes longer than ``seconds`` is logged
        and the next starts when it is done. An exception is logged with its
        traceback and the next run goes ahead. Plain functions run in a
        thread, ``async`` ones on the service's loop.

        Args:
            seconds: interval between calls in seconds.
            wait_first: if we should skip the first execution.

        Returns:
            the decorator (it returns the function unchanged).

        Raises:
            ValueError: ``seconds`` is not a positive number.
            TypeError: the decorated object is not callable.
        """
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not seconds > 0
            or seconds == float("inf")
        ):
            raise ValueError(f"seconds must be a positive number, got {seconds!r:.40}")

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            if not callable(func):
                raise TypeError(
                    f"call_every needs a function, got {type(func).__name__}"
                )
            self._tasks.append(PeriodicTask(func, float(seconds), bool(wait_first)))
            return func

        return decorator

    # --- parameters -----------------------------------------------------------------

    def add_parameter(
        self,
        parameter: str,
        value: Any,
        expose: bool = True,
        monitor: bool = False,
        disable_http_logs: bool = False,
    ) -> None:
        """Adds a parameter to the parameter endpoints.

        The parameter's type is that of ``value``; callers read it with a
        ``~get_parameter`` request (gateway: ``GET .../~parameters/NAME``)
        and, when exposed, set it with ``~set_parameter`` (``POST``).

        Args:
            parameter: the name of the parameter.
            value: the value of the parameter.
            expose: should parameter update be exposed to the API.
            monitor: stores updates to this parameter in the monitoring
                database if True.
            disable_http_logs: the gateway does not log its accesses.

        Raises:
            TypeError: ``parameter`` is not a non-empty str.
            ValueError: ``parameter`` starts with ``~`` or is too long.
        """
        self.parameters.add(parameter, value, expose, monitor, disable_http_logs)

    def get_parameter(self, parameter: str) -> Any:
        """Get parameter value.

        Args:
            parameter: the name of the parameter.

        Returns:
            the value of the parameter.

        Raises:
            ParameterError: no parameter of that name (a ``KeyError``).
        """
        return self.parameters.get(parameter)

    def set_parameter(self, parameter: str, value: Any) -> Any:
        """Set a parameter's value (checked against its type); return it.

        Raises:
            ParameterError: no parameter of that name (a ``KeyError``).
            pydantic.ValidationError: ``value`` is not of the parameter's type.
        """
        return self.parameters.set(parameter, value)

    def _parameter_updated(self, name: str, value: Any) -> None:
        self._safe_record({name: value})

    # --- what callers see ------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The ``"service"`` object of the API info (see ``_reserved``)."""
        return describe_service(self)

    def generate(
        self,
        broker: str | None = None,
        *,
        websocket_url: str | None = None,
        **options: Any,
    ) -> str:
        """The source of a client module for the entrypoints (a stub).

        As ``python module.py generate`` for a plain module: the client
        has the entrypoints' signatures and docstrings and calls them on
        the broker (default: the running service's). ``options`` go to
        :meth:`~dasf_geo.backend.BackendModule.generate`.

        Raises:
            ConfigurationError: no entrypoints, or an invalid broker URL.
        """
        return generate_client(self, broker, websocket_url, **options)

    def module_model(self, messaging_config: Any, **config: Any) -> Any:
        """The :class:`~dasf_geo.backend.BackendModule` of the entrypoints.

        Raises:
            ConfigurationError: no entrypoint is registered, or one cannot
                be served (e.g. an argument type the registry cannot handle).
        """
        from dasf_geo.backend import BackendModule
        from dasf_geo.exceptions import ConfigurationError

        if not self._entrypoints:
            raise ConfigurationError(
                f"service {self.name!r} has no entrypoints; decorate at least one "
                "function with @service.entrypoint"
            )
        return BackendModule.create_model(
            # wrapped now, so that a @configure above @service.entrypoint
            # (which sets attributes on the function) is seen too
            members=[
                self._wrap(ep.func, name, ep.monitor)
                for name, ep in self._entrypoints.items()
            ],
            class_name=self.name.replace("-", "_"),
            messaging_config=messaging_config,
            **config,
        )

    # --- running ---------------------------------------------------------------

    def run(
        self,
        name: str | None = None,
        version: str | None = None,
        *,
        shadow: bool = False,
        broker: str | None = None,
        websocket_url: str | None = None,
        port: int | None = None,
        http: bool = True,
        http_port: int | None = None,
        max_workers: int | None = None,
        debug: bool = False,
    ) -> None:
        """Runs the service (blocking) until Ctrl-C or SIGTERM.

        This method is usually called at the end of the module when all
        entrypoints etc for the service have been specified. Without a
        broker (``broker``/``websocket_url``, ``DASF_GEO_BROKER_URL`` or
        ``DE_BACKEND_HOST``/``_PORT``) an embedded broker is started on
        127.0.0.1 (port 8080 or the next free one), with the HTTP gateway
        when it is installed (it plugs in as an entry point of the group
        ``dasf_geo.embedded``; ``http=False``: without it).

        Args:
            name: the service name and topic.
            version: the service version.
            shadow: run as a shadow version: get a copy of every request of
                the topic, record results and timings, answer none of them.
            broker: ``ws://HOST:PORT`` of the broker.
            websocket_url: base URL of a plain-layout broker.
            port: port of the embedded broker.
            http: start the gateway beside an embedded broker.
            http_port: the gateway's port (default: the next free one after
                the broker's).
            max_workers: requests run at once.
            debug: send tracebacks with error replies.

        Raises:
            ConfigurationError: no entrypoints, or an invalid option.
            ConnectionFailed: the broker cannot be reached.
        """
        from dasf_geo.service._runtime import RunOptions, Runtime

        options = RunOptions(
            name=name,
            version=version,
            shadow=shadow,
            broker=broker,
            websocket_url=websocket_url,
            port=port,
            http=http,
            http_port=http_port,
            max_workers=max_workers,
            debug=debug,
        )
        if self._deferred is not None:
            # imported by ``dasf-geo serve``: it runs the service itself
            self._deferred.update(options.given())
            return
        Runtime(self, options).run_forever()

    def start(self, timeout: float = 60.0, **options: Any) -> Service:
        """Run the service in a background thread; return once it listens.

        Takes the options of :meth:`run`. For notebooks, tests and examples;
        :meth:`stop` (or leaving a ``with`` block) stops it.

        Raises:
            ConnectionFailed: the broker cannot be reached.
            TransportError: the service did not start within ``timeout``.
        """
        from dasf_geo.service._runtime import RunOptions, Runtime

        runtime = Runtime(self, RunOptions(**options))
        runtime.start_background(timeout)
        self._runtime = runtime
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop a service started with :meth:`start` (idempotent)."""
        runtime, self._runtime = self._runtime, None
        if runtime is not None:
            runtime.stop_background(timeout)

    @property
    def broker_url(self) -> str | None:
        """The broker of the running service (None when it does not run)."""
        runtime = self._runtime
        if runtime is None:
            return None
        return runtime.broker_url or runtime.websocket_url

    @property
    def gateway_url(self) -> str | None:
        """The gateway started beside an embedded broker (None: none)."""
        runtime = self._runtime
        return None if runtime is None else runtime.gateway_url

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @contextlib.contextmanager
    def deferred_run(self) -> Any:
        """Within the block, :meth:`run` records its options instead of running.

        Used by ``dasf-geo serve`` to import a service script that calls
        ``service.run()`` at module level; yields the dict of options.
        """
        self._deferred = {}
        try:
            yield self._deferred
        finally:
            self._deferred = None
