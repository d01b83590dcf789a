"""Helpers shared by the function, class and module models.

Signature introspection (fields from parameters and docstrings), naming,
and the pieces of generated client code (annotations, defaults, imports).
"""

from __future__ import annotations

import ast
import builtins
import collections.abc
import enum
import importlib
import inspect
import re
import sys
import types
import typing
import warnings
from collections.abc import Callable, Iterable
from itertools import chain
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args, get_origin

import docstring_parser
from pydantic import AfterValidator, Field, PlainSerializer, TypeAdapter
from pydantic.errors import PydanticSchemaGenerationError

from dasf_geo.data import DataOptions, resolve_annotation
from dasf_geo.exceptions import ConfigurationError
from dasf_geo.protocol.options import TransferOptions

if TYPE_CHECKING:  # pragma: no cover
    from dasf_geo.config.backend import ClassConfig, FunctionConfig

__all__ = [
    "check_callable",
    "get_desc",
    "get_fields",
    "get_kws",
    "get_module_imports",
    "merge_options",
    "parse_docstring",
    "snake_to_camel",
]

#: Field names that would shadow the machinery of the generated models.
RESERVED_NAMES = frozenset(
    {"func_name", "class_name", "function", "return_model", "backend_config"}
)


def camelize(w: str) -> str:
    """Upper-case the first letter of ``w``."""
    return w and (w[:1].upper() + w[1:])


def snake_to_camel(*words: str) -> str:
    """Join ``words`` (each maybe snake_case) in CamelCase.

    >>> snake_to_camel("Func", "hello_world")
    'FuncHelloWorld'
    """
    return "".join(map(camelize, chain.from_iterable(w.split("_") for w in words)))


def parse_docstring(obj: Any) -> docstring_parser.Docstring:
    """Parse the numpy-, Google- or reST-style docstring of ``obj``."""
    doc = inspect.getdoc(obj) if not isinstance(obj, str) else obj
    try:
        return docstring_parser.parse(doc or "")
    except docstring_parser.ParseError:
        # a docstring that looks like a style but is malformed: keep the text
        return docstring_parser.parse("")


def get_desc(docstring: docstring_parser.Docstring) -> str:
    """The summary and long description of a parsed docstring."""
    desc = ""
    if docstring.short_description:
        desc += docstring.short_description
    if docstring.long_description:
        desc += "\n\n" if docstring.blank_after_short_description else "\n"
        desc += docstring.long_description
    return desc.strip()


def return_description(docstring: docstring_parser.Docstring) -> str:
    """The description of the return value(s) in a parsed docstring."""
    descs = [
        m.description
        for m in docstring.meta
        if isinstance(m, docstring_parser.DocstringReturns) and m.description
    ]
    if len(descs) == 1:
        return descs[0].strip()
    return "\n".join("- " + d.strip() for d in descs)


def merge_options(
    module: DataOptions | None, own: DataOptions | None
) -> DataOptions | None:
    """The data options of a member: its own merged over the module's."""
    if module is None:
        return own
    if own is None:
        return module
    return module.merge(own)


def member_options(
    outer: DataOptions | None,
    own: DataOptions | None,
    transfer: TransferOptions | None,
    what: str,
) -> DataOptions | None:
    """The data options of a member: its own over ``outer``'s, then the
    ``compression`` of its ``transfer`` options (the same setting, spelt the
    transfer way).

    Raises:
        ConfigurationError: ``data_options`` and ``transfer`` of the member
            ask for different compression levels.
    """
    options = merge_options(outer, own)
    level = None if transfer is None else transfer.compression
    if level is None:
        return options
    if own is not None and own.compression not in (None, level):
        raise ConfigurationError(
            f"{what}: data_options asks for compression={own.compression} and "
            f"transfer for compression={level}; give the level once"
        )
    return merge_options(options, DataOptions(compression=level))


