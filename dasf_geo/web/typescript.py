"""TypeScript client stubs from a service's API info.

:func:`generate_typescript` writes one self-contained ``.ts`` file: the DASF
WebSocket client of the dashboard (``ts/dasf_client.ts``, which runs in
browsers and in Node >= 20), the argument and result types converted from
the functions' JSON schemas by json-schema-to-typescript, and a class with
one async method per function (and per method of each backend class).

The converter runs on Node: ``node`` must be on ``PATH`` (or given as
``node=``); nothing else is needed, the converter is shipped bundled.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dasf_geo.exceptions import ConfigurationError
from dasf_geo.web import client_source, converter_script

__all__ = ["TypeScriptError", "generate_typescript"]

#: schema markers of arguments and results that travel as NetCDF
_XARRAY = ("xarray.Dataset", "xarray.DataArray")
_IDENT = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_RESERVED = frozenset(
    [
        "break",
        "case",
        "catch",
        "class",
        "const",
        "continue",
        "debugger",
        "default",
        "delete",
        "do",
        "else",
        "enum",
        "export",
        "extends",
        "false",
        "finally",
        "for",
        "function",
        "if",
        "import",
        "in",
        "instanceof",
        "new",
        "null",
        "return",
        "super",
        "switch",
        "this",
        "throw",
        "true",
        "try",
        "typeof",
        "var",
        "void",
        "while",
        "with",
        "yield",
        "let",
        "static",
        "implements",
        "interface",
        "package",
        "private",
        "protected",
        "public",
        "await",
        "constructor",
        "client",
        "close",
    ]
)
_NODE_TIMEOUT = 60.0


class TypeScriptError(ConfigurationError):
    """The TypeScript client cannot be generated (no node, a bad schema)."""


def _pascal(name: str) -> str:
    parts = re.split(r"[^A-Za-z0-9]+", name)
    text = "".join(p[:1].upper() + p[1:] for p in parts if p)
    if not text or not text[0].isalpha():
        text = "T" + text
    return text


def _member_name(name: str) -> str:
    if not _IDENT.match(name):
        raise TypeScriptError(
            f"the name {name!r} is not a JavaScript identifier; it cannot be a method "
            "of the generated client"
        )
    return f"{name}_" if name in _RESERVED else name


def _comment(text: str, indent: str) -> str:
    text = (text or "").strip().replace("*/", "*\\/")
    if not text:
        return ""
    lines = [f"{indent}/**"]
    lines += [f"{indent} * {line}".rstrip() for line in text.splitlines()]
    lines.append(f"{indent} */")
    return "\n".join(lines) + "\n"


def _clean(node: Any, *, top: bool) -> Any:
    """Drop titles below the top (json-schema-to-typescript would name every
    titled number ``Lat``, ``Lat1``...) and type the NetCDF values."""
    if isinstance(node, list):
        return [_clean(item, top=False) for item in node]
    if not isinstance(node, dict):
        return node
    x_type = node.get("x-dasf-type")
    if x_type in _XARRAY:
        kept = {k: node[k] for k in ("description",) if k in node}
        return {**kept, "tsType": "NetcdfValue"}
    out = {}
    for key, value in node.items():
        if key == "title" and not top:
            continue
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {k: _clean(v, top=key != "properties") for k, v in value.items()}
        else:
            out[key] = _clean(value, top=False)
    return out


def _rewrite_refs(node: Any, renames: Mapping[str, str]) -> Any:
    if isinstance(node, list):
        return [_rewrite_refs(item, renames) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            name = value.rsplit("/", 1)[-1]
            out[key] = f"#/$defs/{renames.get(name, name)}"
        else:
            out[key] = _rewrite_refs(value, renames)
    return out


class _Types:
    """Collects every argument and result schema into one schema's ``$defs``."""

    def __init__(self) -> None:
        self.defs: dict[str, Any] = {}

    def add(self, given: Mapping[str, Any], title: str, drop: tuple[str, ...]) -> str:
        if not isinstance(given, Mapping):
            raise TypeScriptError(
                f"the API info is malformed: the schema for {title} is not an object"
            )
        schema: dict[str, Any] = copy.deepcopy(dict(given))
        local = {**schema.pop("$defs", {}), **schema.pop("definitions", {})}
        renames: dict[str, str] = {}
        for name, sub in local.items():
            target = name
            n = 2
            while target in self.defs and self.defs[target] != sub:
                target = f"{name}{n}"
                n += 1
            renames[name] = target
        for name, sub in local.items():
            self.defs[renames[name]] = _clean(_rewrite_refs(sub, renames), top=True)
        for key in drop:
            schema.get("properties", {}).pop(key, None)
            if key in schema.get("required", []):
                schema["required"] = [r for r in schema["required"] if r != key]
        schema.pop("default", None)
        result = title.endswith("Result") and schema.get("x-dasf-type") in _XARRAY
        schema = _clean(_rewrite_refs(schema, renames), top=True)
        if result:
            schema["tsType"] = "NetcdfResult"
        schema["title"] = title
        while title in self.defs:
            title += "_"
            schema["title"] = title
        self.defs[title] = schema
        return title


