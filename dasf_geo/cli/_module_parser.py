"""The argument parser of a backend module's command line (see :mod:`.module`).

Every option defaults to "not given", so that :func:`get_parser`'s namespace
holds only what the user typed; :mod:`._module_config` then applies the
precedence command line > ``main()`` keywords > environment.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from dasf_geo.config.logging import LEVEL_NAMES, LoggingConfig
from dasf_geo.config.messaging import (
    BaseMessagingConfig,
    PulsarConfig,
    WebsocketURLConfig,
)

__all__ = ["LOG", "MSG", "ModuleArgumentParser", "get_parser"]

#: namespace prefix of the options that belong to the messaging config
MSG = "messaging."
#: namespace prefix of the options that belong to the logging config
LOG = "log."
_MSG = MSG
_LOG = LOG


class ModuleArgumentParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` whose errors never show a traceback.

    :meth:`error` prints the usage and ``prog: error: message`` to standard
    error and exits with status 2, like argparse itself.
    """


def _describe(cls: type[BaseModel], name: str) -> str:
    info = cls.model_fields[name]
    return (info.description or "").rstrip(".") + "."


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _default_text(value: Any) -> str:
    if value is None or value == "" or value == {} or value == []:
        return ""
    return f" Default: {_show(value)}."


def _messaging_defaults(config: Any) -> dict[str, Any]:
    """The messaging values ``config`` (main()'s keywords) sets explicitly."""
    if config is None:
        return {}
    if isinstance(config, BaseModel) and hasattr(config, "messaging_config"):
        config = config.messaging_config
    elif isinstance(config, Mapping):
        config = config.get("messaging_config") or {}
    if isinstance(config, BaseMessagingConfig):
        return config.model_dump(exclude_unset=True)
    if isinstance(config, Mapping):
        return dict(config)
    return {}


