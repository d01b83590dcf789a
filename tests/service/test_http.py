"""Service extras over HTTP, through the gateway: parameters, monitor, notifications."""

from __future__ import annotations

import asyncio
import re
import sys
import time

import httpx
import pytest

from dasf_geo.gateway import GatewaySettings, create_app
from tests.conftest import EXAMPLES, timeout
from tests.e2e.conftest import Proc, wait_until
from tests.gateway.conftest import gateway_client


@pytest.fixture
async def http(broker, weather):
    app = create_app(GatewaySettings(broker=broker.url, timeout=timeout(30)))
    async with gateway_client(app) as client:
        yield client


async def test_the_service_is_listed_with_its_extras(http):
    listing = (await http.get("/services")).json()["services"]
    found = [s for s in listing if s["topic"] == "weather"]
    assert found and sorted(found[0]["functions"]) == [
        "above",
        "fail",
        "field",
        "version",
    ]
    info = (await http.get("/services/weather")).json()
    assert info["service"]["version"] == "1.0.0"
    assert info["service"]["entrypoints"]["field"]["method"] == "GET"


async def test_the_versioned_topic_is_listed_once_among_the_versions(http):
    listing = (await http.get("/services")).json()["services"]
    found = [s for s in listing if s["topic"].startswith("weather")]
    assert [s["topic"] for s in found] == ["weather"]
    assert found[0]["versions"] == [
        {
            "version": "1.0.0",
            "topic": "weather_1-0-0",
            "shadow": False,
            "url": "/services/weather_1-0-0",
        }
    ]
    reply = await http.post("/services/weather_1-0-0/version", json={})
    assert reply.status_code == 200 and reply.json() == "1.0.0"


async def test_entrypoint_over_http(http):
    reply = await http.post("/services/weather/above", json={"value": 300.0})
    assert reply.status_code == 200
    assert reply.json() is True


async def test_entrypoint_with_its_own_method(http):
    # field was declared with method="GET": arguments from the query string
    reply = await http.get(
        "/services/weather/field",
        params={"value": 2.5},
        headers={"Accept": "application/json"},
    )
    assert reply.status_code == 200, reply.text
    assert (
        await http.post("/services/weather/field", json={"value": 1.0})
    ).status_code == 200
    refused = await http.get("/services/weather/above", params={"value": 1})
    assert refused.status_code == 405
    assert refused.json()["detail"] == (
        "GET is not allowed on /services/weather/above; allowed: POST"
    )
    refused = await http.delete("/services/weather/field")
    assert refused.status_code == 405
    assert refused.json()["detail"] == (
        "DELETE is not allowed on /services/weather/field; allowed: POST, GET"
    )


async def test_openapi_lists_an_entrypoint_with_its_method(http):
    doc = (await http.get("/openapi.json")).json()
    field = doc["paths"]["/services/weather/field"]
    assert set(field) == {"post", "get"}
    query = [p for p in field["get"]["parameters"] if p["in"] == "query"]
    assert [(p["name"], p["required"]) for p in query] == [("value", False)]
    assert "requestBody" not in field["get"]
    assert field["get"]["operationId"] == field["post"]["operationId"] + "__get"
    assert set(doc["paths"]["/services/weather/above"]) == {"post"}


async def test_monitor_store_file_over_http(http):
    import sqlite3
    import tempfile

    await http.post("/services/weather/above", json={"value": 300.0})
    reply = await http.get("/services/weather/~monitor?format=sqlite")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/vnd.sqlite3"
    assert 'filename="weather_1.0.0.sqlite"' in reply.headers["content-disposition"]
    with tempfile.NamedTemporaryFile(suffix=".sqlite") as f:
        f.write(reply.content)
        f.flush()
        with sqlite3.connect(f.name) as conn:
            names = conn.execute("select variable from dasf_geo_monitor").fetchall()
    assert names == [("above",)]
    bad = await http.get("/services/weather/~monitor?format=xml")
    assert bad.status_code == 400


