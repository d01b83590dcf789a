"""Client stub generation: a backend module's model written as Python code.

:func:`render_module` fills the module's jinja2 template (see
:mod:`dasf_geo.templates`) with one stub per member: signatures, docstrings
and ``@configure`` options written back as source by :class:`CodeWriter`
(annotations, defaults, the imports they need), the registered types'
code and imports, and the messaging defaults (secrets left out).
:func:`format_code` tidies the result (duplicate and unused imports,
blank lines; isort, autoflake and black when installed; it lives in
:mod:`dasf_geo.backend.codetidy` and is re-exported here).
``BackendModule.render()`` and ``generate()`` delegate here.
"""

from __future__ import annotations

import ast
import builtins
import collections.abc
import enum
import importlib
import inspect
import json
import re
import sys
import types
import typing
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast, get_args, get_origin

from pydantic import BaseModel

from dasf_geo.backend.class_ import BackendClass
from dasf_geo.backend.codetidy import (
    drop_duplicate_imports,
    drop_unused_imports,
    format_code,
    tidy_blank_lines,
)
from dasf_geo.config.registry import defined_names, registered_source
from dasf_geo.exceptions import ConfigurationError

if TYPE_CHECKING:  # pragma: no cover
    from dasf_geo.backend.module import BackendModule
    from dasf_geo.templates import Template

__all__ = [
    "CodeWriter",
    "builtin_names",
    "docstring_literal",
    "drop_duplicate_imports",
    "drop_unused_imports",
    "format_code",
    "get_module_imports",
    "messaging_defaults",
    "render_module",
    "tidy_blank_lines",
]

#: Option keys of the messaging config never written into generated clients.
_SECRET_KEYS = re.compile(r"header|token|password|secret|auth", re.I)


class CodeWriter:
    """Turns annotations and defaults into source code for a client stub.

    Args:
        local_modules: module names whose objects are defined in the stub
            itself (the backend module): their classes are written by bare
            name.
        local_names: names the stub defines (registered types).
    """

    def __init__(self, local_modules: Iterable[str], local_names: Iterable[str]):
        self.local_modules = set(local_modules) | {"__main__"}
        self.local_names = set(local_names)
        #: modules the written code needs (``import x``)
        self.imports: set[str] = set()

    def _public_path(self, obj: Any) -> str:
        module = getattr(obj, "__module__", None) or ""
        qualname = getattr(obj, "__qualname__", None) or obj.__name__
        if module == "builtins":
            return str(qualname)
        if module in self.local_modules:
            if qualname.split(".")[0] not in self.local_names:
                raise ConfigurationError(
                    f"the generated client needs {qualname!r} of the backend "
                    "module; decorate it with @registry.register_type so that "
                    "its code is copied into the client"
                )
            return str(qualname)
        if module.split(".")[0] == "typing" or module == "typing_extensions":
            module = "typing" if hasattr(typing, qualname) else module
        # the shortest importable path that yields the same object, e.g.
        # xarray.core.dataset.Dataset -> xarray.Dataset
        parts = module.split(".")
        for i in range(1, len(parts) + 1):
            candidate = ".".join(parts[:i])
            mod = sys.modules.get(candidate)
            if mod is None:
                try:
                    mod = importlib.import_module(candidate)
                except ImportError:  # pragma: no cover - defensive
                    continue
            target: Any = mod
            for attr in qualname.split("."):
                target = getattr(target, attr, None)
            if target is obj:
                self.imports.add(candidate)
                return f"{candidate}.{qualname}"
        self.imports.add(module)
        return f"{module}.{qualname}"

    def annotation(self, annotation: Any) -> str:
        """Source code of a type annotation.

        Raises:
            ConfigurationError: the annotation uses a type of the backend
                module that is not registered.
        """
        if annotation is inspect.Parameter.empty:
            return ""
        if annotation is None or annotation is type(None):
            return "None"
        if annotation is Any:
            self.imports.add("typing")
            return "typing.Any"
        if isinstance(annotation, str):
            return repr(annotation)
        if isinstance(annotation, typing.TypeVar):
            self.imports.add("typing")
            return "typing.Any"
        origin = get_origin(annotation)
        args = get_args(annotation)
        if origin is Annotated:
            # metadata (validators, Field constraints) stays with the backend
            return self.annotation(args[0])
        if origin is Literal:
            self.imports.add("typing")
            return f"typing.Literal[{', '.join(self.default(a) for a in args)}]"
        if origin is typing.Union or (
            sys.version_info >= (3, 10) and origin is types.UnionType
        ):
            self.imports.add("typing")
            return f"typing.Union[{', '.join(self.annotation(a) for a in args)}]"
        if origin is not None:
            if origin is collections.abc.Callable and args:
                params, ret = args[0], args[-1]
                self.imports.add("collections.abc")
                if params is Ellipsis:
                    inner = "..."
                else:
                    inner = "[" + ", ".join(self.annotation(a) for a in params) + "]"
                return f"collections.abc.Callable[{inner}, {self.annotation(ret)}]"
            head = self._public_path(origin)
            if not args:
                return head
            inner = ", ".join(
                "..." if a is Ellipsis else self.annotation(a) for a in args
            )
            return f"{head}[{inner}]"
        if inspect.isclass(annotation):
            return self._public_path(annotation)
        # typing special forms without origin (typing.Any handled above)
        text = repr(annotation)
        if text.startswith("typing."):
            self.imports.add("typing")
            return text
        raise ConfigurationError(
            f"cannot write the annotation {annotation!r:.80} into the generated "
            "client; use a class or a typing construct"
        )

    def default(self, value: Any) -> str:
        """Source code of a default value (or a Literal argument).

        Raises:
            ConfigurationError: the value has no source representation.
        """
        if isinstance(value, enum.Enum):
            return f"{self._public_path(type(value))}.{value.name}"
        text = repr(value)
        try:
            ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise ConfigurationError(
                f"cannot write the default value {text:.80} into the generated "
                "client; use a literal default (number, str, None, tuple...) "
                "and build the object inside the function"
            ) from None
        return text

    def signature(
        self,
        sig: inspect.Signature,
        annotations: dict[str, Any],
        return_annotation: Any = None,
    ) -> str:
        """Source of ``sig`` (``(a: int, b: str = 'x') -> float``)."""
        parts = []
        seen_kw_only = False
        seen_pos_only = False
        for name, param in sig.parameters.items():
            if param.kind is param.KEYWORD_ONLY and not seen_kw_only:
                parts.append("*")
                seen_kw_only = True
            if seen_pos_only and param.kind is not param.POSITIONAL_ONLY:
                parts.append("/")
                seen_pos_only = False
            text = name
            annotation = annotations.get(name, param.annotation)
            if annotation is not param.empty:
                text += ": " + self.annotation(annotation)
            if param.default is not param.empty:
                sep = " = " if annotation is not param.empty else "="
                text += sep + self.default(param.default)
            parts.append(text)
            if param.kind is param.POSITIONAL_ONLY:
                seen_pos_only = True
        if seen_pos_only:
            parts.append("/")
        ret = return_annotation
        if ret is None:
            ret = sig.return_annotation
        out = "(" + ", ".join(parts) + ")"
        if ret is not inspect.Signature.empty:
            out += " -> " + self.annotation(ret)
        return out


