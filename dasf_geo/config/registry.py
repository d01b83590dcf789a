"""The API registry: what generated client stubs need besides the calls.

A generated client module (``python my_module.py generate``) contains one
stub per exposed function or class. Everything else it needs -- the pydantic
models used as argument or return types, extra imports, helper code -- is
recorded here with :meth:`ApiRegistry.register_type`,
:meth:`ApiRegistry.register_import` and :meth:`ApiRegistry.hard_code`.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dasf_geo.exceptions import ConfigurationError

__all__ = ["ApiRegistry"]

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


class ApiRegistry(BaseModel):
    """A registry of imports and code for generated client stubs.

    Attributes:
        imports: module name -> alias ("" for none), imported at the top of
            every generated module.
        objects: source code (classes, functions, statements) inlined into
            every generated module, in registration order.
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
        the same type. The object itself is returned unchanged.

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
            source = inspect.getsource(obj)  # type: ignore[arg-type]
        except (OSError, TypeError) as exc:
            raise ConfigurationError(
                f"registry.register_type: cannot find the source code of "
                f"{name!r} ({exc}); define it in a module file, or pass its "
                "code to registry.hard_code()"
            ) from exc
        source = textwrap.dedent(source)
        source = _strip_register_decorator(source)
        if source not in self.objects:
            self.objects = [*self.objects, source]
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
            imports=dict(self.imports), objects=list(self.objects)
        )


#: Attributes of the global registry that this module forwards (see below).
_FORWARDED = frozenset(
    {"register_type", "register_import", "hard_code", "imports", "objects"}
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
        from dasf_geo.config.api import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
