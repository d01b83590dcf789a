"""Schema-guided decoding: a JSON value back into Python objects.

A caller that has only the API info (the JSON schemas of a backend's
functions) decodes a result with :func:`decode_by_schema`: wherever the
schema names a registered type (``"x-dasf-type"``), the registry's entry
decodes the value at that place.
"""

from __future__ import annotations

from typing import Any

from dasf_geo.data._registry import MAX_DEPTH, SCHEMA_TYPE_KEY, entry_named

__all__ = ["decode_by_schema"]


def _json_type_ok(schema: dict[str, Any], value: Any) -> bool:
    kind = schema.get("type")
    if kind is None:
        return (
            SCHEMA_TYPE_KEY in schema
            or "$ref" in schema
            or bool({"anyOf", "oneOf", "allOf"} & set(schema))
            or not schema
        )
    kinds = kind if isinstance(kind, list) else [kind]
    checks = {
        "null": value is None,
        "string": isinstance(value, str),
        "boolean": isinstance(value, bool),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "array": isinstance(value, (list, tuple)),
        "object": isinstance(value, dict),
    }
    return any(checks.get(k, False) for k in kinds)


def decode_by_schema(
    schema: dict[str, Any], value: Any, defs: dict[str, Any] | None = None
) -> Any:
    """Turn a JSON ``value`` back into Python objects, guided by its schema.

    Wherever the schema (as published in the API info) carries
    ``"x-dasf-type"`` of a registered type, the value at that place is
    decoded with the registry (e.g. base64 NetCDF → ``xr.Dataset``). Lists,
    dicts, tuples, unions and ``$ref`` s into ``defs`` (default: the
    schema's own ``$defs``) are followed; everything else is returned
    unchanged, so an unknown schema gives back ``value`` itself.

    Raises:
        DataError: a value marked as a registered type cannot be decoded.
    """
    if not isinstance(schema, dict):
        return value
    if defs is None:
        defs = schema.get("$defs") or schema.get("definitions") or {}
    return _decode(schema, value, defs, 0)


def _decode(schema: Any, value: Any, defs: dict[str, Any], depth: int) -> Any:
    if not isinstance(schema, dict) or depth > MAX_DEPTH:
        return value
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = defs.get(ref.rsplit("/", 1)[-1])
        return _decode(target, value, defs, depth + 1) if target else value
    name = schema.get(SCHEMA_TYPE_KEY)
    if isinstance(name, str):
        if value is None:
            return None
        entry = entry_named(name)
        if entry is None:
            return value
        return entry.decode(value)
    for key in ("anyOf", "oneOf"):
        subs = schema.get(key)
        if isinstance(subs, list):
            for sub in subs:
                if isinstance(sub, dict) and _json_type_ok(sub, value):
                    if sub.get("$ref"):
                        target = defs.get(str(sub["$ref"]).rsplit("/", 1)[-1], {})
                        if not _json_type_ok(target, value):
                            continue
                    return _decode(sub, value, defs, depth + 1)
            return value
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1:
        return _decode(all_of[0], value, defs, depth + 1)
    if isinstance(value, list):
        prefix = schema.get("prefixItems")
        items = schema.get("items")
        out = []
        for i, item in enumerate(value):
            sub = prefix[i] if isinstance(prefix, list) and i < len(prefix) else items
            out.append(_decode(sub, item, defs, depth + 1))
        return out
    if isinstance(value, dict):
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        extra = schema.get("additionalProperties")
        return {
            k: _decode(props.get(k, extra), v, defs, depth + 1)
            for k, v in value.items()
        }
    return value
