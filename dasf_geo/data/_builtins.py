"""Registry entries for xr.Dataset, xr.DataArray, pd.DataFrame and np.ndarray.

The JSON forms of the built-in types, the validators that accept every
form, and the entries that tie them to the registry. The JSON form of an
xarray value is base64 text of its binary form, which
:mod:`dasf_geo.data._binary` owns (and checks alike for both).

Law: ``decode_base64_xarray(encode_base64_xarray(ds))`` is identical to
``ds``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pybase64
import xarray as xr

from dasf_geo.data._arrays import encode_ndarray, to_ndarray
from dasf_geo.data._binary import (
    NETCDF_MEDIA_TYPE,
    ZARR_MEDIA_TYPE,
    BinaryPart,
    check_value,
    prepare_xarray_reply,
)
from dasf_geo.data._frames import FRAME_FORMAT, encode_dataframe, to_dataframe
from dasf_geo.data._ncformat import dataset_to_dataarray
from dasf_geo.data._ncwrite import netcdf_bytes
from dasf_geo.data._netcdf import read_netcdf
from dasf_geo.data._options import DataOptions
from dasf_geo.data._registry import register, register_builtin
from dasf_geo.exceptions import DataError

__all__ = [
    "FRAME_MEDIA_TYPE",
    "NDARRAY_MEDIA_TYPE",
    "decode_base64_xarray",
    "encode_base64_xarray",
    "to_dataarray",
    "to_dataset",
]

FRAME_MEDIA_TYPE = "application/vnd.dasf.frame+json"
NDARRAY_MEDIA_TYPE = "application/vnd.dasf.ndarray+json"


def b64decode_netcdf(text: str | bytes, label: str | None) -> bytes:
    """The bytes of base64 ``text``.

    Raises:
        DataError: ``text`` is not base64 (the message starts with ``label``).
    """
    try:
        return pybase64.b64decode(text, validate=True)
    except ValueError as exc:
        where = f"{label}: " if label else ""
        raise DataError(
            f"{where}the string is not base64-encoded NetCDF ({exc}); send "
            "base64 of the bytes of ds.to_netcdf()"
        ) from exc


def encode_base64_xarray(
    obj: xr.Dataset | xr.DataArray,
    format: str = "auto",
    compression: int | None = None,
) -> str:
    """Encode ``obj`` as base64 text of NetCDF3/NetCDF4/zipped zarr.

    Law: ``decode_base64_xarray(encode_base64_xarray(ds))`` is identical to
    ``ds`` (a DataArray comes back as a DataArray with ``dataarray=True``).

    Raises:
        DataError: the chosen format cannot represent the data.
    """
    buf, _ = netcdf_bytes(obj, format=format, compression=compression)
    return pybase64.b64encode(buf).decode("ascii")


def decode_base64_xarray(
    text: str | bytes, dataarray: bool = False
) -> xr.Dataset | xr.DataArray:
    """Inverse of :func:`encode_base64_xarray`.

    Raises:
        DataError: not base64, or not NetCDF/zarr.
    """
    raw = b64decode_netcdf(text, None)
    ds = read_netcdf(raw)
    return dataset_to_dataarray(ds) if dataarray else ds


def _prefix(label: str | None) -> str:
    return f"{label}: " if label else ""


def _stored(value: Any, label: str | None) -> xr.Dataset | None:
    """The Dataset in a binary part, base64 text or raw bytes; None for any
    other value."""
    if isinstance(value, BinaryPart):
        try:
            return value.dataset()
        except DataError as exc:
            raise DataError(f"{_prefix(label)}{exc}") from exc
    if isinstance(value, str):
        return read_netcdf(b64decode_netcdf(value, label))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return read_netcdf(value)
    return None


def _from_dict(kind: Any, value: dict[str, Any], label: str | None) -> Any:
    try:
        return kind.from_dict(value)
    except Exception as exc:  # from_dict fails in many ways on bad dicts
        raise DataError(
            f"{_prefix(label)}the dict is not a {kind.__name__}.to_dict() form "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def to_dataset(value: Any, label: str | None = None) -> xr.Dataset:
    """Coerce ``value`` into a Dataset, as demessaging's ``validate_dataset``.

    Accepted: a Dataset; base64 text of NetCDF3/NetCDF4/zipped zarr; the raw
    bytes; a ``Dataset.to_dict()`` dict; a DataArray (converted with
    ``to_dataset``); a :class:`~dasf_geo.data.BinaryPart` of a multipart
    request.

    Raises:
        DataError: anything else, or undecodable content.
    """
    if isinstance(value, xr.Dataset):
        return value
    stored = _stored(value, label)
    if stored is not None:
        return stored
    if isinstance(value, dict):
        return _from_dict(xr.Dataset, value, label)
    if isinstance(value, xr.DataArray):
        return value.to_dataset(name=value.name if value.name is not None else "data")
    raise DataError(
        f"{_prefix(label)}expected an xarray Dataset as base64 "
        f"NetCDF text, bytes or a to_dict() dict, got {type(value).__name__}"
    )


def to_dataarray(value: Any, label: str | None = None) -> xr.DataArray:
    """Coerce ``value`` into a DataArray, as demessaging's ``validate_dataarray``.

    Accepted: a DataArray; base64 text or raw bytes of NetCDF holding one
    data variable; a ``DataArray.to_dict()`` dict; nested lists or an
    ndarray (like ``xr.DataArray(value)``); a
    :class:`~dasf_geo.data.BinaryPart` of a multipart request.

    Raises:
        DataError: anything else, or undecodable content.
    """
    if isinstance(value, xr.DataArray):
        return value
    stored = _stored(value, label)
    if stored is not None:
        return dataset_to_dataarray(stored)
    if isinstance(value, dict):
        return _from_dict(xr.DataArray, value, label)
    if isinstance(value, (list, tuple, np.ndarray, int, float)) and not isinstance(
        value, bool
    ):
        arr = to_ndarray(value, name=label or "DataArray")
        return xr.DataArray(arr)
    raise DataError(
        f"{_prefix(label)}expected an xarray DataArray as base64 NetCDF text, bytes, a "
        f"to_dict() dict or nested lists, got {type(value).__name__}"
    )


class _XarrayEntry:
    """Validator, serializer and schema of the Dataset or DataArray entry."""

    def __init__(self, kind: type, coerce: Any) -> None:
        self.kind = kind
        self.coerce = coerce

    def validate(self, value: Any, options: DataOptions, label: str | None) -> Any:
        obj = self.coerce(value, label)
        check_value(obj, options.resolved(), label)
        return obj

    def serialize(self, obj: Any, options: DataOptions) -> str:
        obj, fmt = prepare_xarray_reply(obj, options, self.kind)
        return encode_base64_xarray(
            obj, format=fmt, compression=options.resolved().compression
        )

    def schema(self, options: DataOptions) -> dict[str, Any]:
        kind = self.kind.__name__
        zarr = options.format == "zarr"
        return {
            "type": "string",
            "contentEncoding": "base64",
            "contentMediaType": ZARR_MEDIA_TYPE if zarr else NETCDF_MEDIA_TYPE,
            "title": kind,
            "description": f"xarray.{kind} as base64 "
            + ("zipped zarr" if zarr else "NetCDF (NetCDF3 classic or NetCDF4)"),
        }


def _frame_validate(value: Any, options: DataOptions, label: str | None) -> Any:
    try:
        return to_dataframe(value)
    except DataError as exc:
        raise DataError(f"{label}: {exc}" if label else str(exc)) from exc


def _array_validate(value: Any, options: DataOptions, label: str | None) -> Any:
    return to_ndarray(value, name=label or "array")


_ARRAY_OBJECT = {
    "type": "object",
    "required": ["dtype", "shape", "data"],
    "properties": {
        "dtype": {"type": "string", "description": "numpy dtype string, e.g. '<f8'"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "data": {
            "type": "string",
            "contentEncoding": "base64",
            "description": "C-order little-endian bytes",
        },
    },
}

for _entry in (
    _XarrayEntry(xr.Dataset, to_dataset),
    _XarrayEntry(xr.DataArray, to_dataarray),
):
    register(
        _entry.kind,
        name=f"xarray.{_entry.kind.__name__}",
        validate=_entry.validate,
        serialize=_entry.serialize,
        json_schema=_entry.schema,
        decode=_entry.coerce,
        _builtin=True,
    )
register_builtin(
    pd.DataFrame,
    "pandas.DataFrame",
    _frame_validate,
    encode_dataframe,
    {
        "type": "object",
        "title": "DataFrame",
        "contentMediaType": FRAME_MEDIA_TYPE,
        "description": f"pandas.DataFrame in the typed columnar form "
        f"{FRAME_FORMAT!r} (exact index, column order and dtypes)",
        "required": ["format", "index", "columns", "data"],
        "properties": {
            "format": {"const": FRAME_FORMAT},
            "index": {"type": "object"},
            "columns": {"type": "object"},
            "data": {"type": "array", "items": {"type": "object"}},
        },
    },
    to_dataframe,
)
register_builtin(
    np.ndarray,
    "numpy.ndarray",
    _array_validate,
    encode_ndarray,
    {
        "title": "ndarray",
        "contentMediaType": NDARRAY_MEDIA_TYPE,
        "description": "numpy.ndarray as raw little-endian bytes + dtype + shape "
        "(nested lists are accepted too)",
        "anyOf": [_ARRAY_OBJECT, {"type": "array"}],
    },
    to_ndarray,
)