def check_callable(obj: Any, what: str) -> None:
    """Reject what cannot be exposed (lambdas, builtins without a signature).

    Raises:
        ConfigurationError: with the reason and what to do instead.
    """
    name = getattr(obj, "__name__", None)
    if name == "<lambda>":
        raise ConfigurationError(
            f"cannot expose the lambda {what}: a remote function needs a name; "
            "define it with def"
        )
    if not name or not isinstance(name, str) or not name.isidentifier():
        raise ConfigurationError(
            f"cannot expose {obj!r:.80}: it has no valid __name__; expose "
            "functions defined with def, or classes"
        )


def signature_of(obj: Callable[..., Any], what: str) -> inspect.Signature:
    """``inspect.signature`` with string annotations evaluated.

    Raises:
        ConfigurationError: no signature, or an annotation names something
            that is not defined.
    """
    try:
        return inspect.signature(obj, eval_str=True)
    except NameError as exc:
        raise ConfigurationError(
            f"cannot resolve an annotation of {what}: {exc}; import the type "
            "at module level so that it can be evaluated"
        ) from exc
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the signature of {what}: {exc}") from exc


def check_parameters(sig: inspect.Signature, what: str) -> None:
    """Reject ``*args``/``**kwargs`` and names the models reserve.

    Raises:
        ConfigurationError: naming the parameter and the fix.
    """
    for name, param in sig.parameters.items():
        if param.kind is param.VAR_POSITIONAL:
            raise ConfigurationError(
                f"cannot expose {what}: *{name} is not supported because a "
                "request names every argument; replace it with a list "
                f"parameter, e.g. {name}: list[float]"
            )
        if param.kind is param.VAR_KEYWORD:
            raise ConfigurationError(
                f"cannot expose {what}: **{name} is not supported because the "
                "request schema lists every argument; replace it with a dict "
                f"parameter, e.g. {name}: dict[str, Any]"
            )
        if name in RESERVED_NAMES:
            raise ConfigurationError(
                f"cannot expose {what}: the parameter name {name!r} is used by "
                "the request itself; rename the parameter"
            )
        if name.startswith("model_"):
            raise ConfigurationError(
                f"cannot expose {what}: the parameter {name!r} starts with "
                "'model_', which pydantic reserves for its own methods; rename it"
            )
        if name.startswith("_"):
            raise ConfigurationError(
                f"cannot expose {what}: the parameter {name!r} starts with an "
                "underscore, which pydantic models do not allow as a field; "
                "rename it"
            )


