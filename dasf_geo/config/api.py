"""``configure`` (the decorator) and ``merge_config``.

The global ``registry`` lives beside its class in
:mod:`dasf_geo.config.registry`; it is still importable from here.
"""

from __future__ import annotations

import inspect
import json
from typing import Any, TypeVar

from pydantic import Field, ValidationError

from dasf_geo.config.registry import ApiRegistry, registry  # noqa: F401  (the old import path)
from dasf_geo.exceptions import (
    CONFIGURE_STYLE,
    ConfigurationError,
    format_validation_error,
)

__all__ = ["configure", "merge_config", "registry"]

T = TypeVar("T")

#: Attribute under which :func:`configure` stores the config (the name
#: demessaging uses, so existing code that reads it keeps working).
CONFIG_ATTR = "__pulsar_config__"

_FIELD_KWARGS = frozenset(inspect.signature(Field).parameters) - {"default"}
_CLASS_ONLY = {"methods", "init_doc"}
_FUNCTION_ONLY = {
    "returns",
    "return_validators",
    "return_serializer",
    "return_annotation",
}
_PER_PARAMETER = (
    "field_params",
    "validators",
    "serializers",
    "annotations",
    "reporter_args",
)


def merge_config(base: dict[str, Any], to_merge: dict[str, Any]) -> dict[str, Any]:
    """Merge ``to_merge`` into ``base`` (in place) and return ``base``.

    Dicts are merged recursively, lists are concatenated, anything else in
    ``to_merge`` replaces the value in ``base``.
    """
    for key, val in to_merge.items():
        if key not in base or base[key] is None:
            base[key] = val
        elif isinstance(val, dict) and isinstance(base[key], dict):
            merge_config(base[key], val)
        elif isinstance(val, list) and isinstance(base[key], list):
            base[key] = [*base[key], *(v for v in val if v not in base[key])]
        else:
            base[key] = val
    return base


def _describe(obj: Any) -> str:
    kind = "class" if inspect.isclass(obj) else "function"
    return f"{kind} {getattr(obj, '__qualname__', obj)!r}"