def get_parser(
    module_name: str = "__main__", config: Any = None
) -> ModuleArgumentParser:
    """Create the command-line parser of a backend module.

    Every option defaults to "not given" (the namespace only holds what the
    user typed), so that :func:`main` can apply the precedence command line
    > ``main()`` keywords > environment. Messaging options are stored as
    ``messaging.<field>``, logging options as ``log.<field>``.

    Args:
        module_name: the backend module, shown as the default of
            ``-m/--module``.
        config: a :class:`~dasf_geo.config.ModuleConfig`, or the keyword
            arguments given to :func:`main`; only used to show defaults in
            the help.

    Returns:
        The parser, with the sub-commands ``test-connect``, ``listen``,
        ``schema``, ``send-request``, ``compute``, ``shell`` and
        ``generate``.
    """
    defaults = _messaging_defaults(config)
    field_default = {
        name: info.get_default(call_default_factory=True)
        for cls in (PulsarConfig, WebsocketURLConfig)
        for name, info in cls.model_fields.items()
    }

    def default_of(name: str) -> str:
        value = defaults[name] if name in defaults else field_default.get(name)
        if name == "persistent" and isinstance(value, bool):
            value = "persistent" if value else "non-persistent"
        return _default_text(value)

    parser = ModuleArgumentParser(
        description=(
            "Serve the functions and classes of a Python module as a DASF "
            "backend module. Options override main()'s keyword arguments, "
            "which override DE_BACKEND_* and DE_LOGGING_* environment variables."
        ),
        argument_default=argparse.SUPPRESS,
    )
    add = parser.add_argument

    add(
        "-m",
        "--module",
        dest="module_name",
        metavar="MODULE",
        help=f"Name of the backend module. Default: {module_name}.",
    )
    add(
        "-d",
        "--description",
        dest="doc",
        metavar="DOC",
        help=(
            "The documentation of the module. If empty, it is taken from the "
            "module's __doc__."
        ),
    )
    add(
        "--debug",
        action="store_true",
        help=(
            "Run the backend module in debug mode: error replies carry the "
            "traceback, and errors here show it too."
        ),
    )
    add(
        "--members",
        nargs="+",
        metavar="member",
        help="Names of the functions and classes to expose. Default: __all__.",
    )

    conn = parser.add_argument_group(
        "Connection options", "General options for the backend module"
    )
    topic_help = _describe(PulsarConfig, "topic")
    if defaults.get("topic"):
        topic_help += f" Default: {defaults['topic']}."
    else:
        topic_help += " Required unless given to main() or as DE_BACKEND_TOPIC."
    conn.add_argument(
        "-t", "--topic", dest=_MSG + "topic", metavar="TOPIC", help=topic_help
    )
    conn.add_argument(
        "--header",
        dest=_MSG + "header",
        metavar='{"authorization": "Token ..."}',
        help=_describe(PulsarConfig, "header") + default_of("header"),
    )
    for flags, name, metavar in [
        (("--max-workers",), "max_workers", "N"),
        (("--queue-size", "--queue_size"), "queue_size", "N"),
        (("--max-payload-size", "--max_payload_size"), "max_payload_size", "CHARS"),
        (("--producer-keep-alive",), "producer_keep_alive", "SECONDS"),
        (
            ("--producer-connection-timeout",),
            "producer_connection_timeout",
            "SECONDS",
        ),
        (("--spool-threshold",), "spool_threshold", "BYTES"),
    ]:
        conn.add_argument(
            *flags,
            dest=_MSG + name,
            metavar=metavar,
            help=_describe(PulsarConfig, name) + default_of(name),
        )

    pulsar = parser.add_argument_group(
        "Pulsar connection options",
        "Arguments for connecting to a Pulsar-style broker (also the embedded "
        "broker and dasf-broker-django). This is the default connection "
        "method unless you give a websocket URL (see below).",
    )
    for flags, name, metavar in [
        (("-H", "--host"), "host", "HOST"),
        (("-p", "--port"), "port", "PORT"),
        (("--persistent",), "persistent", "{persistent,non-persistent}"),
        (("--tenant",), "tenant", "TENANT"),
        (("--namespace",), "namespace", "NAMESPACE"),
    ]:
        pulsar.add_argument(
            *flags,
            dest=_MSG + name,
            metavar=metavar,
            help=_describe(PulsarConfig, name) + default_of(name),
        )

    wsu = parser.add_argument_group(
        "WebSocket URL options",
        "Arguments for connecting to an arbitrary websocket service: the "
        "topic is appended to the URL.",
    )
    for flag, name in [
        ("--websocket-url", "websocket_url"),
        ("--producer-url", "producer_url"),
        ("--consumer-url", "consumer_url"),
    ]:
        wsu.add_argument(
            flag,
            dest=_MSG + name,
            metavar="URL",
            help=_describe(WebsocketURLConfig, name) + default_of(name),
        )

    logging_group = parser.add_argument_group(
        "Logging options", "Arguments for configuring the logging of dasf_geo."
    )
    logging_group.add_argument(
        "--log-config",
        dest=_LOG + "config_file",
        metavar="FILE",
        help=_describe(LoggingConfig, "config_file")
        + " Default: the packaged logging.yaml.",
    )
    logging_group.add_argument(
        "--log-level",
        dest=_LOG + "level",
        metavar="LEVEL",
        help=(
            "Level of every dasf_geo logger, overriding the config file: a "
            "number or one of " + ", ".join(n for n in LEVEL_NAMES if n != "WARN")
        ),
    )
    logging_group.add_argument(
        "--log-file",
        dest=_LOG + "logfile",
        metavar="FILE",
        help=_describe(LoggingConfig, "logfile"),
    )
    logging_group.add_argument(
        "--merge-log-config",
        dest=_LOG + "merge_config",
        action="store_true",
        help=_describe(LoggingConfig, "merge_config"),
    )
    logging_group.add_argument(
        "--log-overrides",
        dest=_LOG + "config_overrides",
        metavar="YAML",
        help=(
            "Any valid YAML string, YAML file or JSON file that is merged into "
            "the logging configuration."
        ),
    )

    sub = parser.add_subparsers(dest="command", title="Commands", metavar="COMMAND")
    sub.add_parser(
        "test-connect",
        help="Check that the broker accepts this module's connections.",
        argument_default=argparse.SUPPRESS,
    )
    sub.add_parser(
        "listen",
        help="Connect to the broker and answer requests until stopped.",
        argument_default=argparse.SUPPRESS,
    )
    sp = sub.add_parser("schema", help="Print the JSON schema of the backend module.")
    sp.add_argument(
        "-i", "--indent", type=_indent, default=None, help="Indent the JSON dump."
    )
    for name, help_text in [
        ("send-request", "Send a request through the broker and print the reply."),
        ("compute", "Run a request in this process (no broker) and print the reply."),
    ]:
        sp = sub.add_parser(name, help=help_text)
        sp.add_argument(
            "request",
            metavar="FILE",
            help=(
                "A JSON or YAML file with the request, '-' for standard input, "
                'or the request itself, e.g. \'{"func_name": "hello_world"}\'.'
            ),
        )
        if name == "send-request":
            sp.add_argument(
                "--timeout",
                type=_seconds,
                default=None,
                metavar="SECONDS",
                help="Seconds to wait for the reply. Default: the client's (600).",
            )
    sub.add_parser(
        "shell",
        help="Start an interactive (IPython) shell with the model as `Model`.",
        argument_default=argparse.SUPPRESS,
    )
    sp = sub.add_parser(
        "generate",
        help="Print a client module for this backend module.",
        description=(
            "Generate a Python module that calls this backend module through "
            "the broker; black, isort and autoflake format it when installed."
        ),
    )
    sp.add_argument(
        "--lang",
        choices=("python", "typescript"),
        default="python",
        help="The client's language: a Python module (default) or a TypeScript "
        "module with its own DASF client (needs node for the type conversion).",
    )
    sp.add_argument(
        "-l",
        "--line-length",
        type=_line_length,
        default=79,
        help="The line length of the generated code. Default: %(default)s.",
    )
    sp.add_argument(
        "--no-formatters",
        action="store_false",
        dest="use_formatters",
        help="Do not use any formatter (isort, black or autoflake).",
    )
    sp.add_argument(
        "--no-isort",
        action="store_false",
        dest="use_isort",
        help="Do not use isort.",
    )
    sp.add_argument(
        "--no-black", action="store_false", dest="use_black", help="Do not use black."
    )
    sp.add_argument(
        "--no-autoflake",
        action="store_false",
        dest="use_autoflake",
        help="Do not use autoflake.",
    )
    return parser


def _indent(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"the indent must be a whole number of spaces, got {text!r:.40}"
        ) from None
    if not 0 <= value <= 32:
        raise argparse.ArgumentTypeError(
            f"the indent must be between 0 and 32 spaces, got {value}"
        )
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"the timeout must be a number of seconds, got {text!r:.40}"
        ) from None
    if not 0 < value <= 7 * 24 * 3600:
        raise argparse.ArgumentTypeError(
            f"the timeout must be between 0 and 604800 seconds, got {text!r:.40}"
        )
    return value


def _line_length(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"the line length must be a whole number, got {text!r:.40}"
        ) from None
    if not 10 <= value <= 10_000:
        raise argparse.ArgumentTypeError(
            f"the line length must be between 10 and 10000, got {value}"
        )
    return value
