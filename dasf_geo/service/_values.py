"""How values are written to and read from the monitoring store.

Numbers are stored as numbers and strings as strings; anything else as
JSON; xarray, pandas and numpy values as a *summary* (type, dims, sizes,
variables, a checksum), never the whole payload.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import math
import threading
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from dasf_geo.exceptions import DasfGeoError

__all__ = [
    "MAX_VALUE_BYTES",
    "StoreError",
    "decode_row",
    "encode_value",
    "iso",
    "parse_time",
    "summarize",
    "to_csv",
]

logger = logging.getLogger("dasf_geo.service.monitor_db")

#: largest text of one stored value (a string or JSON), in bytes
MAX_VALUE_BYTES = 1 << 20


class StoreError(DasfGeoError):
    """The monitoring store cannot be opened, written or read."""


def _checksum(arrays: Iterable[Any]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    import numpy as np

    for arr in arrays:
        data = np.ascontiguousarray(np.asarray(arr))
        if data.dtype.kind == "O":
            digest.update(repr(data.tolist()).encode("utf-8", "replace"))
        else:
            digest.update(str(data.dtype).encode())
            digest.update(data.view(np.uint8).data if data.size else b"")
    return "blake2b:" + digest.hexdigest()


def summarize(value: Any) -> dict[str, Any] | None:
    """A small JSON summary of an xarray, pandas or numpy value, else None.

    The summary names the type, dims/shape, sizes, variables or columns and
    a checksum of the values (blake2b), so that two results can be compared
    without storing either.
    """
    module = type(value).__module__.split(".")[0]
    if module == "xarray":
        import xarray as xr

        if isinstance(value, xr.DataArray):
            return {
                "type": "xarray.DataArray",
                "name": None if value.name is None else str(value.name),
                "dims": [str(d) for d in value.dims],
                "sizes": {str(k): int(v) for k, v in value.sizes.items()},
                "dtype": str(value.dtype),
                "checksum": _checksum([value.values]),
            }
        if isinstance(value, xr.Dataset):
            names = sorted(str(n) for n in value.data_vars)
            return {
                "type": "xarray.Dataset",
                "dims": {str(k): int(v) for k, v in value.sizes.items()},
                "variables": names,
                "coords": sorted(str(n) for n in value.coords),
                "checksum": _checksum(
                    value.variables[n].values for n in sorted(value.variables, key=str)
                ),
            }
    if module == "pandas":
        import pandas as pd

        if isinstance(value, pd.DataFrame):
            return {
                "type": "pandas.DataFrame",
                "shape": list(value.shape),
                "columns": [str(c) for c in value.columns],
                "checksum": _checksum(
                    [pd.util.hash_pandas_object(value, index=True).to_numpy()]
                ),
            }
        if isinstance(value, pd.Series):
            return {
                "type": "pandas.Series",
                "name": None if value.name is None else str(value.name),
                "length": len(value),
                "checksum": _checksum(
                    [pd.util.hash_pandas_object(value, index=True).to_numpy()]
                ),
            }
    if module == "numpy":
        import numpy as np

        if isinstance(value, np.ndarray):
            return {
                "type": "numpy.ndarray",
                "shape": list(value.shape),
                "dtype": str(value.dtype),
                "checksum": _checksum([value]),
            }
    return None


def _json_default(value: Any) -> Any:
    summary = summarize(value)
    if summary is not None:
        return summary
    if hasattr(value, "model_dump"):  # a pydantic model
        return value.model_dump(mode="json")
    if isinstance(value, datetime):
        return value.isoformat()
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def encode_value(variable: str, value: Any) -> tuple[str, float | None, str | None]:
    """The ``(kind, number, text)`` columns of one value.

    A value that cannot be written as JSON is stored as its ``repr`` (logged
    once per variable and type).

    Raises:
        StoreError: the value's text is larger than :data:`MAX_VALUE_BYTES`.
    """
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        value = value.item()  # a numpy scalar
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number):
            return "number", number, None
        return "string", None, repr(number)  # nan, inf, -inf
    if isinstance(value, str):
        kind, text = "string", value
    else:
        kind = "json"
        try:
            text = json.dumps(value, default=_json_default, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            key = (variable, type(value).__name__)
            with _warned_lock:
                first = key not in _warned
                _warned.add(key)
            if first:
                logger.warning(
                    "store: %s of type %s cannot be written as JSON (%s); storing "
                    "its repr",
                    variable,
                    type(value).__name__,
                    exc,
                )
            kind, text = "string", repr(value)
    size = len(text.encode("utf-8", "replace"))
    if size > MAX_VALUE_BYTES:
        raise StoreError(
            f"the value of {variable!r} is {size} bytes as {kind}, above the "
            f"store's limit of {MAX_VALUE_BYTES} bytes per value; store a summary "
            "of it instead"
        )
    return kind, None, text


def decode_row(kind: str, number: float | None, text: str | None) -> Any:
    """The value of a stored row (the reverse of :func:`encode_value`)."""
    if kind == "number":
        return number
    if kind == "json" and text is not None:
        with contextlib.suppress(ValueError):
            return json.loads(text)
    return text


def iso(timestamp: float) -> str:
    """ISO 8601 UTC text of seconds since the epoch."""
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat()


def parse_time(value: Any, what: str) -> float | None:
    """Seconds since the epoch of an ISO 8601 text (naive means UTC), or None.

    Raises:
        ValueError: not an ISO 8601 date/time (the message names ``what``).
    """
    if value is None or value == "":
        return None
    hint = f"{what} must be an ISO 8601 date or time such as '2026-01-31T12:00:00Z'"
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and len(value) <= 64:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{hint}, got {value!r}") from None
    else:
        raise ValueError(f"{hint}, got {value!r:.80}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def to_csv(records: list[dict[str, Any]]) -> str:
    """``variable,value,timestamp`` CSV text of :meth:`MonitorStore.query` rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["variable", "value", "timestamp"])
    for rec in records:
        value = rec["value"]
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            value = json.dumps(value)
        writer.writerow([rec["variable"], value, rec["timestamp"]])
    return out.getvalue()
