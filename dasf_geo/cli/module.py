"""The command line of a backend module, created by :func:`main`.

A backend module ends with::

    if __name__ == "__main__":
        main(messaging_config=dict(topic="hello-world-topic"))

and then runs as ``python my_module.py [options] COMMAND``:

``listen``        connect to the broker and answer requests
``test-connect``  check that the broker accepts the connections (exit 0/1)
``schema``        print the module's JSON schema (no broker needed)
``generate``      print a client module for the backend (no broker needed)
``send-request``  send a request through the broker and print the reply
``compute``       run a request in this process and print the reply
``shell``         an interactive shell with the module's model as ``Model``

Every option comes, in rising precedence, from ``DE_BACKEND_*`` /
``DE_LOGGING_*`` environment variables, keyword arguments of :func:`main`
and command-line options. A bad option prints a message naming the option
and exits with status 2; a failed command exits with status 1. Neither shows
a traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import yaml
from pydantic import BaseModel, ValidationError

from dasf_geo.config.logging import LEVEL_NAMES, LoggingConfig
from dasf_geo.config.messaging import (
    BaseMessagingConfig,
    PulsarConfig,
    WebsocketURLConfig,
    format_validation_error,
)
from dasf_geo.exceptions import ConfigurationError, DasfGeoError, RemoteError

if TYPE_CHECKING:
    from dasf_geo.backend import BackendModule

__all__ = ["MAX_REQUEST_FILE_SIZE", "ModuleArgumentParser", "get_parser", "main"]

#: Largest request file that ``send-request`` / ``compute`` read, in bytes.
MAX_REQUEST_FILE_SIZE = 1 << 30

_SHARED_FIELDS = frozenset(BaseMessagingConfig.model_fields)
_PULSAR_ONLY = frozenset(PulsarConfig.model_fields) - _SHARED_FIELDS
_URL_ONLY = frozenset(WebsocketURLConfig.model_fields) - _SHARED_FIELDS
_MESSAGING_FIELDS = _SHARED_FIELDS | _PULSAR_ONLY | _URL_ONLY

# namespace prefixes of the options that belong to a sub-config
_MSG = "messaging."
_LOG = "log."


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


# --------------------------------------------------------------- precedence


def _split_namespace(
    ns: argparse.Namespace,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Split the parsed options into (messaging, logging, module, command)."""
    messaging: dict[str, Any] = {}
    log: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, value in vars(ns).items():
        if key.startswith(_MSG):
            messaging[key[len(_MSG) :]] = value
        elif key.startswith(_LOG):
            log[key[len(_LOG) :]] = value
        else:
            rest[key] = value
    module: dict[str, Any] = {
        k: rest.pop(k) for k in ("doc", "members", "debug") if k in rest
    }
    return messaging, log, module, rest


def _as_dict(value: Any, what: str) -> tuple[dict[str, Any], type | None]:
    """A main() keyword value as a dict, plus its config class if it is one."""
    if value is None:
        return {}, None
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_unset=True), type(value)
    if isinstance(value, Mapping):
        return dict(value), None
    raise ConfigurationError(
        f"main(): {what} must be a dict or a config object, got "
        f"{type(value).__name__} {value!r:.80}"
    )


def _env_has(*names: str) -> bool:
    keys = {key.upper() for key, value in os.environ.items() if value}
    return all(f"DE_BACKEND_{name.upper()}" in keys for name in names)


def _given(values: Mapping[str, Any], names: Iterable[str]) -> list[str]:
    return [n for n in names if values.get(n) not in (None, "")]


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _messaging_config(
    main_values: dict[str, Any], main_cls: type | None, cli: dict[str, Any]
) -> BaseMessagingConfig:
    """Build the messaging config: command line > main() > environment.

    Raises:
        ConfigurationError: options of both connection methods are given on
            the command line, or a value is invalid.
    """
    cli_urls, cli_pulsar = _given(cli, _URL_ONLY), _given(cli, _PULSAR_ONLY)
    if cli_urls and cli_pulsar:
        raise ConfigurationError(
            "give either the Pulsar options ("
            + ", ".join(_option(n) for n in sorted(cli_pulsar))
            + ") or the websocket URL options ("
            + ", ".join(_option(n) for n in sorted(cli_urls))
            + "), not both"
        )
    main_urls, main_pulsar = (
        _given(main_values, _URL_ONLY),
        _given(main_values, _PULSAR_ONLY),
    )
    if cli_urls:
        use_urls = True
    elif cli_pulsar:
        use_urls = False
    elif main_urls:
        use_urls = True
    elif main_pulsar or main_cls is PulsarConfig:
        use_urls = False
    elif main_cls is WebsocketURLConfig:
        use_urls = True
    else:
        use_urls = _env_has("websocket_url") or _env_has("producer_url", "consumer_url")
    cls: type[BaseMessagingConfig] = WebsocketURLConfig if use_urls else PulsarConfig
    drop = _PULSAR_ONLY if use_urls else _URL_ONLY
    values = {k: v for k, v in main_values.items() if k not in drop}
    values.update(cli)
    values = {
        k: v for k, v in values.items() if not (k in _URL_ONLY and v in (None, ""))
    }
    return cls(**values)


