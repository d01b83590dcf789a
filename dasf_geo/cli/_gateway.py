"""``dasf-geo gateway``: every DASF service on a broker, over HTTP.

::

    dasf-geo gateway --broker ws://127.0.0.1:8080
    dasf-geo gateway --websocket-url wss://example.org/ws --topic geo_service \\
        --header '{"Authorization": "Token KEY"}'

Serves REST routes and OpenAPI docs for the named topics (``--topic``,
repeatable) or, with a broker that lists its topics (``dasf-geo broker``,
the embedded broker), for every topic with a backend. See docs/http.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dasf_geo.cli._common import add_connection_options, print_error
from dasf_geo.exceptions import DasfGeoError

__all__ = ["add_http_options", "add_parser", "run", "settings_from_args"]


def _size(text: str) -> int:
    from dasf_geo.protocol.options import parse_size

    try:
        value = int(parse_size(text))
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a size > 0, got {text!r:.40}")
    return value


def add_http_options(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """Options of the HTTP gateway (``prefix``: ``http-`` inside ``serve``)."""
    from dasf_geo.cli._common import positive_seconds

    group = parser.add_argument_group("HTTP gateway")
    group.add_argument(
        f"--{prefix}cors-origin",
        dest="cors_origins",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow cross-origin requests from ORIGIN (repeatable; '*' for any); "
        "default: CORS off",
    )
    group.add_argument(
        f"--{prefix}body-limit",
        dest="body_limit",
        type=_size,
        default=None,
        metavar="SIZE",
        help="largest request body (bytes, or 500MB, 2GiB; default: 1 GiB, the "
        "DASF max_request_size)",
    )
    group.add_argument(
        f"--{prefix}timeout",
        dest="http_timeout",
        type=positive_seconds,
        default=600.0,
        metavar="SECONDS",
        help="seconds to wait for a backend's reply (default: 600)",
    )
    group.add_argument(
        f"--{prefix}discovery-timeout",
        dest="discovery_timeout",
        type=positive_seconds,
        default=9.0,
        metavar="SECONDS",
        help="seconds to wait for the API info of a topic not seen before, "
        "before answering 404, with a broker that cannot list its topics "
        "(default: 9; the embedded broker and dasf-geo broker tell at once)",
    )
    group.add_argument(
        f"--{prefix}jobs-db",
        dest="jobs_db",
        type=Path,
        default=None,
        metavar="FILE",
        help="SQLite file of OGC API jobs (default: one in the temporary directory)",
    )
    group.add_argument(
        "--insecure",
        action="store_true",
        help="serve HTTP on a non-loopback address without a broker token",
    )


def add_parser(sub: Any) -> None:
    """Register ``dasf-geo gateway``."""
    parser = sub.add_parser(
        "gateway",
        help="serve the DASF services of a broker over HTTP (REST, OpenAPI, OGC "
        "API - Processes)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "--topic",
        "-t",
        dest="topics",
        action="append",
        default=[],
        metavar="TOPIC",
        help="serve this topic (repeatable; default: every topic with a backend "
        "that the broker lists)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=("critical", "error", "warning", "info", "debug"),
        help="uvicorn's log level",
    )
    add_connection_options(parser)
    add_http_options(parser)
    parser.set_defaults(run=run)


def settings_from_args(args: argparse.Namespace, broker: str | None = None) -> Any:
    """The :class:`~dasf_geo.gateway.GatewaySettings` of parsed options.

    Raises:
        ConfigurationError: invalid options.
    """
    from dasf_geo.gateway import DEFAULT_BODY_LIMIT, GatewaySettings

    messaging: dict[str, Any] = {}
    for name in ("tenant", "namespace", "persistent"):
        value = getattr(args, name, None)
        if value is not None:
            messaging[name] = value
    websocket_url = getattr(args, "websocket_url", None)
    return GatewaySettings(
        broker=(
            None if websocket_url else (broker or args.broker or "ws://localhost:8080")
        ),
        websocket_url=websocket_url,
        header=dict(getattr(args, "header", None) or {}),
        topics=list(getattr(args, "topics", None) or []),
        messaging=messaging,
        timeout=float(getattr(args, "http_timeout", 600.0)),
        discovery_timeout=float(getattr(args, "discovery_timeout", 9.0)),
        body_limit=getattr(args, "body_limit", None) or DEFAULT_BODY_LIMIT,
        cors_origins=list(getattr(args, "cors_origins", None) or []),
        jobs_db=getattr(args, "jobs_db", None),
    )


def run(args: argparse.Namespace) -> int:
    """Run ``dasf-geo gateway``; return the exit code."""
    from dasf_geo.gateway import GatewayServer
    from dasf_geo.gateway.security import check_bind

    try:
        settings = settings_from_args(args)
        check_bind(args.host, settings, args.insecure)
        server = GatewayServer(settings, args.host, args.port, args.log_level)
    except DasfGeoError as exc:
        print_error(exc)
        return 1
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"HTTP gateway on http://{host}:{args.port} (docs: /docs)", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        return 130
    return 0


# --- inside ``dasf-geo serve`` ------------------------------------------------


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    """``--no-http`` and ``--http-port`` of ``dasf-geo serve``."""
    group = parser.add_argument_group("HTTP gateway")
    group.add_argument(
        "--no-http",
        action="store_true",
        help="do not start the HTTP gateway (REST, OpenAPI docs, OGC API)",
    )
    group.add_argument(
        "--http-port",
        type=int,
        default=None,
        metavar="PORT",
        help="port of the HTTP gateway (default: the next free one after the broker's)",
    )


def _example_curl(url: str, topic: str, module_cls: Any) -> str:
    api = module_cls.get_api_info()
    if api.functions:
        target = api.functions[0].name
        schema = api.functions[0].rpc_schema
    elif api.classes and api.classes[0].methods:
        target = f"{api.classes[0].name}/{api.classes[0].methods[0].name}"
        schema = api.classes[0].methods[0].rpc_schema
    else:
        return f"curl {url}/services/{topic}"
    import json

    args = {
        name: "VALUE"
        for name in schema.get("required", [])
        if name not in ("func_name", "class_name", "function")
    }
    body = json.dumps(args)
    return (
        f"curl -X POST {url}/services/{topic}/{target} "
        f"-H 'Content-Type: application/json' -d '{body}'"
    )


def start_for_serve(
    args: argparse.Namespace,
    topic: str,
    module_cls: Any,
    messaging: Any,
    embedded: bool,
) -> tuple[Any, list[str]]:
    """Start the gateway of ``dasf-geo serve`` (unless ``--no-http``).

    Args:
        args: the parsed ``serve`` options (``--no-http``, ``--http-port``).
        topic: the topic served.
        module_cls: the served module (for the example ``curl`` line).
        messaging: the service's resolved messaging config: the gateway talks
            to the same broker, with the same header and topic kind.
        embedded: the broker was started by ``serve`` (then every topic with
            a backend is served; else only ``topic``).

    Returns:
        The running :class:`~dasf_geo.gateway.GatewayServer` (None with
        ``--no-http``) and the lines to print (its URL and a ``curl`` call).

    Raises:
        ConfigurationError: no free port, or the gateway did not start.
    """
    if getattr(args, "no_http", False):
        return None, []
    from urllib.parse import urlsplit

    from dasf_geo.gateway import DEFAULT_BODY_LIMIT, GatewayServer, GatewaySettings
    from dasf_geo.gateway.server import free_port_after

    websocket_url = getattr(messaging, "websocket_url", None)
    # --broker as given: a front list, or a wss:// broker, is no host and port
    broker_url = websocket_url or getattr(args, "broker", None)
    broker_url = broker_url or ",".join(messaging.broker_urls())
    base_port = urlsplit(broker_url.split(",")[0]).port or 8000
    port = args.http_port or free_port_after(base_port)
    kind: dict[str, Any] = {}
    for name in ("tenant", "namespace", "persistent"):
        if hasattr(messaging, name):
            kind[name] = getattr(messaging, name)
    settings = GatewaySettings(
        broker=None if websocket_url else broker_url,
        websocket_url=websocket_url,
        header=dict(messaging.header or {}),
        # someone else's broker may carry other people's services
        topics=[] if embedded else [topic],
        messaging=kind,
        body_limit=getattr(args, "body_limit", None) or DEFAULT_BODY_LIMIT,
    )
    server = GatewayServer(settings, "127.0.0.1", port).start()
    url = server.url
    return server, [
        f"HTTP gateway on {url} (docs: {url}/docs)",
        "call it over HTTP with:",
        f"  {_example_curl(url, topic, module_cls)}",
    ]
