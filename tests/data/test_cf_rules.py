"""Each documented CF/crs defect is found (with its suggestion), and what
real files hold — undecoded times, fill values, axes cf-xarray identifies —
is not reported."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import xarray as xr

from dasf_geo.data import (
    CF_RULES,
    Finding,
    cf_findings,
    check_cf,
    crs_findings,
)
from dasf_geo.data._checks import rules_markdown
from tests.conftest import REPO_ROOT


def clean() -> xr.Dataset:
    """A CF-1.8 grid with undecoded (numeric) time, as a file holds it."""
    return xr.Dataset(
        {
            "tas": (
                ("time", "lat", "lon"),
                np.full((2, 2, 3), 280.0, "f4"),
                {"standard_name": "air_temperature", "units": "K"},
            )
        },
        coords={
            "time": (
                "time",
                [0.0, 3600.0],
                {
                    "standard_name": "time",
                    "units": "seconds since 1970-01-01",
                    "calendar": "standard",
                    "axis": "T",
                },
            ),
            "lat": (
                "lat",
                [10.0, 20.0],
                {"standard_name": "latitude", "units": "degrees_north"},
            ),
            "lon": (
                "lon",
                [0.0, 10.0, 20.0],
                {"standard_name": "longitude", "units": "degrees_east"},
            ),
        },
        attrs={"Conventions": "CF-1.8", "crs": "EPSG:4326"},
    )


def found(ds: xr.Dataset) -> list[tuple[str | None, str | None, str]]:
    return [(f.variable, f.attribute, f.rule) for f in cf_findings(ds)]


def test_a_clean_cf18_file_with_undecoded_time_gives_no_finding(tmp_path):
    ds = clean()
    assert found(ds) == []
    ds.to_netcdf(tmp_path / "clean.nc")
    with xr.open_dataset(tmp_path / "clean.nc", decode_times=False) as raw:
        assert cf_findings(raw) == []
        assert crs_findings(raw, required=True) == []
    with xr.open_dataset(tmp_path / "clean.nc") as decoded:
        assert cf_findings(decoded) == []


def test_forecast_reference_time_takes_reference_units_too():
    ds = clean()
    ds["ref"] = (
        (),
        0.0,
        {"standard_name": "forecast_reference_time", "units": "hours since 2020-01-01"},
    )
    assert found(ds) == []
    # a period is not an instant: "hours since" is wrong for it
    ds["ref"].attrs["standard_name"] = "forecast_period"
    assert found(ds) == [("ref", "units", "standard-name-units")]


def test_time_units_speak_about_time_units():
    ds = clean()
    ds["time"].attrs["units"] = "days after 2000-01-01"
    (f,) = cf_findings(ds)
    assert (f.variable, f.attribute, f.rule) == ("time", "units", "time-units")
    assert f.suggestion == "use 'days since 2000-01-01'"
    ds["time"].attrs["units"] = "s"
    (f,) = cf_findings(ds)
    assert str(f) == (
        "variable 'time' attribute 'units': 's': a time coordinate needs units "
        "'<unit> since <date>'; use e.g. 'seconds since 1970-01-01' [rule time-units]"
    )
    ds["time"].attrs["units"] = "days since 2000-13-45"
    assert found(ds) == [("time", "units", "time-units")]


@pytest.mark.parametrize("explicit", [False, True])
def test_fill_values_are_not_data(tmp_path, explicit):
    ds = clean()
    lat = np.array([10.0, 9.969209968386869e36], "f4")
    ds = ds.assign_coords(lat=("lat", lat, ds.lat.attrs))
    encoding = {"lat": {"_FillValue": 9.969209968386869e36 if explicit else None}}
    ds.to_netcdf(tmp_path / "f.nc", encoding=encoding)
    for kw in ({}, {"decode_times": False}, {"mask_and_scale": False}):
        with xr.open_dataset(tmp_path / "f.nc", **kw) as opened:
            assert "latitude-range" not in [f.rule for f in cf_findings(opened)]
            assert crs_findings(opened, required=True) == []
    # a value out of range beside the fill value is still found
    bad = ds.assign_coords(
        lat=("lat", np.array([95.0, 9.969209968386869e36], "f4"), ds.lat.attrs)
    )
    assert ("lat", None, "latitude-range") in found(bad)
    missing = ds.assign_coords(
        lat=("lat", [95.0, -999.0], {**ds.lat.attrs, "missing_value": 95.0})
    )
    assert ("lat", None, "latitude-range") in found(missing)


def test_axes_cf_xarray_identifies_are_not_reported():
    ds = clean()
    ds["lat"].attrs = {"_CoordinateAxisType": "Lat"}
    assert ("lat", None, "axis-identification") not in found(ds)
    ds["lat"].attrs = {}
    assert ("lat", None, "axis-identification") in found(ds)
    # strict mode is no false CFConventionError for an identified axis
    ds["lat"].attrs = {"_CoordinateAxisType": "Lat"}
    ds["lon"].attrs = {"_CoordinateAxisType": "Lon"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_cf(ds, "strict") == []


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("air_temperatur", "did you mean 'air_temperature'?"),
        ("sea_surface_temprature", "did you mean 'sea_surface_temperature'?"),
        ("eastward_wnd", "did you mean 'eastward_wind'?"),
        ("completely_made_up_quantity", None),
    ],
)
def test_misspelt_standard_names_get_the_closest_names(name, suggestion):
    ds = clean()
    ds["tas"].attrs["standard_name"] = name
    (f,) = cf_findings(ds)
    assert f.rule == "standard-name-table" and f.suggestion == suggestion


def planted_attribute(variable: str, attribute: str, value: str) -> tuple:
    """A defect set as one attribute, and where its finding is."""
    return (
        lambda ds: ds[variable].attrs.update({attribute: value}),
        variable,
        attribute,
    )


#: one planted defect per documented rule: (change, variable, attribute, rule)
PLANTED = {
    "conventions-attribute": (
        lambda ds: ds.attrs.pop("Conventions"),
        None,
        "Conventions",
    ),
    "variable-name": (lambda ds: ds.__setitem__("2t", ds.tas), "2t", None),
    "units-parseable": planted_attribute("tas", "units", "Kelvinn"),
    "time-calendar": planted_attribute("time", "calendar", "martian"),
    "time-units": planted_attribute("time", "units", "days after 2000"),
    "standard-name-table": planted_attribute("tas", "standard_name", "air_temp"),
    "standard-name-modifier": planted_attribute(
        "tas", "standard_name", "air_temperature flux"
    ),
    "standard-name-units": planted_attribute("tas", "units", "m"),
    "fillvalue-type": planted_attribute("tas", "_FillValue", "x"),
    "coordinates-reference": planted_attribute("tas", "coordinates", "height"),
    "bounds-reference": planted_attribute("lat", "bounds", "lat_bnds"),
    "grid-mapping-reference": planted_attribute("tas", "grid_mapping", "crs_var"),
    "axis-attribute": planted_attribute("lon", "axis", "W"),
    "axis-identification": (lambda ds: ds.lon.attrs.clear(), "lon", None),
    "latitude-units": planted_attribute("lat", "units", "degrees"),
    "latitude-range": (lambda ds: ds.__setitem__("lat", ds.lat + 75), "lat", None),
    "longitude-units": planted_attribute("lon", "units", "degrees"),
    "longitude-range": (lambda ds: ds.__setitem__("lon", ds.lon + 350), "lon", None),
}


@pytest.mark.parametrize("rule", sorted(PLANTED))
def test_each_planted_defect_is_found(rule):
    change, variable, attribute = PLANTED[rule]
    ds = clean().copy(deep=True)
    change(ds)
    assert (variable, attribute, rule) in found(ds)


def test_every_rule_has_a_planted_defect_and_a_docs_row():
    ids = [i for r in CF_RULES for i in r.ids]
    assert sorted(ids) == sorted(PLANTED)
    docs = (REPO_ROOT / "docs" / "data.md").read_text(encoding="utf-8")
    assert rules_markdown() in docs


def test_crs_defects_are_found():
    ds = clean()
    ds.attrs["crs"] = "EPSG:99999"
    assert [f.rule for f in crs_findings(ds, required=False)] == ["crs-parse"]
    del ds.attrs["crs"]
    assert [f.rule for f in crs_findings(ds, required=True)] == ["crs-missing"]
    assert crs_findings(ds, required=False) == []


def test_unit_messages_do_not_carry_the_c_librarys_errno():
    ds = clean()
    ds["tas"].attrs["units"] = "Kelvinn"
    for _ in range(3):
        (f,) = cf_findings(ds)
        assert not re.search(r": b'", f.message)
    assert isinstance(f, Finding)


@pytest.mark.parametrize("fmt", ["netcdf3", "netcdf4"])
def test_no_fill_value_is_written_on_coordinate_variables(tmp_path, fmt):
    import netCDF4

    from dasf_geo.data import read_netcdf, write_netcdf

    ds = clean()
    ds = ds.assign_coords(lon=("lon", [0.0, np.nan, 20.0], ds.lon.attrs))
    ds.to_netcdf(tmp_path / "src.nc")  # xarray writes _FillValue = NaN on lat/lon
    with xr.open_dataset(tmp_path / "src.nc", decode_times=False) as opened:
        opened.load()
    assert np.isnan(opened.lat.encoding["_FillValue"])
    for source in (ds, opened):
        path = tmp_path / f"out-{fmt}.nc"
        assert write_netcdf(source, path, format=fmt) == fmt
        with netCDF4.Dataset(path) as nc:
            for name in ("lat", "lon", "time"):
                assert "_FillValue" not in nc[name].ncattrs(), name
            assert "_FillValue" in nc["tas"].ncattrs()  # data keep theirs
        back = read_netcdf(path)
        xr.testing.assert_identical(back, xr.decode_cf(source))
    # a fill value that masks values is the data owner's: kept
    masked = ds.copy()
    masked["lat"].encoding["_FillValue"] = -999.0
    write_netcdf(masked, tmp_path / "masked.nc", format=fmt)
    with netCDF4.Dataset(tmp_path / "masked.nc") as nc:
        assert nc["lat"].getncattr("_FillValue") == -999.0
