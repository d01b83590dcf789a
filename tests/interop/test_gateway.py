"""The HTTP gateway in front of a demessaging 0.6.4 backend and in front of a
dasf-broker-django site with a token."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import xarray as xr

from tests.conftest import timeout
from tests.gateway.conftest import gateway_client

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]


def _grid(nx: int, ny: int, nt: int) -> xr.Dataset:
    data = np.arange(nt * ny * nx, dtype="float32").reshape(nt, ny, nx)
    return xr.Dataset(
        {"t2m": (("time", "lat", "lon"), data, {"units": "K"})},
        coords={
            "time": (
                "time",
                np.arange(nt, dtype="float64"),
                {"units": "days since 2000-01-01"},
            ),
            "lat": ("lat", np.linspace(-80, 80, ny), {"units": "degrees_north"}),
            "lon": ("lon", np.linspace(-170, 170, nx), {"units": "degrees_east"}),
        },
        attrs={"Conventions": "CF-1.8", "crs": "EPSG:4326"},
    )


async def test_gateway_in_front_of_a_demessaging_backend(
    our_broker: Any, dm_python: Any, topic: str, start_peer: Any
) -> None:
    from dasf_geo.gateway import GatewaySettings, create_app

    start_peer("dm", our_broker, topic, python=dm_python)
    app = create_app(GatewaySettings(broker=our_broker.base, timeout=timeout(60)))
    async with gateway_client(app) as gw:
        # discovered from the broker, not named
        listing = (await gw.get("/services")).json()["services"]
        entry = next(s for s in listing if s["topic"] == topic)
        assert "hello_world" in entry["functions"]
        assert entry["classes"] == ["HelloWorld"]
        assert (await gw.post(f"/services/{topic}/hello_world", json={})).json() == (
            "HelloWorld"
        )
        repeat = await gw.post(
            f"/services/{topic}/HelloWorld/repeat_message",
            json={"message": "hi", "repeat": 2},
        )
        assert repeat.json() == ["hi", "hi"]
        bad = await gw.post(
            f"/services/{topic}/HelloWorld/repeat_message",
            json={"message": "hi", "repeat": -1},
        )
        assert bad.status_code == 422, bad.text
        # a fragmented reply (above 512,000 characters)
        big = await gw.post(f"/services/{topic}/big_string", json={"n": 1_500_000})
        assert big.json() == ("0123456789" * 150_000)
        # a Dataset result as raw NetCDF: demessaging sends base64 JSON, the
        # gateway decodes it on the way
        raw = await gw.post(
            f"/services/{topic}/make_dataset",
            json={"nx": 3, "ny": 2, "nt": 2},
            headers={"Accept": "application/x-netcdf"},
        )
        assert raw.status_code == 200
        assert raw.headers["content-type"] == "application/x-netcdf; xarray=Dataset"
        got = xr.load_dataset(io.BytesIO(raw.content))
        np.testing.assert_array_equal(got["t2m"].values, _grid(3, 2, 2)["t2m"].values)
        # a Dataset argument uploaded as NetCDF: base64 JSON for demessaging
        source = _grid(4, 3, 2)
        upload = await gw.post(
            f"/services/{topic}/scale_dataset?factor=2",
            content=bytes(source.to_netcdf()),
            headers={
                "Content-Type": "application/x-netcdf",
                "Accept": "application/x-netcdf",
            },
        )
        assert upload.status_code == 200, upload.text
        scaled = xr.load_dataset(io.BytesIO(upload.content))
        np.testing.assert_array_equal(scaled["t2m"].values, source["t2m"].values * 2)
        # the OpenAPI document validates with a demessaging API too
        from openapi_spec_validator import validate
        from openapi_spec_validator.validation import OpenAPIV31SpecValidator

        validate((await gw.get("/openapi.json")).json(), cls=OpenAPIV31SpecValidator)
        # and OGC execution
        ogc = await gw.post(
            f"/ogc/processes/{topic}.hello_world/execution", json={"inputs": {}}
        )
        assert ogc.json() == "HelloWorld"


async def test_gateway_in_front_of_dasf_broker_django_with_a_token(
    django_site: Any, topic: str, start_peer: Any
) -> None:
    from dasf_geo.gateway import GatewaySettings, create_app

    token = django_site.create_token("gateway_user", [topic])
    start_peer("geo", django_site.endpoint(token), topic)
    settings = GatewaySettings(
        websocket_url=django_site.websocket_url, topics=[topic], timeout=timeout(60)
    )
    auth = {"Authorization": f"Token {token}"}
    async with gateway_client(create_app(settings)) as gw:
        info = await gw.get(f"/services/{topic}", headers=auth)
        assert info.status_code == 200, info.text
        assert "hello_world" in [f["name"] for f in info.json()["functions"]]
        hello = await gw.post(f"/services/{topic}/hello_world", json={}, headers=auth)
        assert hello.json() == "HelloWorld"
        nc = bytes(_grid(3, 2, 2).to_netcdf())
        scaled = await gw.post(
            f"/services/{topic}/scale_dataset?factor=3",
            content=nc,
            headers={
                **auth,
                "Content-Type": "application/x-netcdf",
                "Accept": "application/x-netcdf",
            },
        )
        assert scaled.status_code == 200, scaled.text
        got = xr.load_dataset(io.BytesIO(scaled.content))
        np.testing.assert_array_equal(got["t2m"].values, _grid(3, 2, 2)["t2m"] * 3)
        # without the token the broker refuses the gateway's messages
        anonymous = await gw.post(f"/services/{topic}/hello_world", json={})
        assert anonymous.status_code == 403, anonymous.text
        assert "not allowed" in anonymous.json()["detail"]
        wrong = await gw.post(
            f"/services/{topic}/hello_world",
            json={},
            headers={"Authorization": "Token not-a-real-token"},
        )
        assert wrong.status_code in (401, 403), wrong.text
        # the right token still works afterwards
        again = await gw.post(f"/services/{topic}/hello_world", json={}, headers=auth)
        assert again.json() == "HelloWorld"
