"""Tokens forwarded to a broker that checks them, CORS, binding."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import EXAMPLES, free_port
from tests.gateway.conftest import gateway_client, serve_module, settings

pytestmark = pytest.mark.timeout(180)

TOPIC = "gw_auth"
AUTH = {
    "tokens": [
        {
            "name": "backend",
            "token": "backend-secret-1",
            "produce": [f"{TOPIC}_*"],
            "consume": [TOPIC],
        },
        {
            "name": "caller",
            "token": "caller-secret-1",
            "produce": [TOPIC],
            "consume": [f"{TOPIC}_*"],
        },
        {
            "name": "stranger",
            "token": "stranger-secret-1",
            "produce": ["elsewhere"],
            "consume": ["elsewhere_*"],
        },
    ]
}


@pytest.fixture(scope="module")
def auth_broker(tmp_path_factory: Any) -> Iterator[Any]:
    from dasf_geo.broker import EmbeddedBroker

    path = tmp_path_factory.mktemp("auth") / "tokens.json"
    path.write_text(json.dumps(AUTH))
    broker = EmbeddedBroker(host="127.0.0.1", port=free_port(), auth=path).start()
    backend = serve_module(
        str(EXAMPLES / "geo_service.py"),
        TOPIC,
        broker.url,
        "--header",
        '{"Authorization": "Bearer backend-secret-1"}',
    )
    try:
        yield broker
    finally:
        backend.stop()
        broker.stop()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_caller_token_is_forwarded(auth_broker: Any) -> None:
    from dasf_geo.gateway import create_app

    app = create_app(settings(auth_broker, topics=[TOPIC]))
    async with gateway_client(app) as client:
        anonymous = await client.get(f"/services/{TOPIC}")
        assert anonymous.status_code == 401
        assert "the broker refused the connection" in anonymous.json()["detail"]
        assert "HTTP 401" in anonymous.json()["detail"]
        assert "secret" not in anonymous.text
        ok = await client.get(f"/services/{TOPIC}", headers=_bearer("caller-secret-1"))
        assert ok.status_code == 200
        call = await client.post(
            f"/services/{TOPIC}/stations",
            json={"min_elevation": 1000},
            headers=_bearer("caller-secret-1"),
        )
        assert call.status_code == 200
        by_query = await client.post(
            f"/services/{TOPIC}/stations?token=caller-secret-1", json={}
        )
        assert by_query.status_code == 200
        stranger = await client.post(
            f"/services/{TOPIC}/stations", json={}, headers=_bearer("stranger-secret-1")
        )
        assert stranger.status_code == 403
        assert "HTTP 403" in stranger.json()["detail"]
        wrong = await client.post(
            f"/services/{TOPIC}/stations", json={}, headers=_bearer("not-a-token")
        )
        assert wrong.status_code == 401
        hostile = await client.post(
            f"/services/{TOPIC}/stations",
            json={},
            headers={"Authorization": "Bearer " + "x" * 9000},
        )
        assert hostile.status_code == 400
        assert hostile.json()["detail"] == (
            "the Authorization header is invalid: at most 8192 printable characters"
        )
        # the gateway keeps serving the right token
        again = await client.post(
            f"/services/{TOPIC}/stations", json={}, headers=_bearer("caller-secret-1")
        )
        assert again.status_code == 200


async def test_gateway_token_serves_anonymous_callers(auth_broker: Any) -> None:
    from dasf_geo.gateway import create_app

    app = create_app(
        settings(
            auth_broker,
            topics=[TOPIC],
            header={"Authorization": "Bearer caller-secret-1"},
        )
    )
    async with gateway_client(app) as client:
        listing = await client.get("/services")
        assert [s["topic"] for s in listing.json()["services"]] == [TOPIC]
        call = await client.post(f"/services/{TOPIC}/stations", json={})
        assert call.status_code == 200
        # a caller's own token replaces the gateway's
        stranger = await client.post(
            f"/services/{TOPIC}/stations", json={}, headers=_bearer("stranger-secret-1")
        )
        assert stranger.status_code == 403


async def test_ws_passthrough_forwards_the_token(auth_broker: Any) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    from dasf_geo.gateway import GatewayServer

    server = GatewayServer(settings(auth_broker), "127.0.0.1", 0).start()
    try:
        url = (
            f"ws://127.0.0.1:{server.port}/ws/v2/producer/non-persistent/public/"
            f"default/{TOPIC}"
        )
        with pytest.raises(InvalidStatus) as info:
            async with connect(url):
                pass
        assert info.value.response.status_code == 401
        async with connect(url, additional_headers=_bearer("caller-secret-1")) as ws:
            await ws.send(json.dumps({"payload": "", "context": "x"}))
            assert json.loads(await ws.recv())["result"] == "ok"
        async with connect(url + "?token=caller-secret-1") as ws:
            await ws.send(json.dumps({"payload": "", "context": "y"}))
            assert json.loads(await ws.recv())["result"] == "ok"
    finally:
        server.stop()


async def test_cors_off_by_default_and_configurable(broker: Any) -> None:
    from dasf_geo.gateway import create_app

    async with gateway_client(create_app(settings(broker))) as client:
        response = await client.get(
            "/notifications", headers={"Origin": "http://evil.example"}
        )
        assert "access-control-allow-origin" not in response.headers
    app = create_app(settings(broker, cors_origins=["http://maps.example"]))
    async with gateway_client(app) as client:
        ok = await client.get(
            "/notifications", headers={"Origin": "http://maps.example"}
        )
        assert ok.headers["access-control-allow-origin"] == "http://maps.example"
        other = await client.get(
            "/notifications", headers={"Origin": "http://evil.example"}
        )
        assert "access-control-allow-origin" not in other.headers
        preflight = await client.options(
            "/services",
            headers={
                "Origin": "http://maps.example",
                "Access-Control-Request-Method": "POST",
            },
        )
        assert preflight.status_code == 200


def test_binding_rules(broker: Any) -> None:
    from dasf_geo.exceptions import ConfigurationError
    from dasf_geo.gateway.security import check_bind

    plain = settings(broker)
    check_bind("127.0.0.1", plain, insecure=False)
    check_bind("::1", plain, insecure=False)
    check_bind("0.0.0.0", plain, insecure=True)
    with pytest.raises(
        ConfigurationError, match=r"refusing to serve HTTP on '0\.0\.0\.0'"
    ):
        check_bind("0.0.0.0", plain, insecure=False)
    with_token = settings(broker, header={"Authorization": "Bearer t"})
    check_bind("0.0.0.0", with_token, insecure=False)


@pytest.mark.parametrize(
    ("kws", "message"),
    [
        ({"broker": None}, "the gateway needs a broker"),
        ({"websocket_url": "ws://x/ws"}, "give either broker="),
        ({"topics": ["a/b"]}, "invalid topic 'a/b'"),
        ({"body_limit": 0}, "the body limit must be > 0 bytes, got 0"),
        ({"broker": "http://x:1"}, "broker must look like ws://HOST:PORT"),
    ],
)
def test_bad_settings(broker: Any, kws: dict[str, Any], message: str) -> None:
    from dasf_geo.exceptions import ConfigurationError
    from dasf_geo.gateway import GatewaySettings

    args = {"broker": broker.url, **kws}
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        GatewaySettings(**args)


async def test_hostile_requests_leave_the_gateway_serving(
    gw: httpx.AsyncClient,
) -> None:
    from tests.gateway.conftest import GEO_TOPIC

    hostile = [
        ("POST", f"/services/{GEO_TOPIC}/stations", b"\x00" * 1000),
        ("POST", f"/services/{GEO_TOPIC}/stations", b'{"a": ' * 10000),
        ("POST", f"/services/{GEO_TOPIC}/%2e%2e%2fetc", b"{}"),
        ("GET", "/services/" + "%ff" * 50, b""),
        ("POST", "/ogc/processes/" + "x." * 200 + "/execution", b"{}"),
    ]
    for method, path, body in hostile:
        response = await gw.request(
            method, path, content=body, headers={"Content-Type": "application/json"}
        )
        assert 400 <= response.status_code < 500, (path, response.text)
        assert "detail" in response.json()
    assert (
        await gw.post(f"/services/{GEO_TOPIC}/stations", json={})
    ).status_code == 200
