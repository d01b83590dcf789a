"""DataTree, Series, boolean attributes and datetime units: round-trip laws
(hypothesis) and bad input named."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pandas as pd
import pybase64
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import pandas as hpd
from pydantic import BaseModel

from dasf_geo.data import (
    BINARY_MEDIA_TYPES,
    PARTS_CONTEXT,
    BinaryPart,
    CFConventionWarning,
    DataOptions,
    PartWriter,
    get_entry,
    read_netcdf,
    read_reply,
    request_parts,
    resolve_annotation,
    write_reply,
)
from dasf_geo.data._netcdf import netcdf_bytes
from dasf_geo.data._types import (
    TYPES_ATTRIBUTE,
    decode_types,
    encode_datatree,
    encode_series,
    to_datatree,
    to_series,
)
from dasf_geo.exceptions import DataError
from tests.data.strategies import _RESERVED, NC4_DTYPES, datasets, names


@st.composite
def trees(draw: st.DrawFn) -> xr.DataTree:
    """A DataTree of 1-4 groups (some nested), each a Dataset."""
    paths = draw(st.lists(st.lists(names, min_size=1, max_size=2), max_size=3))
    nodes = {"/": draw(datasets(NC4_DTYPES))}
    for parts in paths:
        nodes["/" + "/".join(parts)] = draw(datasets(NC4_DTYPES))
    # a group must not be named like a variable (DataTree) or a dimension
    # (NetCDF4) of its parent: such trees are tested on their own below
    try:
        tree = xr.DataTree.from_dict(nodes)
    except (ValueError, KeyError):
        return xr.DataTree(dataset=nodes["/"])
    for node in tree.subtree:
        if set(node.children) & {str(d) for d in node.dims}:
            return xr.DataTree(dataset=nodes["/"])
    return tree


@given(trees())
def test_datatrees_round_trip_exactly(tree):
    back = to_datatree(encode_datatree(tree))
    xr.testing.assert_identical(back, tree)
    # and through the registry's JSON wire form
    entry = get_entry(xr.DataTree)
    off = DataOptions(cf="off", crs="off")
    text = entry.serialize(tree, off)
    assert isinstance(text, str)
    xr.testing.assert_identical(entry.validate(text, off, "t"), tree)


@given(
    st.sampled_from(["i8", "f8", "bool", "i4", "u2"]).flatmap(
        lambda dtype: hpd.series(
            dtype=dtype,
            index=hpd.range_indexes(max_size=6) | hpd.indexes(dtype="i8", max_size=6),
            name=st.none() | names,
        )
    )
)
def test_series_round_trip_exactly(series):
    back = to_series(json.loads(json.dumps(encode_series(series))))
    pd.testing.assert_series_equal(back, series, check_index_type=True)
    assert back.name == series.name


attr_bools = st.dictionaries(
    names.filter(lambda n: n not in _RESERVED), st.booleans(), min_size=1, max_size=3
)


@pytest.mark.parametrize("fmt", ["netcdf3", "netcdf4", "zarr"])
@given(attr_bools, attr_bools)
def test_boolean_attributes_come_back_as_booleans(fmt, glob, local):
    ds = xr.Dataset({"v": ("x", [1.0, 2.0], local)}, attrs=glob)
    buf, used = netcdf_bytes(ds, fmt)
    assert used == fmt
    back = read_netcdf(bytes(buf))
    xr.testing.assert_identical(back, ds)
    assert all(type(v) is bool for v in back.attrs.values())
    assert all(type(v) is bool for v in back["v"].attrs.values())
    assert TYPES_ATTRIBUTE not in back.attrs


def test_ordinary_data_carry_no_types_attribute():
    ds = xr.Dataset({"v": ("x", [1.0])}, attrs={"n": 1})
    buf, _ = netcdf_bytes(ds, "netcdf3")
    with xr.open_dataset(io.BytesIO(bytes(buf)), engine="scipy") as raw:
        assert TYPES_ATTRIBUTE not in raw.attrs


def test_a_foreign_types_attribute_is_left_alone():
    for text in ("not json", "[1, 2]", '{"bool_attrs": [["nope", "x"]]}', "[" * 10_000):
        ds = xr.Dataset(attrs={TYPES_ATTRIBUTE: text})
        assert decode_types(ds) is ds
    assert decode_types(xr.Dataset(attrs={TYPES_ATTRIBUTE: 5})).attrs == {
        TYPES_ATTRIBUTE: 5
    }


def test_datetime_resolutions_listed_by_a_writer_are_restored():
    times = np.array(["2020-01-01T00:00:01", "2020-01-02"], dtype="datetime64[s]")
    ds = xr.Dataset(coords={"t": times.astype("datetime64[ns]")})
    ds.attrs[TYPES_ATTRIBUTE] = json.dumps({"datetime": {"t": "s"}})
    back = decode_types(ds)
    assert back.t.dtype == np.dtype("datetime64[s]")
    assert TYPES_ATTRIBUTE not in back.attrs


TIME_UNITS = ["s", "ms", "us", "ns"]


def back_unit(unit: str) -> str:
    """The unit a datetime64 variable comes back in (docs/data.md)."""
    return unit if unit in ("s", "ms") else "ns"


@st.composite
def timed_datasets(draw: st.DrawFn) -> xr.Dataset:
    """Times in one of pandas' units, within 1780-2255, NaT sometimes.

    Nanosecond times span at most 285 years (1875-2160): NetCDF stores
    times as int64 offsets from the first, which hold 292 years of ns.
    """
    unit = draw(st.sampled_from(TIME_UNITS))
    per = 10 ** {"s": 0, "ms": 3, "us": 6, "ns": 9}[unit]
    low, high = (-3 * 10**9, 6 * 10**9) if unit == "ns" else (-6 * 10**9, 9 * 10**9)
    seconds = draw(st.lists(st.integers(low, high), min_size=1, max_size=4))
    ticks = [s * per + draw(st.integers(0, per - 1)) for s in seconds]
    times = np.array(ticks, dtype="i8").view(f"M8[{unit}]")
    values = times[::-1].copy()
    if draw(st.booleans()):
        values[0] = np.datetime64("NaT")
    return xr.Dataset(
        {"when": ("time", values, {"long_name": "when"})},
        coords={"time": ("time", times)},
    )


def assert_same_times(back: xr.Dataset, ds: xr.Dataset) -> None:
    """The same instants (NaT included) in the documented unit."""
    for name in ("time", "when"):
        unit = np.datetime_data(ds[name].dtype)[0]
        assert back[name].dtype == np.dtype(f"M8[{back_unit(unit)}]"), name
        exact = back[name].values.astype(ds[name].dtype)
        np.testing.assert_array_equal(exact.view("i8"), ds[name].values.view("i8"))
    xr.testing.assert_identical(back, ds)


OFF = DataOptions(cf="off", crs="off")


@given(timed_datasets())
def test_time_units_round_trip_through_the_json_form(ds):
    entry = get_entry(xr.Dataset)
    text = entry.serialize(ds, OFF)
    assert isinstance(text, str)
    assert_same_times(entry.validate(json.loads(json.dumps(text)), OFF, "ds"), ds)
    da = ds["when"]
    back = get_entry(xr.DataArray).validate(
        get_entry(xr.DataArray).serialize(da, OFF), OFF, "da"
    )
    assert back.dtype == np.dtype(f"M8[{back_unit(np.datetime_data(da.dtype)[0])}]")


@given(timed_datasets(), st.sampled_from(["auto", "netcdf4", "zarr"]))
def test_time_units_round_trip_through_binary_parts_and_replies(ds, fmt):
    from pydantic import create_model

    options = DataOptions(cf="off", crs="off", format=fmt)
    Request = create_model("Request", ds=(resolve_annotation(xr.Dataset, options), ...))
    with PartWriter() as writer:
        text = Request(ds=ds).model_dump_json(context={PARTS_CONTEXT: writer})
        received = [
            BinaryPart(i, part.media_type, part.file.read(), part.size)
            for i, part in enumerate(writer.parts, 1)
        ]
    assert len(received) == 1
    with request_parts(received):
        assert_same_times(Request.model_validate_json(text).ds, ds)
    # a binary reply: the same bytes, read back by the caller
    buf = io.BytesIO()
    (registry_type,) = Request.model_fields["ds"].metadata
    media_type = write_reply(ds, [registry_type], buf, BINARY_MEDIA_TYPES)
    assert media_type is not None
    assert_same_times(read_reply(media_type, buf.getvalue()), ds)


def test_only_s_and_ms_are_listed():
    for unit, listed in (("s", True), ("ms", True), ("us", False), ("ns", False)):
        t = np.array(["2020-01-01T00:00:01"], dtype=f"M8[{unit}]")
        buf, _ = netcdf_bytes(xr.Dataset(coords={"t": t}), "netcdf3")
        with xr.open_dataset(io.BytesIO(bytes(buf)), engine="scipy") as raw:
            assert (TYPES_ATTRIBUTE in raw.attrs) is listed, unit
            if listed:
                assert json.loads(raw.attrs[TYPES_ATTRIBUTE])["datetime"] == {"t": unit}


def test_a_thousand_groups_round_trip():
    tree = xr.DataTree.from_dict(
        {f"/g{i}": xr.Dataset({"v": ("x", np.arange(3.0) + i)}) for i in range(1000)}
    )
    back = to_datatree(encode_datatree(tree))
    assert len(list(back.subtree)) == 1001
    xr.testing.assert_identical(back, tree)


def test_datatree_bad_input_is_named(tmp_path, monkeypatch):
    good = encode_datatree(xr.DataTree(dataset=xr.Dataset({"v": ("x", [1.0])})))
    cases = [
        (
            "not base64!",
            "t: the string is not base64-encoded NetCDF (Non-base64 digit found)",
        ),
        (b"GIF89a....", "t is not NetCDF4 (starts with b'GIF8')"),
        (good[:500], "cannot read t: "),
        (b"\x89HDF\r\n\x1a\n" + b"\0" * 64, "cannot read t: "),
        (42, "t: expected an xarray DataTree as base64 NetCDF4 text, bytes, a "),
        ({"/": "nope"}, "t: expected an xarray DataTree"),
    ]
    for value, message in cases:
        with pytest.raises(DataError) as exc:
            to_datatree(value, "t")
        assert str(exc.value).startswith(message), (value, str(exc.value))
    clash = xr.DataTree.from_dict(
        {"/": xr.Dataset({"b": ("a", [1])}), "/a": xr.Dataset({"c": 1})}
    )
    with pytest.raises(DataError) as exc:
        encode_datatree(clash)
    assert str(exc.value) == (
        "group /a is named like a dimension of its parent group '/'; NetCDF4 "
        "cannot store both, rename one"
    )
    from dasf_geo.data import _types

    monkeypatch.setattr(_types, "MAX_GROUPS", 5)
    big = xr.DataTree.from_dict({f"/g{i}": xr.Dataset() for i in range(6)})
    with pytest.raises(DataError, match="more than 5 groups"):
        encode_datatree(big)
    with pytest.raises(DataError, match="t has more than 5 groups"):
        to_datatree(big, "t")


def test_series_bad_input_is_named():
    two = encode_series(pd.Series([1, 2])) | {}
    two["data"] = two["data"] * 2
    two["columns"] = {"dtype": "int64", "data": [0, 1]}
    for value, message in [
        (42, 's: expected a pandas Series (object with "format"'),
        (pd.DataFrame({"a": [1], "b": [2]}), "s: a Series is a DataFrame with one"),
        ({"format": "dasf-frame/1", "data": 5}, "s: DataFrame: 'data' must be a list"),
    ]:
        with pytest.raises(DataError) as exc:
            to_series(value, "s")
        assert str(exc.value).startswith(message), str(exc.value)


class _Model(BaseModel):
    pass


def test_datatree_and_series_arguments_are_validated_and_checked():
    from pydantic import create_model

    tree_t = resolve_annotation(xr.DataTree, DataOptions())
    series_t = resolve_annotation(pd.Series, DataOptions())
    M = create_model("M", tree=(tree_t, ...), s=(series_t, ...))
    root = xr.Dataset(attrs={"Conventions": "CF-1.8"})
    sub = xr.Dataset({"t": ("x", [1.0], {"units": "Kelvinn"})})
    tree = xr.DataTree.from_dict({"/": root, "/sub": sub})
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        m = M(tree=pybase64.b64encode(encode_datatree(tree)).decode(), s=pd.Series([1]))
    texts = [str(w.message) for w in record if w.category is CFConventionWarning]
    assert texts == [
        "tree: 1 CF finding(s): variable '/sub/t' attribute 'units': 'Kelvinn' is "
        'not a valid UDUNITS unit ([UT_UNKNOWN] Failed to parse unit "Kelvinn") '
        "[rule units-parseable]"
    ]
    xr.testing.assert_identical(m.tree, tree)
    dumped = json.loads(m.model_dump_json())
    xr.testing.assert_identical(to_datatree(dumped["tree"]), tree)
    pd.testing.assert_series_equal(to_series(dumped["s"]), pd.Series([1]))
    schema = M.model_json_schema()["properties"]
    assert schema["tree"]["x-dasf-type"] == "xarray.DataTree"
    assert schema["s"]["x-dasf-type"] == "pandas.Series"
