"""``dasf-geo generate``: write a client for a running service from its API info.

::

    dasf-geo generate --lang typescript geo_service \\
        --broker ws://127.0.0.1:8080 > client.ts

The service on TOPIC is asked for its API info over DASF; the TypeScript
module that is printed holds the DASF WebSocket client, the argument and
result types (converted from the JSON schemas by json-schema-to-typescript,
which runs on Node) and one async method per function. For a Python
client, run ``python MODULE.py generate`` on the backend's module.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dasf_geo.cli._common import (
    add_connection_options,
    config_from_args,
    positive_seconds,
    print_error,
)
from dasf_geo.exceptions import DasfGeoError

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """Register ``dasf-geo generate``."""
    parser = sub.add_parser(
        "generate",
        help="print a TypeScript client for a running service",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("topic", help="the service's topic")
    parser.add_argument(
        "--lang",
        choices=("typescript",),
        required=True,
        help="the client's language (typescript)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=30.0,
        help="seconds to wait for the API info (default: %(default)s)",
    )
    parser.add_argument(
        "--output", "-o", help="write the client to this file instead of stdout"
    )
    add_connection_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``dasf-geo generate``; return the exit code."""
    from dasf_geo.transport.client import Client
    from dasf_geo.web.typescript import generate_typescript

    try:
        config = config_from_args(args, args.topic)
        client = Client(config, args.topic, timeout=args.timeout)
        try:
            api_info = client.api_info(args.timeout)
        finally:
            client.close()
        code = generate_typescript(api_info, args.topic)
    except DasfGeoError as exc:
        print_error(exc)
        return 1
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(code)
        except OSError as exc:
            print_error(DasfGeoError(f"cannot write {args.output}: {exc.strerror}"))
            return 1
        print(f"wrote the TypeScript client to {args.output}", file=sys.stderr)
        return 0
    sys.stdout.write(code)
    return 0