def docstring_literal(doc: str, indent: int) -> str:
    """A triple-quoted docstring literal for ``doc``, indented."""
    body = (doc or "").replace("\\", "\\\\").replace('"""', '\\"\\"\\"').strip()
    pad = " " * indent
    if not body:
        return ""
    lines = body.splitlines()
    if len(lines) == 1:
        return f'{pad}"""{lines[0]}"""'
    rest = "\n".join((pad + line) if line.strip() else "" for line in lines[1:])
    return f'{pad}"""{lines[0]}\n{rest}\n{pad}"""'


def get_module_imports(module: types.ModuleType | None) -> str:
    """The module-level import statements of ``module``'s source.

    ``from __future__`` and relative imports are left out; if the source
    cannot be read (an interactive session), the result is empty.
    """
    if module is None:
        return ""
    try:
        source = inspect.getsource(module)
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return ""
    lines = []
    for node in tree.body:
        if isinstance(node, ast.Import) or (
            isinstance(node, ast.ImportFrom)
            and node.module != "__future__"
            and not node.level
        ):
            lines.append(ast.unparse(node))
    return "\n".join(lines)


def builtin_names() -> set[str]:
    """Names of the builtins (never need an import)."""
    return set(dir(builtins))


def messaging_defaults(config: Any) -> dict[str, Any]:
    """The messaging settings a client is generated with: those set (not
    defaults) and the topic, without headers, tokens or passwords."""
    data = json.loads(config.model_dump_json(exclude_defaults=True))
    data["topic"] = config.topic
    return {k: v for k, v in data.items() if not _SECRET_KEYS.search(k)}


def render_module(module_cls: type[BackendModule]) -> str:
    """The client module's code before formatting (see :func:`format_code`).

    Raises:
        ConfigurationError: a type or default cannot be written into the
            client (e.g. a backend type that is not registered).
    """
    config = module_cls.backend_config
    registry = config.registry
    objects = _registered_objects(registry.objects, config)
    local_names: set[str] = set()
    for source in objects:
        local_names |= defined_names(source)
    local_modules = {
        getattr(obj, "__module__", "") for obj in config.members if obj is not None
    }
    if config.module is not None:
        local_modules.add(config.module.__name__)
    writer = CodeWriter(local_modules, local_names)
    rendered = [_render_member(model, writer, config.module) for model in config.models]
    imports = sorted(writer.imports - {"builtins"})
    # the imports of the registered types (from the modules that define
    # them, which need not be this one), then those of the backend module
    module_imports = list(
        dict.fromkeys(
            [
                *registry.object_imports,
                *(
                    line
                    for line in config.imports.splitlines()
                    if line.strip() and "dasf_geo" not in line
                ),
            ]
        )
    )
    messaging = json.dumps(
        messaging_defaults(config.messaging_config), indent=4, sort_keys=True
    )
    data_options = None
    if config.data_options is not None:
        data_options = _value_source(config.data_options, writer)
    template: Template = config.template
    return template.render(
        config=config,
        doc=docstring_literal(config.doc, 0),
        imports=imports,
        module_imports=module_imports,
        registry_imports=sorted(registry.imports.items()),
        objects=objects,
        names=[m.backend_config.name for m in config.models],
        members=rendered,
        messaging=messaging,
        data_options=data_options,
    )


