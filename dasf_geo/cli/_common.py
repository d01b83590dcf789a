"""Options shared by the ``dasf-geo`` sub-commands that talk to a broker."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dasf_geo.exceptions import ConfigurationError, DasfGeoError

__all__ = [
    "add_connection_options",
    "config_from_args",
    "parse_header",
    "print_error",
]


def parse_header(text: str) -> dict[str, str]:
    """Parse ``--header``: a JSON object of strings.

    Raises:
        argparse.ArgumentTypeError: not a JSON object of strings.
    """
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"--header must be a JSON object such as "
            f'\'{{"Authorization": "Token KEY"}}\', got {text!r:.60} ({exc})'
        ) from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise argparse.ArgumentTypeError(
            f"--header must be a JSON object of strings, got {text!r:.60}"
        )
    return value


def positive_seconds(text: str) -> float:
    """argparse type: a number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds, got {text!r:.40}"
        ) from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r:.40}")
    return value


def _option_type(name: str, parse: Any) -> Any:
    """argparse type for transfer option ``name``, checked by TransferOptions."""

    def convert(text: str) -> int:
        from dasf_geo.protocol.options import TransferOptions

        try:
            value = parse(text)
            TransferOptions(**{name: value})
        except ValueError as exc:  # ConfigurationError is a ValueError
            detail = str(exc)
            if isinstance(exc, ConfigurationError):
                detail = detail.removeprefix(f"{name} ")
            elif parse is int:
                detail = f"must be an integer, got {text!r:.40}"
            raise argparse.ArgumentTypeError(detail) from None
        return int(value)

    convert.__name__ = name  # argparse names the type in some messages
    return convert


def add_transfer_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--fragment-size``/``--compression``/``--max-size`` to ``parser``."""
    from dasf_geo.protocol.options import MIN_FRAGMENT_SIZE, parse_size

    group = parser.add_argument_group("transfer (this call only)")
    group.add_argument(
        "--fragment-size",
        type=_option_type("fragment_size", int),
        metavar="CHARS",
        help="largest message payload in base64 characters for the request and "
        f"the reply (at least {MIN_FRAGMENT_SIZE}; the backend never sends "
        "larger fragments than its own max_payload_size)",
    )
    group.add_argument(
        "--compression",
        type=_option_type("compression", int),
        metavar="LEVEL",
        help="zlib level 1-9: Dataset/DataArray arguments and results travel "
        "as compressed NetCDF4 (unless the function forces NetCDF3)",
    )
    group.add_argument(
        "--max-size",
        type=_option_type("max_size", parse_size),
        metavar="SIZE",
        help="refuse a request or reply larger than SIZE (bytes, or with a "
        "unit: 50MB, 2GiB)",
    )


def transfer_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~dasf_geo.protocol.options.TransferOptions` of ``args``."""
    from dasf_geo.protocol.options import TransferOptions

    return TransferOptions(
        fragment_size=getattr(args, "fragment_size", None),
        compression=getattr(args, "compression", None),
        max_size=getattr(args, "max_size", None),
    )


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--broker``/``--websocket-url``/``--header``… to ``parser``."""
    group = parser.add_argument_group("broker connection")
    where = group.add_mutually_exclusive_group()
    where.add_argument(
        "--broker",
        metavar="URL",
        help="ws://HOST:PORT of a Pulsar-layout broker (dasf-geo broker, Apache "
        "Pulsar); default: the DE_BACKEND_HOST/DE_BACKEND_PORT environment "
        "variables, else ws://localhost:8080",
    )
    where.add_argument(
        "--websocket-url",
        metavar="URL",
        help="base URL of a plain-layout broker (dasf-broker-django), e.g. "
        "ws://example.org/ws",
    )
    group.add_argument(
        "--header",
        type=parse_header,
        metavar="JSON",
        help='HTTP headers for the handshake, e.g. \'{"Authorization": "Token KEY"}\'',
    )
    group.add_argument("--tenant", help="Pulsar tenant (default: public)")
    group.add_argument("--namespace", help="Pulsar namespace (default: default)")
    group.add_argument(
        "--persistent",
        nargs="?",
        const="persistent",
        choices=("persistent", "non-persistent"),
        default=None,
        help="use persistent topics (as the module command line: --persistent "
        "persistent; default: non-persistent)",
    )


def config_from_args(args: argparse.Namespace, topic: str, **extra: Any) -> Any:
    """The messaging config the connection options of ``args`` describe.

    Raises:
        ConfigurationError: the options do not make a valid config.
    """
    from pydantic import ValidationError

    from dasf_geo.transport.dynamic import messaging_config

    options: dict[str, Any] = dict(extra)
    for name in ("tenant", "namespace", "persistent"):
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    try:
        return messaging_config(
            topic,
            getattr(args, "broker", None),
            websocket_url=getattr(args, "websocket_url", None),
            header=getattr(args, "header", None),
            **options,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigurationError(f"invalid connection options: {problems}") from exc


def print_error(exc: BaseException) -> None:
    """Print a dasf_geo error for a person: message, then structured errors."""
    print(f"error: {exc}", file=sys.stderr)
    errors = getattr(exc, "errors", None)
    if isinstance(exc, DasfGeoError) and isinstance(errors, list):
        for error in errors:
            loc = ".".join(str(p) for p in error.get("loc", ())) or "request"
            print(
                f"  {loc}: {error.get('msg', '')} [{error.get('type', '')}]",
                file=sys.stderr,
            )
