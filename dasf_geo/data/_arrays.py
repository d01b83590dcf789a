"""ndarray encoding: raw little-endian bytes + dtype + shape.

Wire form (a JSON object)::

    {"dtype": "<f8", "shape": [2, 3], "data": "<base64 of the C-order bytes>"}

Law: ``decode_ndarray(encode_ndarray(a))`` equals ``a`` in dtype (byte order
normalised to little-endian), shape and every value including NaN.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pybase64

from dasf_geo.exceptions import DataError

__all__ = ["MAX_ARRAY_BYTES", "decode_ndarray", "encode_ndarray", "to_ndarray"]

#: refuse to allocate decoded arrays beyond this many bytes (hostile shapes)
MAX_ARRAY_BYTES = 1 << 34


def _le_dtype(dtype: np.dtype) -> np.dtype:
    if dtype.byteorder == ">":
        return dtype.newbyteorder("<")
    return dtype


def encode_ndarray(arr: np.ndarray, *, name: str = "array") -> dict[str, Any]:
    """Encode ``arr`` as ``{"dtype", "shape", "data"}`` (base64, little-endian).

    Law: ``decode_ndarray(encode_ndarray(a))`` equals ``a``.

    Raises:
        DataError: ``arr`` has object or structured dtype (``name`` says which).
    """
    arr = np.asarray(arr)
    if arr.dtype.kind == "O" or arr.dtype.fields is not None:
        raise DataError(
            f"{name}: dtype {arr.dtype} cannot be encoded as raw bytes; convert "
            "it to a numeric, bool, datetime64, bytes or str dtype"
        )
    dtype = _le_dtype(arr.dtype)
    arr = arr.astype(dtype, order="C", copy=False)
    return {
        "dtype": dtype.str,
        "shape": list(arr.shape),
        "data": (
            pybase64.b64encode(arr.reshape(-1).view(np.uint8).data).decode("ascii")
            if arr.size
            else ""
        ),
    }


def _parse_dtype(value: Any, name: str) -> np.dtype:
    if not isinstance(value, str) or len(value) > 32:
        raise DataError(f"{name}: 'dtype' must be a numpy dtype string like '<f8'")
    try:
        dtype = np.dtype(value)
    except TypeError as exc:
        raise DataError(f"{name}: unknown dtype {value!r}: {exc}") from exc
    if dtype.kind == "O" or dtype.fields is not None or dtype.kind == "V":
        raise DataError(f"{name}: dtype {value!r} is not allowed on the wire")
    return dtype


def decode_ndarray(value: dict[str, Any], *, name: str = "array") -> np.ndarray:
    """Decode the wire form of :func:`encode_ndarray` (writable, C order).

    Raises:
        DataError: missing keys, a bad dtype or shape, bad base64, or a byte
            count that does not match dtype x shape.
    """
    missing = {"dtype", "shape", "data"} - set(value)
    if missing:
        raise DataError(
            f"{name}: an encoded array needs keys dtype, shape and data; "
            f"missing {sorted(missing)}"
        )
    dtype = _parse_dtype(value["dtype"], name)
    shape = value["shape"]
    if (
        not isinstance(shape, (list, tuple))
        or len(shape) > 32
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in shape)
        or any(n < 0 for n in shape)
    ):
        raise DataError(
            f"{name}: 'shape' must be a list of at most 32 non-negative integers, "
            f"got {shape!r}"[:300]
        )
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > MAX_ARRAY_BYTES:
        raise DataError(f"{name}: shape {shape} would need {nbytes} bytes; too large")
    data = value["data"]
    if not isinstance(data, (str, bytes)):
        raise DataError(f"{name}: 'data' must be a base64 string")
    try:
        raw = pybase64.b64decode_as_bytearray(data, validate=True)
    except ValueError as exc:
        raise DataError(f"{name}: 'data' is not valid base64: {exc}") from exc
    if len(raw) != nbytes:
        raise DataError(
            f"{name}: 'data' holds {len(raw)} bytes but dtype {dtype.str} x shape "
            f"{list(shape)} needs {nbytes}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(tuple(shape))


def to_ndarray(value: Any, *, name: str = "array") -> np.ndarray:
    """Accept an ndarray, the encoded dict, or nested lists (like daeploy).

    Raises:
        DataError: the value is none of these, or nested lists are ragged or
            hold objects.
    """
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, dict):
        return decode_ndarray(value, name=name)
    if isinstance(value, (list, tuple, int, float, bool)):
        try:
            arr = np.asarray(value)
        except ValueError as exc:
            raise DataError(
                f"{name}: nested lists must be rectangular (same length on each "
                f"level): {exc}"
            ) from exc
        if arr.dtype.kind == "O":
            raise DataError(
                f"{name}: nested lists must hold only numbers, bools or strings "
                "of one rectangular shape"
            )
        return arr
    raise DataError(
        f"{name}: expected an array as {{dtype, shape, data}}, nested lists or an "
        f"ndarray, got {type(value).__name__}"
    )
