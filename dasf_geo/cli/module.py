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

The work is split by job: :mod:`._module_parser` builds the parser,
:mod:`._module_config` merges the options into a
:class:`~dasf_geo.config.ModuleConfig`, :mod:`._module_commands` runs a
command; this module ties them together in :func:`main`.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from dasf_geo.cli._module_commands import MAX_REQUEST_FILE_SIZE, fail, run
from dasf_geo.cli._module_config import build_config, split_namespace
from dasf_geo.cli._module_parser import ModuleArgumentParser, get_parser
from dasf_geo.exceptions import DasfGeoError

if TYPE_CHECKING:
    from dasf_geo.backend import BackendModule

__all__ = ["MAX_REQUEST_FILE_SIZE", "ModuleArgumentParser", "get_parser", "main"]


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
    _, _, _, params = split_namespace(ns)
    try:
        config = build_config(config_kws, ns)
        config.log_config.configure_logging()
        model = BackendModule.create_model(module_name, config=config)
    except DasfGeoError as exc:
        if debug:
            raise
        parser.error(str(exc))
    if command is not None:
        run(parser, model, command, params, debug)
    elif module_name == "__main__" and _result_discarded(sys._getframe(1)):
        # ``python my_module.py`` alone, and the script does nothing with
        # the model (``Model = main()`` does, as with demessaging): say what
        # can be done with it
        parser.print_help(sys.stderr)
        fail(parser, "give a COMMAND, e.g. listen, schema or generate", 2)
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
