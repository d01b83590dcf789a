"""The vendored dashboard and the stub generator's handling of bad input."""

from __future__ import annotations

import shutil
import subprocess
import sys
from typing import Any

import pytest

from dasf_geo.exceptions import ConfigurationError
from dasf_geo.web import client_source, converter_script, static_dir
from dasf_geo.web.typescript import TypeScriptError, generate_typescript
from tests.conftest import REPO_ROOT, timeout

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is missing")

FUNC: dict[str, Any] = {
    "name": "f",
    "rpc_schema": {
        "type": "object",
        "properties": {"func_name": {"const": "f"}, "x": {"type": "number"}},
        "required": ["func_name", "x"],
    },
    "return_schema": {"type": "integer"},
}


def test_static_dir_holds_the_built_dashboard() -> None:
    folder = static_dir()
    assert (folder / "index.html").is_file()
    index = (folder / "index.html").read_text()
    assert 'src="dashboard.js"' in index and 'href="dashboard.css"' in index
    bundle = (folder / "dashboard.js").read_text()
    # nothing in the page points outside its origin (no CDN, no tile server)
    assert "https://cdn" not in index and "tile.openstreetmap" not in bundle
    assert "OpenLayers" in (folder / "THIRD_PARTY_LICENSES.txt").read_text() or (
        "ol " in (folder / "THIRD_PARTY_LICENSES.txt").read_text()
    )
    assert "export class DasfClient" in client_source()
    assert converter_script().is_file()


def test_package_data_ships_the_web_files() -> None:
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    for pattern in ('"web/static/*"', '"web/ts/*.ts"', '"web/tools/*.cjs"'):
        assert pattern in pyproject


@pytest.mark.parametrize(
    ("api_info", "message"),
    [
        ("nope", "the API info must be an object with a 'functions' list"),
        ({"functions": 3}, "the API info must be an object with a 'functions' list"),
        (
            {"functions": [{"rpc_schema": {}}]},
            "the API info is malformed: KeyError: 'name'",
        ),
        (
            {"functions": [{**FUNC, "rpc_schema": "x"}]},
            "the API info is malformed: the schema for FArgs is not an object",
        ),
        (
            {"functions": [{**FUNC, "name": "bad-name"}]},
            "the name 'bad-name' is not a JavaScript identifier; it cannot be a "
            "method of the generated client",
        ),
    ],
)
def test_malformed_api_info_is_refused_with_a_message(
    api_info: Any, message: str
) -> None:
    with pytest.raises(TypeScriptError) as info:
        generate_typescript(api_info, "topic", node="/bin/true")
    assert str(info.value) == message
    assert isinstance(info.value, ConfigurationError)


def test_an_empty_topic_is_refused() -> None:
    with pytest.raises(
        TypeScriptError, match=r"^the topic must be a non-empty string$"
    ):
        generate_typescript({"functions": []}, "")


def test_missing_node_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("DASF_GEO_NODE", raising=False)
    with pytest.raises(TypeScriptError) as info:
        generate_typescript({"functions": [FUNC]}, "topic")
    assert str(info.value) == (
        "generating TypeScript needs Node.js (node, version 20 or later) to run "
        "json-schema-to-typescript, but node was not found on PATH; install it "
        "(e.g. `apt-get install nodejs`, or from https://nodejs.org) or set "
        "DASF_GEO_NODE to its path"
    )


def test_missing_node_on_the_module_command_line_exits_2() -> None:
    proc = subprocess.run(
        [sys.executable, "examples/hello_world.py", "generate", "--lang", "typescript"],
        capture_output=True,
        cwd=REPO_ROOT,
        env={"PATH": "/nonexistent", "PYTHONPATH": str(REPO_ROOT)},
        timeout=timeout(60),
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.decode().strip().endswith("or set DASF_GEO_NODE to its path")
    assert proc.stdout == b""


@needs_node
def test_hostile_names_and_texts_stay_inside_comments_and_strings() -> None:
    func = {
        **FUNC,
        "name": "delete",
        "rpc_schema": {
            **FUNC["rpc_schema"],
            "description": "ends a comment */ alert(1) /*",
        },
    }
    code = generate_typescript({"functions": [func]}, 'top"ic')
    assert "async delete_(args: DeleteArgs" in code
    assert "ends a comment *\\/ alert(1) /*" in code
    assert 'export const TOPIC = "top\\"ic";' in code
