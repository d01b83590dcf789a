"""DataFrame encoding: a compact, typed, columnar JSON object.

Wire form::

    {"format": "dasf-frame/1",
     "index": <column>, "columns": <column>,      # the two axes' labels
     "data": [<column>, ...]}                     # one per column, in order

where ``<column>`` is one of (``name`` is the Series/Index name)::

    {"kind": "numpy", "dtype": "<f8", "data": "<base64>"}          # raw LE bytes
    {"kind": "datetime", "dtype": "datetime64[ns, UTC]", "data": "<base64 int64>"}
    {"kind": "masked", "dtype": "Int64", "data": "<base64>", "mask": "<base64 bool>"}
    {"kind": "categorical", "ordered": false, "categories": <column>, "codes": <column>}
    {"kind": "values", "dtype": "object"|"str"|..., "values": [...], "na": [i, ...]}
    {"kind": "range", "start": 0, "stop": 10, "step": 1}
    {"kind": "multi", "levels": [<column>, ...], "names": [...]}

Law: ``decode_dataframe(encode_dataframe(df))`` passes
``pandas.testing.assert_frame_equal(..., check_exact=True)`` — index, column
order, dtypes (incl. tz-aware datetimes, categoricals, nullable integers and
booleans, strings), names and NaN/NA positions. Values the form cannot hold
exactly (e.g. arbitrary Python objects in an object column) raise
:class:`DataError` naming the column.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pybase64

from dasf_geo.data._arrays import decode_ndarray, encode_ndarray
from dasf_geo.exceptions import DataError

__all__ = ["FRAME_FORMAT", "decode_dataframe", "encode_dataframe", "to_dataframe"]

FRAME_FORMAT = "dasf-frame/1"
_SCALARS = (str, int, float, bool, type(None))
_MAX_LEVELS = 64


def _b64(arr: np.ndarray) -> str:
    return encode_ndarray(arr)["data"]


def _label(name: Any) -> Any:
    """A JSON-safe Index/Series name (str, int, float, bool, None)."""
    if isinstance(name, np.generic):
        name = name.item()
    if not isinstance(name, _SCALARS):
        raise DataError(
            f"name {name!r} of type {type(name).__name__} cannot be encoded; use "
            "str, int, float, bool or None names"
        )
    return name


def _encode_values(values: Any, where: str) -> dict[str, Any]:
    """Encode a 1-D array-like (numpy or pandas extension array)."""
    if isinstance(values, pd.arrays.NumpyExtensionArray) and not isinstance(
        values.dtype, pd.StringDtype
    ):
        values = values.to_numpy()
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        cat = pd.Categorical(values)
        return {
            "kind": "categorical",
            "ordered": bool(dtype.ordered),
            "categories": _encode_index(cat.categories, where + " categories"),
            "codes": _encode_values(np.asarray(cat.codes), where),
        }
    if isinstance(dtype, pd.DatetimeTZDtype):
        arr = pd.array(values)
        return {
            "kind": "datetime",
            "dtype": str(dtype),
            "data": _b64(np.asarray(arr.asi8)),
        }
    if isinstance(dtype, np.dtype):
        if dtype.kind == "O":
            return _encode_objects(np.asarray(values), "object", where)
        return {"kind": "numpy", "dtype": dtype.str, "data": _b64(np.asarray(values))}
    # pandas extension dtypes
    if isinstance(dtype, pd.StringDtype):
        return _encode_objects(np.asarray(values, dtype=object), str(dtype), where)
    if hasattr(values, "_data") and hasattr(values, "_mask"):  # masked arrays
        _check_dtype_roundtrip(dtype, where)
        return {
            "kind": "masked",
            "dtype": str(dtype),
            "data": _b64(np.asarray(values._data)),
            "mask": _b64(np.asarray(values._mask)),
        }
    raise DataError(
        f"{where}: dtype {dtype} is not supported; convert it to a numpy, "
        "nullable (Int64, Float64, boolean), string, categorical or datetime dtype"
    )


def _check_dtype_roundtrip(dtype: Any, where: str) -> None:
    try:
        ok = pd.api.types.pandas_dtype(str(dtype)) == dtype
    except TypeError:
        ok = False
    if not ok:
        raise DataError(f"{where}: dtype {dtype} cannot be named on the wire")


def _encode_objects(values: np.ndarray, dtype: str, where: str) -> dict[str, Any]:
    out: list[Any] = []
    na: list[int] = []
    for i, v in enumerate(values):
        if isinstance(v, np.generic):
            v = v.item()
        if v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            na.append(i)
            out.append(None if v is pd.NA else "nan")
            continue
        if isinstance(v, float) and math.isinf(v):
            raise DataError(f"{where}: infinite float in an object column")
        if not isinstance(v, _SCALARS):
            raise DataError(
                f"{where}: value {v!r}"[:200] + f" of type {type(v).__name__} "
                "cannot be encoded exactly; object columns may hold only str, "
                "int, float, bool and None"
            )
        out.append(v)
    col: dict[str, Any] = {"kind": "values", "dtype": dtype, "values": out}
    if na:
        col["na"] = na
    return col


def _encode_index(index: pd.Index, where: str) -> dict[str, Any]:
    if isinstance(index, pd.MultiIndex):
        return {
            "kind": "multi",
            "names": [_label(n) for n in index.names],
            "levels": [
                _encode_index(index.get_level_values(i), f"{where} level {i}")
                for i in range(index.nlevels)
            ],
        }
    if isinstance(index, pd.RangeIndex):
        col: dict[str, Any] = {
            "kind": "range",
            "start": index.start,
            "stop": index.stop,
            "step": index.step,
        }
    else:
        if isinstance(index, pd.DatetimeIndex | pd.TimedeltaIndex) and index.freq:
            col = _encode_values(index.array, where)
            col["freq"] = index.freqstr
        else:
            col = _encode_values(index.array, where)
    col["name"] = _label(index.name)
    return col


def encode_dataframe(df: pd.DataFrame) -> dict[str, Any]:
    """Encode ``df`` in the typed columnar wire form of this module.

    Law: ``decode_dataframe(encode_dataframe(df))`` equals ``df`` exactly.

    Raises:
        DataError: a column, label or value cannot be encoded exactly; the
            message names the column.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}")
    data = []
    for i in range(df.shape[1]):
        ser = df.iloc[:, i]
        data.append(_encode_values(ser.array, f"column {df.columns[i]!r}"))
    out: dict[str, Any] = {
        "format": FRAME_FORMAT,
        "index": _encode_index(df.index, "index"),
        "columns": _encode_index(df.columns, "column labels"),
        "data": data,
    }
    if df.attrs:
        out["attrs"] = df.attrs
    return out


