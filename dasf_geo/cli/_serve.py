"""``dasf-geo serve``: serve a module's functions and classes as a DASF service.

::

    dasf-geo serve examples/geo_service.py
    dasf-geo serve my_package.my_module --topic my-topic --broker ws://broker:8080

MODULE_OR_PATH is a Python file or an importable module name; the members
listed in its ``__all__`` (or ``--members``) are served. The settings come,
in falling precedence, from the command line, from the keyword arguments the
module gives ``main()`` in its ``if __name__ == "__main__":`` block, from the
``DE_BACKEND_*`` environment variables and from the defaults (the topic: the
module's name). When none of them names a broker, an embedded broker is
started in this process on 127.0.0.1, port 8080 or the next free one; a
configured broker is connected to and none is started. Ctrl-C finishes the
requests in progress, then stops.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from dasf_geo.cli._common import (
    LOG_LEVELS,
    add_connection_options,
    broker_fields,
    print_error,
)
from dasf_geo.exceptions import ConfigurationError, DasfGeoError

__all__ = ["add_parser", "load_module", "run", "start_embedded_broker"]

logger = logging.getLogger(__name__)

#: ports tried for the embedded broker, in order
EMBEDDED_PORTS = range(8080, 8100)

DESCRIPTION = (
    "Serve the functions and classes of a Python module as a DASF service. "
    "Settings come from the command line, then from the keyword arguments the "
    "module gives main(), then from the DE_BACKEND_* environment variables. "
    "Unless one of them names a broker, an embedded broker is started on "
    "127.0.0.1 (port 8080 or the next free one)."
)


def add_parser(sub: Any) -> None:
    """Register ``dasf-geo serve``."""
    parser = sub.add_parser(
        "serve",
        help="serve a module as a DASF service (starts an embedded broker if "
        "none is configured)",
        description=DESCRIPTION,
    )
    parser.add_argument(
        "module",
        metavar="MODULE_OR_PATH",
        help="a Python file (examples/geo_service.py) or an importable module "
        "name (my_package.tools) whose __all__ lists what to serve",
    )
    parser.add_argument(
        "--topic",
        "-t",
        help="the topic to serve on (default: the topic the module gives main(), "
        "else DE_BACKEND_TOPIC, else the module's name)",
    )
    parser.add_argument(
        "--members", nargs="+", metavar="NAME", help="serve these members, not __all__"
    )
    parser.add_argument(
        "--max-workers",
        type=int,
        default=None,
        metavar="N",
        help="requests run at once",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="start the embedded broker on this port (default: 8080 or the next "
        "free one); not with --broker or --websocket-url",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="send tracebacks with error replies and show full URLs in messages",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=None,
        metavar="LEVEL",
        help="log level of dasf_geo: " + ", ".join(LOG_LEVELS) + " (default: the "
        "module's log settings, else WARNING)",
    )
    add_connection_options(
        parser,
        default="the broker the module gives main(), else DE_BACKEND_HOST/"
        "DE_BACKEND_PORT, else an embedded broker started here",
    )
    service_group = parser.add_argument_group(
        "services (modules written with dasf_geo.service)"
    )
    service_group.add_argument(
        "--version", dest="service_version", help="the service version"
    )
    service_group.add_argument(
        "--shadow",
        action="store_true",
        help="run as a shadow version: get a copy of every request, record "
        "results and timings, answer none",
    )
    from dasf_geo.cli._gateway import add_serve_options

    add_serve_options(parser)
    parser.set_defaults(run=run)


def load_module(spec: str) -> ModuleType:
    """Import ``spec``: a path to a ``.py`` file or a module name.

    Raises:
        ConfigurationError: the file or module does not exist, or importing
            it fails (the message names the error).
    """
    path = Path(spec)
    if spec.endswith(".py") or path.is_file():
        if not path.is_file():
            raise ConfigurationError(f"no such file: {spec}")
        name = path.stem
        if not name.isidentifier():
            raise ConfigurationError(
                f"{spec}: the file name must be a Python identifier to be served"
            )
        sys.path.insert(0, str(path.resolve().parent))
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise ConfigurationError(f"cannot import {spec}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise ConfigurationError(
                f"importing {spec} failed: {type(exc).__name__}: {exc}"
            ) from exc
        return module
    try:
        return importlib.import_module(spec)
    except ImportError as exc:
        raise ConfigurationError(
            f"cannot import module {spec!r}: {exc} (give a path to a .py file or "
            "an importable module name)"
        ) from exc


def start_embedded_broker(port: int | None = None) -> Any:
    """Start the embedded broker on 127.0.0.1 at ``port`` or the first free one.

    Without ``port``, 8080 is tried first, then the next 19 ports; when 8080
    is busy, a line says which port is used instead.

    Raises:
        BrokerError: the port (or every port tried) is taken.
    """
    from dasf_geo.broker import EmbeddedBroker

    if port is not None:
        return EmbeddedBroker(host="127.0.0.1", port=port).start()
    broker = EmbeddedBroker.start_on_free_port(
        EMBEDDED_PORTS.start, attempts=len(EMBEDDED_PORTS), host="127.0.0.1"
    )
    if broker.port != EMBEDDED_PORTS.start:
        busy = (
            f"port {EMBEDDED_PORTS.start} is"
            if broker.port == EMBEDDED_PORTS.start + 1
            else f"ports {EMBEDDED_PORTS.start}-{broker.port - 1} are"
        )
        print(f"{busy} busy; using {broker.port}", flush=True)
    return broker


def _example_call(module_cls: Any, topic: str, broker_option: str) -> str:
    api = module_cls.get_api_info()
    target = ""
    args: list[str] = []
    if api.functions:
        func = api.functions[0]
        target = func.name
        schema = func.rpc_schema
    elif api.classes and api.classes[0].methods:
        cls = api.classes[0]
        target = f"{cls.name}.{cls.methods[0].name}"
        schema = {
            "properties": {
                **cls.rpc_schema.get("properties", {}),
                **cls.methods[0].rpc_schema.get("properties", {}),
            },
            "required": [
                *cls.rpc_schema.get("required", []),
                *cls.methods[0].rpc_schema.get("required", []),
            ],
        }
    else:
        return ""
    for name in schema.get("required", []):
        if name in ("func_name", "class_name", "function"):
            continue
        args.append(f"{name}=VALUE")
    return " ".join(["dasf-geo", "call", _quote(topic), target, *args, broker_option])


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _main_topic(settings: dict[str, Any]) -> bool:
    """True if the keyword arguments of ``main()`` set a topic."""
    if settings.get("topic"):
        return True
    msg = settings.get("messaging_config")
    base = settings.get("config")
    if msg is None and base is not None:
        msg = getattr(base, "messaging_config", None)
        if msg is not None and "topic" not in getattr(msg, "model_fields_set", ()):
            msg = None
    if isinstance(msg, dict):
        return bool(msg.get("topic"))
    return bool(getattr(msg, "topic", None))


def _namespace(args: argparse.Namespace, **messaging: Any) -> argparse.Namespace:
    """The options of ``serve`` in the form the module command line uses."""
    values: dict[str, Any] = {f"messaging.{k}": v for k, v in messaging.items()}
    if args.members:
        values["members"] = args.members
    if args.debug:
        values["debug"] = True
    if args.log_level:
        values["log.level"] = args.log_level
    return argparse.Namespace(**values)


def build_config(
    args: argparse.Namespace, module: ModuleType, broker_url: str | None = None
) -> Any:
    """The :class:`~dasf_geo.config.ModuleConfig` that ``serve`` uses.

    Command line > the module's ``main()`` keywords > ``DE_BACKEND_*`` >
    defaults; with ``broker_url`` (an embedded broker), that broker.

    Raises:
        ConfigurationError: a setting is invalid; the message names it.
    """
    import os

    from dasf_geo.cli._module_config import build_config as _build_config
    from dasf_geo.cli._settings import main_settings

    settings = main_settings(module)
    messaging: dict[str, Any] = {}
    if args.topic:
        messaging["topic"] = args.topic
    elif not _main_topic(settings) and not os.environ.get("DE_BACKEND_TOPIC"):
        messaging["topic"] = module.__name__.rsplit(".", 1)[-1]
    if broker_url is not None:
        messaging.update(broker_fields(argparse.Namespace(broker=broker_url)))
    else:
        messaging.update(broker_fields(args))
    if args.max_workers is not None:
        messaging["max_workers"] = args.max_workers
    return _build_config(settings, _namespace(args, **messaging))


def broker_configured(config: Any) -> bool:
    """True if ``config`` names a broker (not just the defaults)."""
    from dasf_geo.config import WebsocketURLConfig

    messaging = config.messaging_config
    if isinstance(messaging, WebsocketURLConfig):
        return True
    return bool({"host", "port"} & messaging.model_fields_set)


def broker_url_of(messaging: Any) -> str:
    """``ws://HOST:PORT`` (Pulsar layout; one per host, comma-separated) or
    the websocket URL of a config."""
    from dasf_geo.config import WebsocketURLConfig

    if isinstance(messaging, WebsocketURLConfig):
        return str(messaging.websocket_url or messaging.producer_url)
    return ",".join(messaging.broker_urls())


def _members_line(module_cls: Any) -> str:
    api = module_cls.get_api_info()
    parts = []
    if api.functions:
        parts.append("functions: " + ", ".join(f.name for f in api.functions))
    for cls in api.classes:
        methods = ", ".join(m.name for m in cls.methods)
        parts.append(f"class {cls.name} ({methods})")
    return "; ".join(parts)


def _configure_logging(config: Any, level_given: bool) -> None:
    log_config = config.log_config
    if not level_given and log_config.level is None:
        log_config = log_config.model_copy(update={"level": logging.WARNING})
    log_config.configure_logging()


def _load_service_module(
    args: argparse.Namespace,
) -> tuple[ModuleType, Any, dict[str, Any]]:
    """Import the module; return it, the service it defines (if any) and the
    options its own ``service.run()`` call gave.

    A module that registers entrypoints on ``dasf_geo.service`` is a
    service; ``service.run()`` at its top level does not block while it is
    imported here.

    Raises:
        ConfigurationError: the module cannot be imported, or ``--version``
            / ``--shadow`` are given for a module that is not a service.
    """
    from dasf_geo.service import service

    with service.deferred_run() as options:
        module = load_module(args.module)
    own = [
        ep
        for ep in service.entrypoints.values()
        if getattr(ep.func, "__module__", None) == module.__name__
    ]
    if own:
        options = dict(options)
        # the service's name: its own run(name=...), DASF_GEO_SERVICE_NAME,
        # else the module's name (as for any module served)
        if not options.get("name") and not os.environ.get("DASF_GEO_SERVICE_NAME"):
            options["name"] = module.__name__.rsplit(".", 1)[-1]
        return module, service, options
    if args.service_version or args.shadow:
        raise ConfigurationError(
            f"--version and --shadow need a module written with dasf_geo.service "
            f"(@service.entrypoint); {args.module} has no entrypoints"
        )
    return module, None, {}


def _run_service(
    service: Any, options: dict[str, Any], args: argparse.Namespace
) -> int:
    """Run a dasf_geo.service module; the command line's options win."""
    if args.members:
        raise ConfigurationError("--members does not apply to a service module")
    given = {
        "name": args.topic,
        "version": args.service_version,
        "shadow": args.shadow or None,
        "broker": args.broker,
        "websocket_url": args.websocket_url,
        "port": args.port,
        "max_workers": args.max_workers,
        "debug": args.debug or None,
        "http": False if getattr(args, "no_http", False) else None,
        "http_port": getattr(args, "http_port", None),
    }
    options.update({k: v for k, v in given.items() if v is not None})
    service.run(**options)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``dasf-geo serve``; return the exit code."""
    from dasf_geo.backend import BackendModule
    from dasf_geo.transport import backend as transport_backend

    broker = None
    gateway = None
    try:
        if args.port is not None and (args.broker or args.websocket_url):
            raise ConfigurationError(
                "--port starts an embedded broker on that port; with "
                f"{'--broker' if args.broker else '--websocket-url'} the service "
                "connects to that broker instead: give one of them, not both"
            )
        module, service, options = _load_service_module(args)
        if service is not None:
            return _run_service(service, options, args)
        config = build_config(args, module)
        # the members are checked before a broker starts
        module_cls = BackendModule.create_model(module.__name__, config=config)
        if args.port is not None or not broker_configured(config):
            broker = start_embedded_broker(args.port)
            print(f"embedded broker listening on {broker.url}", flush=True)
            config = build_config(args, module, broker.url)
            module_cls.backend_config.messaging_config = config.messaging_config
        _configure_logging(config, args.log_level is not None)
        messaging = config.messaging_config
        topic = messaging.topic
        url = args.broker or broker_url_of(messaging)
        if broker is None:
            print(f"connecting to the broker at {url}", flush=True)
        if args.websocket_url:
            option = f"--websocket-url {args.websocket_url}"
        elif args.broker:
            option = f"--broker {args.broker}"
        elif getattr(messaging, "websocket_url", None):
            option = f"--websocket-url {url}"
        else:
            option = f"--broker {url}"
        example = _example_call(module_cls, topic, option)
        members = _members_line(module_cls)
        from dasf_geo.cli._gateway import start_for_serve

        gateway, http_lines = start_for_serve(
            args, topic, module_cls, messaging, embedded=broker is not None
        )

        def announce(listener: Any) -> None:
            print(f"serving {module.__name__} on topic {topic!r}", flush=True)
            if members:
                print(f"  {members}", flush=True)
            if example:
                print(f"call it with:\n  {example}", flush=True)
            for line in http_lines:
                print(line, flush=True)

        transport_backend.on_listening.append(announce)
        try:
            module_cls.listen()
        finally:
            transport_backend.on_listening.remove(announce)
    except DasfGeoError as exc:
        print_error(
            exc,
            debug=args.debug,
            start_hint="`dasf-geo broker` starts one, or leave the broker "
            "unset and `dasf-geo serve` starts an embedded one",
        )
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if gateway is not None:
            gateway.stop()
        if broker is not None:
            broker.stop()
    return 0
