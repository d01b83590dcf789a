"""Tidying generated client code: imports, blank lines, optional formatters.

:func:`format_code` takes a rendered client module (see
:mod:`dasf_geo.backend.stubgen`) and drops the imports it repeats
(:func:`drop_duplicate_imports`) or never uses (:func:`drop_unused_imports`),
runs isort, autoflake and black when they are installed and enabled, and
collapses blank lines (:func:`tidy_blank_lines`). Only :mod:`ast` and the
text of the code are used; nothing here knows a backend model.
"""

from __future__ import annotations

import ast
import re
from typing import Any

__all__ = [
    "drop_duplicate_imports",
    "drop_unused_imports",
    "format_code",
    "tidy_blank_lines",
]


def drop_unused_imports(code: str) -> str:
    """Remove top-level imports whose names ``code`` never uses.

    A small, dependency-free stand-in for autoflake so that the generated
    module is clean without it.
    """
    tree = ast.parse(code)
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            used.add(node.id)
        elif isinstance(node, ast.Attribute):
            root: ast.expr = node
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name):
                used.add(root.id)
    for node in ast.walk(tree):
        # names listed in __all__ count as used
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            used.add(node.value)
    reduced: list[tuple[ast.Import | ast.ImportFrom, list[ast.alias]]] = []
    for node in tree.body:
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        keep = []
        for alias in node.names:
            bound = alias.asname or alias.name.split(".")[0]
            if bound in used or alias.name == "*":
                keep.append(alias)
        if len(keep) != len(node.names):
            reduced.append((node, keep))
    return _reduce_imports(code, reduced)


def _reduce_imports(
    code: str, reduced: list[tuple[ast.Import | ast.ImportFrom, list[ast.alias]]]
) -> str:
    """``code`` with each import statement of ``reduced`` cut to its kept names.

    A statement that keeps no name is removed; the others are written anew
    (``ast.unparse``), the rest of the text stays as it was.
    """
    lines = code.splitlines()
    for node, keep in reversed(reduced):
        new = ""
        if keep:
            node.names = keep
            new = ast.unparse(node)
        assert node.end_lineno is not None
        lines[node.lineno - 1 : node.end_lineno] = [new] if new else []
    return "\n".join(lines) + "\n"


def drop_duplicate_imports(code: str) -> str:
    """Remove names that the leading imports of ``code`` import twice.

    A name is dropped from an import when an earlier import of the leading
    import block bound it from the same source (``from typing import List``
    twice, or ``import datetime`` twice); imports of the same name from
    different sources are left alone. The generated module collects imports
    from several places (the template, the backend module, the modules of
    registered types), which may overlap.
    """
    tree = ast.parse(code)
    seen: dict[str, tuple[Any, ...]] = {}
    reduced: list[tuple[ast.Import | ast.ImportFrom, list[ast.alias]]] = []
    for index, node in enumerate(tree.body):
        if (
            index == 0
            and isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
        ):
            continue  # the module docstring
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            break
        keep = []
        for alias in node.names:
            key: tuple[Any, ...]
            if isinstance(node, ast.Import):
                bound = alias.asname or alias.name.split(".")[0]
                key = ("import", alias.name, alias.asname)
            else:
                bound = alias.asname or alias.name
                key = ("from", node.module, node.level, alias.name)
            if alias.name != "*" and seen.get(bound) == key:
                continue
            seen[bound] = key
            keep.append(alias)
        if len(keep) != len(node.names):
            reduced.append((node, keep))
    return _reduce_imports(code, reduced)


def tidy_blank_lines(code: str) -> str:
    """Collapse runs of blank lines to at most two and strip trailing spaces."""
    code = "\n".join(line.rstrip() for line in code.splitlines())
    code = re.sub(r"\n{4,}", "\n\n\n", code)
    return code.strip() + "\n"


def format_code(
    code: str,
    line_length: int = 79,
    use_formatters: bool = True,
    use_autoflake: bool = True,
    use_black: bool = True,
    use_isort: bool = True,
) -> str:
    """``code`` (a rendered client module) without duplicate or unused
    imports, formatted by isort, autoflake and black when they are installed
    and enabled, with tidy blank lines."""
    code = drop_duplicate_imports(code)
    code = drop_unused_imports(code)
    if use_formatters:
        code = _format(code, line_length, use_autoflake, use_black, use_isort)
    return tidy_blank_lines(code)


def _format(
    code: str, line_length: int, use_autoflake: bool, use_black: bool, use_isort: bool
) -> str:
    if use_isort:
        try:
            import isort
        except ImportError:  # pragma: no cover - optional
            pass
        else:
            code = isort.code(
                code, float_to_top=True, profile="black", line_length=line_length
            )
    if use_autoflake:
        try:
            import autoflake  # type: ignore[import-untyped]
        except ImportError:  # pragma: no cover - optional
            pass
        else:
            code = autoflake.fix_code(code, remove_all_unused_imports=True)
    if use_black:
        try:
            import black
        except ImportError:  # pragma: no cover - optional
            pass
        else:
            code = black.format_str(code, mode=black.Mode(line_length=line_length))
    return code
