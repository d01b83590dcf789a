"""The package's layers, as ``dasf_geo/__init__.py`` and DESIGN describe them.

A module may import its own layer and the layers listed before it, never one
listed after it. The check reads every module of ``dasf_geo/`` with :mod:`ast`
(imports inside functions count too: a lazy import is still a dependency).
``dasf_geo/__init__.py`` itself is the public facade: its lazy table names
things from every layer and belongs to none.

A name that moved to a higher layer keeps its old import path through its
old module's ``MOVED`` table (a string per name, read by
:func:`dasf_geo._moved.moved_names`), so the old module does not import the
higher layer; the checks below make sure that every moved name did move up
and still imports, and that no module of the package uses one through its
old path.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dasf_geo"

#: the layers, lowest first; the sub-packages of one tuple form one layer
LAYERS: tuple[tuple[str, ...], ...] = (
    ("exceptions", "_loop", "_moved"),  # the package's base
    ("protocol",),
    ("data", "serializers", "validators", "dask"),
    ("templates", "config"),
    ("backend",),
    ("transport",),
    ("broker",),
    ("service",),
    ("gateway", "web"),
    ("cli", "testing"),
)

#: the one declared exception: ``BackendModule.listen``, ``send_request`` and
#: ``test_connect`` keep demessaging's method names and delegate to the
#: service layer (which serves and calls a module through the transport)
ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {("dasf_geo.backend.module", "service")}
)


def layer_index(subpackage: str) -> int | None:
    """The index in :data:`LAYERS` of a first-level name of ``dasf_geo``."""
    for index, names in enumerate(LAYERS):
        if subpackage in names:
            return index
    return None


def module_name(path: Path) -> str:
    """The dotted name of a module file below :data:`PACKAGE`."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _own_subpackage(module: str) -> str:
    return module.split(".")[1]


def imported_modules(
    source: str, module: str, is_package: bool
) -> list[tuple[str, int]]:
    """Every ``dasf_geo`` module ``source`` imports, absolute or relative."""
    found: list[tuple[str, int]] = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target == "dasf_geo":  # ``from dasf_geo import data``
                found.extend((f"{target}.{a.name}", node.lineno) for a in node.names)
            else:
                found.append((target, node.lineno))
    return [(name, line) for name, line in found if name.split(".")[0] == "dasf_geo"]


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """The imports of ``module`` (given as source) that reach a higher layer."""
    own = _own_subpackage(module)
    own_index = layer_index(own)
    if own_index is None:
        return [f"{module}: sub-package {own!r} has no layer; add it to LAYERS"]
    problems = []
    for target, line in imported_modules(source, module, is_package):
        other = _own_subpackage(target)
        other_index = layer_index(other)
        if other_index is None:
            problems.append(f"{module}:{line} imports {target}, which has no layer")
        elif other_index > own_index and (module, other) not in ALLOWED:
            problems.append(
                f"{module}:{line} imports {target}: layer {own!r} may not use "
                f"the higher layer {other!r}"
            )
    return problems


def test_no_module_imports_a_higher_layer():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "__init__.py":
            continue  # the facade
        problems += violations(
            path.read_text(encoding="utf-8"),
            module_name(path),
            is_package=path.name == "__init__.py",
        )
    assert problems == []


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        (
            "from dasf_geo.transport import client\n",
            "dasf_geo.data._checks",
            "dasf_geo.data._checks:1 imports dasf_geo.transport: layer 'data' may "
            "not use the higher layer 'transport'",
        ),
        (
            "def f():\n    import dasf_geo.cli.tool\n",
            "dasf_geo.broker.core",
            "dasf_geo.broker.core:2 imports dasf_geo.cli.tool: layer 'broker' may "
            "not use the higher layer 'cli'",
        ),
        (
            "from ..gateway import app\n",
            "dasf_geo.service.run",
            "dasf_geo.service.run:1 imports dasf_geo.gateway: layer 'service' may "
            "not use the higher layer 'gateway'",
        ),
        (
            "from dasf_geo.broker import core\n",
            "dasf_geo.backend.module",
            "dasf_geo.backend.module:1 imports dasf_geo.broker: layer 'backend' "
            "may not use the higher layer 'broker'",
        ),
        (
            "from dasf_geo.transport import backend\n",
            "dasf_geo.backend.module",
            "dasf_geo.backend.module:1 imports dasf_geo.transport: layer 'backend' "
            "may not use the higher layer 'transport'",
        ),
    ],
)
def test_a_violating_import_is_found(source, module, expected):
    assert violations(source, module) == [expected]


