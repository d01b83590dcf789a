"""DataFrame and ndarray encodings: exact round trips and hostile input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.extra import pandas as hpd

from dasf_geo.data import (
    decode_dataframe,
    decode_ndarray,
    encode_dataframe,
    encode_ndarray,
    to_dataframe,
    to_ndarray,
)
from dasf_geo.exceptions import DataError


def wire(obj):
    return json.loads(json.dumps(obj))


def frame_roundtrip(df):
    back = decode_dataframe(wire(encode_dataframe(df)))
    pd.testing.assert_frame_equal(back, df, check_exact=True, check_freq=True)
    assert list(back.columns) == list(df.columns)
    return back


def test_rich_frame_roundtrip():
    df = pd.DataFrame(
        {
            "f": [1.5, np.nan, -0.0],
            "i": pd.array([1, None, 3], dtype="Int64"),
            "c": pd.Categorical(["x", "y", "x"], categories=["y", "x"], ordered=True),
            "t": pd.date_range("2020", periods=3, tz="Europe/Berlin"),
            "s": pd.array(["a", None, "c"], dtype="str"),
            "o": pd.Series(["a", 1, None], dtype=object),
            "b": pd.array([True, None, False], dtype="boolean"),
            "n": np.array([1, 2, 3], dtype="u2"),
            "naive": pd.date_range("2020", periods=3, freq="h"),
            "td": pd.to_timedelta([1, 2, 3], unit="s"),
            "fl": pd.array([0.5, None, 2.0], dtype="Float64"),
        },
        index=pd.Index([10, 20, 30], name="idx"),
    )
    df.attrs = {"source": "test"}
    back = frame_roundtrip(df)
    assert back.attrs == {"source": "test"}


def test_multiindex_rangeindex_and_odd_column_labels():
    df = pd.DataFrame({"a": [1, 2], 3: ["x", "y"], "b": [0.1, 0.2]})
    frame_roundtrip(df)
    frame_roundtrip(df.set_index(["a", 3]))
    frame_roundtrip(pd.DataFrame({"x": [1, 2]}, index=pd.RangeIndex(5, 9, 2)))
    frame_roundtrip(
        pd.DataFrame({"x": [1, 2]}, index=pd.date_range("2020", periods=2, freq="D"))
    )
    frame_roundtrip(pd.DataFrame())
    frame_roundtrip(pd.DataFrame({"a": pd.Series([], dtype="f4")}))


@given(
    hpd.data_frames(
        [
            hpd.column("f8", dtype="f8"),
            hpd.column("i4", dtype="i4"),
            hpd.column("b", dtype=bool),
            hpd.column("u8", dtype="u8"),
            hpd.column("s", elements=st.text(max_size=5), dtype=object),
        ],
        index=hpd.range_indexes(max_size=8),
    )
)
def test_frame_roundtrip_property(df):
    frame_roundtrip(df)


def test_frame_refuses_arbitrary_objects_naming_the_column():
    df = pd.DataFrame({"bad": [object()]})
    with pytest.raises(DataError) as exc:
        encode_dataframe(df)
    assert str(exc.value).startswith("column 'bad': value <object object at")
    assert str(exc.value).endswith(
        "of type object cannot be encoded exactly; object columns may hold only "
        "str, int, float, bool and None"
    )


def wire_frame(rows: int, columns: list, data: list, step: int = 1) -> dict:
    """A wire-form DataFrame with a range index of ``rows`` rows."""
    return {
        "format": "dasf-frame/1",
        "index": {"kind": "range", "start": 0, "stop": rows, "step": step},
        "columns": {"kind": "values", "dtype": "object", "values": columns},
        "data": data,
    }


def test_frame_refuses_non_frame():
    with pytest.raises(DataError, match="expected a pandas DataFrame, got list"):
        encode_dataframe([1, 2])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            {"format": "nope"},
            'expected a DataFrame object with "format": "dasf-frame/1"',
        ),
        (
            {"format": "dasf-frame/1", "data": 5},
            "DataFrame: 'data' must be a list of columns",
        ),
        (
            wire_frame(2, ["a"], [{"kind": "numpy", "dtype": "<f8", "data": "AAAA"}]),
            "column 'a': 'data' holds 3 bytes but dtype <f8 x shape [2] needs 16",
        ),
        (
            wire_frame(2, [], [], step=0),
            "index: a range needs integer start, stop and non-zero step",
        ),
        (
            wire_frame(1, ["a"], [{"kind": "numpy", "dtype": "object", "data": ""}]),
            "column 'a': dtype 'object' is not allowed on the wire",
        ),
        (
            wire_frame(1, ["a"], [{"kind": "evil"}]),
            "column 'a': unknown column kind 'evil'",
        ),
    ],
)
def test_frame_hostile_input(value, message):
    with pytest.raises(DataError) as exc:
        decode_dataframe(value)
    assert str(exc.value) == message


def test_to_dataframe_accepts_plain_shapes():
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    pd.testing.assert_frame_equal(to_dataframe(df.to_dict(orient="split")), df)
    pd.testing.assert_frame_equal(to_dataframe(df.to_dict(orient="records")), df)
    pd.testing.assert_frame_equal(to_dataframe(df.to_dict(orient="list")), df)
    with pytest.raises(DataError, match="got int"):
        to_dataframe(5)
    with pytest.raises(DataError, match="cannot build a DataFrame from the value"):
        to_dataframe({"a": [1, 2], "b": [1]})


@given(
    hnp.arrays(
        st.one_of(
            hnp.scalar_dtypes(),
            hnp.byte_string_dtypes(max_len=4),
            hnp.unicode_string_dtypes(max_len=4),
        ),
        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
    )
)
def test_ndarray_roundtrip_property(arr):
    enc = wire(encode_ndarray(arr))
    back = decode_ndarray(enc)
    assert back.dtype == arr.dtype.newbyteorder("<") or back.dtype == arr.dtype
    assert back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)
    assert back.flags.writeable


def test_ndarray_big_endian_and_fortran_order():
    arr = np.asfortranarray(np.arange(6, dtype=">i4").reshape(2, 3))
    enc = encode_ndarray(arr)
    assert enc["dtype"] == "<i4"
    np.testing.assert_array_equal(decode_ndarray(enc), arr)


def test_ndarray_from_nested_lists():
    np.testing.assert_array_equal(
        to_ndarray([[1, 2], [3, 4]]), np.array([[1, 2], [3, 4]])
    )
    with pytest.raises(DataError, match="nested lists must be rectangular"):
        to_ndarray([[1, 2], [3]])
    with pytest.raises(DataError, match="nested lists must hold only numbers"):
        to_ndarray([{"a": 1}])
    with pytest.raises(DataError, match="got set"):
        to_ndarray({1, 2})


def test_ndarray_object_dtype_refused():
    with pytest.raises(DataError) as exc:
        encode_ndarray(np.array([None, 1]), name="arr")
    assert str(exc.value) == (
        "arr: dtype object cannot be encoded as raw bytes; convert it to a "
        "numeric, bool, datetime64, bytes or str dtype"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            {"dtype": "<f8"},
            "array: an encoded array needs keys dtype, shape and data; missing "
            "['data', 'shape']",
        ),
        (
            {"dtype": "<f8", "shape": [-1], "data": ""},
            "array: 'shape' must be a list of at most 32 non-negative integers, got "
            "[-1]",
        ),
        (
            {"dtype": "<f8", "shape": "3", "data": ""},
            "array: 'shape' must be a list of at most 32 non-negative integers, got "
            "'3'",
        ),
        (
            {"dtype": "<f8", "shape": [True], "data": ""},
            "array: 'shape' must be a list of at most 32 non-negative integers, got "
            "[True]",
        ),
        (
            {"dtype": "<f8", "shape": [10**9, 10**9], "data": ""},
            "array: shape [1000000000, 1000000000] would need 8000000000000000000 "
            "bytes; too large",
        ),
        (
            {"dtype": "nonsense", "shape": [1], "data": ""},
            "array: unknown dtype 'nonsense': data type 'nonsense' not understood",
        ),
        (
            {"dtype": "O", "shape": [1], "data": ""},
            "array: dtype 'O' is not allowed on the wire",
        ),
        (
            {"dtype": 5, "shape": [1], "data": ""},
            "array: 'dtype' must be a numpy dtype string like '<f8'",
        ),
        (
            {"dtype": "<f8", "shape": [1], "data": "!!!"},
            "array: 'data' is not valid base64: Non-base64 digit found",
        ),
        (
            {"dtype": "<f8", "shape": [2], "data": "AAAAAAAAAAA="},
            "array: 'data' holds 8 bytes but dtype <f8 x shape [2] needs 16",
        ),
        (
            {"dtype": "<f8", "shape": [1], "data": 12},
            "array: 'data' must be a base64 string",
        ),
    ],
)
def test_ndarray_hostile_input(value, message):
    with pytest.raises(DataError) as exc:
        decode_ndarray(value)
    assert str(exc.value) == message


def test_frame_multiindex_levels_cannot_be_lazy_ranges():
    value = {
        "format": "dasf-frame/1",
        "index": {
            "kind": "multi",
            "names": ["a"],
            "levels": [{"kind": "range", "start": 0, "stop": 10**12, "step": 1}],
        },
        "columns": {"kind": "values", "dtype": "object", "values": []},
        "data": [],
    }
    with pytest.raises(DataError) as exc:
        decode_dataframe(value)
    assert str(exc.value) == "index: multi index levels must be value columns"


def test_duplicate_column_labels_roundtrip():
    frame_roundtrip(pd.DataFrame([[1, 2.5]], columns=["a", "a"]))


@pytest.mark.parametrize(
    "column",
    [
        pd.period_range("2020", periods=2, freq="M"),
        pd.arrays.IntervalArray.from_breaks([0, 1, 2]),
        pd.arrays.SparseArray([0, 1]),
    ],
    ids=["period", "interval", "sparse"],
)
def test_unsupported_extension_dtypes_fail_naming_column(column):
    with pytest.raises(DataError) as exc:
        encode_dataframe(pd.DataFrame({"p": column}))
    assert str(exc.value) == (
        f"column 'p': dtype {pd.Series(column).dtype} is not supported; convert it "
        "to a numpy, nullable (Int64, Float64, boolean), string, categorical or "
        "datetime dtype"
    )
