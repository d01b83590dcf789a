"""``dasf-geo serve``: serve a module's functions and classes as a DASF service.

::

    dasf-geo serve examples/geo_service.py
    dasf-geo serve my_package.my_module --topic my-topic --broker ws://broker:8080

``MODULE_OR_PATH`` is a Python file or an importable module name; the
members listed in its ``__all__`` (or ``--members``) are served. With no
broker given (``--broker``/``--websocket-url``), an embedded broker is started
in this process on 127.0.0.1, port 8080 or the next free one, and the command
that calls the service is printed. Ctrl-C finishes the requests in progress,
then stops.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from dasf_geo.cli._common import add_connection_options, config_from_args, print_error
from dasf_geo.exceptions import ConfigurationError, DasfGeoError

__all__ = ["add_parser", "load_module", "run", "start_embedded_broker"]

logger = logging.getLogger(__name__)

#: ports tried for the embedded broker, in order
EMBEDDED_PORTS = range(8080, 8100)


def add_parser(sub: Any) -> None:
    """Register ``dasf-geo serve``."""
    parser = sub.add_parser(
        "serve",
        help="serve a module as a DASF service (starts an embedded broker if "
        "none is given)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("module", metavar="MODULE_OR_PATH")
    parser.add_argument(
        "--topic", "-t", help="the topic to serve on (default: the module's name)"
    )
    parser.add_argument(
        "--members", nargs="+", help="serve these members instead of __all__"
    )
    parser.add_argument(
        "--max-workers", type=int, default=None, help="requests run at once"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="port of the embedded broker (default: 8080 or the next free one)",
    )
    parser.add_argument(
        "--debug", action="store_true", help="send tracebacks with error replies"
    )
    add_connection_options(parser)
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

    Without ``port``, 8080 is tried first, then the next 19 ports.

    Raises:
        BrokerError: the port (or every port tried) is taken.
    """
    from dasf_geo.broker import EmbeddedBroker

    if port is not None:
        return EmbeddedBroker(host="127.0.0.1", port=port).start()
    return EmbeddedBroker.start_on_free_port(
        EMBEDDED_PORTS.start, attempts=len(EMBEDDED_PORTS), host="127.0.0.1"
    )


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
    return " ".join(["dasf-geo", "call", topic, target, *args, broker_option])


def run(args: argparse.Namespace) -> int:
    """Run ``dasf-geo serve``; return the exit code."""
    from dasf_geo.backend import BackendModule
    from dasf_geo.transport import backend as transport_backend

    broker = None
    gateway = None
    try:
        module = load_module(args.module)
        topic = args.topic or module.__name__.rsplit(".", 1)[-1]
        broker_given = args.broker or args.websocket_url
        if not broker_given:
            broker = start_embedded_broker(args.port)
            args.broker = broker.url
            print(f"embedded broker listening on {broker.url}", flush=True)
        extra: dict[str, Any] = {}
        if args.max_workers is not None:
            extra["max_workers"] = args.max_workers
        config = config_from_args(args, topic, **extra)
        kws: dict[str, Any] = {"messaging_config": config, "debug": args.debug}
        if args.members:
            kws["members"] = args.members
        module_cls = BackendModule.create_model(module.__name__, **kws)
        broker_option = (
            f"--websocket-url {args.websocket_url}"
            if args.websocket_url
            else f"--broker {args.broker}"
        )
        example = _example_call(module_cls, topic, broker_option)
        from dasf_geo.cli._gateway import start_for_serve

        gateway, http_lines = start_for_serve(
            args, topic, module_cls, broker is not None
        )

        def announce(listener: Any) -> None:
            print(f"serving {module.__name__} on topic {topic!r}", flush=True)
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
        print_error(exc)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if gateway is not None:
            gateway.stop()
        if broker is not None:
            broker.stop()
    return 0
