"""The blocking bridge uses only the asyncio caller's explicit API."""

from __future__ import annotations

import ast
from pathlib import Path

import dasf_geo.transport.blocking as blocking
from dasf_geo.transport.caller import AsyncClient

#: what the bridge may use of an AsyncClient besides its public face
BRIDGE_API = {"check_size", "send_at_once", "forget", "closed", "request"}


def private_uses(source: str) -> list[tuple[int, str]]:
    """``x._name`` where ``x`` is not ``self`` (nor ``cls``), with line numbers."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (
                isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"}
            )
        ):
            found.append((node.lineno, node.attr))
    return found


def test_the_bridge_reaches_into_no_private_name() -> None:
    source = Path(blocking.__file__).read_text(encoding="utf-8")
    assert private_uses(source) == []


def test_the_check_finds_a_reach_through() -> None:
    assert private_uses("client._async._closed\nself._ok") == [
        (1, "_closed"),
        (1, "_async"),
    ]


def test_the_bridge_api_is_documented_on_the_caller() -> None:
    for name in BRIDGE_API:
        member = getattr(AsyncClient, name)
        assert (member.__doc__ or "").strip(), name
