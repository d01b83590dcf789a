"""The type registry: validator, serializer and JSON schema per Python type."""

from __future__ import annotations

import collections.abc
import contextlib
import contextvars
import copy
import inspect
import threading
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any, Union

from pydantic import BaseModel, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import (
    PydanticCustomError,
    PydanticSerializationError,
    core_schema,
)

from dasf_geo.data._options import DataOptions
from dasf_geo.exceptions import ConfigurationError, DataError, UnsupportedTypeError

__all__ = [
    "COMPRESSION_CONTEXT",
    "PARTS_CONTEXT",
    "SCHEMA_TYPE_KEY",
    "TypeEntry",
    "entry_named",
    "get_entry",
    "original_errors",
    "register",
    "register_reference",
    "registered_types",
    "resolve_annotation",
    "unregister",
]

#: JSON-schema key naming the registry entry a schema describes
SCHEMA_TYPE_KEY = "x-dasf-type"
#: The key of a writer in pydantic's serialization context that may take a
#: value out of the JSON: ``context[PARTS_CONTEXT].add(obj, registry_type)``
#: returns what stands for it in the JSON, or None to serialize it as usual
#: (see :class:`dasf_geo.data.PartWriter`, which writes binary parts)
PARTS_CONTEXT = "dasf_geo.parts"
#: Key of pydantic's serialization context for the zlib level (1-9) a caller
#: asked for one call: Dataset/DataArray values are then written as
#: compressed NetCDF4 (see :meth:`DataOptions.with_call_compression`).
COMPRESSION_CONTEXT = "dasf_geo.compression"
#: how deep annotations and schemas are followed
MAX_DEPTH = 64

Validate = Callable[[Any, DataOptions, "str | None"], Any]
Serialize = Callable[[Any, DataOptions], Any]


@dataclass(frozen=True, eq=False)
class TypeEntry:
    """How the registry handles one Python type.

    Attributes:
        py_type: the Python type (subclasses match too).
        name: the registry name, used in schemas as ``x-dasf-type``.
        validate: ``(value, options, label) -> object``; accepts the object
            itself and every serialized form; raises ``ValueError``.
        serialize: ``(object, options) -> JSON-able wire form``.
        json_schema: ``(options) -> dict``, the schema of the wire form.
        decode: ``(wire value) -> object`` for callers that only have the
            schema (no checks are applied).
    """

    py_type: type
    name: str
    validate: Validate
    serialize: Serialize
    json_schema: Callable[[DataOptions], dict[str, Any]]
    decode: Callable[[Any], Any]
    builtin: bool = field(default=False)


_lock = threading.Lock()
_by_type: dict[type, TypeEntry] = {}
_by_name: dict[str, TypeEntry] = {}
#: key of a JSON object that stands for a value -> what resolves it
_references: dict[str, Callable[[dict[str, Any], str], Any]] = {}


def register_reference(key: str, resolve: Callable[[dict[str, Any], str], Any]) -> None:
    """Let a JSON object holding ``key`` stand for a value of a registered type.

    Before an entry validates a ``dict`` that holds ``key``, the value is
    replaced by ``resolve(value, entry_name)``, which the entry then
    validates: a multipart request's placeholder ``{"$dasfGeoPart": n}``
    becomes the binary part it names (see :mod:`dasf_geo.data._binary`).
    ``resolve`` raises ``DataError`` for a reference it cannot resolve, or
    one that cannot stand for a value of that entry.
    """
    _references[key] = resolve


def _dereference(value: dict[str, Any], entry_name: str) -> Any:
    for key, resolve in _references.items():
        if key in value:
            return resolve(value, entry_name)
    return value


