"""``dasf-geo call``: call a function of a running service and print the result.

::

    dasf-geo call hello-world-topic hello_world --broker ws://127.0.0.1:8080
    dasf-geo call hello-world-topic HelloWorld.repeat_message message=hi repeat=3
    dasf-geo call geo-topic get_data --json args.json --output result.nc

Arguments are ``key=value`` pairs; a value that parses as JSON is used as
such (``repeat=3`` is the number 3, ``names='["a","b"]'`` a list), anything
else is a string. ``--json FILE`` (``-`` for standard input) gives a JSON
object of arguments; ``key=value`` pairs override its entries. For
``Class.method`` the arguments are split between the constructor and the
method by their names (a name both take goes to both).

The result is printed as JSON (the form it travelled in). ``--output FILE``
writes it decoded instead: a Dataset or DataArray as NetCDF, a DataFrame as
CSV (or Parquet for ``.parquet``), an array as ``.npy``, anything else as
JSON.

``--fragment-size``, ``--compression`` and ``--max-size`` set the transfer
options of the call (see :class:`dasf_geo.TransferOptions`).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
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
from dasf_geo.exceptions import DasfGeoError

__all__ = ["add_parser", "parse_assignment", "run"]


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse one ``key=value`` argument.

    Raises:
        argparse.ArgumentTypeError: no ``=``, or the key is not a name.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(
            f"arguments must look like name=value, got {text!r:.60}"
        )
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def add_parser(sub: Any) -> None:
    """Register ``dasf-geo call``."""
    parser = sub.add_parser(
        "call",
        help="call a function of a running service and print the JSON result",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("topic", help="the service's topic")
    parser.add_argument("function", help="the function to call: NAME or CLASS.METHOD")
    parser.add_argument(
        "arguments",
        nargs="*",
        type=parse_assignment,
        metavar="name=value",
        help="an argument; the value is JSON if it parses as JSON, else a string",
    )
    parser.add_argument(
        "--json",
        metavar="FILE",
        help="a JSON object with arguments ('-' reads standard input)",
    )
    parser.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        help="write the decoded result to FILE instead of printing its JSON",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=600.0,
        metavar="SECONDS",
        help="seconds to wait for the reply (default: 600)",
    )
    parser.add_argument(
        "--indent", type=int, default=None, help="indent the printed JSON"
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="draw no progress bar for large replies (drawn only on a terminal)",
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


def write_output(value: Any, path: Path) -> None:
    """Write a decoded result to ``path`` in a format that fits its type."""
    kind = type(value).__module__.split(".")[0] + "." + type(value).__name__
    if kind in ("xarray.Dataset", "xarray.DataArray"):
        value.to_netcdf(path)
    elif kind == "pandas.DataFrame":
        if path.suffix == ".parquet":
            value.to_parquet(path)
        else:
            value.to_csv(path)
    elif kind == "numpy.ndarray":
        import numpy as np

        with path.open("wb") as fh:
            np.save(fh, value, allow_pickle=False)
    else:
        from pydantic_core import to_jsonable_python

        path.write_text(json.dumps(to_jsonable_python(value), indent=2) + "\n")


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
    from dasf_geo.transport.dynamic import connect

    try:
        arguments = _read_json_arguments(args.json) if args.json else {}
        arguments.update(dict(args.arguments))
        config = config_from_args(args, args.topic)
        with connect(
            args.topic,
            config=config,
            timeout=args.timeout,
            decode=args.output is not None,
            progress=False if args.no_progress else None,
            transfer=transfer_from_args(args),
        ) as service:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", DataWarning)
                result = _invoke(service, args.function, arguments)
            _print_warnings(caught)
    except (DasfGeoError, AttributeError, TypeError) as exc:
        print_error(exc)
        return 1
    if args.output:
        try:
            write_output(result, Path(args.output))
        except OSError as exc:
            print_error(DasfGeoError(f"cannot write {args.output}: {exc}"))
            return 1
        print(f"wrote {type(result).__name__} to {args.output}", file=sys.stderr)
        return 0
    print(json.dumps(result, indent=args.indent, ensure_ascii=False))
    return 0
