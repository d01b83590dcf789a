"""Registry entries for xr.Dataset, xr.DataArray, pd.DataFrame and np.ndarray."""

from __future__ import annotations

import typing
from typing import Any

import numpy as np
import pandas as pd
import pybase64
import xarray as xr

from dasf_geo.data._arrays import encode_ndarray, to_ndarray
from dasf_geo.data._checks import check_cf, check_crs, check_demap, coerce_demap
from dasf_geo.data._findings import mark_validated, was_validated
from dasf_geo.data._frames import FRAME_FORMAT, encode_dataframe, to_dataframe
from dasf_geo.data._netcdf import (
    DATAARRAY_NAME,
    dataarray_to_dataset,
    dataset_to_dataarray,
    netcdf_bytes,
    read_netcdf,
)
from dasf_geo.data._options import DataOptions
from dasf_geo.data._parts import BinaryPart
from dasf_geo.data._registry import register
from dasf_geo.exceptions import DataError

__all__ = [
    "NETCDF_MEDIA_TYPE",
    "ZARR_MEDIA_TYPE",
    "decode_base64_xarray",
    "encode_base64_xarray",
    "to_dataarray",
    "to_dataset",
]

NETCDF_MEDIA_TYPE = "application/x-netcdf"
ZARR_MEDIA_TYPE = "application/vnd.zarr+zip"
FRAME_MEDIA_TYPE = "application/vnd.dasf.frame+json"
NDARRAY_MEDIA_TYPE = "application/vnd.dasf.ndarray+json"


def _b64decode(text: str | bytes, label: str | None) -> bytes:
    try:
        return pybase64.b64decode(text, validate=True)
    except ValueError as exc:
        where = f"{label}: " if label else ""
        raise DataError(
            f"{where}the string is not base64-encoded NetCDF ({exc}); send "
            "base64 of the bytes of ds.to_netcdf()"
        ) from exc


def _raw(value: Any, label: str | None) -> bytes | bytearray | memoryview | None:
    if isinstance(value, str):
        return _b64decode(value, label)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return value
    return None


