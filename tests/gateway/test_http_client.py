"""``dasf_geo.connect("http://…/services/TOPIC")``: the dynamic client over HTTP."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xarray as xr

from tests.conftest import SAMPLE_DATA, timeout
from tests.gateway.conftest import GEO_TOPIC

pytestmark = pytest.mark.timeout(180)


def test_connect_over_http(live_gateway: Any) -> None:
    import dasf_geo

    url = f"{live_gateway.url}/services/{GEO_TOPIC}"
    with dasf_geo.connect(url, timeout=timeout(60), progress=False) as svc:
        assert svc.members == [
            "get_data",
            "histogram",
            "monthly_anomaly",
            "stations",
            "time_series",
        ]
        ds = svc.get_data()
        assert isinstance(ds, xr.Dataset)
        source = xr.load_dataset(SAMPLE_DATA / "gridded_temperature.nc")
        np.testing.assert_array_equal(ds["tas"].values, source["tas"].values)
        series = svc.time_series(lat=50.0, lon=10.0)
        assert isinstance(series, xr.DataArray)
        np.testing.assert_array_equal(
            series.values,
            source["tas"].sel(lat=50.0, lon=10.0, method="nearest").values,
        )
        # the Dataset goes as a NetCDF file of a multipart upload
        anomaly = svc.monthly_anomaly(source, variable="tas")
        np.testing.assert_allclose(
            anomaly["tas_anomaly"].values,
            (source["tas"] - source["tas"].mean("time")).values,
            rtol=1e-6,
        )
        table = svc.stations(min_elevation=1000)
        assert (table["elevation"] >= 1000).all()
        assert svc.histogram(np.array([1.0, 2.0, 2.0]), bins=2).tolist() == [1, 2]
        assert svc.ping() > 0


def test_http_errors_are_the_usual_exceptions(live_gateway: Any) -> None:
    import dasf_geo
    from dasf_geo.exceptions import (
        ConfigurationError,
        ConnectionFailed,
        RemoteError,
        RemoteValidationError,
        RequestTimeout,
    )

    url = f"{live_gateway.url}/services/{GEO_TOPIC}"
    with dasf_geo.connect(url, timeout=timeout(60), progress=False) as svc:
        with pytest.raises(RemoteValidationError) as info:
            svc.stations(min_elevation="high")
        assert info.value.errors[0]["loc"] == ["stations", "min_elevation"]
        with pytest.raises(RemoteError, match="the Dataset has no variable 'x'"):
            svc.monthly_anomaly(
                xr.load_dataset(SAMPLE_DATA / "gridded_temperature.nc"), variable="x"
            )
        svc._client.timeout = 0.001
        with pytest.raises(RequestTimeout, match=r"within 0\.001 s"):
            svc.get_data()
    with pytest.raises(RemoteError, match="no service answers on topic 'nobody'"):
        dasf_geo.connect(f"{live_gateway.url}/services/nobody", timeout=3)
    with pytest.raises(ConfigurationError, match="looks like http://HOST:PORT"):
        dasf_geo.connect(f"{live_gateway.url}/elsewhere")
    from tests.conftest import free_port

    with pytest.raises(ConnectionFailed, match="cannot reach the gateway"):
        dasf_geo.connect(f"http://127.0.0.1:{free_port()}/services/x")