async def test_parameters_over_http(http, weather):
    assert (await http.get("/services/weather/~parameters")).json() == {
        "threshold": 280.0,
        "unit": "K",
    }
    assert (await http.get("/services/weather/~parameters/threshold")).json() == 280.0
    reply = await http.post(
        "/services/weather/~parameters/threshold", json={"value": 250}
    )
    assert reply.status_code == 200
    assert reply.json() == 250.0
    assert weather.get_parameter("threshold") == 250.0  # seen by the service
    assert (
        await http.post("/services/weather/above", json={"value": 260.0})
    ).json() is True


async def test_wrong_parameter_type_over_http_is_422(http, weather):
    reply = await http.post(
        "/services/weather/~parameters/threshold", json={"value": "hot"}
    )
    assert reply.status_code == 422
    errors = reply.json()["errors"]
    assert errors[0]["msg"] == "parameter 'threshold' expects float, got 'hot' (str)"
    assert errors[0]["loc"] == ["threshold"]
    assert weather.get_parameter("threshold") == 280.0


async def test_unknown_parameter_over_http_is_404(http):
    for reply in (
        await http.get("/services/weather/~parameters/nope"),
        await http.post("/services/weather/~parameters/secret", json={"value": "x"}),
    ):
        assert reply.status_code == 404
        assert "unknown parameter" in reply.text


async def test_monitor_over_http_as_json_and_csv(http):
    await http.post("/services/weather/above", json={"value": 300.0})
    await http.post("/services/weather/~parameters/unit", json={"value": "degC"})
    rows = (await http.get("/services/weather/~monitor")).json()
    assert {r["variable"] for r in rows} == {"above", "unit"}
    above = (await http.get("/services/weather/~monitor?variables=above")).json()
    assert [r["value"]["result"] for r in above] == [True]
    assert above[0]["value"]["arguments"] == {"value": 300.0}
    later = await http.get(
        "/services/weather/~monitor",
        params={"variables": "unit", "start": "2100-01-01"},
    )
    assert later.json() == []
    csv_reply = await http.get("/services/weather/~monitor?variables=unit&format=csv")
    assert csv_reply.headers["content-type"].startswith("text/csv")
    lines = csv_reply.text.splitlines()
    assert lines[0] == "variable,value,timestamp"
    assert lines[1].startswith("unit,degC,")


async def test_notifications_over_http(broker, http):
    from dasf_geo.service import Service, Severity, notify

    svc = Service("notifier", "3.0.0")

    @svc.entrypoint
    def warn(text: str) -> str:
        notify(text, Severity.WARNING)
        return "ok"

    svc.start(broker=broker.url)
    try:
        # the gateway subscribes at start-up, in the background: notify until
        # it has one (a non-persistent topic keeps nothing for late consumers)
        deadline = time.monotonic() + timeout(20)
        sent = 0
        while True:
            reply = await http.post("/services/notifier/warn", json={"text": "hot"})
            assert reply.json() == "ok"
            sent += 1
            await asyncio.sleep(0.1)
            items = (await http.get("/notifications?severity=WARNING")).json()[
                "notifications"
            ]
            if items:
                break
            assert time.monotonic() < deadline, f"{sent} sent, none listed"
        assert items[0]["msg"] == "hot"
        assert items[0]["service"] == "notifier"
        assert items[0]["version"] == "3.0.0"
    finally:
        svc.stop()


def test_a_service_script_starts_broker_and_gateway():
    proc = Proc([sys.executable, str(EXAMPLES / "daeploy_service.py")]).start()
    try:
        url = wait_until(
            lambda: re.search(r"HTTP gateway on (http://\S+)", proc.output()),
            "the gateway",
            60,
            proc,
        ).group(1)
        wait_until(
            lambda: "serving 'daeploy_service'" in proc.output(), "serving", 60, proc
        )

        def listed():
            reply = httpx.get(f"{url}/services", timeout=timeout(10))
            topics = [s["topic"] for s in reply.json()["services"]]
            return "daeploy_service" in topics

        wait_until(listed, "the service listed by the gateway", 60, proc)
        reply = httpx.post(
            f"{url}/services/daeploy_service/hello",
            json={"name": "HTTP"},
            timeout=timeout(30),
        )
        assert reply.json() == "Hello HTTP"
        reply = httpx.get(
            f"{url}/services/daeploy_service/~parameters/greeting_phrase",
            timeout=timeout(30),
        )
        assert reply.json() == "Hello"
    finally:
        assert proc.stop() == 0, proc.output()