_MODULE_OPTIONS = {
    "doc": "-d/--description",
    "members": "--members",
    "debug": "--debug",
}


def _build_config(config_kws: dict[str, Any], ns: argparse.Namespace) -> Any:
    """Merge main()'s keywords and the parsed options into a ModuleConfig.

    Raises:
        ConfigurationError: a value is invalid; the message names it.
    """
    from dasf_geo.config.backend import ModuleConfig

    cli_msg, cli_log, cli_module, _ = _split_namespace(ns)
    kws = dict(config_kws)
    base = kws.pop("config", None)
    if base is not None:
        if not isinstance(base, ModuleConfig):
            raise ConfigurationError(
                "main(): config must be a ModuleConfig, got "
                f"{type(base).__name__} {base!r:.80}"
            )
        kws = {
            **{name: getattr(base, name) for name in base.model_fields_set},
            **kws,
        }
    main_msg, main_cls = _as_dict(kws.pop("messaging_config", None), "messaging_config")
    for key in [k for k in kws if k in _MESSAGING_FIELDS]:
        # main(topic=...) is short for main(messaging_config=dict(topic=...))
        main_msg[key] = kws.pop(key)
    main_log, _ = _as_dict(kws.pop("log_config", None), "log_config")

    messaging = _messaging_config(main_msg, main_cls, cli_msg)
    log_config = LoggingConfig(**{**main_log, **cli_log})
    kws.update(cli_module)
    try:
        return ModuleConfig(messaging_config=messaging, log_config=log_config, **kws)
    except ValidationError as exc:
        raise ConfigurationError(
            format_validation_error(
                exc,
                "main() configuration",
                _MODULE_OPTIONS,
                None,
                ModuleConfig.model_fields,
            )
        ) from exc


# ----------------------------------------------------------------- commands


def _fail(parser: argparse.ArgumentParser, message: str, status: int = 1) -> NoReturn:
    parser.exit(status, f"{parser.prog}: error: {message}\n")


def _read_limited(stream: Any, what: str) -> bytes:
    data = stream.read(MAX_REQUEST_FILE_SIZE + 1)
    if len(data) > MAX_REQUEST_FILE_SIZE:
        raise ConfigurationError(
            f"the {what} is larger than {MAX_REQUEST_FILE_SIZE} bytes"
        )
    return data if isinstance(data, bytes) else data.encode("utf-8")


def _load_request(text: str) -> Any:
    """Read a request given on the command line.

    Args:
        text: ``-`` for standard input, the path of a JSON or YAML file, or
            the request itself as JSON or YAML text.

    Returns:
        JSON bytes (validated later by the model) or a dict from YAML.

    Raises:
        ConfigurationError: the file does not exist or cannot be read, or the
            YAML is invalid or not a mapping.
    """
    if text == "-":
        return _read_limited(sys.stdin.buffer, "request on standard input")
    try:
        path = Path(text).expanduser()
        is_file = len(text) < 4096 and path.is_file()
    except (OSError, ValueError):
        is_file = False
    if is_file:
        try:
            with path.open("rb") as stream:
                data = _read_limited(stream, f"request file {text!r}")
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read the request file {text!r}: {exc.strerror or exc}"
            ) from None
        if path.suffix.lower() not in (".yaml", ".yml"):
            return data
        source, content = f"the request file {text!r}", data
    else:
        source, content = f"the request {text!r:.80}", text.encode("utf-8")
    try:
        loaded = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise ConfigurationError(f"{source} is not valid YAML: {problem}") from None
    if not isinstance(loaded, dict):
        if not is_file:
            raise ConfigurationError(
                f"the request file {text!r:.200} does not exist; give a JSON or "
                "YAML file with the request, '-' for standard input, or the "
                'request itself, e.g. \'{"func_name": "hello_world"}\''
            )
        raise ConfigurationError(
            f"{source} must hold a mapping such as "
            '{"func_name": "hello_world"}, got '
            f"{type(loaded).__name__}"
        )
    return loaded


def _dump(result: Any) -> str:
    if isinstance(result, BaseModel):
        return result.model_dump_json()
    try:
        return json.dumps(result)
    except (TypeError, ValueError):
        return str(result)


