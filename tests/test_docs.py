"""Every ``python`` code block in docs/ runs, in order, one namespace per page.

Blocks fenced as ```` ```sh run ```` run too, with bash, in the same order
(other shell blocks, ```` ```bash ````, are shown but not run). A page may
need running services first: :data:`PAGE_SETUP` names a context manager per
page that starts them (docs/http.md: a broker, ``examples/geo_service.py``
and an HTTP gateway, whose URL is in ``$GATEWAY``).
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

DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_ANY_BLOCK = re.compile(r"^```(python|sh run)\n(.*?)^```", re.S | re.M)


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
