"""NetCDF3 / NetCDF4 / zarr encode-decode pairs and the format rule."""

from __future__ import annotations

import base64
import io
import tempfile

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st

from dasf_geo.data import (
    choose_format,
    decode_base64_xarray,
    detect_format,
    encode_base64_xarray,
    read_dataarray,
    read_netcdf,
    write_netcdf,
)
from dasf_geo.exceptions import DataError
from tests.data.strategies import NC3_DTYPES, NC4_DTYPES, datasets


def roundtrip(obj, fmt, **kw):
    buf = io.BytesIO()
    used = write_netcdf(obj, buf, format=fmt, **kw)
    buf.seek(0)
    if isinstance(obj, xr.DataArray):
        return used, read_dataarray(buf.getvalue())
    return used, read_netcdf(buf.getvalue())


def assert_exact_roundtrip(ds: xr.Dataset, fmt: str) -> None:
    """``ds`` comes back identical, dtypes included, in format ``fmt``."""
    used, back = roundtrip(ds, fmt)
    assert used == fmt
    xr.testing.assert_identical(back, ds)
    for name in ds.variables:
        assert back[name].dtype == ds[name].dtype, name


@given(datasets(NC3_DTYPES))
def test_netcdf3_roundtrip_property(ds):
    assert_exact_roundtrip(ds, "netcdf3")


@given(datasets([*NC3_DTYPES, "U3", "S3", "M8[ns]"]))
def test_netcdf3_file_reads_as_the_bytes_do(ds):
    # a file is read by the netCDF4 library (no memory map), bytes by scipy:
    # both must give the same Dataset, dtypes and attribute types included
    buf = io.BytesIO()
    try:
        write_netcdf(ds, buf, format="netcdf3")
    except DataError:  # e.g. nanosecond times; test_never_silently_altered
        return
    with tempfile.NamedTemporaryFile(suffix=".nc") as fh:
        fh.write(buf.getvalue())
        fh.flush()
        from_file = read_netcdf(fh.name)
    from_bytes = read_netcdf(buf.getvalue())
    xr.testing.assert_identical(from_file, from_bytes)
    for name in from_bytes.variables:
        assert from_file[name].dtype == from_bytes[name].dtype, name
    for key, value in from_bytes.attrs.items():
        assert type(from_file.attrs[key]) is type(value), key


@given(datasets(NC4_DTYPES))
def test_netcdf4_roundtrip_property(ds):
    assert_exact_roundtrip(ds, "netcdf4")


@given(datasets(NC4_DTYPES))
def test_auto_roundtrip_property_is_exact(ds):
    used, back = roundtrip(ds, "auto")
    assert used in ("netcdf3", "netcdf4")
    xr.testing.assert_identical(back, ds)
    for name in ds.variables:
        assert back[name].dtype == ds[name].dtype, name


@pytest.mark.slow
@given(datasets(NC4_DTYPES))
def test_zarr_roundtrip_property(ds):
    used, back = roundtrip(ds, "zarr")
    assert used == "zarr"
    xr.testing.assert_identical(back, ds)
    for name in ds.variables:
        assert back[name].dtype == ds[name].dtype, name


def _grid():
    return xr.Dataset(
        {"t": (("time", "x"), np.array([[1.0, np.nan], [3.0, 4.0]], "f4"))},
        coords={
            "time": pd.date_range("2020-01-01", periods=2),
            "x": np.array([10, 20], "i4"),
        },
        attrs={"crs": "EPSG:4326", "n": 3},
    )


@pytest.mark.parametrize("fmt", ["netcdf3", "netcdf4", "zarr"])
def test_nan_fill_value_time_and_attrs_roundtrip(fmt):
    ds = _grid()
    ds["t"].encoding["_FillValue"] = -999.0
    used, back = roundtrip(ds, fmt)
    assert used == fmt
    xr.testing.assert_identical(back, ds)
    assert np.isnan(back.t.values[0, 1])


@pytest.mark.parametrize("fmt", ["netcdf3", "netcdf4", "zarr"])
def test_dataarray_roundtrip_keeps_name(fmt):
    for name in (None, "temp", "x"):
        da = _grid()["t"].rename(name)
        _, back = roundtrip(da, fmt)
        xr.testing.assert_identical(back, da)