def _run(
    parser: argparse.ArgumentParser,
    model: type[BackendModule],
    command: str,
    params: dict[str, Any],
    debug: bool,
) -> None:
    """Run ``command`` on ``model``; exit 2 on bad options, 1 on failures."""
    try:
        if command == "schema":
            print(json.dumps(model.model_json_schema(), indent=params.get("indent")))
        elif command == "generate" and params.get("lang") == "typescript":
            from dasf_geo.web.typescript import generate_typescript

            print(
                generate_typescript(
                    model.get_api_info().model_dump(mode="json"),
                    model.backend_config.messaging_config.topic,
                ),
                end="",
            )
        elif command == "generate":
            print(
                model.generate(
                    line_length=params.get("line_length", 79),
                    use_formatters=params.get("use_formatters", True),
                    use_autoflake=params.get("use_autoflake", True),
                    use_black=params.get("use_black", True),
                    use_isort=params.get("use_isort", True),
                )
            )
        elif command == "listen":
            model.listen()
        elif command == "test-connect":
            if model.test_connect() is False:
                sys.exit(1)
        elif command == "shell":
            model.shell()
        elif command in ("send-request", "compute"):
            request = _load_request(params["request"])
            if command == "send-request":
                result = model.send_request(request, timeout=params.get("timeout"))
            else:
                result = model.process_request(request)
            print(_dump(result))
    except ConfigurationError as exc:
        if debug:
            raise
        parser.error(str(exc))
    except ValidationError as exc:
        if debug:
            raise
        _fail(parser, format_validation_error(exc, "request"))
    except RemoteError as exc:
        if debug:
            raise
        _fail(parser, f"the backend answered with an error: {exc}")
    except DasfGeoError as exc:
        if debug:
            raise
        _fail(parser, str(exc))
    except KeyboardInterrupt:
        _fail(parser, "interrupted", 130)
    except Exception as exc:
        if debug or command not in ("compute",):
            raise
        _fail(
            parser,
            f"the request failed with {type(exc).__name__}: {exc} "
            "(run with --debug for the traceback)",
        )


def main(
    module_name: str = "__main__", *args: str, **config_kws: Any
) -> type[BackendModule]:
    """Create the backend module and run the command given on the command line.

    Options are taken, in rising precedence, from ``DE_BACKEND_*`` /
    ``DE_LOGGING_*`` environment variables, from ``config_kws`` and from the
    command line (``args``, else ``sys.argv[1:]``).

    Args:
        module_name: the module whose members are served (``__main__`` when
            called at the end of a script); ``-m/--module`` overrides it.
        *args: command-line arguments to use instead of ``sys.argv[1:]``.
        **config_kws: keyword arguments of
            :class:`~dasf_geo.config.ModuleConfig` (``messaging_config``,
            ``log_config``, ``members``, ``doc``, ``debug``, ``imports``,
            ...), or ``config=`` a ModuleConfig; messaging options such as
            ``topic`` may also be given directly.

    Returns:
        The model of the backend module (a
        :class:`~dasf_geo.backend.BackendModule` subclass), after running the
        command if one was given.

    Raises:
        SystemExit: status 2 when an option is invalid (the message names it
            and says what to change), status 1 when the command fails (e.g.
            ``test-connect`` cannot reach the broker or ``send-request`` gets
            an error reply). With ``--debug`` the original exception is
            raised instead, with its traceback.
    """
    from dasf_geo.backend import BackendModule

    parser = get_parser(module_name, config_kws.get("config") or config_kws)
    ns = parser.parse_args(list(args) if args else None)
    debug = bool(getattr(ns, "debug", False))
    module_name = vars(ns).pop("module_name", module_name)
    command = vars(ns).pop("command", None)
    _, _, _, params = _split_namespace(ns)
    try:
        config = _build_config(config_kws, ns)
        config.log_config.configure_logging()
        model = BackendModule.create_model(module_name, config=config)
    except DasfGeoError as exc:
        if debug:
            raise
        parser.error(str(exc))
    if command is not None:
        _run(parser, model, command, params, debug)
    elif module_name == "__main__" and _result_discarded(sys._getframe(1)):
        # ``python my_module.py`` alone, and the script does nothing with
        # the model (``Model = main()`` does, as with demessaging): say what
        # can be done with it
        parser.print_help(sys.stderr)
        _fail(parser, "give a COMMAND, e.g. listen, schema or generate", 2)
    return model


def _result_discarded(frame: Any) -> bool:
    """True if the ``main(...)`` call running in ``frame`` is a statement alone.

    ``main(...)`` on its own line discards the model; ``Model = main(...)``
    (or any other use) keeps it. Unknown (no source) counts as kept.
    """
    import ast
    import linecache

    filename = frame.f_code.co_filename
    lineno = frame.f_lineno
    source = "".join(linecache.getlines(filename, frame.f_globals))
    try:
        tree = ast.parse(source, filename)
    except (SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt) or isinstance(
            node, (ast.If, ast.For, ast.While, ast.With, ast.Try, ast.FunctionDef)
        ):
            continue
        end = getattr(node, "end_lineno", None) or node.lineno
        if node.lineno <= lineno <= end:
            return isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
    return False
