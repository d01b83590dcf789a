"""Fixtures for the gateway: a real broker, a real backend, the app in-process.

The broker is the embedded one (in this process, a free port); the backend
is ``examples/geo_service.py`` in its own process, served on a topic of its
own. Tests call the app in-process through ``httpx.ASGITransport`` (with
its lifespan running); the streaming and WebSocket cases start one real
uvicorn server.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import EXAMPLES, free_port, timeout
from tests.e2e.conftest import Proc, wait_until

GEO_TOPIC = "gw_geo"


@pytest.fixture(scope="session")
def broker() -> Iterator[Any]:
    """The embedded broker on a free port (one per test session)."""
    from dasf_geo.broker import EmbeddedBroker

    broker = EmbeddedBroker(host="127.0.0.1", port=free_port()).start()
    try:
        yield broker
    finally:
        broker.stop()


def serve_module(path: str, topic: str, broker_url: str, *extra: str) -> Proc:
    """``dasf-geo serve PATH --topic TOPIC --broker URL --no-http``, waited for."""
    proc = Proc(
        [
            sys.executable,
            "-m",
            "dasf_geo.cli.tool",
            "serve",
            path,
            "--topic",
            topic,
            "--broker",
            broker_url,
            "--no-http",
            *extra,
        ]
    ).start()
    try:
        wait_until(
            lambda: "serving" in proc.output(), f"the backend on {topic!r}", 60, proc
        )
    except BaseException:
        proc.stop()
        raise
    return proc


@pytest.fixture(scope="session")
def geo_backend(broker: Any) -> Iterator[Proc]:
    """examples/geo_service.py served on topic ``gw_geo``."""
    proc = serve_module(str(EXAMPLES / "geo_service.py"), GEO_TOPIC, broker.url)
    try:
        yield proc
    finally:
        proc.stop()


def settings(broker: Any, **kws: Any) -> Any:
    from dasf_geo.gateway import GatewaySettings

    kws.setdefault("timeout", timeout(30))
    return GatewaySettings(broker=broker.url, **kws)


@contextlib.asynccontextmanager
async def gateway_client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling ``app`` in-process, its lifespan running."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gateway.test", timeout=timeout(60)
        ) as client:
            yield client


@pytest.fixture
async def gw(broker: Any, geo_backend: Proc) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway (default settings) in front of the geo backend."""
    from dasf_geo.gateway import create_app

    async with gateway_client(create_app(settings(broker))) as client:
        yield client


@pytest.fixture
def live_gateway(broker: Any, geo_backend: Proc) -> Iterator[Any]:
    """A real uvicorn server running the gateway on a free port."""
    from dasf_geo.gateway import GatewayServer

    server = GatewayServer(settings(broker), "127.0.0.1", 0).start()
    try:
        yield server
    finally:
        server.stop()


BIG_TOPIC = "gw_big"
MODULES = __import__("pathlib").Path(__file__).parent / "modules"


@pytest.fixture(scope="session")
def big_backend(broker: Any) -> Iterator[Proc]:
    """tests/gateway/modules/big_service.py served on topic ``gw_big``."""
    proc = serve_module(str(MODULES / "big_service.py"), BIG_TOPIC, broker.url)
    try:
        yield proc
    finally:
        proc.stop()


@dataclasses.dataclass
class GatewayProc:
    """``dasf-geo gateway`` in its own process, with its own TMPDIR."""

    proc: Proc
    port: int
    tmpdir: Any

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def temp_files(self) -> list[str]:
        import os

        # the job store's folder lives as long as the gateway
        return sorted(
            n for n in os.listdir(self.tmpdir) if not n.startswith("dasf-geo-gateway-")
        )

    def peak_rss(self) -> int:
        """VmHWM of the process in bytes."""
        assert self.proc.popen is not None
        with open(f"/proc/{self.proc.popen.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return 0

    def rss(self) -> int:
        assert self.proc.popen is not None
        with open(f"/proc/{self.proc.popen.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0


def start_gateway_process(broker_url: str, tmp_path: Any, *extra: str) -> GatewayProc:
    """Start ``dasf-geo gateway`` on a free port and wait for ``/services``."""
    import urllib.request

    port = free_port()
    tmpdir = tmp_path / "gateway-tmp"
    tmpdir.mkdir()
    proc = Proc(
        [
            sys.executable,
            "-m",
            "dasf_geo.cli.tool",
            "gateway",
            "--broker",
            broker_url,
            "--port",
            str(port),
            *extra,
        ],
        env={"TMPDIR": str(tmpdir)},
    ).start()

    def up() -> bool:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/notifications", timeout=2
        ) as response:
            return response.status == 200

    try:
        wait_until(up, f"the gateway on port {port}", 60, proc)
    except BaseException:
        proc.stop()
        raise
    return GatewayProc(proc, port, tmpdir)
