"""REST routes: discovery, JSON calls, error mapping, the page at ``/``."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import SAMPLE_DATA
from tests.gateway.conftest import GEO_TOPIC, gateway_client, settings

pytestmark = pytest.mark.timeout(180)


async def test_services_lists_the_backend(gw: httpx.AsyncClient) -> None:
    response = await gw.get("/services")
    assert response.status_code == 200
    services = {s["topic"]: s for s in response.json()["services"]}
    geo = services[GEO_TOPIC]
    assert geo == {
        "topic": GEO_TOPIC,
        "description": "A sample geo service: gridded data, station tables and "
        "arrays over DASF.",
        "functions": [
            "get_data",
            "histogram",
            "monthly_anomaly",
            "stations",
            "time_series",
        ],
        "classes": [],
        "url": f"/services/{GEO_TOPIC}",
    }


async def test_service_info_is_the_api_info_unchanged(gw: httpx.AsyncClient) -> None:
    import sys

    from dasf_geo.backend import BackendModule
    from tests.conftest import EXAMPLES

    sys.path.insert(0, str(EXAMPLES))
    try:
        import geo_service  # noqa: F401
    finally:
        sys.path.remove(str(EXAMPLES))
    local = BackendModule.create_model(
        "geo_service", messaging_config={"topic": GEO_TOPIC}
    )
    response = await gw.get(f"/services/{GEO_TOPIC}")
    assert response.status_code == 200
    assert response.json() == json.loads(local.get_api_info().model_dump_json())


async def test_json_call(gw: httpx.AsyncClient) -> None:
    response = await gw.post(
        f"/services/{GEO_TOPIC}/time_series", json={"lat": 50.0, "lon": 10.0}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    from dasf_geo.data import decode_by_schema

    info = (await gw.get(f"/services/{GEO_TOPIC}")).json()
    schema = next(f for f in info["functions"] if f["name"] == "time_series")[
        "return_schema"
    ]
    series = decode_by_schema(schema, response.json(), {})
    import xarray as xr

    expected = xr.load_dataset(SAMPLE_DATA / "gridded_temperature.nc")["tas"].sel(
        lat=50.0, lon=10.0, method="nearest"
    )
    assert series.values.tolist() == pytest.approx(expected.values.tolist())


async def test_validation_error_is_422_with_the_structured_list(
    gw: httpx.AsyncClient,
) -> None:
    response = await gw.post(
        f"/services/{GEO_TOPIC}/stations", json={"min_elevation": "high"}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["errors"] == [
        {
            "type": "float_parsing",
            "loc": ["stations", "min_elevation"],
            "msg": "Input should be a valid number, unable to parse string as a number",
            "input": "high",
        }
    ]
    # the problem, without pydantic's header and error URL
    assert body["detail"] == (
        "error validating request: stations.min_elevation: Input should be a "
        "valid number, unable to parse string as a number (got 'high')"
    )


async def test_unknown_argument_is_422(gw: httpx.AsyncClient) -> None:
    response = await gw.post(f"/services/{GEO_TOPIC}/stations", json={"bogus": 1})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["stations", "bogus"]
    assert response.json()["errors"][0]["type"] == "extra_forbidden"


async def test_backend_error_is_502(gw: httpx.AsyncClient) -> None:
    with open(SAMPLE_DATA / "gridded_temperature.nc", "rb") as fh:
        nc = fh.read()
    response = await gw.post(
        f"/services/{GEO_TOPIC}/monthly_anomaly?variable=nope",
        content=nc,
        headers={"Content-Type": "application/x-netcdf"},
    )
    assert response.status_code == 502
    assert (
        "the Dataset has no variable 'nope'; it has ['tas']"
        in response.json()["detail"]
    )


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "the request body is not valid JSON: Expecting property"),
        (
            b"[1, 2]",
            400,
            "the request body must be a JSON object of arguments by "
            "name, got a JSON list",
        ),
        (b'"text"', 400, "got a JSON str"),
        (
            b'{"func_name": "get_data"}',
            400,
            "'func_name' is not an argument of "
            "stations(): the route names the function",
        ),
        (b"\xff\xfe", 400, "the request body is not valid JSON"),
    ],
)
async def test_malformed_bodies(
    gw: httpx.AsyncClient, body: bytes, status: int, message: str
) -> None:
    response = await gw.post(
        f"/services/{GEO_TOPIC}/stations",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == status
    assert message in response.json()["detail"]
    # the gateway keeps serving
    again = await gw.post(f"/services/{GEO_TOPIC}/stations", json={})
    assert again.status_code == 200


async def test_unknown_function_service_and_route(gw: httpx.AsyncClient) -> None:
    response = await gw.post(f"/services/{GEO_TOPIC}/nope", json={})
    assert response.status_code == 404
    assert response.json()["detail"] == (
        f"the service on topic {GEO_TOPIC!r} has no function 'nope'; it offers: "
        "get_data, histogram, monthly_anomaly, stations, time_series"
    )
    response = await gw.post(f"/services/{GEO_TOPIC}/Cls/method", json={})
    assert response.status_code == 404
    assert "has no class 'Cls' with a method 'method'" in response.json()["detail"]
    response = await gw.get("/nothing/here")
    assert response.status_code == 404
    assert response.json()["detail"] == (
        "no route GET /nothing/here on this gateway; see /docs or /openapi.json "
        "for the routes"
    )
    response = await gw.get(f"/services/{GEO_TOPIC}/stations")
    assert response.status_code == 405
    assert response.json()["detail"] == (
        f"GET is not allowed on /services/{GEO_TOPIC}/stations; allowed: POST"
    )


async def test_unknown_service_is_404(broker: Any) -> None:
    # the embedded broker lists its topics: no consumer, no wait
    from dasf_geo.gateway import create_app

    app = create_app(settings(broker))
    async with gateway_client(app) as client:
        response = await client.get("/services/nobody_here")
        call = await client.post("/services/nobody_here/f", json={})
    assert response.status_code == 404
    assert response.json()["detail"].startswith(
        "no service answers on topic 'nobody_here': the broker has no consumer "
        "on it (topics with a service: "
    )
    assert call.status_code == 404
    assert call.json()["detail"] == response.json()["detail"]


async def test_unknown_service_without_a_topic_listing_waits(
    broker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a broker that cannot list its topics (Pulsar, dasf-broker-django)
    from dasf_geo.gateway import create_app
    from dasf_geo.gateway.discovery import ServiceDirectory

    async def no_listing(self: Any, base: str, header: Any) -> None:
        return None

    monkeypatch.setattr(ServiceDirectory, "_fetch_listing", no_listing)
    app = create_app(settings(broker, discovery_timeout=0.5))
    async with gateway_client(app) as client:
        response = await client.get("/services/nobody_here")
    assert response.status_code == 404
    assert response.json()["detail"] == (
        "no service answers on topic 'nobody_here' (no api_info reply within "
        "0.5 s; the broker does not list its topics, so the gateway waited "
        "--discovery-timeout)"
    )


@pytest.mark.parametrize(
    "path",
    [
        "/services/a%20b",
        "/services/%2e%2e",
        "/services/x%00y",
        "/services/" + "t" * 300,
        "/services/%3Cscript%3E",
    ],
)
async def test_path_tricks_in_topic(gw: httpx.AsyncClient, path: str) -> None:
    response = await gw.get(path)
    assert response.status_code == 404
    assert (
        "is not a valid topic name: use only letters, digits and _ - = : . %"
        in (response.json()["detail"])
    )


async def test_timeout_is_504_naming_topic_function_and_seconds(
    gw: httpx.AsyncClient,
) -> None:
    # the first call warms the caches; the next one may only wait 1 ms
    await gw.post(f"/services/{GEO_TOPIC}/stations", json={})
    response = await gw.post(
        f"/services/{GEO_TOPIC}/get_data",
        json={},
        headers={"X-Dasf-Timeout": "0.001"},
    )
    assert response.status_code == 504
    assert response.json()["detail"] == (
        f"no reply from topic {GEO_TOPIC!r} to get_data() within 0.001 s"
    )


@pytest.mark.parametrize("value", ["abc", "-1", "0", "nan", "1e9"])
async def test_bad_timeout_header(gw: httpx.AsyncClient, value: str) -> None:
    response = await gw.post(
        f"/services/{GEO_TOPIC}/stations", json={}, headers={"X-Dasf-Timeout": value}
    )
    assert response.status_code == 400
    assert response.json()["detail"] == (
        f"X-Dasf-Timeout must be a number of seconds > 0 and <= 3600, got {value!r}"
    )


async def test_home_page_lists_services(
    broker: Any, geo_backend: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dasf_geo.gateway import create_app

    # the built-in page is what / shows when the dashboard is not installed
    monkeypatch.setattr("dasf_geo.web.static_dir", lambda: tmp_path)
    async with gateway_client(create_app(settings(broker))) as gw:
        response = await gw.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert f'<a href="services/{GEO_TOPIC}"><strong>{GEO_TOPIC}</strong></a>' in (
        response.text
    )
    assert '<a href="docs">' in response.text


async def test_dashboard_folder_is_served_at_root(
    broker: Any, geo_backend: Any, tmp_path: Any
) -> None:
    from dasf_geo.gateway import create_app

    (tmp_path / "index.html").write_text("<html>dashboard</html>")
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "app.js").write_text("console.log(1)")
    app = create_app(settings(broker, static_dir=tmp_path))
    async with gateway_client(app) as client:
        assert (await client.get("/")).text == "<html>dashboard</html>"
        assert (await client.get("/assets/app.js")).text == "console.log(1)"
        # API routes come first
        assert (await client.get("/services")).status_code == 200
        assert (await client.get("/assets/missing.js")).status_code == 404


async def test_routes_follow_a_backend_that_restarts_with_a_new_api(
    broker: Any,
) -> None:
    from dasf_geo.gateway import create_app
    from tests.gateway.conftest import MODULES, serve_module

    topic = "gw_restart"
    app = create_app(settings(broker, refresh=0.2))
    async with gateway_client(app) as client:
        v1 = serve_module(str(MODULES / "api_v1.py"), topic, broker.url)
        try:
            info = (await client.get(f"/services/{topic}")).json()
            assert [f["name"] for f in info["functions"]] == ["double"]
            call = await client.post(f"/services/{topic}/double", json={"x": 4})
            assert call.json() == 8
        finally:
            v1.stop()
        v2 = serve_module(str(MODULES / "api_v2.py"), topic, broker.url)
        try:
            # the cached API still says "double"; an unknown name asks again
            call = await client.post(f"/services/{topic}/triple", json={"x": 4})
            assert call.status_code == 200
            assert call.json() == 12
            gone = await client.post(f"/services/{topic}/double", json={"x": 4})
            assert gone.status_code == 404
            listing = (await client.get("/services")).json()["services"]
            entry = next(s for s in listing if s["topic"] == topic)
            assert entry["functions"] == ["triple"]
            doc = (await client.get("/openapi.json")).json()
            assert f"/services/{topic}/triple" in doc["paths"]
            assert f"/services/{topic}/double" not in doc["paths"]
        finally:
            v2.stop()


async def test_bad_multipart_uploads(gw: httpx.AsyncClient) -> None:
    nc = (SAMPLE_DATA / "gridded_temperature.nc").read_bytes()
    url = f"/services/{GEO_TOPIC}/monthly_anomaly"
    twice = await gw.post(url, files=[("ds", ("a.nc", nc)), ("ds", ("b.nc", nc))])
    assert twice.status_code == 400
    assert twice.json()["detail"] == "argument 'ds' is given twice"
    wrong_field = await gw.post(url, files={"variable": ("a.nc", nc)})
    assert wrong_field.status_code == 400
    assert wrong_field.json()["detail"] == (
        "file field 'variable' is not a Dataset/DataArray argument of "
        "monthly_anomaly() (those are: ds)"
    )
    broken = await gw.post(
        url,
        content=b"--xyz\r\nContent-Disposition: form-data\r\n\r\nno name\r\n--xyz--",
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert broken.status_code == 400
    assert broken.json()["detail"].startswith("the multipart/form-data body is invalid")
    no_boundary = await gw.post(
        url, content=b"abc", headers={"Content-Type": "multipart/form-data"}
    )
    assert no_boundary.status_code == 400
    assert no_boundary.json()["detail"].startswith(
        "the multipart/form-data body is invalid"
    )
    ok = await gw.post(url, files={"ds": ("a.nc", nc)})
    assert ok.status_code == 200


def test_dashboard_hook_finds_dasf_geo_web(tmp_path: Any, monkeypatch: Any) -> None:
    import sys
    import types

    from dasf_geo.gateway.pages import dashboard_dir

    web = types.ModuleType("dasf_geo.web")
    web.static_dir = lambda: tmp_path  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dasf_geo.web", web)
    assert dashboard_dir() is None  # no index.html yet: the built-in page
    (tmp_path / "index.html").write_text("<html></html>")
    assert dashboard_dir() == tmp_path
    monkeypatch.setitem(sys.modules, "dasf_geo.web", None)  # not importable
    assert dashboard_dir() is None
