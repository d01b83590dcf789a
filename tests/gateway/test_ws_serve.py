"""The WebSocket pass-through, and the gateway started by ``dasf-geo serve``."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from typing import Any

import pytest

from tests.conftest import EXAMPLES, REPO_ROOT, free_port, timeout
from tests.e2e.conftest import Proc, wait_until
from tests.gateway.conftest import GEO_TOPIC

pytestmark = pytest.mark.timeout(180)


async def test_dasf_call_through_the_passthrough(live_gateway: Any) -> None:
    """A DASF caller pointed at the gateway's /ws/ reaches the backend."""
    from dasf_geo.transport.dynamic import aconnect

    port = live_gateway.port
    svc = await aconnect(GEO_TOPIC, f"ws://127.0.0.1:{port}", timeout=timeout(30))
    try:
        table = await svc.stations(min_elevation=1000)
        assert len(table) > 0
        assert (table["elevation"] >= 1000).all()
        ds = await svc.get_data()
        assert float(ds["tas"].mean()) == pytest.approx(
            float(
                __import__("xarray")
                .load_dataset(REPO_ROOT / "sample_data" / "gridded_temperature.nc")[
                    "tas"
                ]
                .mean()
            )
        )
    finally:
        await svc.close()


async def test_passthrough_frames_and_close(live_gateway: Any) -> None:
    """Text frames both ways, acks, and the broker's refusal passed on."""
    import base64

    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    base = f"ws://127.0.0.1:{live_gateway.port}/ws/v2"
    topic = "gw_ws_echo"
    async with (
        connect(f"{base}/consumer/non-persistent/public/default/{topic}/s1") as cons,
        connect(f"{base}/producer/non-persistent/public/default/{topic}") as prod,
    ):
        payload = base64.b64encode(b"hello").decode()
        await prod.send(json.dumps({"payload": payload, "context": "c1"}))
        ack = json.loads(await prod.recv())
        assert ack["result"] == "ok" and ack["context"] == "c1"
        msg = json.loads(await cons.recv())
        assert msg["payload"] == payload
        await cons.send(json.dumps({"messageId": msg["messageId"]}))
    with pytest.raises(InvalidStatus) as info:
        async with connect(f"{base}/nonsense/route"):
            pass
    assert info.value.response.status_code == 404
    with pytest.raises(InvalidStatus) as info:
        async with connect(f"ws://127.0.0.1:{live_gateway.port}/ws/a/../b"):
            pass
    assert info.value.response.status_code in (404, 403)


def test_serve_starts_the_gateway_and_prints_a_curl_line() -> None:
    port = free_port()
    proc = Proc(
        [
            sys.executable,
            "-m",
            "dasf_geo.cli.tool",
            "serve",
            str(EXAMPLES / "geo_service.py"),
            "--port",
            str(port),
        ]
    ).start()
    try:
        wait_until(lambda: "curl -X POST" in proc.output(), "the curl line", 60, proc)
        out = proc.output()
        line = next(x for x in out.splitlines() if x.startswith("HTTP gateway on "))
        url = line.split()[3]
        assert url.startswith("http://127.0.0.1:")
        assert int(url.rsplit(":", 1)[1]) > port
        curl = next(x.strip() for x in out.splitlines() if "curl -X POST" in x)
        assert curl == (
            f"curl -X POST {url}/services/geo_service/get_data "
            "-H 'Content-Type: application/json' -d '{}'"
        )
        request = urllib.request.Request(
            f"{url}/services/geo_service/stations",
            data=b'{"min_elevation": 1000}',
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout(30)) as response:
            assert response.status == 200
            assert json.load(response)["format"] == "dasf-frame/1"
    finally:
        proc.stop()


def test_serve_no_http() -> None:
    port = free_port()
    proc = Proc(
        [
            sys.executable,
            "-m",
            "dasf_geo.cli.tool",
            "serve",
            str(EXAMPLES / "geo_service.py"),
            "--port",
            str(port),
            "--no-http",
        ]
    ).start()
    try:
        wait_until(lambda: "call it with" in proc.output(), "the backend", 60, proc)
        assert "HTTP gateway" not in proc.output()
        assert "curl" not in proc.output()
    finally:
        proc.stop()


def test_gateway_command_refuses_a_public_address_without_auth() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dasf_geo.cli.tool",
            "gateway",
            "--broker",
            "ws://127.0.0.1:9",
            "--host",
            "0.0.0.0",
        ],
        capture_output=True,
        text=True,
        timeout=timeout(60),
        cwd=REPO_ROOT,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(
        "error: refusing to serve HTTP on '0.0.0.0' without authentication"
    )


async def test_passthrough_binary_frames_and_the_brokers_close(tmp_path: Any) -> None:
    """Binary frames reach the broker; its close code reaches the caller."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    from dasf_geo.broker import EmbeddedBroker
    from dasf_geo.gateway import GatewayServer
    from tests.gateway.conftest import settings

    broker = EmbeddedBroker(host="127.0.0.1", port=free_port()).start()
    server = GatewayServer(settings(broker), "127.0.0.1", 0).start()
    try:
        url = (
            f"ws://127.0.0.1:{server.port}/ws/v2/producer/non-persistent/public/"
            "default/gw_binary"
        )
        async with connect(url) as ws:
            await ws.send(json.dumps({"payload": "", "context": "b1"}).encode())
            assert json.loads(await ws.recv())["context"] == "b1"
            broker.stop()
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 1001
    finally:
        server.stop()
        broker.stop()


async def test_aconnect_refuses_http_urls() -> None:
    from dasf_geo.exceptions import ConfigurationError
    from dasf_geo.transport.dynamic import aconnect

    with pytest.raises(ConfigurationError, match=r"use connect\('http://h:1/"):
        await aconnect("http://h:1/services/t")


def test_gateway_command_options() -> None:
    from dasf_geo.cli._gateway import settings_from_args
    from dasf_geo.cli.tool import build_parser

    args = build_parser().parse_args(
        [
            "gateway",
            "--broker",
            "ws://127.0.0.1:9",
            "-t",
            "a",
            "-t",
            "b",
            "--cors-origin",
            "http://maps.example",
            "--body-limit",
            "5MB",
            "--timeout",
            "30",
            "--header",
            '{"Authorization": "Bearer x"}',
        ]
    )
    settings = settings_from_args(args)
    assert settings.topics == ["a", "b"]
    assert settings.cors_origins == ["http://maps.example"]
    assert settings.body_limit == 5_000_000
    assert settings.timeout == 30.0
    assert settings.header == {"Authorization": "Bearer x"}


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--body-limit", "lots"], "argument --body-limit:"),
        (["--body-limit", "0"], "argument --body-limit: expected a size > 0"),
        (["--timeout", "-1"], "argument --timeout: expected seconds > 0"),
        (["--port", "x"], "argument --port: invalid int value"),
    ],
)
def test_gateway_command_bad_options(option: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dasf_geo.cli.tool", "gateway", *option],
        capture_output=True,
        text=True,
        timeout=timeout(60),
        cwd=REPO_ROOT,
    )
    assert result.returncode == 2
    assert message in result.stderr, result.stderr
