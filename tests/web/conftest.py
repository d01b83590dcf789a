"""Fixtures for the web tests: npm packages from the committed lockfile (cached),
running services, a static server for the dashboard and headless Chromium.

Tests that need npm skip when npm is missing or cannot install; browser tests
skip when /usr/bin/chromium (the Debian ``chromium`` package) or Playwright
is missing. Screenshots go to ``$DASF_GEO_ARTIFACTS`` (default
``test-artifacts/web`` in the repository).
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, free_port, timeout
from tests.e2e.conftest import Proc, wait_until

WEB = REPO_ROOT / "web"
MODULES = Path(__file__).parent / "modules"
CHROMIUM = Path(os.environ.get("DASF_GEO_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = (
    Path(os.environ.get("DASF_GEO_ARTIFACTS", REPO_ROOT / "test-artifacts")) / "web"
)


def npm_cache_dir() -> Path:
    """Where web/package-lock.json is installed (one folder per lockfile)."""
    lock = (WEB / "package-lock.json").read_bytes()
    digest = hashlib.sha256(lock + (WEB / "package.json").read_bytes()).hexdigest()[:16]
    base = (
        os.environ.get("DASF_GEO_NPM_CACHE")
        or Path.home() / ".cache" / "dasf_geo" / "npm"
    )
    return Path(base) / f"web-{digest}"


@functools.cache
def _install_node_modules() -> Path | str:
    npm = shutil.which("npm")
    node = shutil.which("node")
    if npm is None or node is None:
        return "npm and node are not installed (Node.js >= 20 with npm is needed)"
    target = npm_cache_dir()
    done = target / ".installed"
    if done.exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(WEB / name, target / name)
    proc = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=target,
        capture_output=True,
        timeout=timeout(300),
        check=False,
    )
    if proc.returncode != 0:
        return (
            "npm ci failed (is the npm registry reachable?): "
            + proc.stderr.decode("utf-8", "replace")[-500:]
        )
    done.write_text("ok\n")
    return target


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """The folder holding ``node_modules`` installed from the committed lockfile."""
    result = _install_node_modules()
    if isinstance(result, str):
        pytest.skip(result)
    return result


def node_bin(modules: Path, name: str) -> str:
    """The path of an npm package's executable (tsc, esbuild)."""
    return str(modules / "node_modules" / ".bin" / name)


@dataclass
class Served:
    """A service served with ``dasf-geo serve`` (and its embedded broker)."""

    proc: Proc
    port: int
    http_port: int | None = None

    @property
    def broker(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def gateway(self) -> str:
        """The URL of the gateway ``dasf-geo serve`` started (the dashboard's page)."""
        assert self.http_port is not None, "served with --no-http"
        return f"http://127.0.0.1:{self.http_port}"


def serve(
    module: Path,
    *,
    broker: str | None = None,
    http: bool = False,
    topic: str | None = None,
) -> Served:
    """Start ``dasf-geo serve MODULE`` and wait until it serves.

    Without ``broker`` it starts its embedded broker; with ``http`` its
    gateway, which serves the dashboard.
    """
    args = [sys.executable, "-m", "dasf_geo.cli.tool", "serve", str(module)]
    if broker is None:
        port = free_port()
        args += ["--port", str(port)]
    else:
        args += ["--broker", broker]
        port = int(broker.rsplit(":", 1)[1])
    if topic is not None:
        args += ["--topic", topic]
    http_port = free_port() if http else None
    args += ["--http-port", str(http_port)] if http_port else ["--no-http"]
    proc = Proc(args).start()
    try:
        wait_until(
            lambda: (
                "serving " in proc.output()
                and (not http or "HTTP gateway on" in proc.output())
            ),
            f"dasf-geo serve {module.name}",
            30,
            proc,
        )
    except BaseException:
        proc.stop()
        raise
    return Served(proc, port, http_port)


@pytest.fixture(scope="module")
def geo_service() -> Iterator[Served]:
    """``dasf-geo serve examples/geo_service.py``: embedded broker and gateway."""
    served = serve(REPO_ROOT / "examples" / "geo_service.py", http=True)
    try:
        yield served
    finally:
        served.proc.stop()


@pytest.fixture(scope="module")
def extras_service(geo_service: Served) -> Iterator[Served]:
    """The test module ``web_extras`` on the same broker."""
    served = serve(MODULES / "web_extras.py", broker=geo_service.broker)
    try:
        yield served
    finally:
        served.proc.stop()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def static_server() -> Iterator[str]:
    """The vendored dashboard over HTTP on 127.0.0.1 (as the gateway serves it)."""
    from dasf_geo.web import static_dir

    handler = functools.partial(_Quiet, directory=str(static_dir()))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (the system package) driven by Playwright.

    Module-scoped: Playwright's sync API keeps an event loop running in this
    thread while it is open, which asyncio tests of other modules cannot share.
    """
    if not CHROMIUM.exists():
        pytest.skip(
            f"chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def screenshot(page: Any, name: str, locator: Any = None) -> Path:
    """Save a screenshot of the page (or of ``locator``) as a test artefact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    if locator is not None:
        locator.screenshot(path=str(path))
    else:
        page.screenshot(path=str(path), full_page=True)
    return path
