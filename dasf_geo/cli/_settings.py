"""Read the settings a module gives :func:`dasf_geo.main`, without running it.

A backend module ends with::

    if __name__ == "__main__":
        main(messaging_config=dict(topic="climate-tools"))

``dasf-geo serve climate_tools.py`` imports the module (so that block does
not run) and must still serve on ``climate-tools``: :func:`main_settings`
finds the ``main(...)`` call in the module's ``if __name__ == "__main__":``
block and evaluates its keyword arguments in the module's namespace. The
statements before the call in that block run first (in a copy of the
namespace), as they would when the file runs as a script, so that
``config = dict(topic=...); main(messaging_config=config)`` works too.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from types import ModuleType
from typing import Any

from dasf_geo.exceptions import ConfigurationError

__all__ = ["main_settings"]


def _is_main_guard(node: ast.stmt) -> bool:
    """``if __name__ == "__main__":`` (either side of the ``==``)."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    consts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(consts) == 1


def _call_of(stmt: ast.stmt) -> ast.Call | None:
    """The call of ``main(...)``, ``x = main(...)`` or ``sys.exit(main(...))``."""
    value: ast.expr | None = None
    if isinstance(stmt, (ast.Expr, ast.Assign, ast.AnnAssign)):
        value = stmt.value
    if not isinstance(value, ast.Call):
        return None
    # sys.exit(main(...)) / raise SystemExit(main(...)) style wrappers
    if len(value.args) == 1 and isinstance(value.args[0], ast.Call):
        inner = value.args[0]
        if _func_name(inner) == "main":
            return inner
    return value if _func_name(value) == "main" else None


def _func_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _evaluate(node: ast.expr, namespace: dict[str, Any], where: str) -> Any:
    code = compile(ast.Expression(body=node), where, "eval")
    return eval(code, namespace)  # the module's own code, as running it would


def main_settings(module: ModuleType) -> dict[str, Any]:
    """The keyword arguments the module's ``__main__`` block gives ``main()``.

    Args:
        module: the imported backend module.

    Returns:
        The keyword arguments (empty when the module has no such block, no
        ``main(...)`` call in it, or no source file).

    Raises:
        ConfigurationError: the arguments cannot be evaluated; the message
            names the file and line and says how to give the settings on the
            command line instead.
    """
    from dasf_geo.cli.module import main as dasf_main

    try:
        path = inspect.getsourcefile(module)
    except TypeError:
        path = None
    if not path:
        return {}
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"), path)
    except (OSError, UnicodeDecodeError, SyntaxError):
        return {}
    for node in tree.body:
        if not _is_main_guard(node):
            continue
        assert isinstance(node, ast.If)
        for index, stmt in enumerate(node.body):
            call = _call_of(stmt)
            if call is None:
                continue
            where = f"{path}:{stmt.lineno}"
            namespace = dict(vars(module))
            try:
                if index:
                    before = ast.Module(body=node.body[:index], type_ignores=[])
                    exec(compile(before, path, "exec"), namespace)
                try:
                    func = _evaluate(call.func, namespace, where)
                except (NameError, AttributeError):
                    continue
                if func is not dasf_main:
                    continue
                kwargs: dict[str, Any] = {}
                for keyword in call.keywords:
                    value = _evaluate(keyword.value, namespace, where)
                    if keyword.arg is None:
                        kwargs.update(value)
                    else:
                        kwargs[keyword.arg] = value
            except (Exception, SystemExit) as exc:
                raise ConfigurationError(
                    f"cannot read the settings that {where} gives main(): "
                    f"{type(exc).__name__}: {exc}; give them on the command line "
                    "instead (--topic, --broker, --members, ...)"
                ) from exc
            return kwargs
    return {}