def test_netcdf3_is_what_demessaging_reads_and_writes():
    # demessaging 0.6.4's encode_xarray is b64encode(obj.to_netcdf(format=
    # "NETCDF3_CLASSIC")) and its validators xr.open_dataset(b64decode(text)).
    # Our default is NetCDF3 classic written by scipy (the fast engine):
    ds = _grid()
    text = encode_base64_xarray(ds)
    scipy_ref = ds.to_netcdf(format="NETCDF3_CLASSIC", engine="scipy")
    assert text == base64.b64encode(bytes(scipy_ref)).decode()
    assert base64.b64decode(text)[:4] == b"CDF\x01"
    # a demessaging caller reads it with xarray's default engine choice
    xr.testing.assert_identical(xr.open_dataset(base64.b64decode(text)).load(), ds)
    da = ds["t"]
    back = xr.open_dataarray(base64.b64decode(encode_base64_xarray(da))).load()
    xr.testing.assert_identical(back, da)
    # and we read what demessaging writes (whichever engine xarray picked)
    ref = base64.b64encode(bytes(ds.to_netcdf(format="NETCDF3_CLASSIC"))).decode()
    xr.testing.assert_identical(decode_base64_xarray(ref), ds)


def test_auto_rule():
    ds = _grid()
    assert choose_format(ds) == "netcdf3"
    assert choose_format(ds, compression=4) == "netcdf4"
    assert choose_format(ds.assign(i=("x", np.array([1, 2], "i8")))) == "netcdf4"
    assert choose_format(ds.assign(u=("x", np.array([1, 2], "u1")))) == "netcdf4"
    assert choose_format(ds, "zarr") == "zarr"


def test_int64_is_not_narrowed():
    ds = xr.Dataset({"big": ("x", np.array([1, 2**40], "i8"))})
    used, back = roundtrip(ds, "auto")
    assert used == "netcdf4"
    assert back.big.dtype == np.int64
    assert back.big.values[1] == 2**40


def test_explicit_netcdf3_refuses_int64_naming_the_variable():
    ds = xr.Dataset({"big": ("x", np.array([1, 2], "i8"))})
    with pytest.raises(DataError) as exc:
        write_netcdf(ds, io.BytesIO(), format="netcdf3")
    assert str(exc.value) == (
        "variable 'big' has dtype int64, which NetCDF3 cannot hold exactly; use "
        "format 'netcdf4' or 'auto', or convert it to int32/float64"
    )


def test_complex_is_refused_naming_the_variable():
    ds = xr.Dataset({"z": ("x", np.array([1 + 2j]))})
    with pytest.raises(DataError, match="variable 'z' has complex dtype complex128"):
        write_netcdf(ds, io.BytesIO())


def test_object_values_are_refused_naming_the_variable():
    ds = xr.Dataset({"o": ("x", np.array([{"a": 1}], dtype=object))})
    with pytest.raises(DataError) as exc:
        write_netcdf(ds, io.BytesIO())
    assert str(exc.value).startswith(
        "variable 'o' has object dtype holding ['dict']; only str, bytes or cftime"
    )


def test_compression_with_netcdf3_is_a_clear_error():
    with pytest.raises(DataError) as exc:
        write_netcdf(_grid(), io.BytesIO(), format="netcdf3", compression=5)
    assert str(exc.value) == (
        "compression needs format 'netcdf4' or 'zarr'; NetCDF3 cannot compress, "
        "drop compression or change format"
    )


def test_compression_netcdf4_roundtrip_and_is_smaller():
    ds = xr.Dataset({"z": ("x", np.zeros(10000, "f8"))})
    plain, comp = io.BytesIO(), io.BytesIO()
    write_netcdf(ds, plain, format="netcdf4")
    assert write_netcdf(ds, comp, compression=5) == "netcdf4"
    assert len(comp.getvalue()) < len(plain.getvalue())
    xr.testing.assert_identical(read_netcdf(comp.getvalue()), ds)


@pytest.mark.parametrize("bad", [0, 10, -1, True, "5", 2.5])
def test_bad_compression_level(bad):
    with pytest.raises(DataError, match="compression must be a zlib level 1-9"):
        write_netcdf(_grid(), io.BytesIO(), format="netcdf4", compression=bad)


