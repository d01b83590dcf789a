"""``dasf-geo call``: call a function of a running service and print the result.

::

    dasf-geo call hello-world-topic hello_world --broker ws://127.0.0.1:8080
    dasf-geo call hello-world-class-topic HelloWorld.repeat_message message=hi repeat=3
    dasf-geo call geo_service monthly_anomaly ds=@data.nc -o anomaly.nc
    dasf-geo call geo_service stations --json args.json

Arguments are ``name=value`` pairs; a value that parses as JSON is used as
such (``repeat=3`` is the number 3, ``names='["a","b"]'`` a list), anything
else is a string. ``name=@FILE`` sends a file as the argument: NetCDF
(``.nc``) or Zarr (``.zarr``) as a Dataset or DataArray, CSV or Parquet as a
DataFrame, ``.npy`` as an array, ``.json`` as its JSON value. ``--json
FILE`` (``-`` for standard input) gives a JSON object of arguments;
``name=value`` pairs override its entries. For ``Class.method`` the
arguments are split between the constructor and the method by their names
(a name both take goes to both).

On a terminal the result is printed for reading: a DataFrame as a table, a
Dataset or DataArray as its summary, an array as numpy prints it. Into a
pipe or with ``--raw`` it is printed as JSON (the form it travelled in).
``-o FILE`` writes it decoded, in the format of FILE's extension: a Dataset
or DataArray as NetCDF (``.nc``) or Zarr (``.zarr``), a DataFrame as CSV or
Parquet, an array as ``.npy``, anything else as ``.json``; a mismatch is
refused before the call.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import textwrap
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dasf_geo.cli._common import (
    add_connection_options,
    add_transfer_options,
    config_from_args,
    positive_seconds,
    print_error,
    transfer_from_args,
)
from dasf_geo.cli._files import (
    FileArgument,
    check_output,
    clean_base64,
    read_file_argument,
    render,
    write_output,
)
from dasf_geo.exceptions import DasfGeoError

__all__ = ["add_parser", "parse_assignment", "run"]

DESCRIPTION = textwrap.fill(
    "Call a function of a running service and print its result: readable on a "
    "terminal, JSON into a pipe or with --raw. Arguments are name=value (JSON "
    "if the value parses as JSON, else a string) or name=@FILE (.nc, .zarr, "
    ".csv, .parquet, .npy, .json).",
    79,
)

EPILOG = """examples:
  dasf-geo call geo_service stations min_elevation=500
  dasf-geo call geo_service monthly_anomaly ds=@data.nc -o anomaly.nc
  dasf-geo call hello-world-class-topic HelloWorld.repeat_message message=hi repeat=3
  dasf-geo call geo_service time_series --json args.json
      (args.json holds {"lat": 50, "lon": 10})
