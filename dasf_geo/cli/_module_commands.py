"""The commands of a backend module's command line: reading a request, running.

:func:`run` executes one command on the module's model and turns every
expected failure into a message and an exit status (2 for bad options, 1
for a failed command, 130 when interrupted).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import yaml
from pydantic import BaseModel, ValidationError

from dasf_geo.exceptions import (
    ConfigurationError,
    DasfGeoError,
    RemoteError,
    format_validation_error,
)
from dasf_geo.protocol.limits import MAX_REQUEST_SIZE

if TYPE_CHECKING:
    from dasf_geo.backend import BackendModule

__all__ = ["MAX_REQUEST_FILE_SIZE", "fail", "load_request", "run"]

#: Largest request file that ``send-request`` / ``compute`` read, in bytes
#: (the messaging configs' ``max_request_size`` default).
MAX_REQUEST_FILE_SIZE = MAX_REQUEST_SIZE


def fail(parser: argparse.ArgumentParser, message: str, status: int = 1) -> NoReturn:
    parser.exit(status, f"{parser.prog}: error: {message}\n")


def _read_limited(stream: Any, what: str) -> bytes:
    data = stream.read(MAX_REQUEST_FILE_SIZE + 1)
    if len(data) > MAX_REQUEST_FILE_SIZE:
        raise ConfigurationError(
            f"the {what} is larger than {MAX_REQUEST_FILE_SIZE} bytes"
        )
    return data if isinstance(data, bytes) else data.encode("utf-8")


def load_request(text: str) -> Any:
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


def run(
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
            request = load_request(params["request"])
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
        fail(parser, format_validation_error(exc, "request"))
    except RemoteError as exc:
        if debug:
            raise
        fail(parser, f"the backend answered with an error: {exc}")
    except DasfGeoError as exc:
        if debug:
            raise
        fail(parser, str(exc))
    except KeyboardInterrupt:
        fail(parser, "interrupted", 130)
    except Exception as exc:
        if debug or command not in ("compute",):
            raise
        fail(
            parser,
            f"the request failed with {type(exc).__name__}: {exc} "
            "(run with --debug for the traceback)",
        )
