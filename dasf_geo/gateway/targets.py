"""What a route calls: a function or a class method, read from the API info.

A :class:`Target` knows the JSON schemas of one callable (the function's,
or the constructor's and the method's) and builds the DASF request from
the arguments an HTTP caller sends: for a method, body members that are
the method's parameters go to the method, the others to the constructor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dasf_geo.gateway.errors import HTTPError

__all__ = ["RESERVED_FIELDS", "Target", "find_target", "list_targets"]

#: Request members that name the callee, never arguments.
RESERVED_FIELDS = frozenset({"func_name", "class_name", "function"})

#: The schema key naming the registry type (``xarray.Dataset``…).
TYPE_KEY = "x-dasf-type"


@dataclass
class Target:
    """One callable of a service.

    Attributes:
        topic: the service's topic.
        name: the function's or method's name.
        class_name: the class's name for a method, else None.
        rpc_schema: the JSON schema of the function's (method's) request.
        return_schema: the JSON schema of its result.
        class_schema: the constructor's request schema (methods only).
    """

    topic: str
    name: str
    class_name: str | None
    rpc_schema: dict[str, Any]
    return_schema: dict[str, Any]
    class_schema: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        """``function`` or ``Class/method`` (as in the URL)."""
        return f"{self.class_name}/{self.name}" if self.class_name else self.name

    @property
    def label(self) -> str:
        """``function()`` or ``Class.method()`` (as in DASF messages)."""
        return (
            f"{self.class_name}.{self.name}()" if self.class_name else f"{self.name}()"
        )

    @property
    def process_id(self) -> str:
        """The OGC process id: ``topic.function`` or ``topic.Class.method``."""
        return (
            f"{self.topic}.{self.class_name}.{self.name}"
            if self.class_name
            else (f"{self.topic}.{self.name}")
        )

    @property
    def description(self) -> str:
        """The docstring's summary the backend published."""
        return str(self.rpc_schema.get("description") or "")

    def parameters(self) -> dict[str, dict[str, Any]]:
        """Every argument's schema by name: constructor's first, then method's.

        Progress reporters (``is_reporter``) are filled in by the backend and
        are not arguments.
        """
        params: dict[str, dict[str, Any]] = {}
        for schema in (self.class_schema, self.rpc_schema):
            for name, prop in (schema.get("properties") or {}).items():
                if name in RESERVED_FIELDS or not isinstance(prop, Mapping):
                    continue
                if prop.get("is_reporter"):
                    continue
                params[name] = dict(prop)
        return params

    def required(self) -> list[str]:
        """The names of the required arguments."""
        names: list[str] = []
        for schema in (self.class_schema, self.rpc_schema):
            names += [
                n for n in schema.get("required") or [] if n not in RESERVED_FIELDS
            ]
        return names

    def data_parameters(self, prefix: str = "xarray.") -> list[str]:
        """The arguments whose registry type starts with ``prefix``."""
        return [
            name
            for name, prop in self.parameters().items()
            if str(prop.get(TYPE_KEY, "")).startswith(prefix)
        ]

    def netcdf_parameters(self) -> list[str]:
        """The arguments a NetCDF upload may be for.

        The Dataset/DataArray arguments; for a backend whose schemas do not
        say (demessaging publishes ``{"title": "Ds"}`` for a Dataset), the
        arguments whose schema has no type at all.
        """
        typed = self.data_parameters()
        if typed:
            return typed
        return [name for name, prop in self.parameters().items() if untyped(prop)]

    @property
    def may_return_netcdf(self) -> bool:
        """True for a Dataset/DataArray result, or an untyped one."""
        return self.return_type.startswith("xarray.") or untyped(self.return_schema)

    @property
    def return_type(self) -> str:
        """The registry type of the result (``xarray.Dataset``…) or ``""``."""
        return str(self.return_schema.get(TYPE_KEY, ""))

    def build_request(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The DASF request for ``arguments`` (JSON values by name).

        Raises:
            HTTPError: 400 when an argument name is reserved.
        """
        for name in arguments:
            if name in RESERVED_FIELDS:
                raise HTTPError(
                    400,
                    f"{name!r} is not an argument of {self.label}: the route names "
                    "the function",
                )
        if self.class_name is None:
            return {"func_name": self.name, **arguments}
        method_props = set((self.rpc_schema.get("properties") or {}).keys())
        method_args = {k: v for k, v in arguments.items() if k in method_props}
        init_args = {k: v for k, v in arguments.items() if k not in method_props}
        return {
            "class_name": self.class_name,
            **init_args,
            "function": {"func_name": self.name, **method_args},
        }


def untyped(schema: Mapping[str, Any]) -> bool:
    """True for a schema that says nothing about the value's type."""
    return not any(
        key in schema
        for key in (
            "type",
            "$ref",
            "anyOf",
            "oneOf",
            "allOf",
            "const",
            "enum",
            TYPE_KEY,
        )
    )


def list_targets(topic: str, api_info: Mapping[str, Any]) -> list[Target]:
    """Every function and method of a service's API info (reserved ``~`` ones
    left out)."""
    targets = []
    for func in api_info.get("functions") or []:
        if not isinstance(func, Mapping):
            continue
        name = str(func.get("name", ""))
        if not name or name.startswith("~"):
            continue
        targets.append(
            Target(
                topic,
                name,
                None,
                dict(func.get("rpc_schema") or {}),
                dict(func.get("return_schema") or {}),
            )
        )
    for cls in api_info.get("classes") or []:
        if not isinstance(cls, Mapping):
            continue
        for method in cls.get("methods") or []:
            if not isinstance(method, Mapping):
                continue
            targets.append(
                Target(
                    topic,
                    str(method.get("name", "")),
                    str(cls.get("name", "")),
                    dict(method.get("rpc_schema") or {}),
                    dict(method.get("return_schema") or {}),
                    dict(cls.get("rpc_schema") or {}),
                )
            )
    return targets


# (topic, id(api_info)) -> (api_info, {(name, method): target}); the API info
# object is kept so that its id is not reused while the entry lives
_INDEX: dict[tuple[str, int], tuple[Any, dict[tuple[str, str | None], Target]]] = {}


def find_target(
    topic: str, api_info: Mapping[str, Any], name: str, method: str | None = None
) -> Target | None:
    """The function ``name`` (or method ``method`` of class ``name``), or None.

    The targets of one API info object are built once (a service's cached
    API info is the same object until it is asked again).
    """
    key = (topic, id(api_info))
    entry = _INDEX.get(key)
    if entry is None or entry[0] is not api_info:
        index: dict[tuple[str, str | None], Target] = {}
        for target in list_targets(topic, api_info):
            if target.class_name is None:
                index[(target.name, None)] = target
            else:
                index[(target.class_name, target.name)] = target
        if len(_INDEX) > 256:
            _INDEX.clear()
        entry = _INDEX[key] = (api_info, index)
    return entry[1].get((name, method))


def describe_members(api_info: Mapping[str, Any]) -> str:
    """``a, b, Class/method`` for messages."""
    names = [t.path for t in list_targets("", api_info)]
    return ", ".join(names) or "nothing"