def _accepts_options(func: Callable[..., Any]) -> bool:
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [
        p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


def register(
    py_type: type,
    *,
    validate: Callable[..., Any],
    serialize: Callable[..., Any],
    json_schema: dict[str, Any] | Callable[[DataOptions], dict[str, Any]],
    name: str | None = None,
    decode: Callable[[Any], Any] | None = None,
    replace: bool = False,
    _builtin: bool = False,
) -> TypeEntry:
    """Register how ``py_type`` is validated, serialized and described.

    After this, ``def f(x: py_type)`` in a backend validates incoming JSON
    with ``validate``, sends replies as ``serialize(obj)`` and publishes
    ``json_schema`` (plus ``"x-dasf-type": name``) in the API info.

    Args:
        py_type: the class to register.
        validate: ``validate(value)`` or ``validate(value, options)``; gets
            the object itself or its wire form and returns the object; raises
            ``ValueError`` (or a :class:`~dasf_geo.exceptions.DataError`) for
            bad input.
        serialize: ``serialize(obj)`` or ``serialize(obj, options)``; returns
            a JSON-able value.
        json_schema: the JSON schema of the wire form, or a function of the
            :class:`DataOptions` returning it.
        name: the registry name; default ``module.QualName``.
        decode: wire form -> object for callers; default ``validate``.
        replace: allow replacing an existing registration.

    Returns:
        The new :class:`TypeEntry`.

    Raises:
        ConfigurationError: ``py_type`` is not a class, a callable is missing,
            or the type/name is already registered and ``replace`` is false.
    """
    if not isinstance(py_type, type):
        raise ConfigurationError(
            f"register() needs a class as py_type, got {py_type!r}; pass the type "
            "itself, e.g. register(MyType, ...)"
        )
    for label, func in (("validate", validate), ("serialize", serialize)):
        if not callable(func):
            raise ConfigurationError(
                f"register({py_type.__name__}): {label} must be callable, got "
                f"{type(func).__name__}"
            )
    if not (isinstance(json_schema, dict) or callable(json_schema)):
        raise ConfigurationError(
            f"register({py_type.__name__}): json_schema must be a dict or a "
            "function of the DataOptions"
        )
    name = name or f"{py_type.__module__}.{py_type.__qualname__}"
    v_opts = _accepts_options(validate)
    s_opts = _accepts_options(serialize)

    def _validate(value: Any, options: DataOptions, label: str | None) -> Any:
        if _builtin:
            return validate(value, options, label)
        return validate(value, options) if v_opts else validate(value)

    def _serialize(obj: Any, options: DataOptions) -> Any:
        return serialize(obj, options) if s_opts else serialize(obj)

    def _schema(options: DataOptions) -> dict[str, Any]:
        base = json_schema(options) if callable(json_schema) else json_schema
        return {**base, SCHEMA_TYPE_KEY: name}

    def _decode(value: Any) -> Any:
        if decode is not None:
            return decode(value)
        return _validate(value, DataOptions(cf="off", crs="off"), None)

    # the fields in their order: py_type, name, validate, serialize,
    # json_schema, decode, builtin
    entry = TypeEntry(py_type, name, _validate, _serialize, _schema, _decode, _builtin)
    with _lock:
        old = _by_type.get(py_type) or _by_name.get(name)
        if old is not None and not replace:
            raise ConfigurationError(
                f"{py_type.__name__} (name {name!r}) is already registered; pass "
                "replace=True to override it"
            )
        if old is not None:
            _by_type.pop(old.py_type, None)
            _by_name.pop(old.name, None)
        _by_type[py_type] = entry
        _by_name[name] = entry
    _resolve_cached.cache_clear()
    return entry


def register_builtin(
    py_type: type,
    name: str,
    validate: Validate,
    encode: Callable[[Any], Any],
    schema: dict[str, Any],
    decode: Callable[[Any], Any],
) -> TypeEntry:
    """Register a built-in entry whose wire form needs no data options.

    ``validate(value, options, label)``; ``encode(obj)`` gives the wire form
    that ``schema`` describes (each schema use gets its own copy) and
    ``decode(wire value)`` reads it back.
    """
    return register(
        py_type,
        name=name,
        validate=validate,
        serialize=lambda obj, options: encode(obj),
        json_schema=lambda options: copy.deepcopy(schema),
        decode=decode,
        _builtin=True,
    )


def unregister(py_type: type) -> None:
    """Remove the registration of ``py_type``.

    Raises:
        UnsupportedTypeError: ``py_type`` is not registered.
    """
    entry = get_entry(py_type, exact=True)
    with _lock:
        _by_type.pop(entry.py_type, None)
        _by_name.pop(entry.name, None)
    _resolve_cached.cache_clear()


def entry_named(name: str) -> TypeEntry | None:
    """The entry registered under ``name``, or None."""
    with _lock:
        return _by_name.get(name)


def registered_types() -> dict[str, type]:
    """Registry names mapped to their Python types."""
    with _lock:
        return {name: e.py_type for name, e in _by_name.items()}


def _find(py_type: Any) -> TypeEntry | None:
    if not isinstance(py_type, type):
        return None
    with _lock:
        entry = _by_type.get(py_type)
        if entry is not None:
            return entry
        for base in py_type.__mro__[1:]:
            if base in _by_type:
                return _by_type[base]
    return None


def get_entry(py_type: Any, *, exact: bool = False) -> TypeEntry:
    """Return the registry entry for ``py_type`` (or for a base class of it).

    Args:
        py_type: a class, or a registry name such as ``"xarray.Dataset"``.
        exact: do not fall back to base classes.

    Raises:
        UnsupportedTypeError: nothing is registered for it; the message lists
            the registered types and how to add one.
    """
    if isinstance(py_type, str):
        with _lock:
            entry = _by_name.get(py_type)
    elif exact:
        with _lock:
            entry = _by_type.get(py_type) if isinstance(py_type, type) else None
    else:
        entry = _find(py_type)
    if entry is None:
        label = (
            py_type
            if isinstance(py_type, str)
            else getattr(py_type, "__qualname__", repr(py_type))
        )
        known = ", ".join(sorted(registered_types())) or "nothing"
        raise UnsupportedTypeError(
            f"no registry entry for {label}; registered: {known}. Register it "
            "with dasf_geo.data.register(type, validate=..., serialize=..., "
            "json_schema=...)"
        )
    return entry


class RegistryType:
    """Annotation metadata that makes pydantic use a registry entry.

    ``Annotated[xr.Dataset, RegistryType(entry, options)]`` is what
    :func:`resolve_annotation` builds; it can also be written by hand in
    pydantic models.
    """

    __slots__ = ("entry", "options")

    def __init__(self, entry: TypeEntry, options: DataOptions | None = None) -> None:
        self.entry = entry
        self.options = (options or DataOptions()).resolved()

    def __repr__(self) -> str:
        return f"RegistryType({self.entry.name!r}, {self.options!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, RegistryType)
            and other.entry is self.entry
            and other.options == self.options
        )

    def __hash__(self) -> int:
        return hash((self.entry.name, self.options))

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        entry, options = self.entry, self.options

        def validate(value: Any, info: core_schema.ValidationInfo) -> Any:
            try:
                if type(value) is dict and _references:
                    # e.g. a placeholder of a binary part (register_reference)
                    value = _dereference(value, entry.name)
                # a return model's value is "root": name it "result" for people
                label = "result" if info.field_name == "root" else info.field_name
                return entry.validate(value, options, label)
            except PydanticCustomError:
                raise
            except DataError as exc:
                raise PydanticCustomError(
                    "dasf_data", "{detail}", {"detail": str(exc)}
                ) from exc
            except Exception as exc:  # a validator may only raise ValueError
                raise PydanticCustomError(
                    "dasf_data",
                    "{detail}",
                    {
                        "detail": f"cannot read the value as {entry.name}: "
                        f"{type(exc).__name__}: {exc}"
                    },
                ) from exc

        def serialize(obj: Any, info: core_schema.SerializationInfo) -> Any:
            try:
                context = info.context
                if type(context) is not dict:
                    return entry.serialize(obj, options)
                if PARTS_CONTEXT in context:
                    # e.g. a multipart request: the object travels as a part
                    part = context[PARTS_CONTEXT].add(obj, self)
                    if part is not None:
                        return part
                compression = context.get(COMPRESSION_CONTEXT)
                return entry.serialize(obj, options.with_call_compression(compression))
            except DataError as exc:
                # pydantic turns it into a PydanticSerializationError with the
                # text only; original_errors() raises it again as it was
                _last_error.set(exc)
                raise

        return core_schema.with_info_plain_validator_function(
            validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                serialize, info_arg=True, when_used="json"
            ),
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return dict(self.entry.json_schema(self.options))