def _registered_objects(sources: list[str], config: Any) -> list[str]:
    """The registered code to inline into the client of ``config``'s module.

    The registry is global, so it may hold several types of the same name,
    registered by different modules. Only one of them is inlined: the one
    that is this backend module's own (or a member's module's), else the one
    registered last (the one that the name would be bound to anyway).
    """
    by_name: dict[str, list[int]] = {}
    for index, source in enumerate(sources):
        names = defined_names(source)
        if len(names) == 1:
            by_name.setdefault(names.pop(), []).append(index)
    modules = [config.module] if config.module is not None else []
    modules += [inspect.getmodule(obj) for obj in config.members]
    drop: set[int] = set()
    for name, indexes in by_name.items():
        if len(indexes) < 2:
            continue
        keep = indexes[-1]
        for module in filter(None, modules):
            obj = vars(module).get(name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            try:
                own = registered_source(obj)
            except (OSError, TypeError):
                continue
            matches = [i for i in indexes if sources[i] == own]
            if matches:
                keep = matches[-1]
                break
        drop.update(i for i in indexes if i != keep)
    return [source for i, source in enumerate(sources) if i not in drop]


def _configure_args(config: Any, writer: CodeWriter, keys: list[str]) -> str:
    """``key=value`` source for the options a stub repeats in ``@configure``."""
    parts = []
    for key in keys:
        value = getattr(config, key, None)
        if not value:
            continue
        parts.append(f"{key}={_value_source(value, writer)}")
    return ", ".join(parts)


def _value_source(value: Any, writer: CodeWriter) -> str:
    if isinstance(value, dict):
        inner = ", ".join(
            f"{_value_source(k, writer)}: {_value_source(v, writer)}"
            for k, v in value.items()
        )
        return "{" + inner + "}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_value_source(v, writer) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner},)"
    if isinstance(value, BaseModel):
        return _value_source(value.model_dump(mode="json", exclude_unset=True), writer)
    if callable(value) and not isinstance(value, type):
        return writer._public_path(value)
    if inspect.isclass(value):
        return writer.annotation(value)
    return writer.default(value)


_FUNCTION_KEYS = [
    "field_params",
    "validators",
    "serializers",
    "return_validators",
    "return_serializer",
    "returns",
    "data_options",
]
_CLASS_KEYS = ["field_params", "validators", "serializers", "data_options"]


def _client_signature(config: Any) -> inspect.Signature:
    """``config.signature`` without the progress reporters (the backend fills
    those in; a caller never passes one)."""
    sig = config.signature
    reporters = getattr(config, "reporter_args", None) or {}
    return sig.replace(
        parameters=[p for p in sig.parameters.values() if p.name not in reporters]
    )


def _render_member(model: Any, writer: CodeWriter, module: Any) -> str:
    config = model.backend_config
    if issubclass(model, BackendClass):
        methods = []
        for method_model in config.models.values():
            mconfig = method_model.backend_config
            msig = _client_signature(mconfig)
            methods.append(
                {
                    "name": mconfig.name,
                    "signature": writer.signature(
                        msig,
                        mconfig.annotations,
                        mconfig.return_annotation,
                    ),
                    "doc": docstring_literal(mconfig.doc, 8),
                    "params": [p for p in msig.parameters if p != "self"],
                    "configure": _configure_args(mconfig, writer, _FUNCTION_KEYS),
                }
            )
        init_sig = config.signature
        context = {
            "name": config.name,
            "doc": docstring_literal(config.doc, 4),
            "init_doc": docstring_literal(config.init_doc, 8),
            "signature": writer.signature(init_sig, config.annotations),
            "params": [p for p in init_sig.parameters if p != "self"],
            "configure": _configure_args(config, writer, _CLASS_KEYS),
            "methods": methods,
        }
    else:
        sig = _client_signature(config)
        context = {
            "name": config.name,
            "doc": docstring_literal(config.doc, 4),
            "signature": writer.signature(
                sig, config.annotations, config.return_annotation
            ),
            "params": list(sig.parameters),
            "configure": _configure_args(config, writer, _FUNCTION_KEYS),
        }
    return cast(str, config.render(**context))