def _parameters(obj: Any) -> list[str]:
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return []
    return [
        name
        for name, p in sig.parameters.items()
        if name not in ("self", "cls")
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def _check_options(obj: Any, options: dict[str, Any]) -> None:
    """Misuse that pydantic would not catch, reported with the fix."""
    what = _describe(obj)
    is_class = inspect.isclass(obj)
    for key in options:
        if not is_class and key in _CLASS_ONLY:
            raise ConfigurationError(
                f"@configure({key}=...) on {what}: {key!r} is an option for "
                "classes; put it on the class, or remove it"
            )
        if is_class and key in _FUNCTION_ONLY:
            raise ConfigurationError(
                f"@configure({key}=...) on {what}: {key!r} is an option for "
                "functions and methods; decorate the method that returns the "
                "value instead"
            )
    params = _parameters(obj)
    for key in _PER_PARAMETER:
        mapping = options.get(key) or {}
        if not isinstance(mapping, dict):
            continue
        for name in mapping:
            if name not in params:
                raise ConfigurationError(
                    f"@configure({key}={{{name!r}: ...}}) on {what}: there is no "
                    f"parameter {name!r}; the parameters are: "
                    f"{', '.join(params) or '(none)'}"
                )
    field_params = options.get("field_params") or {}
    if isinstance(field_params, dict):
        for name, params_ in field_params.items():
            if not isinstance(params_, dict):
                raise ConfigurationError(
                    f"@configure(field_params=...) on {what}: the value for "
                    f"{name!r} must be a dict of pydantic Field arguments such as "
                    f"{{'ge': 0}}, got {type(params_).__name__}"
                )
            unknown = sorted(set(params_) - _FIELD_KWARGS)
            if unknown:
                raise ConfigurationError(
                    f"@configure(field_params={{{name!r}: ...}}) on {what}: "
                    f"unknown Field argument(s) {', '.join(map(repr, unknown))}; "
                    "valid ones are e.g. ge, gt, le, lt, min_length, max_length, "
                    "pattern, description, title, examples"
                )
    returns = options.get("returns") or {}
    if isinstance(returns, dict):
        unknown = sorted(set(returns) - _FIELD_KWARGS)
        if unknown:
            raise ConfigurationError(
                f"@configure(returns=...) on {what}: unknown Field argument(s) "
                f"{', '.join(map(repr, unknown))}; valid ones are e.g. ge, gt, "
                "le, lt, description"
            )
    if is_class and isinstance(options.get("methods"), list):
        for method in options["methods"]:
            if not isinstance(method, str):
                raise ConfigurationError(
                    f"@configure(methods=...) on {what}: give method names as "
                    f"strings, got {type(method).__name__} {method!r:.60}"
                )
            member = inspect.getattr_static(obj, method, None)
            if member is None or not callable(getattr(obj, method, None)):
                public = [
                    n
                    for n, _ in inspect.getmembers(obj, inspect.isfunction)
                    if not n.startswith("_")
                    and not isinstance(
                        inspect.getattr_static(obj, n), (staticmethod, classmethod)
                    )
                ]
                raise ConfigurationError(
                    f"@configure(methods=[{method!r}, ...]) on {what}: the class "
                    f"has no method {method!r}; its public methods are: "
                    f"{', '.join(public) or '(none)'}"
                )


def _validation_message(exc: ValidationError, what: str, conf_class: type) -> str:
    """The message of invalid ``@configure`` options (the one formatter)."""
    return format_validation_error(
        exc,
        f"@configure on {what}",
        known_fields=conf_class.model_fields,  # type: ignore[attr-defined]
        style=CONFIGURE_STYLE,
    )


def configure(js: str | None = None, merge: bool = True, **kwargs: Any) -> Any:
    """Configure how a function, method or class becomes an RPC model.

    Use it as a decorator::

        @configure(field_params={"a": {"gt": 0}}, returns={"gt": 0})
        def sqrt(a: float) -> float:
            return a ** 0.5

    On a class the options of :class:`~dasf_geo.config.ClassConfig` apply,
    on a function or method those of :class:`~dasf_geo.config.FunctionConfig`.
    The decorated object is returned unchanged, with the config stored as
    its ``__pulsar_config__`` attribute.

    Args:
        js: the options as a JSON object (instead of keyword arguments).
        merge: merge with a config the object already has (from an earlier
            ``@configure``); if False, replace it.
        **kwargs: the options.

    Raises:
        ConfigurationError: at decoration time, when both ``js`` and keyword
            arguments are given, ``js`` is not a JSON object, an option is
            unknown or has the wrong type, a class-only option is used on a
            function (or vice versa), a parameter named in ``field_params``,
            ``validators``, ``serializers``, ``annotations`` or
            ``reporter_args`` does not exist, or a method listed in
            ``methods`` does not exist. The message says how to fix it.
    """
    if js is not None and kwargs:
        raise ConfigurationError(
            "configure(): give either a JSON string or keyword arguments, not "
            "both; e.g. configure(field_params={...})"
        )
    options: dict[str, Any]
    if js is not None:
        if not isinstance(js, str):
            raise ConfigurationError(
                f"configure(): the first argument must be a JSON string, got "
                f"{type(js).__name__}; use keyword arguments, e.g. "
                "configure(methods=['run'])"
            )
        try:
            options = json.loads(js)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ConfigurationError(
                f"configure(): the JSON string is not valid JSON ({exc}); pass a "
                'JSON object such as \'{"field_params": {"a": {"gt": 0}}}\''
            ) from exc
        if not isinstance(options, dict):
            raise ConfigurationError(
                "configure(): the JSON string must hold an object of options, "
                f"got {type(options).__name__}"
            )
    else:
        options = dict(kwargs)

    if not isinstance(merge, bool):
        raise ConfigurationError(
            f"configure(): merge must be True or False, got {merge!r:.40}"
        )

    def decorator(obj: T) -> T:
        from dasf_geo.config.backend import ClassConfig, FunctionConfig

        if isinstance(obj, (staticmethod, classmethod)):
            raise ConfigurationError(
                "@configure cannot decorate a staticmethod or classmethod; only "
                "plain functions, methods and classes can be exposed"
            )
        if not callable(obj):
            raise ConfigurationError(
                f"@configure decorates functions, methods and classes, got "
                f"{type(obj).__name__} {obj!r:.60}"
            )
        if getattr(obj, "__name__", None) == "<lambda>":
            raise ConfigurationError(
                "@configure cannot decorate a lambda: it has no name to call it "
                "by; define it with def"
            )
        conf_class: type[ClassConfig] | type[FunctionConfig]
        conf_class = ClassConfig if inspect.isclass(obj) else FunctionConfig
        what = _describe(obj)
        _check_options(obj, options)
        try:
            config = conf_class(**options)
        except ValidationError as exc:
            raise ConfigurationError(
                _validation_message(exc, what, conf_class)
            ) from exc
        old = vars(obj).get(CONFIG_ATTR) if hasattr(obj, "__dict__") else None
        if merge and old is not None:
            merged = merge_config(
                old.model_dump(exclude={"registry"}, exclude_unset=True),
                config.model_dump(exclude={"registry"}, exclude_unset=True),
            )
            try:
                config = conf_class(**merged)
            except ValidationError as exc:  # pragma: no cover - both were valid
                raise ConfigurationError(
                    _validation_message(exc, what, conf_class)
                ) from exc
        try:
            setattr(obj, CONFIG_ATTR, config)
        except (AttributeError, TypeError) as exc:
            raise ConfigurationError(
                f"@configure cannot store its config on {what}: {exc}"
            ) from exc
        return obj

    return decorator
