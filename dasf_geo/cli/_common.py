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


def add_connection_options(
    parser: argparse.ArgumentParser,
    default: str = "the DE_BACKEND_HOST/DE_BACKEND_PORT environment variables, "
    "else ws://localhost:8080",
) -> None:
    """Add ``--broker``/``--websocket-url``/``--header``… to ``parser``.

    ``default`` says which broker is used without ``--broker``.
    """
    group = parser.add_argument_group("broker connection")
    where = group.add_mutually_exclusive_group()
    where.add_argument(
        "--broker",
        metavar="URL",
        help="ws://HOST:PORT of a Pulsar-layout broker (dasf-geo broker, Apache "
        "Pulsar); the fronts of a broker cluster as a comma-separated list "
        f"(ws://a:8080,ws://b:8080), used in turn when one fails; default: {default}",
    )
    where.add_argument(
        "--websocket-url",
        metavar="URL",
        help="base URL of a plain-layout broker (dasf-broker-django), e.g. "
        "ws://example.org/ws; several as a comma-separated list",
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
        action="store_const",
        const="persistent",
        default=None,
        help="use persistent topics: the broker keeps requests until a backend "
        "takes them (default: non-persistent)",
    )


#: log levels by name, as ``--log-level`` takes them
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

#: the values the old ``--persistent {persistent,non-persistent}`` form took
_PERSISTENT_VALUES = {"persistent": "--persistent", "non-persistent": None}


def normalize_argv(argv: list[str]) -> list[str]:
    """Accept the old ``--persistent persistent`` / ``non-persistent`` form.

    ``--persistent`` is a plain flag now; the value that used to follow it is
    dropped (``persistent``) or cancels the flag (``non-persistent``), as is
    ``--persistent=VALUE``.
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out.extend(argv[i:])
            break
        value: str | None = None
        if arg.startswith("--persistent="):
            value = arg.partition("=")[2]
        elif (
            arg == "--persistent"
            and i + 1 < len(argv)
            and argv[i + 1] in _PERSISTENT_VALUES
        ):
            value = argv[i + 1]
            i += 1
        if value is None:
            out.append(arg)
        elif value in _PERSISTENT_VALUES:
            flag = _PERSISTENT_VALUES[value]
            if flag:
                out.append(flag)
        else:
            out.append(arg)  # argparse names the bad value
        i += 1
    return out


def broker_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The messaging config fields the connection options of ``args`` give.

    Raises:
        ConfigurationError: ``--broker`` is not a ``ws://HOST:PORT`` URL.
    """
    from dasf_geo.config import WebsocketURLConfig
    from dasf_geo.service.dynamic import messaging_config

    fields: dict[str, Any] = {}
    for name in ("header", "tenant", "namespace", "persistent"):
        value = getattr(args, name, None)
        if value is not None:
            fields[name] = value
    websocket_url = getattr(args, "websocket_url", None)
    broker = getattr(args, "broker", None)
    if websocket_url:
        fields["websocket_url"] = websocket_url
    elif broker:
        path = {k: v for k, v in fields.items() if k != "header"}
        config = messaging_config("topic", broker, **path)
        if isinstance(config, WebsocketURLConfig):
            fields = {k: v for k, v in fields.items() if k == "header"}
            fields["producer_url"] = config.producer_url
            fields["consumer_url"] = config.consumer_url
        else:
            fields["host"] = config.host
            fields["port"] = config.port
    return fields


def config_from_args(args: argparse.Namespace, topic: str, **extra: Any) -> Any:
    """The messaging config the connection options of ``args`` describe.

    Raises:
        ConfigurationError: the options do not make a valid config.
    """
    from pydantic import ValidationError

    from dasf_geo.exceptions import MODULE_STYLE, format_validation_error
    from dasf_geo.service.dynamic import messaging_config

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
        raise ConfigurationError(
            format_validation_error(exc, "connection options", style=MODULE_STYLE)
        ) from exc


def _broker_root(url: str) -> str:
    """``ws://HOST:PORT`` of a full topic URL."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


#: Python spellings in library messages -> the command line's
_CLI_SPELLING = (
    ("broker='ws://HOST:PORT'", "--broker ws://HOST:PORT"),
    ("websocket_url='ws://HOST/PATH'", "--websocket-url ws://HOST/PATH"),
    ("websocket_url=…", "--websocket-url URL"),
    ("pass members=[...]", "give --members NAME ..."),
)


def cli_spelling(message: str) -> str:
    """``message`` with its hints spelled as command-line options."""
    for python, option in _CLI_SPELLING:
        message = message.replace(python, option)
    return message


def describe_error(
    exc: BaseException,
    debug: bool = False,
    start_hint: str = "`dasf-geo serve` starts one",
) -> str:
    """The one-line message a person sees for ``exc``.

    A broker that cannot be reached is named by its ``ws://HOST:PORT`` with
    what to do about it; the full URL and the system's message follow only
    with ``debug``.
    """
    from dasf_geo.exceptions import ConnectionFailed

    message = cli_spelling(str(exc))
    if isinstance(exc, ConnectionFailed) and exc.url:
        root = _broker_root(exc.url)
        cause = exc.__cause__
        if isinstance(cause, ConnectionRefusedError) or (
            isinstance(cause, OSError) and cause.errno == 111
        ):
            friendly = (
                f"no broker at {root} (connection refused); is one running? "
                f"{start_hint}"
            )
        elif isinstance(cause, OSError) and cause.strerror:
            friendly = f"cannot reach the broker at {root} ({cause.strerror})"
        else:
            return message
        return f"{friendly}\n  ({message})" if debug else friendly
    return message


def _validation_lines(errors: list[Any], function: str | None) -> list[str]:
    """One line per rejected argument: ``name: problem (got value)``."""
    from dasf_geo.exceptions import validation_problems

    skip = function.split(".") if function else ()
    return [f"  {line}" for line in validation_problems(errors, skip)]


def print_error(
    exc: BaseException,
    debug: bool = False,
    function: str | None = None,
    start_hint: str = "`dasf-geo serve` starts one",
) -> None:
    """Print a dasf_geo error for a person, once.

    A rejected request lists each argument with its problem (no pydantic
    boilerplate); other errors print their message (see
    :func:`describe_error`).
    """
    from dasf_geo.exceptions import RemoteValidationError

    errors = getattr(exc, "errors", None)
    if isinstance(exc, RemoteValidationError) and errors and not debug:
        what = f"{function}()" if function else "the call"
        print(f"error: the service rejected the arguments of {what}:", file=sys.stderr)
        for line in _validation_lines(errors, function):
            print(line, file=sys.stderr)
        return
    message = describe_error(exc, debug, start_hint)
    print(f"error: {message}", file=sys.stderr)
    if isinstance(exc, DasfGeoError) and isinstance(errors, list):
        for error in errors:
            if not isinstance(error, dict):
                continue
            loc = ".".join(str(p) for p in error.get("loc", ())) or "request"
            msg = str(error.get("msg", ""))
            if msg and msg in message:
                continue  # the message said it already
            print(f"  {loc}: {msg}", file=sys.stderr)