def get_kws(sig: inspect.Signature, obj: Any) -> tuple[list[Any], dict[str, Any]]:
    """Positional and keyword arguments for calling with the model's fields."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for name, param in sig.parameters.items():
        if name == "self":
            continue
        value = getattr(obj, name)
        if param.kind is param.POSITIONAL_ONLY:
            args.append(value)
        else:
            kwargs[name] = value
    return args, kwargs


def _is_native(annotation: Any) -> bool:
    """Whether pydantic validates ``annotation`` without arbitrary types."""
    if annotation is Any:
        return True
    try:
        TypeAdapter(annotation)
    except (PydanticSchemaGenerationError, TypeError, NameError):
        return False
    return True


def with_validators(
    annotation: Any,
    validators: list[Callable[..., Any]] | None,
    serializer: Callable[..., Any] | None,
) -> Any:
    """``annotation`` with user validators (after) and a JSON serializer.

    A type pydantic cannot validate itself (say a class without a schema)
    becomes ``Any`` so that the user's validators do the conversion, as
    demessaging does.
    """
    if not validators and serializer is None:
        return annotation
    if validators and not _is_native(annotation):
        annotation = Any
    metadata: list[Any] = [AfterValidator(v) for v in validators or []]
    if serializer is not None:
        metadata.append(PlainSerializer(serializer, when_used="json"))
    args = (annotation, *metadata)
    return Annotated[args]  # type: ignore[valid-type]


def is_progress_report(annotation: Any) -> bool:
    """Whether ``annotation`` is (or contains) a progress report class.

    That is :class:`dasf_geo.protocol.progress.ProgressReport` or a
    deprogressapi report class.
    """
    from dasf_geo.protocol.progress import ProgressReport

    candidates = get_args(annotation) if get_origin(annotation) else (annotation,)
    for cls in candidates:
        if inspect.isclass(cls) and (
            issubclass(cls, ProgressReport)
            or any(
                base.__name__ == "BaseReport"
                and base.__module__.split(".")[0] == "deprogressapi"
                for base in cls.__mro__
            )
        ):
            return True
    return False


def warn_at(obj: Any, message: str, stacklevel: int = 2) -> None:
    """Warn with a :class:`UserWarning` that points at where ``obj`` is defined.

    The warning names the user's file and the line of the ``def`` or
    ``class``, not the dasf_geo code that noticed the problem; without a
    source (a builtin, an object made at run time) it falls back to the
    caller ``stacklevel`` frames up.
    """
    target = inspect.unwrap(obj) if callable(obj) else obj
    try:
        filename = inspect.getsourcefile(target)
        _, lineno = inspect.getsourcelines(target)
    except (TypeError, OSError):
        filename = None
    if not filename:
        warnings.warn(message, UserWarning, stacklevel=stacklevel + 1)
        return
    module_name = getattr(target, "__module__", None) or "__main__"
    module = sys.modules.get(module_name)
    registry = vars(module).setdefault("__warningregistry__", {}) if module else None
    warnings.warn_explicit(
        message, UserWarning, filename, max(lineno, 1), module_name, registry
    )


def get_fields(
    name: str,
    sig: inspect.Signature,
    docstring: docstring_parser.Docstring,
    config: FunctionConfig | ClassConfig,
    what: str,
    data_options: DataOptions | None,
) -> dict[str, tuple[Any, Any]]:
    """The model fields (for :func:`pydantic.create_model`) of a signature.

    The first field is ``func_name``, a literal of ``name``; then one field
    per parameter (``self`` excluded) with its default, its description from
    the docstring and the ``field_params`` of ``config``. Unannotated
    parameters become ``Any`` with a :class:`UserWarning`.

    Raises:
        ConfigurationError: ``field_params`` cannot build a Field.
    """
    fields: dict[str, tuple[Any, Any]] = {
        "func_name": (
            Literal[name],  # type: ignore[valid-type]
            Field(description=f"The name of the function. Must be {name!r}"),
        ),
    }
    param_docs = {p.arg_name: p for p in docstring.params}
    for key, param in sig.parameters.items():
        if key == "self":
            continue
        field_kws: dict[str, Any] = {}
        if param.default is not param.empty:
            field_kws["default"] = param.default
        param_doc = param_docs.get(key)
        if param_doc is not None and param_doc.description:
            field_kws["description"] = param_doc.description
        field_kws.update(config.field_params.get(key, {}))

        if key in config.annotations:
            annotation = config.annotations[key]
        elif param.annotation is param.empty:
            warn_at(
                getattr(config, "function", None) or getattr(config, "Class", None),
                f"{what}: parameter {key!r} has no type annotation, so it is "
                "accepted as Any without validation; annotate it to validate "
                "the argument",
                stacklevel=4,
            )
            annotation = Any
        else:
            annotation = param.annotation

        validators = config.validators.get(key)
        serializer = config.serializers.get(key)
        if validators or serializer is not None:
            annotation = with_validators(annotation, validators, serializer)
        else:
            annotation = resolve_annotation(annotation, data_options)

        if key in config.reporter_args or (
            param.annotation is not param.empty and is_progress_report(param.annotation)
        ):
            if key not in config.reporter_args:
                config.reporter_args[key] = (
                    param.default if param.default is not param.empty else None
                )
            extra = dict(field_kws.get("json_schema_extra") or {})
            extra["is_reporter"] = True
            field_kws["json_schema_extra"] = extra
        try:
            fields[key] = (annotation, Field(**field_kws))
        except TypeError as exc:
            raise ConfigurationError(
                f"{what}: field_params for {key!r} are not valid Field arguments: {exc}"
            ) from exc
    return fields


# --- generated code -------------------------------------------------------------


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


def builtin_names() -> set[str]:
    """Names of the builtins (never need an import)."""
    return set(dir(builtins))
