"""sample_data/ is reproducible from its script and fits its purpose."""

from __future__ import annotations

import importlib.util

import pandas as pd
import xarray as xr

from dasf_geo.data import check_cf, check_crs, check_demap, read_netcdf
from tests.conftest import SAMPLE_DATA


def _script():
    spec = importlib.util.spec_from_file_location(
        "make_sample_data", SAMPLE_DATA / "make_sample_data.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_files_match_their_generator(tmp_path):
    script = _script()
    for name, make in (
        ("gridded_temperature.nc", script.gridded_temperature),
        ("noncompliant.nc", script.noncompliant),
    ):
        expected = bytes(make().to_netcdf(format="NETCDF3_CLASSIC", engine="scipy"))
        assert (SAMPLE_DATA / name).read_bytes() == expected, name
    stations = script.stations()
    pd.testing.assert_frame_equal(
        pd.read_csv(SAMPLE_DATA / "stations.csv", parse_dates=["time"]),
        stations,
        check_dtype=False,
    )


def test_sample_files_are_small():
    total = sum(p.stat().st_size for p in SAMPLE_DATA.iterdir() if p.is_file())
    assert total < 300_000


def test_gridded_file_is_compliant_and_demap_ready():
    ds = read_netcdf(SAMPLE_DATA / "gridded_temperature.nc")
    assert check_cf(ds, "strict") == []
    assert check_crs(ds, "required") == []
    assert check_demap(ds) == []
    assert ds.tas.dims == ("time", "lat", "lon")
    assert isinstance(ds, xr.Dataset)
