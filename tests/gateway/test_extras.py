"""Service extras (parameters, monitor) and notifications through the gateway.

The backend here answers the reserved requests exactly as the service
contract says (``~list_parameters``, ``~get_parameter``, ``~set_parameter``,
``~monitor``), with a hand-written handler on the real transport.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from tests.conftest import timeout
from tests.gateway.conftest import gateway_client, settings
from tests.transport.conftest import Config, listener_thread

pytestmark = pytest.mark.timeout(120)

TOPIC = "gw_extras"
ROWS = [
    {"variable": "temp", "value": 1.5, "timestamp": "2026-01-01T00:00:00Z"},
    {"variable": "temp", "value": 2.5, "timestamp": "2026-01-02T00:00:00Z"},
    {"variable": "state", "value": {"ok": True}, "timestamp": "2026-01-02T00:00:00Z"},
]


class ExtrasHandler:
    """A backend with two exposed parameters and a monitoring store."""

    debug = False

    def __init__(self) -> None:
        self.topic = TOPIC
        self.params: dict[str, Any] = {"threshold": 1.5, "label": "north"}
        self.types = {"threshold": float, "label": str}
        self.seen: list[dict[str, Any]] = []

    def handle(self, payload: Any, progress: Any = None, accept: Any = ()) -> bytes:
        request = json.loads(bytes(payload))
        self.seen.append(request)
        func = request.get("func_name")
        if func == "~list_parameters":
            return json.dumps(self.params).encode()
        name = request.get("parameter")
        if func in ("~get_parameter", "~set_parameter") and name not in self.params:
            raise KeyError(f"unknown parameter {name!r}")
        if func == "~get_parameter":
            return json.dumps(self.params[name]).encode()
        if func == "~set_parameter":
            kind = self.types[name]
            value = TypeAdapter(kind).validate_python(request.get("value"), strict=True)
            self.params[name] = value
            return json.dumps(value).encode()
        if func == "~monitor":
            wanted = request.get("variables")
            rows = [r for r in ROWS if not wanted or r["variable"] in wanted]
            return json.dumps(rows).encode()
        raise ValueError(f"unknown function {func!r}")

    def info(self) -> str:
        return json.dumps({"title": TOPIC})

    def api_info(self) -> str:
        return json.dumps(
            {"functions": [], "classes": [], "rpc_schema": {"description": "extras"}}
        )


@pytest.fixture
def extras_backend(broker: Any) -> Iterator[ExtrasHandler]:
    handler = ExtrasHandler()
    with listener_thread(handler, Config(base=broker.url, topic=TOPIC)):
        yield handler


@pytest.fixture
async def gw_extras(broker: Any, extras_backend: Any):
    from dasf_geo.gateway import create_app

    async with gateway_client(create_app(settings(broker))) as client:
        yield client


async def test_parameters(gw_extras: httpx.AsyncClient, extras_backend: Any) -> None:
    base = f"/services/{TOPIC}/~parameters"
    assert (await gw_extras.get(base)).json() == {"threshold": 1.5, "label": "north"}
    assert (await gw_extras.get(f"{base}/label")).json() == "north"
    response = await gw_extras.post(f"{base}/threshold", json={"value": 3.0})
    assert response.status_code == 200
    assert response.json() == 3.0
    assert extras_backend.seen[-1] == {
        "func_name": "~set_parameter",
        "parameter": "threshold",
        "value": 3.0,
    }
    assert (await gw_extras.get(f"{base}/threshold")).json() == 3.0


async def test_parameter_errors(gw_extras: httpx.AsyncClient) -> None:
    base = f"/services/{TOPIC}/~parameters"
    missing = await gw_extras.get(f"{base}/nope")
    assert missing.status_code == 404
    assert "unknown parameter 'nope'" in missing.json()["detail"]
    missing = await gw_extras.post(f"{base}/nope", json={"value": 1})
    assert missing.status_code == 404
    wrong = await gw_extras.post(f"{base}/threshold", json={"value": "high"})
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["type"] == "float_type"
    for body, message in (
        (b"{", "the request body is not valid JSON"),
        (b'{"val": 1}', 'the request body must be a JSON object {"value": V}'),
        (b"[1]", 'the request body must be a JSON object {"value": V}'),
    ):
        response = await gw_extras.post(
            f"{base}/threshold",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 400
        assert response.json()["detail"].startswith(message)


async def test_monitor(gw_extras: httpx.AsyncClient, extras_backend: Any) -> None:
    url = f"/services/{TOPIC}/~monitor"
    response = await gw_extras.get(
        url,
        params={
            "variables": "temp",
            "start": "2026-01-01T00:00:00Z",
            "end": "2026-02-01T00:00:00+00:00",
        },
    )
    assert response.status_code == 200
    assert response.json() == ROWS[:2]
    assert extras_backend.seen[-1] == {
        "func_name": "~monitor",
        "variables": ["temp"],
        "start": "2026-01-01T00:00:00Z",
        "end": "2026-02-01T00:00:00+00:00",
    }
    csv = await gw_extras.get(url, params={"format": "csv"})
    assert csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert csv.text.splitlines() == [
        "variable,value,timestamp",
        "temp,1.5,2026-01-01T00:00:00Z",
        "temp,2.5,2026-01-02T00:00:00Z",
        'state,"{""ok"": true}",2026-01-02T00:00:00Z',
    ]
    bad = await gw_extras.get(url, params={"start": "yesterday"})
    assert bad.status_code == 400
    assert bad.json()["detail"] == (
        "start must be an ISO 8601 date and time, got 'yesterday'"
    )
    bad = await gw_extras.get(url, params={"format": "xml"})
    assert bad.json()["detail"] == "format must be json, csv or sqlite, got 'xml'"


async def test_extras_of_an_unknown_service(gw_extras: httpx.AsyncClient) -> None:
    response = await gw_extras.get("/services/nobody_extras/~parameters")
    assert response.status_code == 404
    assert response.json()["detail"].startswith(
        "no service answers on topic 'nobody_extras'"
    )


async def _publish(broker: Any, payload: str) -> None:
    from websockets.asyncio.client import connect

    url = (
        f"{broker.url}/ws/v2/producer/non-persistent/public/default/"
        "dasf-geo-notifications"
    )
    async with connect(url) as producer:
        await producer.send(
            json.dumps(
                {
                    "payload": payload,
                    "properties": {"messageType": "notification"},
                    "context": "n",
                }
            )
        )
        ack = json.loads(await producer.recv())
        assert ack["result"] == "ok"


def _note(msg: str, severity: str) -> str:
    body = {
        "service": "svc",
        "version": "1.0",
        "msg": msg,
        "severity": severity,
        "timestamp": "2026-01-01T00:00:00Z",
        "emails": None,
        "dashboard": True,
    }
    return base64.b64encode(json.dumps(body).encode()).decode()


async def test_notifications(broker: Any) -> None:
    from dasf_geo.gateway import create_app

    async with gateway_client(create_app(settings(broker))) as client:
        # the gateway subscribes at start-up; wait until the broker has it
        for _ in range(int(timeout(20) / 0.05)):
            log = client._transport.app.state.gateway.extras["notifications"]
            if len(log._consumers) >= 1:
                break
            await asyncio.sleep(0.05)
        await _publish(broker, _note("first", "INFO"))
        await _publish(broker, "bm90IGpzb24=")  # "not json": dropped
        await _publish(broker, _note("second", "CRITICAL"))
        await _publish(broker, _note("third", "INFO"))
        for _ in range(int(timeout(20) / 0.05)):
            items = (await client.get("/notifications")).json()["notifications"]
            if len(items) == 3:
                break
            await asyncio.sleep(0.05)
        assert [n["msg"] for n in items] == ["third", "second", "first"]
        assert items[0]["service"] == "svc" and items[0]["dashboard"] is True
        two = (await client.get("/notifications?limit=2")).json()["notifications"]
        assert [n["msg"] for n in two] == ["third", "second"]
        critical = await client.get("/notifications?severity=critical")
        assert [n["msg"] for n in critical.json()["notifications"]] == ["second"]
        bad = await client.get("/notifications?limit=0")
        assert bad.status_code == 400
        assert (
            bad.json()["detail"] == "limit must be an integer from 1 to 1000, got '0'"
        )
        bad = await client.get("/notifications?severity=LOUD")
        assert bad.json()["detail"] == (
            "severity must be one of INFO, WARNING, CRITICAL, got 'LOUD'"
        )