_last_error: contextvars.ContextVar[DataError | None] = contextvars.ContextVar(
    "dasf_geo_serialization_error", default=None
)


@contextlib.contextmanager
def original_errors() -> Iterator[None]:
    """Raise a registry serializer's :class:`DataError` as itself.

    pydantic reports an exception of a serializer function as a
    ``PydanticSerializationError`` whose text starts "Error calling function
    …" and which keeps neither the class nor the attributes (a CF finding's
    list, …). Serializing inside this block raises the original error
    instead; other serialization errors pass unchanged.
    """
    token = _last_error.set(None)
    try:
        yield
    except PydanticSerializationError:
        original = _last_error.get()
        if original is not None:
            raise original from None
        raise
    finally:
        _last_error.reset(token)


def resolve_annotation(annotation: Any, options: DataOptions | None = None) -> Any:
    """Return a pydantic-compatible annotation for ``annotation``.

    Registered types are replaced — also inside ``Optional``/``Union``,
    ``list``, ``set``, ``tuple``, ``dict``, abstract collections, ``Annotated``
    and pydantic model fields — by ``Annotated[T, RegistryType(entry,
    options)]``, which carries the validator (accepts the object and every
    serialized form), the serializer (JSON mode: the wire form; python mode:
    the object) and the JSON schema. Anything else comes back unchanged (the
    same object).

    A pydantic model with fields of registered types (declared with
    ``model_config = ConfigDict(arbitrary_types_allowed=True)``) is replaced
    by a subclass whose fields use the registry; instances are still
    instances of the user's model.

    Args:
        annotation: a type annotation.
        options: data options; ``None`` means the defaults.

    Raises:
        ConfigurationError: ``options`` is not a DataOptions.
    """
    if options is not None and not isinstance(options, DataOptions):
        raise ConfigurationError(
            f"options must be a DataOptions, got {type(options).__name__}"
        )
    try:
        resolved = _resolve_cached(annotation, (options or DataOptions()).resolved())
    except TypeError:  # unhashable annotation (e.g. Annotated with a dict)
        return _resolve(annotation, (options or DataOptions()).resolved(), 0)
    # the cache may hold an equal but distinct object (``list[int]`` makes a
    # new alias each time): an unchanged annotation comes back as itself
    return annotation if resolved == annotation else resolved


