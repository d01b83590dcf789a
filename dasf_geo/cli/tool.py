"""The ``dasf-geo`` command.

Each sub-command lives in its own private module exposing
``add_parser(subparsers)`` and ``run(args) -> int``; this module only wires
them together so that importing it stays cheap.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# sub-command name -> module implementing add_parser()/run()
_COMMANDS: dict[str, str] = {
    "broker": "dasf_geo.cli._broker",
    "call": "dasf_geo.cli._call",
    "check": "dasf_geo.cli._check",
    "gateway": "dasf_geo.cli._gateway",
    "generate": "dasf_geo.cli._generate",
    "serve": "dasf_geo.cli._serve",
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dasf_geo")
    except PackageNotFoundError:  # pragma: no cover - running from a checkout
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """Create the ``dasf-geo`` argument parser with every available sub-command."""
    parser = argparse.ArgumentParser(
        prog="dasf-geo",
        description="Serve typed scientific Python as DASF services and call them.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module_name in _COMMANDS.values():
        module = importlib.import_module(module_name)
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dasf-geo`` with ``argv`` (default: ``sys.argv[1:]``); return the status."""
    from dasf_geo.cli._common import normalize_argv

    parser = build_parser()
    argv = normalize_argv(list(sys.argv[1:] if argv is None else argv))
    args, extra = parser.parse_known_args(argv)
    # ``name=value`` arguments may follow options (``call … --json F a=1``);
    # commands that take them say so with ``extra_arguments``
    take_extra = getattr(args, "extra_arguments", None)
    if extra and take_extra is None:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if take_extra is not None:
        try:
            take_extra(args, extra)
        except argparse.ArgumentTypeError as exc:
            parser.error(str(exc))
    try:
        return int(args.run(args) or 0)
    except BrokenPipeError:
        # the reader went away (``dasf-geo call … | head``): not an error
        # of ours; silence the flush at exit as the Python docs advise
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
