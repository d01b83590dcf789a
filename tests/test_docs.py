"""The code blocks of the docs run as written.

- Every ``python`` block in docs/ runs, in order, one namespace per page;
  blocks fenced as ```` ```sh run ```` run with bash among them, in the same
  order. A page may need running services first: :data:`PAGE_SETUP` names a
  context manager per page that starts them (docs/http.md: a broker,
  ``examples/geo_service.py`` and an HTTP gateway, whose URL is in
  ``$GATEWAY``).
- Every ``console`` block in docs/ and the README runs, in order, one
  terminal per page, and prints what the page says it prints (the
  convention is described in :mod:`tests.console`).
- Other shell blocks (``bash``, ``sh``, ``shell``) are only for commands the
  tests cannot run: a remote broker (``example.org``), a Django project
  (``manage.py``), the test suite itself, the reference peers'
  benchmarks (``_reference``), or installing (the README's two set-up
  commands, which .ci/run runs).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, SAMPLE_DATA, timeout
from tests.console import Session, console_blocks, output_matches, parse_steps

DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))
PAGES = [*DOCS, REPO_ROOT / "README.md"]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_ANY_BLOCK = re.compile(r"^```(python|sh run)\n(.*?)^```", re.S | re.M)
_SHELL = re.compile(r"^```(?:bash|sh|shell)\n(.*?)^```", re.S | re.M)
#: what a shell block that is not run must need
_NOT_RUNNABLE = ("example.org", "manage.py", "pytest", "pip install", "_reference")


def python_blocks(path: Path) -> list[str]:
    """The ``python`` fenced blocks of a Markdown file."""
    return _BLOCK.findall(path.read_text(encoding="utf-8"))


def runnable_blocks(path: Path) -> list[tuple[str, str]]:
    """``(kind, code)`` of the ``python`` and ``sh run`` blocks, in order."""
    return _ANY_BLOCK.findall(path.read_text(encoding="utf-8"))


@contextlib.contextmanager
def _http_gateway(tmp_path: Path, monkeypatch: Any) -> Iterator[None]:
    """A broker, examples/geo_service.py and a gateway; ``$GATEWAY`` set."""
    from dasf_geo.broker import EmbeddedBroker
    from dasf_geo.gateway import GatewayServer, GatewaySettings
    from tests.conftest import EXAMPLES, free_port
    from tests.gateway.conftest import serve_module

    shutil.copytree(SAMPLE_DATA, tmp_path / "sample_data")
    broker = EmbeddedBroker(host="127.0.0.1", port=free_port()).start()
    try:
        backend = serve_module(
            str(EXAMPLES / "geo_service.py"), "geo_service", broker.url
        )
        try:
            settings = GatewaySettings(broker=broker.url, timeout=timeout(60))
            server = GatewayServer(settings, "127.0.0.1", 0).start()
            try:
                monkeypatch.setenv("GATEWAY", server.url)
                yield
            finally:
                server.stop()
        finally:
            backend.stop()
    finally:
        broker.stop()


#: page name -> context manager (tmp_path, monkeypatch) running what it needs
PAGE_SETUP: dict[str, Callable[[Path, Any], Any]] = {"http.md": _http_gateway}


def _run_shell(code: str, where: str, cwd: Path) -> None:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code],
        cwd=cwd,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=timeout(120),
    )
    assert result.returncode == 0, (
        f"{where} exited with {result.returncode}:\n{result.stdout[-2000:]}\n"
        f"{result.stderr[-2000:]}"
    )


@pytest.mark.parametrize("page", DOCS, ids=[p.name for p in DOCS])
def test_doc_code_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    setup = PAGE_SETUP.get(page.name)
    with setup(tmp_path, monkeypatch) if setup else contextlib.nullcontext():
        for i, (kind, block) in enumerate(runnable_blocks(page)):
            where = f"{page.name}[block {i}]"
            if kind == "sh run":
                _run_shell(block, where, tmp_path)
                continue
            code = compile(block, where, "exec")
            exec(code, namespace)


CONSOLE_PAGES = [p for p in PAGES if console_blocks(p.read_text(encoding="utf-8"))]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("page", CONSOLE_PAGES, ids=[p.name for p in CONSOLE_PAGES])
def test_doc_console_blocks_print_what_they_say(page):
    text = page.read_text(encoding="utf-8")
    session = Session()
    try:
        for line, body in console_blocks(text):
            for step in parse_steps(body, line):
                session.run(step, f"{page.name}:{step.line}")
    finally:
        session.close()


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_shell_blocks_that_do_not_run_need_what_tests_lack(page):
    for block in _SHELL.findall(page.read_text(encoding="utf-8")):
        assert any(word in block for word in _NOT_RUNNABLE), (
            f"{page.name}: this shell block can run in the tests; make it a "
            f"`console` block with the output it prints:\n{block}"
        )


def test_docs_use_the_activated_environment():
    """The README says to activate .venv once; the pages use bare commands."""
    for page in DOCS:
        for line, body in console_blocks(page.read_text(encoding="utf-8")):
            assert ".venv/bin/" not in body, f"{page.name}:{line}"


@pytest.mark.parametrize(
    ("expected", "actual", "prefix", "ok"),
    [
        (["a", "b"], ["a", "b"], False, True),
        (["a", "b"], ["a", "b", "c"], False, False),
        (["a", "b"], ["a", "b", "c"], True, True),
        (["a", "...", "d"], ["a", "b", "c", "d"], False, True),
        (["a", "...", "d"], ["a", "d"], False, True),
        (["x ... y"], ["x 12 y"], False, True),
        (["x ... y"], ["x 12 z"], False, False),
        (["a  "], ["a"], False, True),
        ([], ["a"], False, False),
    ],
)
def test_output_comparison(expected, actual, prefix, ok):
    assert output_matches(expected, actual, prefix) is ok


def test_parse_steps_joins_continued_lines_and_keeps_output():
    steps = parse_steps("$ echo a \\\n  b\na b\n$ true &\n\n", 10)
    assert [(s.command, s.expected, s.line) for s in steps] == [
        ("echo a \\\n  b", ["a b"], 10),
        ("true &", [], 13),
    ]
    assert steps[1].background
    with pytest.raises(ValueError, match="line 1: output before"):
        parse_steps("oops\n$ true\n")