@lru_cache(maxsize=512)
def _resolve_cached(annotation: Any, options: DataOptions) -> Any:
    return _resolve(annotation, options, 0)


_UNION_TYPES: tuple[Any, ...] = (Union, types.UnionType)
_REBUILDABLE = {
    list: list,
    set: set,
    frozenset: frozenset,
    tuple: tuple,
    dict: dict,
    collections.abc.Sequence: collections.abc.Sequence,
    collections.abc.MutableSequence: collections.abc.MutableSequence,
    collections.abc.Set: collections.abc.Set,
    collections.abc.Mapping: collections.abc.Mapping,
    collections.abc.MutableMapping: collections.abc.MutableMapping,
    collections.abc.Iterable: collections.abc.Iterable,
}


def _resolve(annotation: Any, options: DataOptions, depth: int) -> Any:
    if depth > MAX_DEPTH:
        return annotation
    entry = _find(annotation)
    if entry is not None:
        return Annotated[annotation, RegistryType(entry, options)]
    origin = typing.get_origin(annotation)
    if isinstance(origin, type) and (generic := _find(origin)) is not None:
        # e.g. numpy.typing.NDArray[np.float64]: handled as its origin type
        return Annotated[annotation, RegistryType(generic, options)]
    if origin is Annotated:
        inner, *meta = typing.get_args(annotation)
        if any(isinstance(m, RegistryType) for m in meta):
            return annotation
        new = _resolve(inner, options, depth + 1)
        if new is inner:
            return annotation
        result = new
        for item in meta:  # nested Annotated flattens into Annotated[new, *meta]
            result = Annotated[result, item]
        return result
    if origin in _UNION_TYPES:
        args = typing.get_args(annotation)
        new_args = tuple(_resolve(a, options, depth + 1) for a in args)
        if all(n is a for n, a in zip(new_args, args, strict=True)):
            return annotation
        return Union[new_args]  # type: ignore[valid-type]
    if origin in _REBUILDABLE:
        args = typing.get_args(annotation)
        new_args = tuple(
            a if a is Ellipsis else _resolve(a, options, depth + 1) for a in args
        )
        if all(n is a for n, a in zip(new_args, args, strict=True)):
            return annotation
        return _REBUILDABLE[origin].__class_getitem__(new_args)  # type: ignore[attr-defined]
    if (
        isinstance(annotation, type)
        and issubclass(annotation, BaseModel)
        and annotation is not BaseModel
    ):
        return _resolve_model(annotation, options, depth)
    return annotation


def _resolve_model(model: type[BaseModel], options: DataOptions, depth: int) -> Any:
    from pydantic import create_model

    changed: dict[str, Any] = {}
    for fname, info in model.model_fields.items():
        ann = info.annotation
        new = _resolve(ann, options, depth + 1)
        if new is not ann:
            new_info = info._copy() if hasattr(info, "_copy") else info
            changed[fname] = (new, new_info)
    if not changed:
        return model
    return create_model(  # type: ignore[call-overload]
        model.__name__,
        __base__=model,
        __module__=model.__module__,
        __doc__=model.__doc__,
        **changed,
    )