def test_unknown_format():
    with pytest.raises(DataError) as exc:
        write_netcdf(_grid(), io.BytesIO(), format="grib")
    assert str(exc.value) == (
        "unknown format 'grib'; choose one of auto, netcdf3, netcdf4, zarr"
    )


def test_write_rejects_non_xarray():
    with pytest.raises(DataError, match="expected an xarray Dataset or DataArray, got"):
        write_netcdf({"a": 1}, io.BytesIO())


def test_paths_and_file_objects(tmp_path):
    ds = _grid()
    path = tmp_path / "a.nc"
    assert write_netcdf(ds, path) == "netcdf3"
    xr.testing.assert_identical(read_netcdf(path), ds)
    with open(path, "rb") as fh:
        xr.testing.assert_identical(read_netcdf(fh), ds)
    zpath = tmp_path / "a.zarr.zip"
    write_netcdf(ds, zpath, format="zarr")
    xr.testing.assert_identical(read_netcdf(zpath), ds)
    xr.testing.assert_identical(read_netcdf(memoryview(path.read_bytes())), ds)


def test_spooled_tempfile_target():
    import tempfile

    ds = _grid()
    with tempfile.SpooledTemporaryFile(max_size=100) as fh:
        write_netcdf(ds, fh, format="netcdf4")
        fh.seek(0)
        xr.testing.assert_identical(read_netcdf(fh.read()), ds)


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b"CDF\x01", "netcdf3"),
        (b"CDF\x02", "netcdf3"),
        (b"\x89HDF", "netcdf4"),
        (b"PK\x03\x04", "zarr"),
    ],
)
def test_detect_format(head, fmt):
    assert detect_format(head + b"rest") == fmt


def test_garbage_bytes():
    with pytest.raises(DataError) as exc:
        read_netcdf(b"hello world")
    assert str(exc.value) == (
        "the data is not NetCDF3, NetCDF4 or zipped zarr (starts with b'hell'); "
        "send base64 of the bytes written by to_netcdf()"
    )


@pytest.mark.parametrize("head", [b"CDF\x01", b"\x89HDF\r\n\x1a\n", b"PK\x03\x04"])
def test_truncated_data_is_a_data_error(head):
    with pytest.raises(DataError, match="are truncated or corrupt"):
        read_netcdf(head + b"\x00" * 20)


