"""CF, crs and Demap checks: each finding names variable, attribute and rule."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from dasf_geo.data import (
    CFConventionWarning,
    CRSWarning,
    Finding,
    check_cf,
    check_crs,
    check_demap,
    coerce_demap,
    standard_name_table,
)
from dasf_geo.exceptions import (
    CFConventionError,
    ConfigurationError,
    CRSError,
    DataError,
)
from tests.conftest import SAMPLE_DATA


@pytest.fixture
def grid():
    return xr.open_dataset(SAMPLE_DATA / "gridded_temperature.nc").load()


@pytest.fixture
def broken():
    return xr.open_dataset(SAMPLE_DATA / "noncompliant.nc").load()


def rules(findings):
    return [(f.variable, f.attribute, f.rule) for f in findings]


def test_sample_grid_is_clean(grid):
    assert check_cf(grid, "strict") == []
    assert check_crs(grid, "required") == []
    assert check_demap(grid) == []


def test_noncompliant_sample_findings(broken):
    with pytest.warns(CFConventionWarning):
        found = check_cf(broken, "warn")
    assert rules(found) == [
        (None, "Conventions", "conventions-attribute"),
        ("temp", "units", "units-parseable"),
        ("temp", "standard_name", "standard-name-table"),
        ("temp", "coordinates", "coordinates-reference"),
        ("precip", "units", "standard-name-units"),
        ("lat", None, "latitude-range"),
    ]
    assert str(found[2]) == (
        "variable 'temp' attribute 'standard_name': 'air_temprature' is not in the "
        "CF standard name table; fix the spelling or use long_name instead; "
        "did you mean 'air_temperature'? [rule standard-name-table]"
    )
    assert str(found[0]) == (
        "global attribute 'Conventions': missing; set ds.attrs['Conventions'] = "
        "'CF-1.8' [rule conventions-attribute]"
    )
    with pytest.raises(CFConventionError) as exc:
        check_cf(broken, "strict", label="ds")
    assert exc.value.findings == found
    assert str(exc.value).startswith("ds: 6 CF finding(s): global attribute")
    with pytest.raises(CRSError) as exc2:
        check_crs(broken, "required")
    assert rules(exc2.value.findings) == [(None, "crs", "crs-parse")]


def test_warn_mode_logs(broken, caplog):
    with (
        caplog.at_level(logging.WARNING, logger="dasf_geo.data"),
        pytest.warns(CRSWarning),
    ):
        check_crs(broken, "optional")
    assert "rule crs-parse" in caplog.text


def test_off_mode_checks_nothing(broken):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_cf(broken, "off") == []
        assert check_crs(broken, "off") == []


def test_bad_mode_is_configuration_error(grid):
    with pytest.raises(ConfigurationError) as exc:
        check_cf(grid, "loud")
    assert (
        str(exc.value) == "cf='loud' is not a valid mode; use one of strict, warn, off"
    )
    with pytest.raises(ConfigurationError, match="crs='strict' is not a valid mode"):
        check_crs(grid, "strict")


def test_check_rejects_non_xarray():
    with pytest.raises(
        DataError, match="expected an xarray Dataset or DataArray, got dict"
    ):
        check_cf({}, "warn")


def _one(ds, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rules(check_cf(ds, "warn", **kw))


def test_time_units_and_calendar(grid):
    ds = grid.copy()
    ds["time"].encoding["calendar"] = "martian"
    assert ("time", "calendar", "time-calendar") in _one(ds)
    ds = xr.Dataset(
        {"v": ("t", [1.0], {"units": "days since never"})},
        attrs={"Conventions": "CF-1.8"},
    )
    assert ("v", "units", "units-parseable") in _one(ds) or (
        "v",
        "units",
        "time-units",
    ) in _one(ds)


def test_fill_value_type(grid):
    ds = grid.copy()
    ds["n"] = ("lat", np.arange(18, dtype="i4"), {"missing_value": 1.5})
    assert ("n", "missing_value", "fillvalue-type") in _one(ds)
    ds["n"].attrs = {"missing_value": "x"}
    assert ("n", "missing_value", "fillvalue-type") in _one(ds)


def test_references_bounds_and_grid_mapping(grid):
    ds = grid.copy()
    ds["lat"].attrs["bounds"] = "lat_bnds"
    ds["tas"].attrs["grid_mapping"] = "crs_var: lat lon"
    found = _one(ds)
    assert ("lat", "bounds", "bounds-reference") in found
    assert ("tas", "grid_mapping", "grid-mapping-reference") in found


def test_variable_name_axis_and_identification(grid):
    ds = grid.rename({"tas": "2m-temp"})
    ds["lon"].attrs["axis"] = "W"
    ds = ds.assign_coords(x=("x", [1.0, 2.0]))
    found = _one(ds)
    assert ("2m-temp", None, "variable-name") in found
    assert ("lon", "axis", "axis-attribute") in found
    assert ("x", None, "axis-identification") in found


def test_longitude_range_and_modifier(grid):
    ds = grid.assign_coords(lon=grid.lon + 400)
    ds["tas"].attrs["standard_name"] = "air_temperature standard_deviation"
    found = _one(ds)
    assert ("lon", None, "longitude-range") in found
    assert ("tas", "standard_name", "standard-name-modifier") in found
    ds["tas"].attrs["standard_name"] = "air_temperature standard_error"
    assert ("tas", "standard_name", "standard-name-modifier") not in _one(ds)


def test_dataarray_has_no_conventions_rule(grid):
    assert check_cf(grid["tas"], "strict") == []


def test_standard_name_table():
    table = standard_name_table()
    assert table["air_temperature"] == "K"
    assert table["sea_surface_temperature"] == "K"
    assert len(table) > 4000


def test_crs_rules(grid):
    ds = grid.copy()
    ds.attrs["crs"] = 4326
    assert rules(check_crs(ds, "off")) == []
    with pytest.raises(CRSError) as exc:
        check_crs(ds, "required")
    assert rules(exc.value.findings) == [(None, "crs", "crs-parse")]
    ds.attrs["crs"] = "EPSG:4326"
    shifted = ds.assign_coords(lat=ds.lat * 1000)
    with pytest.raises(CRSError) as exc:
        check_crs(shifted, "required")
    assert rules(exc.value.findings) == [("lat", None, "crs-geographic-range")]
    proj = ds.copy()
    proj.attrs["crs"] = "EPSG:32632"
    with pytest.raises(CRSError) as exc:
        check_crs(proj, "required")
    assert rules(exc.value.findings) == [(None, "crs", "crs-projected-xy")]
    utm = xr.Dataset(
        {"v": (("y", "x"), np.zeros((2, 2)), {"grid_mapping": "spatial_ref"})},
        coords={"x": [500000.0, 501000.0], "y": [5e6, 5.001e6]},
        attrs={"crs": "EPSG:32632"},
    )
    import pyproj

    utm["spatial_ref"] = ((), 0, pyproj.CRS("EPSG:32632").to_cf())
    assert check_crs(utm, "required") == []
    utm["spatial_ref"].attrs = pyproj.CRS("EPSG:32633").to_cf()
    with pytest.raises(CRSError) as exc:
        check_crs(utm, "required")
    assert rules(exc.value.findings) == [("spatial_ref", None, "crs-grid-mapping")]


def test_missing_crs_is_fine_when_optional(grid):
    ds = grid.copy()
    del ds.attrs["crs"]
    assert check_crs(ds, "optional") == []


def test_demap_findings_and_coercion(grid):
    ds = grid.copy()
    del ds.attrs["crs"]
    ds["count"] = (("lon", "lat"), np.ones((36, 18), "i8"))
    found = check_demap(ds)
    assert rules(found) == [
        (None, "crs", "demap-crs"),
        ("count", None, "demap-dtype"),
    ] or ("count", None, "demap-dtype") in rules(found)
    fixed = coerce_demap(ds)
    assert check_demap(fixed) == []
    assert fixed.attrs["crs"] == "EPSG:4326"
    assert fixed["count"].dtype == np.int32
    assert fixed["count"].dims == ("lat", "lon")
    assert grid.attrs["crs"] == "EPSG:4326"  # input untouched


def test_demap_coercion_refuses_what_it_cannot_fix():
    ds = xr.Dataset({"v": ("station", [1.0, 2.0])})
    with pytest.raises(DataError) as exc:
        coerce_demap(ds)
    assert str(exc.value).startswith(
        "cannot make the data Demap-ready: global attribute 'crs': Demap needs"
    )
    assert "[rule demap-spatial-coords]" in str(exc.value)


def test_demap_extra_dims(grid):
    ds = grid.expand_dims(level=[1000.0])
    assert ("tas", None, "demap-dims") in rules(check_demap(ds))


def test_finding_formats():
    f = Finding(None, None, "demap-data-vars", "no data variable to draw")
    assert str(f) == "dataset: no data variable to draw [rule demap-data-vars]"
    assert f.to_dict() == {
        "variable": None,
        "attribute": None,
        "rule": "demap-data-vars",
        "message": "no data variable to draw",
    }


def test_datetime_coordinates_are_not_flagged():
    ds = xr.Dataset(
        {"v": ("time", [1.0, 2.0])},
        coords={"time": pd.date_range("2020", periods=2)},
        attrs={"Conventions": "CF-1.8"},
    )
    assert check_cf(ds, "strict") == []


def _hostile_attrs():
    import xarray.testing.strategies as xrst
    from hypothesis import strategies as st

    keys = st.sampled_from(
        [
            "units",
            "standard_name",
            "axis",
            "calendar",
            "coordinates",
            "bounds",
            "grid_mapping",
            "_FillValue",
            "missing_value",
            "crs",
            "Conventions",
        ]
    )
    values = st.one_of(
        xrst.simple_attrs.flatmap(lambda d: st.sampled_from(list(d.values()) or [1])),
        st.sampled_from(["degrees_north", "days since 2000-01-01", "X", "EPSG:4326"]),
    )
    return st.dictionaries(keys, values, max_size=5)


def _hostile_dataset(var_attrs, lat_attrs, glob):
    ds = xr.Dataset(
        {"v": (("lat", "lon"), np.zeros((2, 2), "f4"), var_attrs)},
        coords={"lat": ("lat", [0.0, 1.0], lat_attrs), "lon": [0.0, 1.0]},
        attrs=glob,
    )
    return ds


def test_checks_survive_hostile_attributes():
    from hypothesis import given, settings

    @settings(max_examples=25, deadline=None)
    @given(_hostile_attrs(), _hostile_attrs(), _hostile_attrs())
    def run(var_attrs, lat_attrs, glob):
        ds = _hostile_dataset(var_attrs, lat_attrs, glob)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for found in (
                check_cf(ds, "warn"),
                check_crs(ds, "optional"),
                check_demap(ds),
                check_cf(ds["v"], "warn"),
            ):
                assert all(isinstance(f, Finding) and f.rule for f in found)

    run()


_RAISED_AGAIN = ValueError("raised by every failing call")


def test_a_failing_block_leaves_its_findings_on_the_exception():
    from dasf_geo.data import collect_findings, reports_of

    ds = xr.Dataset({"t": ("x", [1.0], {"units": "Kelvinn"})})
    ds.attrs["Conventions"] = "CF-1.8"
    with pytest.raises(RuntimeError) as info, collect_findings():
        check_cf(ds, "warn", label="ds")
        try:
            raise _RAISED_AGAIN
        except ValueError as exc:
            raise RuntimeError("the call failed") from exc
    # found along the chain: the outer error carries them
    assert [(r.kind, r.label) for r in reports_of(info.value)] == [("CF", "ds")]
    # the same exception object raised again by a clean block: no old findings
    with pytest.raises(ValueError) as again, collect_findings():
        raise _RAISED_AGAIN
    assert reports_of(again.value) == []
    assert reports_of(None) == []
