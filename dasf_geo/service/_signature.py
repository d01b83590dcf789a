"""Reading a service's API info: signatures, docstrings and result decoding.

The dynamic client (:mod:`dasf_geo.service.dynamic`) builds its functions
from the JSON schemas a backend publishes with ``api_info``; this module
turns one function's schemas into a Python signature, a docstring that
names data types as Python types (``xarray.Dataset``, not their wire
form), and decodes results as the return schema says.
"""

from __future__ import annotations

import inspect
import keyword
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dasf_geo.exceptions import RemoteError
from dasf_geo.transport.client import BinaryValue

__all__ = ["decode_value", "schema_type_name"]

#: JSON schema ``type`` -> the Python type name shown in signatures
_JSON_TYPES = {
    "string": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "array": "list",
    "object": "dict",
    "null": "None",
}


def schema_type_name(schema: Mapping[str, Any]) -> str:
    """A short Python-looking type name for a JSON schema (for signatures)."""
    media = schema.get("contentMediaType")
    if isinstance(media, str):
        return str(schema.get("title") or media)
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            names = [schema_type_name(s) for s in schema[key] if isinstance(s, Mapping)]
            return " | ".join(dict.fromkeys(names))
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(_JSON_TYPES.get(str(k), str(k)) for k in kind)
    if kind == "array" and isinstance(schema.get("items"), Mapping):
        return f"list[{schema_type_name(schema['items'])}]"
    return _JSON_TYPES.get(str(kind), "Any")


def _data_type(schema: Mapping[str, Any]) -> str | None:
    """The Python type of a registered data type (``x-dasf-type``), if any."""
    from dasf_geo.data import SCHEMA_TYPE_KEY

    kind = schema.get(SCHEMA_TYPE_KEY)
    if isinstance(kind, str):
        return kind
    for key in ("anyOf", "oneOf"):
        for option in schema.get(key) or ():
            if isinstance(option, Mapping):
                found = _data_type(option)
                if found:
                    return found
    return None


def _describe_param(param: _Param) -> str:
    """``name (type): description`` for a docstring's Args section."""
    kind = _data_type(param.schema)
    type_name = kind or schema_type_name(param.schema)
    description = str(param.schema.get("description") or "").strip()
    if kind and description.startswith(kind):
        # the type's own description says how it travels, not what it is
        description = ""
    text = f"{param.name} ({type_name})"
    if not param.required:
        text += f", default {param.default!r:.40}"
    return f"{text}: {description}" if description else text


@dataclass
class _Param:
    name: str
    required: bool
    default: Any
    schema: dict[str, Any]


@dataclass
class _Signature:
    """The parameters of a function or constructor, read from its schema."""

    name: str
    doc: str
    params: list[_Param]
    defs: dict[str, Any] = field(default_factory=dict)
    return_schema: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_schema(
        cls,
        name: str,
        schema: Mapping[str, Any],
        skip: set[str],
        return_schema: Mapping[str, Any] | None = None,
    ) -> _Signature:
        if not isinstance(schema, Mapping):
            raise RemoteError(f"the API info of {name!r} has no JSON schema")
        props = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        params = []
        for pname, pschema in props.items():
            if pname in skip or not isinstance(pschema, Mapping):
                continue
            if pschema.get("is_reporter"):
                continue  # the backend fills progress reporters in itself
            if not pname.isidentifier() or keyword.iskeyword(pname):
                raise RemoteError(
                    f"the API of {name!r} has a parameter {pname!r} that is not "
                    "a Python identifier"
                )
            params.append(
                _Param(
                    name=pname,
                    required=pname in required,
                    default=pschema.get("default"),
                    schema=dict(pschema),
                )
            )
        # required parameters first, in schema order, as Python demands
        params.sort(key=lambda p: not p.required)
        defs = dict(schema.get("$defs") or {})
        ret = dict(return_schema or {})
        return cls(
            name=name,
            doc=str(schema.get("description") or ""),
            params=params,
            defs=defs,
            return_schema=ret,
        )

    def signature(self) -> inspect.Signature:
        parameters = [
            inspect.Parameter(
                p.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=inspect.Parameter.empty if p.required else p.default,
                annotation=schema_type_name(p.schema),
            )
            for p in self.params
        ]
        ret = schema_type_name(self.return_schema) if self.return_schema else "Any"
        return inspect.Signature(parameters, return_annotation=ret)

    def docstring(self) -> str:
        """The docstring: the description, then every argument with its type.

        A data type is named as the Python type it is (``xarray.Dataset``),
        not by the form it travels in.
        """
        lines = [self.doc.strip()] if self.doc.strip() else []
        if self.params:
            lines += ["", "Args:"]
            lines += [f"    {_describe_param(p)}" for p in self.params]
        if self.return_schema:
            kind = _data_type(self.return_schema)
            lines += [
                "",
                "Returns:",
                f"    {kind or schema_type_name(self.return_schema)}",
            ]
        return "\n".join(lines)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The arguments of a call by name, not encoded yet (TypeError for a
        bad call); :func:`encode_request` encodes them."""
        try:
            bound = self.signature().bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}(): {exc}") from None
        return dict(bound.arguments)

    @property
    def accept(self) -> tuple[str, ...] | None:
        """Binary reply types to ask for: when the result is a Dataset/DataArray."""
        from dasf_geo.data import BINARY_MEDIA_TYPES, SCHEMA_TYPE_KEY

        kind = self.return_schema.get(SCHEMA_TYPE_KEY)
        if isinstance(kind, str) and kind.startswith("xarray."):
            return BINARY_MEDIA_TYPES
        return None

    def decode(self, value: Any, decode: bool = True) -> Any:
        """The result as a Python object (``decode``) or as its JSON form."""
        if isinstance(value, BinaryValue):
            return value.decode() if decode else value.to_json()
        return decode_value(self.return_schema, value) if decode else value


def decode_value(schema: Mapping[str, Any], value: Any) -> Any:
    """Turn a JSON result back into Python objects where ``schema`` says so."""
    from dasf_geo import data

    decode = getattr(data, "decode_by_schema", None)
    if decode is None or not schema:
        return value
    return decode(dict(schema), value, dict(schema.get("$defs") or {}))