def _decode_values(col: Any, n: int | None, where: str, depth: int = 0) -> Any:
    if not isinstance(col, dict) or not isinstance(col.get("kind"), str):
        raise DataError(f"{where}: each column must be an object with a 'kind'")
    if depth > _MAX_LEVELS:
        raise DataError(f"{where}: nesting too deep")
    kind = col["kind"]
    if kind == "numpy":
        arr = decode_ndarray(
            {
                "dtype": col.get("dtype"),
                "shape": [_len(n, col, where)],
                "data": col.get("data"),
            },
            name=where,
        )
        return arr
    if kind == "datetime":
        dtype = _pandas_dtype(col.get("dtype"), where)
        if not isinstance(dtype, pd.DatetimeTZDtype):
            raise DataError(f"{where}: 'datetime' columns need a tz-aware dtype")
        ints = decode_ndarray(
            {"dtype": "<i8", "shape": [_len(n, col, where)], "data": col.get("data")},
            name=where,
        )
        naive = ints.view(f"M8[{dtype.unit}]")
        return pd.array(pd.DatetimeIndex(naive).tz_localize("UTC").tz_convert(dtype.tz))
    if kind == "masked":
        dtype = _pandas_dtype(col.get("dtype"), where)
        size = _len(n, col, where)
        numpy_dtype = getattr(dtype, "numpy_dtype", None)
        if numpy_dtype is None:
            raise DataError(f"{where}: dtype {dtype} is not a masked dtype")
        values = decode_ndarray(
            {
                "dtype": np.dtype(numpy_dtype).newbyteorder("<").str,
                "shape": [size],
                "data": col.get("data"),
            },
            name=where,
        )
        mask = decode_ndarray(
            {"dtype": "|b1", "shape": [size], "data": col.get("mask")}, name=where
        )
        return dtype.construct_array_type()(values, mask)
    if kind == "categorical":
        cats = _decode_index(col.get("categories"), None, where, depth + 1)
        codes = _decode_values(col.get("codes"), n, where, depth + 1)
        if not isinstance(codes, np.ndarray) or codes.dtype.kind != "i":
            raise DataError(f"{where}: categorical codes must be integers")
        if codes.size and (codes.max() >= len(cats) or codes.min() < -1):
            raise DataError(f"{where}: categorical codes out of range")
        return pd.Categorical.from_codes(
            codes, categories=cats, ordered=bool(col.get("ordered"))
        )
    if kind == "values":
        items = col.get("values")
        if not isinstance(items, list) or (n is not None and len(items) != n):
            raise DataError(f"{where}: 'values' must be a list of {n} items")
        if not all(isinstance(v, _SCALARS) for v in items):
            raise DataError(f"{where}: 'values' may hold only JSON scalars")
        out = np.empty(len(items), dtype=object)
        out[:] = items
        na = col.get("na", [])
        if not isinstance(na, list):
            raise DataError(f"{where}: 'na' must be a list of positions")
        for i in na:
            if not isinstance(i, int) or not 0 <= i < len(items):
                raise DataError(f"{where}: bad 'na' position {i!r}")
            out[i] = np.nan if items[i] == "nan" else pd.NA
        dtype = col.get("dtype")
        if dtype == "object":
            return out
        return pd.array(out, dtype=_pandas_dtype(dtype, where))
    raise DataError(f"{where}: unknown column kind {kind!r}")