@pytest.mark.parametrize(
    ("source", "module"),
    [
        ("from dasf_geo.protocol import messages\n", "dasf_geo.transport.client"),
        ("from . import core\n", "dasf_geo.broker.server"),
        ("from dasf_geo import data\n", "dasf_geo.transport.dynamic"),
        ("from dasf_geo.service import handler\n", "dasf_geo.backend.module"),
        ("import numpy\nfrom dasf_geo.exceptions import DasfGeoError\n",
         "dasf_geo.protocol.parts"),
    ],
)  # fmt: skip
def test_allowed_imports_pass(source, module):
    assert violations(source, module) == []


def test_a_new_subpackage_must_be_placed():
    assert violations("", "dasf_geo.newthing.mod") == [
        "dasf_geo.newthing.mod: sub-package 'newthing' has no layer; add it to LAYERS"
    ]


def moved_tables() -> dict[str, dict[str, str]]:
    """The ``MOVED`` table of every module that keeps old import paths."""
    tables = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "_moved.py":
            continue
        if "moved_names(" in path.read_text(encoding="utf-8"):
            name = module_name(path)
            tables[name] = dict(importlib.import_module(name).MOVED)
    return tables


def test_moved_names_moved_up_and_still_import():
    tables = moved_tables()
    assert tables  # the check reads the tables it is meant to
    for old, table in tables.items():
        old_module = importlib.import_module(old)
        for name, new in table.items():
            old_index = layer_index(_own_subpackage(old))
            new_index = layer_index(_own_subpackage(new))
            assert old_index is not None
            assert new_index is not None
            assert new_index > old_index, f"{old}.{name} did not move up"
            assert name not in vars(old_module), f"{old}.{name} is still defined"
            assert getattr(old_module, name) is getattr(
                importlib.import_module(new), name
            )


def uses_of_moved_names(
    source: str, module: str, tables: dict[str, dict[str, str]]
) -> list[str]:
    """Where ``source`` takes a name of ``tables`` from its old module."""
    problems = []
    aliases: dict[str, str] = {}  # local name -> old module it is bound to
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = module.rpartition(".")[0].split(".")
            target = (
                ".".join([*base[: len(base) - (node.level - 1)], node.module or ""])
                if node.level
                else node.module or ""
            ).rstrip(".")
            for alias in node.names:
                if alias.name in tables.get(target, {}):
                    problems.append(f"{module}:{node.lineno} {target}.{alias.name}")
                if f"{target}.{alias.name}" in tables:
                    aliases[alias.asname or alias.name] = f"{target}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in tables and alias.asname:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.attr in tables.get(aliases.get(node.value.id, ""), {})
        ):
            old = aliases[node.value.id]
            problems.append(f"{module}:{node.lineno} {old}.{node.attr}")
    return problems


def test_no_module_uses_a_moved_name_through_its_old_path():
    tables = moved_tables()
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        problems += uses_of_moved_names(
            path.read_text(encoding="utf-8"), module_name(path), tables
        )
    assert problems == []


def test_a_use_of_a_moved_name_is_found():
    tables = {"dasf_geo.transport.backend": {"listen": "dasf_geo.service.handler"}}
    source = (
        "from dasf_geo.transport.backend import listen\n"
        "from dasf_geo.transport import backend\n"
        "backend.listen(1)\n"
        "backend.Listener\n"
    )
    assert uses_of_moved_names(source, "dasf_geo.cli.x", tables) == [
        "dasf_geo.cli.x:1 dasf_geo.transport.backend.listen",
        "dasf_geo.cli.x:3 dasf_geo.transport.backend.listen",
    ]


def private_imports(source: str, module: str) -> list[str]:
    """``from dasf_geo.<other sub-package>… import _name`` in ``source``.

    A sub-package's underscore names are its own: another sub-package uses
    its public names, so that either side can change its internals alone.
    Renaming with ``as`` does not make a private name public.
    """
    own = _own_subpackage(module)
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
            continue
        parts = node.module.split(".")
        if parts[0] != "dasf_geo" or len(parts) < 2 or parts[1] == own:
            continue
        for alias in node.names:
            if alias.name.startswith("_"):
                found.append(
                    f"{module}:{node.lineno} imports the private name "
                    f"{alias.name} of {node.module}"
                )
    return found


def test_no_module_imports_a_private_name_of_another_sub_package():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        if name == "dasf_geo" or "." not in name:
            continue
        problems += private_imports(path.read_text(encoding="utf-8"), name)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from dasf_geo.transport.blocking import _background\n", 1),
        ("from dasf_geo.transport.blocking import _background as bg\n", 1),
        ("from dasf_geo.service._signature import schema_type_name\n", 0),
        ("from dasf_geo.cli._files import _helper\n", 0),  # its own package
    ],
)
def test_a_private_import_is_found(source, expected):
    assert len(private_imports(source, "dasf_geo.cli.tool")) == expected