"""


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse one ``name=value`` or ``name=@FILE`` argument.

    Raises:
        argparse.ArgumentTypeError: no ``=``, or the name is not a name.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(
            f"arguments must look like name=value or name=@FILE, got {text!r:.60}"
        )
    if raw.startswith("@") and len(raw) > 1:
        return key, FileArgument(raw[1:])
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def add_parser(sub: Any) -> None:
    """Register ``dasf-geo call``."""
    parser = sub.add_parser(
        "call",
        help="call a function of a running service and print the result",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("topic", help="the service's topic")
    parser.add_argument("function", help="the function to call: NAME or CLASS.METHOD")
    parser.add_argument(
        "arguments",
        nargs="*",
        type=parse_assignment,
        metavar="name=value",
        help="an argument: JSON if the value parses as JSON, else a string; "
        "name=@FILE sends a file",
    )
    parser.add_argument(
        "--json",
        metavar="FILE",
        help='a JSON object of arguments, e.g. {"lat": 50, "lon": 10} '
        "('-' reads standard input)",
    )
    parser.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        help="write the decoded result to FILE, in the format of its extension "
        "(.nc, .zarr, .csv, .parquet, .npy, .json)",
    )
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument(
        "--raw",
        action="store_true",
        help="print the result's JSON as it travelled, even on a terminal",
    )
    shown.add_argument(
        "--text",
        action="store_true",
        help="print the result for reading, even into a pipe",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=600.0,
        metavar="SECONDS",
        help="seconds to wait for the reply (default: 600)",
    )
    parser.add_argument(
        "--discovery-timeout",
        type=positive_seconds,
        default=None,
        metavar="SECONDS",
        help="seconds to wait for the service to answer at all (default: 10)",
    )
    parser.add_argument(
        "--indent", type=int, default=None, help="indent the printed JSON"
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="draw no progress bar for large replies (drawn only on a terminal)",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show full URLs and details in errors"
    )
    add_transfer_options(parser)
    add_connection_options(parser)
    parser.set_defaults(run=run, extra_arguments=_more_arguments)


def _more_arguments(args: argparse.Namespace, extra: list[str]) -> None:
    """Take ``name=value`` arguments that came after options."""
    for text in extra:
        if text.startswith("-"):
            raise argparse.ArgumentTypeError(f"unrecognized arguments: {text}")
        args.arguments.append(parse_assignment(text))


def _read_json_arguments(path: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text("utf-8")
    except OSError as exc:
        raise DasfGeoError(f"cannot read --json {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise DasfGeoError(f"--json {path} is not UTF-8 text") from exc
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise DasfGeoError(f"--json {path} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise DasfGeoError(
            f"--json {path} must hold a JSON object of arguments, got "
            f"{type(value).__name__}"
        )
    return value


def _schemas(api_info: Mapping[str, Any], function: str) -> tuple[dict, dict]:
    """(parameter schemas by name, return schema) of ``function`` in ``api_info``.

    Unknown names give empty schemas; calling them raises the clear error.
    """
    params: dict[str, Any] = {}
    cls_name, dot, method = function.partition(".")
    if not dot:
        for func in api_info.get("functions") or []:
            if func.get("name") == function:
                params.update((func.get("rpc_schema") or {}).get("properties") or {})
                return params, dict(func.get("return_schema") or {})
        return params, {}
    for cls in api_info.get("classes") or []:
        if cls.get("name") != cls_name:
            continue
        params.update((cls.get("rpc_schema") or {}).get("properties") or {})
        for meth in cls.get("methods") or []:
            if meth.get("name") == method:
                params.update((meth.get("rpc_schema") or {}).get("properties") or {})
                return params, dict(meth.get("return_schema") or {})
    return params, {}


def _prepare(
    arguments: dict[str, Any], params: Mapping[str, Any], opened: list[Any]
) -> dict[str, Any]:
    """Read ``@FILE`` arguments and clean hand-given base64 values."""
    out: dict[str, Any] = {}
    for name, value in arguments.items():
        schema = params.get(name)
        if isinstance(value, FileArgument):
            out[name] = read_file_argument(name, value.path, schema, opened)
        else:
            out[name] = clean_base64(name, value, schema)
    return out


def _invoke(service: Any, function: str, arguments: dict[str, Any]) -> Any:
    cls_name, dot, method = function.partition(".")
    if not dot:
        func = getattr(service, function)
        if not callable(func) or hasattr(func, "methods"):
            raise DasfGeoError(
                f"{function!r} is a class; call one of its methods as "
                f"{function}.METHOD ({', '.join(func.methods)})"
            )
        return func(**arguments)
    cls = getattr(service, cls_name)
    if not hasattr(cls, "methods"):
        raise DasfGeoError(f"{cls_name!r} is a function, not a class")
    if method not in cls.methods:
        raise DasfGeoError(
            f"class {cls_name} has no method {method!r}; its methods are: "
            f"{', '.join(cls.methods) or 'none'}"
        )
    init_names = set(cls.__signature__.parameters)
    method_names = set(cls._methods[method].signature().parameters)
    init_args = {k: v for k, v in arguments.items() if k in init_names}
    method_args = {
        k: v for k, v in arguments.items() if k in method_names or k not in init_names
    }
    return getattr(cls(**init_args), method)(**method_args)


def _readable(args: argparse.Namespace) -> bool:
    """Print the result for reading (a terminal, or ``--text``)?"""
    if args.text:
        return True
    if args.raw or args.indent is not None:
        return False
    try:
        return sys.stdout.isatty()
    except ValueError:
        return False


def _print_warnings(caught: list[warnings.WarningMessage]) -> None:
    """Print the backend's CF/crs findings as ``warning: …`` lines on stderr;
    show other warnings as Python would have."""
    from dasf_geo.data import DataWarning

    for item in caught:
        if isinstance(item.message, DataWarning):
            print(f"warning: {item.message}", file=sys.stderr)
        else:
            warnings.showwarning(
                item.message, item.category, item.filename, item.lineno
            )


def run(args: argparse.Namespace) -> int:
    """Run ``dasf-geo call``; return the exit code."""
    from dasf_geo.data import DataWarning
    from dasf_geo.service.dynamic import connect

    readable = args.output is None and _readable(args)
    opened: list[Any] = []
    try:
        arguments = _read_json_arguments(args.json) if args.json else {}
        arguments.update(dict(args.arguments))
        config = config_from_args(args, args.topic)
        with connect(
            args.topic,
            config=config,
            timeout=args.timeout,
            decode=args.output is not None or readable,
            progress=False if args.no_progress else None,
            transfer=transfer_from_args(args),
            discovery_timeout=args.discovery_timeout,
        ) as service:
            params, return_schema = _schemas(service.api_info, args.function)
            if args.output:
                check_output(args.output, return_schema)
            arguments = _prepare(arguments, params, opened)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", DataWarning)
                try:
                    result = _invoke(service, args.function, arguments)
                finally:  # a failed call's findings too, before its error
                    _print_warnings(caught)
    except (DasfGeoError, AttributeError, TypeError) as exc:
        print_error(exc, debug=args.debug, function=args.function)
        return 1
    finally:
        for handle in opened:
            with contextlib.suppress(Exception):
                handle.close()
    if args.output:
        try:
            write_output(result, Path(args.output))
        except (OSError, DasfGeoError) as exc:
            detail = exc if isinstance(exc, DasfGeoError) else f"{exc}"
            print_error(DasfGeoError(f"cannot write {args.output}: {detail}"))
            return 1
        print(f"wrote {type(result).__name__} to {args.output}", file=sys.stderr)
        return 0
    if readable:
        width = shutil.get_terminal_size((100, 24)).columns
        print(render(result, width))
        return 0
    print(json.dumps(result, indent=args.indent, ensure_ascii=False))
    return 0