def _find_node(node: str | None) -> str:
    found = node or os.environ.get("DASF_GEO_NODE") or shutil.which("node")
    if not found or not shutil.which(found):
        raise TypeScriptError(
            "generating TypeScript needs Node.js (node, version 20 or later) to run "
            "json-schema-to-typescript, but node was not found on PATH; install it "
            "(e.g. `apt-get install nodejs`, or from https://nodejs.org) or set "
            "DASF_GEO_NODE to its path"
        )
    return found


def _convert(schema: dict[str, Any], name: str, node: str | None) -> str:
    script = converter_script()
    if not script.is_file():
        raise TypeScriptError(
            f"the bundled converter {script} is missing; reinstall dasf_geo (or run "
            "`npm ci && npm run build` in web/)"
        )
    try:
        proc = subprocess.run(
            [_find_node(node), str(script)],
            input=json.dumps({"schema": schema, "name": name}).encode(),
            capture_output=True,
            timeout=_NODE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise TypeScriptError(
            f"json-schema-to-typescript did not finish within {_NODE_TIMEOUT:.0f} s"
        ) from exc
    if proc.returncode != 0:
        raise TypeScriptError(
            "json-schema-to-typescript failed: "
            + proc.stderr.decode("utf-8", "replace").strip()[:2000]
        )
    return proc.stdout.decode("utf-8")


def _prelude() -> str:
    return (Path(__file__).parent / "ts" / "stub_prelude.ts").read_text("utf-8")


def _netcdf_args(schema: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for name, prop in (schema.get("properties") or {}).items():
        if isinstance(prop, dict) and prop.get("x-dasf-type") in _XARRAY:
            out[name] = prop["x-dasf-type"].split(".")[1]
    return out


def _has_args(schema: Mapping[str, Any], drop: tuple[str, ...]) -> tuple[bool, bool]:
    props = [k for k in (schema.get("properties") or {}) if k not in drop]
    required = [k for k in schema.get("required") or [] if k not in drop]
    return bool(props), bool(required)


def _method(
    name: str,
    info: Mapping[str, Any],
    args_type: str,
    result_type: str,
    request: str,
    indent: str,
) -> str:
    schema = info["rpc_schema"]
    has, required = _has_args(schema, ("func_name",))
    x_type = (info.get("return_schema") or {}).get("x-dasf-type")
    accept = "NETCDF_ACCEPT" if x_type in _XARRAY else "undefined"
    params = (
        f"args: {args_type}{'' if required else ' = {}'}, " if has else ""
    ) + "options: CallOptions = {}"
    body_args = "args" if has else "{}"
    in_class = "class_name" in request
    offset = ", ctorParts.length" if in_class else ""
    all_parts = "[...ctorParts, ...parts]" if in_class else "parts"
    doc = _comment(schema.get("description", ""), indent)
    return (
        f"{doc}{indent}async {_member_name(name)}({params}): "
        f"Promise<{result_type}> {{\n"
        f"{indent}  const [fn, parts] = await prepare(this.client, {body_args}, "
        f"{json.dumps(_netcdf_args(schema))}{offset});\n"
        f"{indent}  return (await this.client.call({request}, "
        f"{{ accept: {accept}, ...options }}, {all_parts})) as {result_type};\n"
        f"{indent}}}\n"
    )


def generate_typescript(
    api_info: Mapping[str, Any], topic: str, *, node: str | None = None
) -> str:
    """The TypeScript client for a service with this API info on ``topic``.

    Args:
        api_info: the API info (``functions``, ``classes``) as the backend
            sends it for an ``api_info`` request.
        topic: the service's topic (the generated client's default).
        node: the ``node`` executable (default: ``DASF_GEO_NODE`` or ``node``
            on ``PATH``).

    Returns:
        The source of a self-contained ``.ts`` module.

    Raises:
        TypeScriptError: node is missing, the converter fails, the API info
            is malformed, or a function name is not a JavaScript identifier.
    """
    if not isinstance(api_info, Mapping) or not isinstance(
        api_info.get("functions", []), list
    ):
        raise TypeScriptError("the API info must be an object with a 'functions' list")
    if not isinstance(topic, str) or not topic:
        raise TypeScriptError("the topic must be a non-empty string")
    types = _Types()
    service = _pascal(topic)
    methods: list[str] = []
    try:
        for func in api_info.get("functions") or []:
            pascal = _pascal(func["name"])
            args_t = types.add(func["rpc_schema"], f"{pascal}Args", ("func_name",))
            result_t = types.add(func.get("return_schema") or {}, f"{pascal}Result", ())
            methods.append(
                _method(
                    func["name"],
                    func,
                    args_t,
                    result_t,
                    f"{{ func_name: {json.dumps(func['name'])}, ...fn }}",
                    "  ",
                )
            )
        classes: list[str] = []
        for cls in api_info.get("classes") or []:
            cname = _member_name(cls["name"])
            ctor_t = types.add(
                cls["rpc_schema"], f"{_pascal(cname)}Init", ("class_name",)
            )
            has, required = _has_args(cls["rpc_schema"], ("class_name",))
            inner = []
            for meth in cls.get("methods") or []:
                pascal = _pascal(f"{cname}_{meth['name']}")
                args_t = types.add(meth["rpc_schema"], f"{pascal}Args", ("func_name",))
                result_t = types.add(
                    meth.get("return_schema") or {}, f"{pascal}Result", ()
                )
                request = (
                    f"{{ class_name: {json.dumps(cls['name'])}, ...ctor, "
                    f"function: {{ func_name: {json.dumps(meth['name'])}, ...fn }} }}"
                )
                inner.append(
                    _method(meth["name"], meth, args_t, result_t, request, "      ")
                )
            ctor_param = f"init: {ctor_t}{'' if required else ' = {}'}" if has else ""
            ctor_value = "init" if has else "{}"
            classes.append(
                _comment(cls["rpc_schema"].get("description", ""), "  ")
                + f"  async {cname}({ctor_param}) {{\n"
                + "    const [ctor, ctorParts] = await prepare("
                + f"this.client, {ctor_value}, "
                + f"{json.dumps(_netcdf_args(cls['rpc_schema']))});\n"
                + "    const self = this;\n"
                + "    return {\n"
                + "\n".join(
                    m.replace("this.client", "self.client").rstrip("\n") + ","
                    for m in inner
                )
                + "\n    };\n  }\n"
            )
    except (KeyError, TypeError, AttributeError) as exc:
        raise TypeScriptError(
            f"the API info is malformed: {type(exc).__name__}: {exc}"
        ) from exc
    root = {
        "title": f"{service}Types",
        "type": "object",
        "additionalProperties": False,
        "properties": {name: {"$ref": f"#/$defs/{name}"} for name in types.defs},
        "$defs": types.defs,
    }
    declarations = _convert(root, f"{service}Types", node)
    description = (api_info.get("rpc_schema") or {}).get("description", "")
    header = (
        f"// A TypeScript client for the DASF service on topic {json.dumps(topic)}.\n"
        "// Generated by dasf_geo from the service's API info: do not edit.\n"
        "// Types: json-schema-to-typescript. Runs in browsers and in Node >= 20\n"
        "// (Node 20: --experimental-websocket, or pass the `ws` package's\n"
        "// WebSocket).\n"
        "/* eslint-disable */\n"
    )
    service_class = (
        _comment(description or f"The service on topic {topic}.", "")
        + f"export class {service} {{\n"
        + "  readonly client: DasfClient;\n\n"
        + "  /** Connect to the service: `new "
        + service
        + '({ broker: "ws://127.0.0.1:8080" })`. */\n'
        + "  constructor(\n"
        + '    options: (Omit<DasfClientOptions, "topic"> & { topic?: string }) '
        + "| DasfClient,\n  ) {\n"
        + "    this.client = options instanceof DasfClient\n"
        + "      ? options\n      : new DasfClient({ "
        + f"topic: {json.dumps(topic)}, ...options }});\n"
        + "  }\n\n"
        + "\n".join(methods + classes)
        + "\n  /** Close the connection. */\n"
        + "  close(): void {\n    this.client.close();\n  }\n}\n"
    )
    return "\n".join(
        [
            header,
            client_source(),
            "// --- types (json-schema-to-typescript)",
            declarations,
            _prelude(),
            f"/** The service's topic. */\nexport const TOPIC = {json.dumps(topic)};\n",
            service_class,
        ]
    )