def _len(n: int | None, col: dict[str, Any], where: str) -> int:
    if n is not None:
        return n
    data = col.get("data")
    dtype = col.get("dtype")
    if col.get("kind") == "datetime":
        dtype = "<i8"
    if not isinstance(data, str):
        raise DataError(f"{where}: 'data' must be a base64 string")
    size = _pandas_dtype(dtype, where)
    itemsize = np.dtype(getattr(size, "numpy_dtype", size)).itemsize
    nbytes = len(pybase64.b64decode(data, validate=True)) if data else 0
    return nbytes // max(itemsize, 1)


def _pandas_dtype(value: Any, where: str) -> Any:
    if not isinstance(value, str) or len(value) > 80:
        raise DataError(f"{where}: 'dtype' must be a dtype name string")
    try:
        dtype = pd.api.types.pandas_dtype(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: unknown dtype {value!r}") from exc
    if isinstance(dtype, np.dtype) and dtype.kind in "OV":
        raise DataError(f"{where}: dtype {value!r} is not allowed here")
    return dtype


def _decode_index(col: Any, n: int | None, where: str, depth: int = 0) -> pd.Index:
    if not isinstance(col, dict):
        raise DataError(f"{where}: must be an object")
    kind = col.get("kind")
    if kind == "multi":
        levels = col.get("levels")
        names = col.get("names")
        if (
            not isinstance(levels, list)
            or not isinstance(names, list)
            or len(levels) != len(names)
            or not levels
        ):
            raise DataError(
                f"{where}: a multi index needs equal-length 'levels' and 'names'"
            )
        if any(
            isinstance(lv, dict) and lv.get("kind") in ("range", "multi")
            for lv in levels
        ):
            raise DataError(f"{where}: multi index levels must be value columns")
        arrays = [
            _decode_index(lv, n, f"{where} level {i}", depth + 1)
            for i, lv in enumerate(levels)
        ]
        return pd.MultiIndex.from_arrays(arrays, names=names)
    if kind == "range":
        parts = [col.get(k) for k in ("start", "stop", "step")]
        if (
            not all(isinstance(p, int) and not isinstance(p, bool) for p in parts)
            or parts[2] == 0
        ):
            raise DataError(
                f"{where}: a range needs integer start, stop and non-zero step"
            )
        idx: pd.Index = pd.RangeIndex(*parts, name=col.get("name"))
        if n is not None and len(idx) != n:
            raise DataError(f"{where}: range has {len(idx)} items, expected {n}")
        return idx
    values = _decode_values(col, n, where, depth)
    idx = pd.Index(values, name=col.get("name"), dtype=getattr(values, "dtype", None))
    freq = col.get("freq")
    if freq is not None and isinstance(idx, pd.DatetimeIndex | pd.TimedeltaIndex):
        try:
            idx.freq = freq
        except ValueError as exc:
            raise DataError(f"{where}: frequency {freq!r} does not fit: {exc}") from exc
    return idx


def decode_dataframe(value: dict[str, Any]) -> pd.DataFrame:
    """Decode the wire form of :func:`encode_dataframe`.

    Raises:
        DataError: the object is not in the ``dasf-frame/1`` form, or a part is
            malformed (the message names the part).
    """
    if not isinstance(value, dict) or value.get("format") != FRAME_FORMAT:
        raise DataError(f'expected a DataFrame object with "format": "{FRAME_FORMAT}"')
    data = value.get("data")
    if not isinstance(data, list):
        raise DataError("DataFrame: 'data' must be a list of columns")
    columns = _decode_index(value.get("columns"), len(data), "column labels")
    index = _decode_index(value.get("index"), None, "index")
    n = len(index)
    cols = {}
    for i, c in enumerate(data):
        values = _decode_values(c, n, f"column {columns[i]!r}")
        # an explicit dtype stops pandas from re-inferring object columns
        cols[i] = pd.Series(values, index=index, dtype=values.dtype, copy=False)
    df = pd.DataFrame(cols, index=index)
    df.columns = columns
    attrs = value.get("attrs")
    if isinstance(attrs, dict):
        df.attrs = attrs
    return df


def to_dataframe(value: Any) -> pd.DataFrame:
    """Accept a DataFrame, its wire form, or ``to_dict(orient=...)`` shapes.

    Accepted: a DataFrame; the ``dasf-frame/1`` object; a pandas
    ``orient="split"`` dict (keys index, columns, data); a list of records;
    a dict of columns.

    Raises:
        DataError: none of these.
    """
    if isinstance(value, pd.DataFrame):
        return value
    if isinstance(value, dict) and value.get("format") == FRAME_FORMAT:
        return decode_dataframe(value)
    try:
        if isinstance(value, dict) and {"columns", "data"} <= set(value):
            return pd.DataFrame(
                value["data"], columns=value["columns"], index=value.get("index")
            )
        if isinstance(value, (dict, list)):
            return pd.DataFrame(value)
    except (ValueError, TypeError) as exc:
        raise DataError(f"cannot build a DataFrame from the value: {exc}") from exc
    raise DataError(
        f'expected a DataFrame (object with "format": "{FRAME_FORMAT}", a '
        f"split dict, records or a dict of columns), got {type(value).__name__}"
    )