def test_truncated_real_file():
    raw = bytes(_grid().to_netcdf(format="NETCDF3_CLASSIC"))
    with pytest.raises(DataError, match="cannot read the netcdf3 data"):
        read_netcdf(raw[: len(raw) // 2])


def test_base64_pair_and_bad_base64():
    ds = _grid()
    xr.testing.assert_identical(decode_base64_xarray(encode_base64_xarray(ds)), ds)
    da = ds["t"]
    xr.testing.assert_identical(
        decode_base64_xarray(encode_base64_xarray(da), dataarray=True), da
    )
    with pytest.raises(DataError, match="the string is not base64-encoded NetCDF"):
        decode_base64_xarray("***")


def test_dataarray_from_multi_variable_data():
    ds = _grid().assign(u=("x", [1.0, 2.0]))
    with pytest.raises(DataError) as exc:
        read_dataarray(bytes(ds.to_netcdf()))
    assert str(exc.value) == (
        "expected a DataArray, i.e. NetCDF data with exactly one data variable, "
        "got 2: ['t', 'u']; send a Dataset to a Dataset argument instead"
    )


def _xrst_datasets(dtypes):
    import xarray.testing.strategies as xrst
    from hypothesis import strategies as st

    from tests.data.strategies import attrs, names

    variables = xrst.variables(
        dims=xrst.dimension_sizes(dim_names=names, min_dims=0, max_dims=3, max_side=3),
        dtype=st.sampled_from([np.dtype(d) for d in dtypes]),
        attrs=attrs,
    )
    return st.builds(
        lambda var, name, glob: xr.Dataset({name: var}, attrs=glob),
        variables,
        names.map(lambda s: "v" + s),
        attrs,
    )


@given(_xrst_datasets(NC4_DTYPES))
def test_xarray_strategies_roundtrip_every_format(ds):
    # xarray's own public strategies generate the variables
    for fmt in ("auto", "netcdf4", "zarr"):
        _, back = roundtrip(ds, fmt)
        xr.testing.assert_identical(back, ds)
        # a variable named like its dimension is a coordinate, not a data_var
        for name in ds.variables:
            assert back[name].dtype == ds[name].dtype, (name, fmt)


@given(
    datasets(NC3_DTYPES),
    st.sampled_from(["i8", "u1", "u2", "u4", "u8", "c8", "c16"]),
    st.sampled_from(["netcdf3", "auto", "netcdf4"]),
)
def test_unsupported_values_fail_naming_the_variable(ds, dtype, fmt):
    bad = ds.assign(zz_bad=("zz_dim", np.zeros(2, dtype=dtype)))
    if dtype[0] != "c" and fmt != "netcdf3":
        _, back = roundtrip(bad, fmt)  # NetCDF4 holds them exactly
        xr.testing.assert_identical(back, bad)
        assert back.zz_bad.dtype == np.dtype(dtype)
        return
    with pytest.raises(DataError) as exc:
        write_netcdf(bad, io.BytesIO(), format=fmt)
    assert "variable 'zz_bad'" in str(exc.value)
    feature = "complex dtype" if dtype[0] == "c" else "NetCDF3 cannot hold exactly"
    assert feature in str(exc.value)


def test_decompression_bomb_is_refused(monkeypatch):
    from dasf_geo.data import _netcdf

    ds = xr.Dataset({"z": ("x", np.zeros(200_000, "f8"))})
    buf, fmt = _netcdf.netcdf_bytes(ds, compression=9)
    assert fmt == "netcdf4" and len(buf) < 100_000
    monkeypatch.setattr(_netcdf, "MAX_DECODED_BYTES", 1_000_000)
    with pytest.raises(DataError) as exc:
        read_netcdf(buf)
    assert str(exc.value).startswith(
        "the decoded data would take 1600000 bytes, more than the limit of 1000000"
    )
    zbuf, _ = _netcdf.netcdf_bytes(ds, format="zarr", compression=9)
    with pytest.raises(DataError, match="would take 1600000 bytes"):
        read_netcdf(zbuf)


@pytest.mark.parametrize("fmt", ["netcdf3", "netcdf4", "zarr"])
@pytest.mark.parametrize("calendar", ["360_day", "noleap", "julian"])
def test_cftime_calendars_roundtrip(fmt, calendar):
    times = xr.date_range(
        "2000-01-01", periods=3, freq="D", calendar=calendar, use_cftime=True
    )
    ds = xr.Dataset({"v": ("time", [1.0, 2.0, 3.0])}, coords={"time": times})
    used, back = roundtrip(ds, fmt)
    assert used == fmt
    xr.testing.assert_identical(back, ds)
    assert back.time.values[0].calendar == ds.time.values[0].calendar


WIDE_DTYPES = [*NC4_DTYPES, "M8[ns]", "M8[s]", "m8[ns]", "?", "U3", "S3", "f2"]


@given(datasets(WIDE_DTYPES), st.sampled_from(["auto", "netcdf3", "netcdf4"]))
def test_never_silently_altered(ds, fmt):
    # exact round trip, or an error that names the variable - nothing between
    try:
        _, back = roundtrip(ds, fmt)
    except DataError as exc:
        assert "variable '" in str(exc) or "attribute '" in str(exc)
        return
    xr.testing.assert_identical(back, ds)
    for name in ds.variables:
        if fmt == "netcdf3" and ds[name].dtype.kind == "U":
            # documented: NetCDF3 char data comes back as object strings
            assert back[name].dtype == object
            continue
        if ds[name].dtype.kind == "M":
            # documented: s and ms keep their unit, us and ns come back as ns
            unit = np.datetime_data(ds[name].dtype)[0]
            expected = unit if unit in ("s", "ms") else "ns"
            assert back[name].dtype == np.dtype(f"M8[{expected}]")
            continue
        if ds[name].dtype.kind in "US":
            # documented: fixed-width strings keep their kind, not their width
            assert back[name].dtype.kind == ds[name].dtype.kind
            continue
        assert back[name].dtype == ds[name].dtype, (name, fmt)


_SCIPY_RESERVES = (
    "cannot be written by the NetCDF3 (scipy) engine, which reserves that name"
)
_NOT_NC3 = "is a CDL type name, which NetCDF3 does not allow"


@pytest.mark.parametrize(
    ("where", "key", "label", "reason"),
    [
        ("global", "fp", "global attribute 'fp'", _SCIPY_RESERVES),
        ("var", "data", "variable 't' attribute 'data'", _SCIPY_RESERVES),
        ("global", "string", "global attribute 'string'", _NOT_NC3),
        ("var", "int", "variable 't' attribute 'int'", _NOT_NC3),
    ],
)
def test_attribute_names_netcdf3_refuses(where, key, label, reason):
    ds = _grid()
    (ds.attrs if where == "global" else ds["t"].attrs)[key] = 1
    assert choose_format(ds) == "netcdf4"
    _, back = roundtrip(ds, "auto")
    xr.testing.assert_identical(back, ds)
    with pytest.raises(DataError) as exc:
        write_netcdf(ds, io.BytesIO(), format="netcdf3")
    assert str(exc.value) == (
        f"{label} {reason}; rename the attribute or use format 'netcdf4' or 'auto'"
    )


_NOT_A_NAME = (
    "is not a valid NetCDF name (a name starts with a letter, digit or '_', is "
    "NFC-normalised Unicode, and has no '/', no control characters and no "
    "trailing space)"
)


@pytest.mark.parametrize("fmt", ["netcdf3", "netcdf4", "auto"])
@pytest.mark.parametrize(
    ("where", "key", "problem"),
    [
        ("global", "a/b", _NOT_A_NAME),
        ("var", "x ", _NOT_A_NAME),
        ("var", "-x", _NOT_A_NAME),
        ("global", "a\x01", _NOT_A_NAME),
        ("var", "", "is empty"),
        ("global", 7, "is of type int, not a string"),
    ],
)
def test_attribute_names_no_netcdf_holds(fmt, where, key, problem):
    ds = _grid()
    (ds.attrs if where == "global" else ds["t"].attrs)[key] = 1
    label = "global attribute" if where == "global" else "variable 't' attribute"
    with pytest.raises(DataError) as exc:
        write_netcdf(ds, io.BytesIO(), format=fmt)
    assert str(exc.value) == f"{label} {key!r} {problem}; rename the attribute"


@pytest.mark.parametrize(
    ("ds", "what"),
    [
        (xr.Dataset({"a/b": ("x", np.arange(3.0))}), "variable 'a/b'"),
        (xr.Dataset({"a": ("a/b", np.arange(3.0))}), "dimension 'a/b'"),
    ],
)
def test_zarr_refuses_names_it_would_nest(ds, what):
    # zarr reads 'a/b' as array 'b' in group 'a': the variable would be lost
    with pytest.raises(DataError) as exc:
        write_netcdf(ds, io.BytesIO(), format="zarr")
    assert str(exc.value) == (
        f"{what} cannot be stored in zarr, whose names are non-empty strings "
        "without '/'; rename it or use format 'netcdf3'"
    )
    _, back = roundtrip(ds, "netcdf3")
    xr.testing.assert_identical(back, ds)


@pytest.mark.parametrize("fmt", ["netcdf3", "netcdf4", "auto"])
@pytest.mark.parametrize(
    "values",
    [
        np.array("\x000"),
        np.array([b"ok", b"a\x00b"]),
        np.array(["ok", "cut\x00"], dtype=object),
    ],
)
def test_strings_with_nul_are_refused(fmt, values):
    # NetCDF ends a string at its first NUL: '\x000' would come back as ''
    ds = xr.Dataset({"s": (("x",)[: values.ndim], values)})
    with pytest.raises(DataError) as exc:
        write_netcdf(ds, io.BytesIO(), format=fmt)
    assert str(exc.value) == (
        "variable 's' holds a string with a NUL character ('\\x00'), where NetCDF "
        "would end the string; remove it, or store the text as bytes in an "
        "integer array"
    )


def test_strings_without_nul_pass_the_nul_check():
    # numpy pads fixed-width strings with NULs; that padding is not content
    ds = xr.Dataset({"s": ("x", np.array(["a", "long one"])), "b": ("x", [b"x", b""])})
    used, back = roundtrip(ds, "netcdf3")
    assert used == "netcdf3"
    assert list(back.s.values) == ["a", "long one"]
