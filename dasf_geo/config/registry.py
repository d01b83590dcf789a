"""The API registry: what generated client stubs need besides the calls.

A generated client module (``python my_module.py generate``) contains one
stub per exposed function or class. Everything else it needs -- the pydantic
models used as argument or return types, extra imports, helper code -- is
recorded here with :meth:`ApiRegistry.register_type`,
:meth:`ApiRegistry.register_import` and :meth:`ApiRegistry.hard_code`
of the global :data:`registry` (``dasf_geo.registry``).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import sys
import textwrap
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dasf_geo.exceptions import ConfigurationError

__all__ = ["ApiRegistry", "registry"]

T = TypeVar("T")

#: Longest piece of code accepted by :meth:`ApiRegistry.hard_code`.
MAX_CODE_CHARS = 1_000_000


def _check_module_name(module: Any, what: str = "module") -> str:
    if not isinstance(module, str):
        raise ConfigurationError(
            f"registry.register_import: {what} must be a str such as "
            f"'numpy', got {type(module).__name__} {module!r:.80}"
        )
    parts = module.split(".")
    if not module or not all(p.isidentifier() for p in parts):
        raise ConfigurationError(
            f"registry.register_import: {module!r:.80} is not a valid "
            f"{what} name; give a dotted name such as 'matplotlib.pyplot'"
        )
    return module


def _strip_register_decorator(source: str) -> str:
    """Drop ``@registry.register_type`` so the stub does not register again."""
    lines = source.splitlines()
    out = []
    in_header = True
    for line in lines:
        stripped = line.strip()
        if in_header and stripped.startswith("@") and "register_type" in stripped:
            continue
        if stripped.startswith(("class ", "def ", "async def ")):
            in_header = False
        out.append(line)
    return "\n".join(out) + "\n"


def registered_source(obj: Any) -> str:
    """The code of ``obj`` as :meth:`ApiRegistry.register_type` records it.

    Raises:
        OSError, TypeError: the source of ``obj`` cannot be found.
    """
    source = textwrap.dedent(inspect.getsource(obj))
    return _strip_register_decorator(source)


def defined_names(source: str) -> set[str]:
    """The names that the top-level statements of ``source`` define."""
    names: set[str] = set()
    try:
        tree = ast.parse(source)
    except SyntaxError:  # pragma: no cover - checked at registration
        return names
    for node in tree.body:
        name = getattr(node, "name", None)
        if isinstance(name, str):
            names.add(name)
        for target in getattr(node, "targets", []):
            if isinstance(target, ast.Name):
                names.add(target.id)
        target = getattr(node, "target", None)
        if isinstance(node, ast.AnnAssign) and isinstance(target, ast.Name):
            names.add(target.id)
    return names


def _used_names(source: str) -> set[str]:
    """The names ``source`` reads: bare names, roots of attribute chains, and
    the names in string annotations (forward references)."""
    used: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name):
            used.add(node.id)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and len(node.value) <= 500
        ):
            try:
                expr = ast.parse(node.value.strip(), mode="eval")
            except SyntaxError:
                continue
            used.update(n.id for n in ast.walk(expr) if isinstance(n, ast.Name))
    return used


def _needed_imports(obj: Any, source: str) -> list[str]:
    """The import statements of ``obj``'s module that ``source`` needs.

    One statement per imported name (``from typing import List``,
    ``import numpy as np``), taken from the module-level imports of the module
    that defines ``obj``; relative imports are made absolute, ``__future__``
    and star imports are left out. Empty if the module's source is unknown.
    """
    module = inspect.getmodule(obj) or sys.modules.get(
        getattr(obj, "__module__", "") or ""
    )
    if module is None:
        return []
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError, SyntaxError):
        return []
    used = _used_names(source)
    package = getattr(module, "__package__", None)
    lines: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                if bound in used:
                    lines.append(ast.unparse(ast.Import(names=[alias])))
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            base = node.module or ""
            if node.level:
                try:
                    base = importlib.util.resolve_name("." * node.level + base, package)
                except (ImportError, ValueError):
                    continue
            for alias in node.names:
                if alias.name != "*" and (alias.asname or alias.name) in used:
                    stmt = ast.ImportFrom(module=base, names=[alias], level=0)
                    lines.append(ast.unparse(stmt))
    return lines


class ApiRegistry(BaseModel):
    """A registry of imports and code for generated client stubs.

    Attributes:
        imports: module name -> alias ("" for none), imported at the top of
            every generated module.
        objects: source code (classes, functions, statements) inlined into
            every generated module, in registration order.
        object_imports: the import statements that the registered types in
            ``objects`` need, taken from the modules that define them (a type
            registered in one module may end up in the client of another).
    """

    model_config = ConfigDict(validate_assignment=True)

    imports: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Modules to import at the top of every generated file: module "
            "name -> alias ('' for no alias)."
        ),
    )

    objects: list[str] = Field(
        default_factory=list,
        description=(
            "Source code for objects that should be inlined in the generated "
            "Python API."
        ),
    )

    object_imports: list[str] = Field(
        default_factory=list,
        description=(
            "Import statements (one name each) that the registered types in "
            "``objects`` need, from the modules that define them."
        ),
    )

    @field_validator("imports")
    @classmethod
    def _can_import(cls, imports: dict[str, str]) -> dict[str, str]:
        failed = []
        for module, alias in imports.items():
            _check_module_name(module)
            if alias and not alias.isidentifier():
                raise ValueError(
                    f"alias {alias!r} of {module!r} is not a Python identifier"
                )
            try:
                importlib.import_module(module)
            except ImportError as exc:
                failed.append(f"{module}: {exc}")
        if failed:
            raise ValueError(
                "Could not import all modules (install them or remove them from "
                "the registry):\n    " + "\n    ".join(failed)
            )
        return imports

    def register_import(self, module: str, alias: str | None = None) -> None:
        """Import ``module`` (as ``alias``) in every generated client module.

        Args:
            module: a dotted module name, e.g. ``"matplotlib.pyplot"``.
            alias: the name to import it as (``import module as alias``).

        Raises:
            ConfigurationError: ``module`` or ``alias`` is not a valid name, or
                ``module`` cannot be imported here.
        """
        _check_module_name(module)
        if alias is not None and (
            not isinstance(alias, str) or not alias.isidentifier()
        ):
            raise ConfigurationError(
                f"registry.register_import: alias {alias!r:.80} for {module!r} "
                "is not a Python identifier; give a name such as 'np'"
            )
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigurationError(
                f"registry.register_import: cannot import {module!r} ({exc}); "
                "install it or fix the name"
            ) from exc
        self.imports = {**self.imports, module: alias or ""}

    def register_type(self, obj: T) -> T:
        """Make a class or function available, as source, in generated stubs.

        Use it as a decorator on the pydantic models that exposed functions
        take or return, so that the client module can validate replies into
        the same type. The imports of the object's module that its code uses
        are recorded too (:attr:`object_imports`), so that every generated
        client that inlines it also imports them. The object itself is
        returned unchanged.

        Args:
            obj: a class or function defined in a source file.

        Raises:
            ConfigurationError: ``obj`` is not a class or function, or its
                source code cannot be found (e.g. it was defined in an
                interactive session); use :meth:`hard_code` then.
        """
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            raise ConfigurationError(
                "registry.register_type expects a class or a function, got "
                f"{type(obj).__name__} {obj!r:.80}"
            )
        name = getattr(obj, "__qualname__", getattr(obj, "__name__", repr(obj)))
        try:
            source = registered_source(obj)
        except (OSError, TypeError) as exc:
            raise ConfigurationError(
                f"registry.register_type: cannot find the source code of "
                f"{name!r} ({exc}); define it in a module file, or pass its "
                "code to registry.hard_code()"
            ) from exc
        if source not in self.objects:
            self.objects = [*self.objects, source]
        new = [
            line
            for line in dict.fromkeys(_needed_imports(obj, source))
            if line not in self.object_imports
        ]
        if new:
            self.object_imports = [*self.object_imports, *new]
        return obj

    def hard_code(self, python_code: str) -> None:
        """Insert ``python_code`` at module level into generated stubs.

        Args:
            python_code: Python source (statements, definitions).

        Raises:
            ConfigurationError: ``python_code`` is not a str, is too long, or
                is not valid Python (the message gives the line).
        """
        if not isinstance(python_code, str):
            raise ConfigurationError(
                "registry.hard_code expects Python source as a str, got "
                f"{type(python_code).__name__}"
            )
        if len(python_code) > MAX_CODE_CHARS:
            raise ConfigurationError(
                f"registry.hard_code: the code has {len(python_code)} characters, "
                f"more than the limit of {MAX_CODE_CHARS}; import it with "
                "registry.register_import() instead"
            )
        code = textwrap.dedent(python_code)
        try:
            ast.parse(code)
        except SyntaxError as exc:
            raise ConfigurationError(
                f"registry.hard_code: the code is not valid Python: {exc.msg} "
                f"(line {exc.lineno}); fix the code before registering it"
            ) from exc
        self.objects = [*self.objects, code]

    def copy_registry(self) -> ApiRegistry:
        """An independent copy (used by generated modules and tests)."""
        return ApiRegistry.model_construct(
            imports=dict(self.imports),
            objects=list(self.objects),
            object_imports=list(self.object_imports),
        )


#: The registry of what generated client stubs need besides the calls
#: (pydantic types, imports, helper code): ``dasf_geo.registry``.
registry = ApiRegistry()

#: Attributes of the global registry that this module forwards (see below).
_FORWARDED = frozenset(
    {
        "register_type",
        "register_import",
        "hard_code",
        "imports",
        "objects",
        "object_imports",
    }
)


def __getattr__(name: str) -> Any:
    """Forward the registry's methods to the global :data:`registry` object.

    ``dasf_geo.config.registry`` names both the global registry and this
    submodule; whichever import order binds the name to the module, code such
    as ``@registry.register_type`` keeps working.

    Raises:
        AttributeError: ``name`` is not a registry attribute.
    """
    if name in _FORWARDED:
        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
