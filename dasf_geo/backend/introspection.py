"""Signature introspection: what the function and class models are built from.

A function's (or method's, or constructor's) signature and docstring become
the fields of its model (:func:`get_fields`): annotations resolved once
(:func:`signature_of`), parameters checked (:func:`check_parameters`,
:func:`check_callable`), descriptions read from the docstring
(:func:`parse_docstring`, :func:`get_desc`, :func:`return_description`),
user validators and serializers attached (:func:`with_validators`), data
options merged (:func:`member_options`); :func:`get_kws` turns a validated
model back into the call's arguments. Models are named with
:func:`snake_to_camel`.

Writing client stubs from these models is :mod:`dasf_geo.backend.stubgen`.
"""

from __future__ import annotations

import inspect
import sys
import warnings
from collections.abc import Callable
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
    "RESERVED_NAMES",
    "check_callable",
    "check_parameters",
    "get_desc",
    "get_fields",
    "get_kws",
    "is_progress_report",
    "member_options",
    "merge_options",
    "parse_docstring",
    "return_description",
    "signature_of",
    "snake_to_camel",
    "warn_at",
    "with_validators",
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