def _part_dataset(part: BinaryPart, label: str | None) -> xr.Dataset:
    try:
        return part.dataset()
    except DataError as exc:
        raise DataError(f"{label}: {exc}" if label else str(exc)) from exc


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
    if isinstance(value, BinaryPart):
        return _part_dataset(value, label)
    raw = _raw(value, label)
    if raw is not None:
        return read_netcdf(raw)
    if isinstance(value, dict):
        try:
            return xr.Dataset.from_dict(value)
        except Exception as exc:  # from_dict fails in many ways on bad dicts
            raise DataError(
                f"{label + ': ' if label else ''}the dict is not a Dataset.to_dict() "
                f"form ({type(exc).__name__}: {exc})"
            ) from exc
    if isinstance(value, xr.DataArray):
        return value.to_dataset(name=value.name if value.name is not None else "data")
    raise DataError(
        f"{label + ': ' if label else ''}expected an xarray Dataset as base64 "
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
    if isinstance(value, BinaryPart):
        return dataset_to_dataarray(_part_dataset(value, label))
    raw = _raw(value, label)
    if raw is not None:
        return dataset_to_dataarray(read_netcdf(raw))
    prefix = f"{label}: " if label else ""
    if isinstance(value, dict):
        try:
            return xr.DataArray.from_dict(value)
        except Exception as exc:  # from_dict fails in many ways on bad dicts
            raise DataError(
                f"{prefix}the dict is not a DataArray.to_dict() form "
                f"({type(exc).__name__}: {exc})"
            ) from exc
    if isinstance(value, (list, tuple, np.ndarray, int, float)) and not isinstance(
        value, bool
    ):
        arr = to_ndarray(value, name=label or "DataArray")
        return xr.DataArray(arr)
    raise DataError(
        f"{prefix}expected an xarray DataArray as base64 NetCDF text, bytes, a "
        f"to_dict() dict or nested lists, got {type(value).__name__}"
    )


def _check(
    obj: Any, options: DataOptions, label: str | None, validating: bool = True
) -> None:
    """Check ``obj`` (once: a value a validator checked is not checked again
    when it is serialized)."""
    cf, crs = options.cf or "warn", options.crs or "optional"
    if not validating and was_validated(obj, cf, crs):
        return
    check_cf(obj, cf, label=label)
    check_crs(obj, crs, label=label)
    if validating:
        mark_validated(obj, cf, crs)


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
    raw = _b64decode(text, None)
    ds = read_netcdf(raw)
    return dataset_to_dataarray(ds) if dataarray else ds


def _coerce(obj: xr.Dataset | xr.DataArray) -> xr.Dataset | xr.DataArray:
    if isinstance(obj, xr.Dataset):
        return coerce_demap(obj)
    # a DataArray's attrs play the role of the global attributes
    ds = dataarray_to_dataset(obj)
    ds.attrs = {**ds.attrs, **obj.attrs}
    fixed = coerce_demap(ds)
    da = dataset_to_dataarray(fixed)
    da.attrs = {
        **da.attrs,
        **{k: v for k, v in fixed.attrs.items() if k != DATAARRAY_NAME},
    }
    return da


def prepare_xarray_reply(
    obj: Any, options: DataOptions, kind: type
) -> tuple[xr.Dataset | xr.DataArray, str]:
    """Check (and, for ``demap="coerce"``, fix) a reply; choose its format.

    The JSON and the binary form of a reply both go through this, so they
    are checked alike.

    Returns:
        The object to encode and the format to encode it in.

    Raises:
        DataError, CFConventionError, CRSError: the reply breaks a rule the
            options make strict.
    """
    if not isinstance(obj, kind):
        raise DataError(f"expected a {kind.__name__} to send, got {type(obj).__name__}")
    obj = typing.cast("xr.Dataset | xr.DataArray", obj)
    options = options.resolved()
    _check(obj, options, "result", validating=False)
    if options.demap == "coerce":
        obj = _coerce(obj)
    elif options.demap == "check":
        findings = check_demap(obj)
        if findings:
            raise DataError(
                "the reply is not Demap-ready: " + "; ".join(map(str, findings))
            )
    fmt = "netcdf3" if options.demap in ("check", "coerce") else options.format
    return obj, fmt or "auto"


def _xr_serialize(obj: Any, options: DataOptions, kind: type) -> str:
    obj, fmt = prepare_xarray_reply(obj, options, kind)
    return encode_base64_xarray(
        obj, format=fmt, compression=options.resolved().compression
    )


def _xr_schema(kind: str) -> Any:
    def schema(options: DataOptions) -> dict[str, Any]:
        zarr = options.format == "zarr"
        return {
            "type": "string",
            "contentEncoding": "base64",
            "contentMediaType": ZARR_MEDIA_TYPE if zarr else NETCDF_MEDIA_TYPE,
            "title": kind,
            "description": f"xarray.{kind} as base64 "
            + ("zipped zarr" if zarr else "NetCDF (NetCDF3 classic or NetCDF4)"),
        }

    return schema


def _validate_dataset(value: Any, options: DataOptions, label: str | None) -> Any:
    ds = to_dataset(value, label)
    _check(ds, options.resolved(), label)
    return ds


def _validate_dataarray(value: Any, options: DataOptions, label: str | None) -> Any:
    da = to_dataarray(value, label)
    _check(da, options.resolved(), label)
    return da


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

register(
    xr.Dataset,
    name="xarray.Dataset",
    validate=_validate_dataset,
    serialize=lambda obj, o: _xr_serialize(obj, o, xr.Dataset),
    json_schema=_xr_schema("Dataset"),
    decode=lambda v: to_dataset(v),
    _builtin=True,
)
register(
    xr.DataArray,
    name="xarray.DataArray",
    validate=_validate_dataarray,
    serialize=lambda obj, o: _xr_serialize(obj, o, xr.DataArray),
    json_schema=_xr_schema("DataArray"),
    decode=lambda v: to_dataarray(v),
    _builtin=True,
)
register(
    pd.DataFrame,
    name="pandas.DataFrame",
    validate=_frame_validate,
    serialize=lambda obj, o: encode_dataframe(obj),
    json_schema=lambda o: {
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
    decode=lambda v: to_dataframe(v),
    _builtin=True,
)
register(
    np.ndarray,
    name="numpy.ndarray",
    validate=_array_validate,
    serialize=lambda obj, o: encode_ndarray(obj),
    json_schema=lambda o: {
        "title": "ndarray",
        "contentMediaType": NDARRAY_MEDIA_TYPE,
        "description": "numpy.ndarray as raw little-endian bytes + dtype + shape "
        "(nested lists are accepted too)",
        "anyOf": [_ARRAY_OBJECT, {"type": "array"}],
    },
    decode=lambda v: to_ndarray(v),
    _builtin=True,
)
