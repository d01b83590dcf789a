"""Geo data end to end: Datasets, DataArrays, DataFrames and arrays through a broker."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import dasf_geo
from dasf_geo.exceptions import RemoteValidationError
from tests.conftest import EXAMPLES, SAMPLE_DATA, timeout
from tests.e2e.conftest import MODULES, backend, dasf_geo_serve
from tests.e2e.test_rpc_e2e import run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def geo_service():
    """``dasf-geo serve examples/geo_service.py`` (the README's main job)."""
    with dasf_geo_serve(EXAMPLES / "geo_service.py") as (url, _):
        yield url


def test_types_round_trip_without_configure(geo_service):
    grid = xr.load_dataset(SAMPLE_DATA / "gridded_temperature.nc")
    with dasf_geo.connect("geo_service", geo_service, timeout=timeout(60)) as svc:
        data = svc.get_data()
        xr.testing.assert_identical(data, grid)
        anomaly = svc.monthly_anomaly(grid)
        expected = (grid["tas"] - grid["tas"].mean("time")).to_dataset(
            name="tas_anomaly"
        )
        xr.testing.assert_allclose(anomaly, expected)
        series = svc.time_series(lat=52.0, lon=13.0)
        assert isinstance(series, xr.DataArray)
        xr.testing.assert_identical(
            series, grid["tas"].sel(lat=52.0, lon=13.0, method="nearest")
        )
        table = svc.stations(min_elevation=500)
        stations = pd.read_csv(SAMPLE_DATA / "stations.csv", parse_dates=["time"])
        expected_table = stations[stations["elevation"] >= 500].reset_index(drop=True)
        pd.testing.assert_frame_equal(table, expected_table)
        values = np.array([0.1, 0.2, np.nan, 0.9, 0.95], dtype="float32")
        counts = svc.histogram(values, bins=2)
        np.testing.assert_array_equal(counts, np.array([2, 2]))
        assert counts.dtype == np.histogram([0.0], bins=2)[0].dtype


def test_bad_argument_names_the_variable(geo_service):
    grid = xr.load_dataset(SAMPLE_DATA / "gridded_temperature.nc")
    with dasf_geo.connect("geo_service", geo_service, timeout=timeout(60)) as svc:
        with pytest.raises(dasf_geo.DasfGeoError, match="has no variable 'precip'"):
            svc.monthly_anomaly(grid, variable="precip")
        with pytest.raises(RemoteValidationError) as info:
            svc.monthly_anomaly("bm90IG5ldGNkZg==")  # base64, but not NetCDF
        assert info.value.errors[0]["loc"] == ["monthly_anomaly", "ds"]


def test_get_data_on_the_command_line(geo_service, tmp_path):
    out = tmp_path / "data.nc"
    result = run_cli(
        "call", "geo_service", "get_data", "--broker", geo_service, "-o", str(out)
    )
    assert result.returncode == 0, result.stderr
    xr.testing.assert_identical(
        xr.load_dataset(out), xr.load_dataset(SAMPLE_DATA / "gridded_temperature.nc")
    )
    # printed, the reply is what Demap and demessaging read: base64 NetCDF3
    result = run_cli("call", "geo_service", "get_data", "--broker", geo_service)
    text = json.loads(result.stdout)
    assert isinstance(text, str) and text.startswith("Q0RGA")  # b"CDF\x01"


def test_planted_cf_and_crs_defects_are_named(broker_process):
    bad = xr.load_dataset(SAMPLE_DATA / "noncompliant.nc")
    with (
        backend(MODULES / "geo_checks.py", "geo-checks", broker_process),
        dasf_geo.connect("geo-checks", broker_process.url) as svc,
    ):
        with pytest.raises(RemoteValidationError) as info:
            svc.count_cells(bad)
        good = xr.load_dataset(SAMPLE_DATA / "gridded_temperature.nc")
        assert svc.count_cells(good) == 18 * 36
    (error,) = info.value.errors
    assert error["loc"] == ["ds"]  # one function: no union tag in front
    assert "variable 'temp' attribute 'units'" in error["msg"]
    assert "[rule units-parseable]" in error["msg"]


def test_dataset_reply_is_binary_only_for_callers_that_ask(geo_service):
    from dasf_geo.data import BINARY_MEDIA_TYPES
    from dasf_geo.transport.client import BinaryValue, Client
    from dasf_geo.transport.dynamic import messaging_config

    grid = xr.load_dataset(SAMPLE_DATA / "gridded_temperature.nc")
    config = messaging_config("geo_service", geo_service)
    with Client(config, timeout=timeout(60)) as client:
        binary = client.call({"func_name": "get_data"}, accept=BINARY_MEDIA_TYPES)
        plain = client.call({"func_name": "get_data"})
        other = client.call({"func_name": "get_data"}, accept=["text/csv"])
    assert isinstance(binary, BinaryValue)
    assert binary.media_type == "application/x-netcdf; xarray=Dataset"
    assert bytes(binary.data[:4]) == b"CDF\x01"  # NetCDF3 classic, base64 once
    xr.testing.assert_identical(binary.decode(), grid)
    # JSON callers (demessaging, the web map) get base64 NetCDF as before,
    # and it is the same encoding
    assert isinstance(plain, str) and plain == binary.to_json() == other


@pytest.fixture(scope="module")
def args_service():
    """``dasf-geo serve`` on a module that hands its arguments back."""
    with dasf_geo_serve(MODULES / "geo_args.py", "geo-args") as (url, _):
        yield url


def big_grid(nt: int, seed: int = 0) -> xr.Dataset:
    """``nt`` MB of float32 (500 x 500 per time step), NaNs included."""
    values = np.random.default_rng(seed).random((nt, 500, 500), dtype="float32")
    values[0, 0, :7] = np.nan
    return xr.Dataset(
        {"t2m": (("time", "lat", "lon"), values, {"units": "K"})},
        coords={
            # nanoseconds: what NetCDF readers decode datetimes to
            "time": pd.date_range("2000-01-01", periods=nt, freq="D", unit="ns"),
            "lat": ("lat", np.linspace(-80, 80, 500), {"units": "degrees_north"}),
            "lon": ("lon", np.linspace(-170, 170, 500), {"units": "degrees_east"}),
        },
        attrs={"Conventions": "CF-1.8", "crs": "EPSG:4326"},
    )


def assert_bit_exact(got: xr.Dataset, want: xr.Dataset) -> None:
    xr.testing.assert_identical(got, want)
    for name, var in want.variables.items():
        assert got[name].dtype == var.dtype, name
        assert got[name].values.tobytes() == var.values.tobytes(), name


@pytest.mark.parametrize("size_mb", [5, 40], ids=["5MB-in-memory", "40MB-in-a-file"])
def test_dataset_arguments_travel_as_binary_parts(args_service, size_mb):
    """A Dataset argument goes as raw NetCDF (base64 once) and comes back exact;
    above 32 MiB the backend reassembles it in a file and reads the part from a
    temporary file of its own, removed after the request."""
    ds = big_grid(size_mb)
    with dasf_geo.connect("geo-args", args_service, timeout=timeout(120)) as svc:
        assert svc._client.supports_parts  # learned from the API info
        assert_bit_exact(svc.echo_dataset(ds), ds)
        da = svc.echo_dataarray(ds["t2m"])
        xr.testing.assert_identical(da, ds["t2m"])
        assert da.values.tobytes() == ds["t2m"].values.tobytes()
        where = svc.argument_file(ds)
    if size_mb * 1_000_000 > 32 * 1024 * 1024:
        assert where["source"].endswith(".part"), where  # the temp-file path
    else:
        assert where["source"] == "", where  # decoded from memory
    assert where["exists"] == bool(where["source"])  # there while the function ran
    assert not os.path.exists(where["source"])  # removed once it was answered


def test_datatrees_and_series_round_trip_through_serve():
    tree = xr.DataTree.from_dict(
        {
            "/": xr.Dataset(attrs={"Conventions": "CF-1.8", "crs": "EPSG:4326"}),
            "/forecast": xr.Dataset(
                {"t": ("step", np.array([280.5, 281.0], "f4"), {"units": "K"})},
                attrs={"complete": True},
            ),
            "/forecast/members": xr.Dataset(
                {"n": ("member", np.arange(3, dtype="i4"))}
            ),
        }
    )
    series = pd.Series(
        [1.5, 2.0, 4.0], index=pd.Index([10, 20, 30], name="km"), name="h"
    )
    with (
        dasf_geo_serve(MODULES / "geo_trees.py", "geo-trees") as (url, _),
        dasf_geo.connect("geo-trees", url, timeout=timeout(60)) as svc,
    ):
        back = svc.add_group(tree, "analysis")
        expected = tree.copy()
        expected["analysis"] = xr.DataTree()
        xr.testing.assert_identical(back, expected)
        assert back["forecast"].attrs["complete"] is True
        pd.testing.assert_series_equal(svc.cumulative(series), series.cumsum())
