"""Files in and out of ``dasf-geo call``: ``name=@file`` arguments, ``-o``, printing.

Arguments take curl's ``@`` convention: ``ds=@data.nc`` sends the file's
Dataset, ``df=@stations.csv`` its table, ``a=@h.npy`` its array. The kind
of file is told by its extension; the parameter's type (from the service's
API info) says whether a NetCDF file is read as a Dataset or a DataArray.

``-o FILE`` writes the decoded result in the format of FILE's extension;
:func:`check_output` refuses a mismatch before anything is sent.
:func:`render` turns a result into what a person reads on a terminal.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dasf_geo.exceptions import DasfGeoError

__all__ = [
    "FileArgument",
    "check_output",
    "clean_base64",
    "data_type",
    "read_file_argument",
    "render",
    "write_output",
]

#: extension -> (what it holds, how it is named in messages)
FILE_KINDS: dict[str, tuple[str, str]] = {
    ".nc": ("xarray", "NetCDF"),
    ".nc4": ("xarray", "NetCDF"),
    ".netcdf": ("xarray", "NetCDF"),
    ".zarr": ("xarray", "Zarr"),
    ".csv": ("pandas.DataFrame", "CSV"),
    ".parquet": ("pandas.DataFrame", "Parquet"),
    ".npy": ("numpy.ndarray", "NumPy .npy"),
    ".json": ("json", "JSON"),
}

_TYPE_NAMES = {
    "xarray.Dataset": "Dataset",
    "xarray.DataArray": "DataArray",
    "pandas.DataFrame": "DataFrame",
    "numpy.ndarray": "ndarray",
}

#: what each data type is written as, by extension
_OUTPUTS: dict[str, tuple[str, ...]] = {
    "xarray.Dataset": (".nc", ".nc4", ".netcdf", ".zarr"),
    "xarray.DataArray": (".nc", ".nc4", ".netcdf", ".zarr"),
    "pandas.DataFrame": (".csv", ".parquet", ".json"),
    "numpy.ndarray": (".npy", ".json"),
}

#: how each data type's output formats are named in messages
_OUTPUT_NAMES = {
    "xarray.Dataset": "NetCDF (.nc) or Zarr (.zarr)",
    "xarray.DataArray": "NetCDF (.nc) or Zarr (.zarr)",
    "pandas.DataFrame": "CSV (.csv), Parquet (.parquet) or JSON (.json)",
    "numpy.ndarray": "NumPy (.npy) or JSON (.json)",
}

_EXTRAS = {"pyarrow": "parquet", "zarr": "zarr"}


class FileArgument:
    """A ``name=@path`` argument, read once the parameter's type is known."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"@{self.path}"


def data_type(schema: Any) -> str | None:
    """The ``x-dasf-type`` of a parameter or return schema, looking into anyOf."""
    from dasf_geo.data import SCHEMA_TYPE_KEY

    if not isinstance(schema, Mapping):
        return None
    kind = schema.get(SCHEMA_TYPE_KEY)
    if isinstance(kind, str):
        return kind
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key) or ():
            found = data_type(option)
            if found:
                return found
    return None


def _describe(kind: str | None, schema: Mapping[str, Any] | None = None) -> str:
    if kind:
        return _TYPE_NAMES.get(kind, kind)
    if schema:
        from dasf_geo.service._signature import schema_type_name

        return schema_type_name(schema)
    return "any value"


def _need(module: str, what: str) -> None:
    """Refuse early when an optional library for ``what`` is missing."""
    if importlib.util.find_spec(module) is None:
        extra = _EXTRAS.get(module, module)
        raise DasfGeoError(
            f"{what} needs the {module} package: pip install 'dasf_geo[{extra}]'"
        )


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def read_file_argument(
    name: str, raw_path: str, schema: Mapping[str, Any] | None, opened: list[Any]
) -> Any:
    """Read the file of ``name=@raw_path`` as the value parameter ``name`` takes.

    Datasets are opened lazily (their arrays are read while they are sent);
    the opened objects are appended to ``opened`` for the caller to close.

    Raises:
        DasfGeoError: the file does not exist, its extension is unknown or
            does not fit the parameter's type, or it cannot be read.
    """
    shown = f"{name}=@{raw_path}"
    path = Path(raw_path).expanduser()
    suffix = _suffix(path)
    if suffix not in FILE_KINDS:
        raise DasfGeoError(
            f"{shown}: unknown kind of file {suffix or '(no extension)'}; "
            "give one of " + ", ".join(FILE_KINDS)
        )
    if not path.exists():
        raise DasfGeoError(f"{shown}: no such file")
    holds, label = FILE_KINDS[suffix]
    kind = data_type(schema)
    if holds != "json":
        untyped = kind is None and not (schema or {}).get("type")
        fits = untyped or (kind or "").startswith(holds)
        if not fits:
            raise DasfGeoError(
                f"{shown}: a {label} file does not fit {name}, which takes "
                f"{_describe(kind, schema)}"
                + (
                    f" (give a {_OUTPUT_NAMES[kind]} file)"
                    if kind in _OUTPUT_NAMES
                    else " (give a .json file)"
                )
            )
    try:
        return _read(path, suffix, kind, opened)
    except DasfGeoError:
        raise
    except Exception as exc:
        raise DasfGeoError(
            f"{shown}: cannot read the {label} file: {type(exc).__name__}: {exc}"
        ) from exc


def _read(path: Path, suffix: str, kind: str | None, opened: list[Any]) -> Any:
    holds, _ = FILE_KINDS[suffix]
    if holds == "json":
        return json.loads(path.read_text(encoding="utf-8"))
    if holds == "xarray":
        import xarray as xr

        if suffix == ".zarr":
            _need("zarr", "reading Zarr")
            with warnings.catch_warnings():
                # a store without consolidated metadata is read all the same
                warnings.simplefilter("ignore", RuntimeWarning)
                ds = xr.open_zarr(path, chunks=None)
        else:
            ds = xr.open_dataset(path)
        opened.append(ds)
        if kind == "xarray.DataArray":
            names = list(ds.data_vars)
            if len(names) != 1:
                raise DasfGeoError(
                    f"{path} holds {len(names)} variables ({', '.join(names)}); a "
                    "DataArray argument needs a file with exactly one"
                )
            return ds[names[0]]
        return ds
    if holds == "pandas.DataFrame":
        import pandas as pd

        if suffix == ".parquet":
            _need("pyarrow", "reading Parquet")
            return pd.read_parquet(path)
        table = pd.read_csv(path)
        first = table.columns[0] if len(table.columns) else None
        if isinstance(first, str) and first.startswith("Unnamed: 0"):
            # a CSV written with its index (DataFrame.to_csv's default)
            table = table.set_index(first).rename_axis(None)
        return table
    import numpy as np

    return np.load(path, allow_pickle=False)


_FILE_NAME = re.compile(r"^[^\s]+\.(nc|nc4|netcdf|zarr|csv|parquet|npy|json)$", re.I)


def clean_base64(name: str, value: Any, schema: Mapping[str, Any] | None) -> Any:
    """A hand-given base64 value without its line breaks and spaces.

    Raises:
        DasfGeoError: the value is a file name (the ``@`` was forgotten).
    """
    if not isinstance(value, str) or not isinstance(schema, Mapping):
        return value
    if not _is_base64(schema):
        return value
    if _FILE_NAME.match(value) or (len(value) < 4096 and _exists(value)):
        raise DasfGeoError(
            f"{name}={value!r:.80} looks like a file name; write {name}=@{value} "
            "to send the file"
        )
    return "".join(value.split())


def _is_base64(schema: Mapping[str, Any]) -> bool:
    if schema.get("contentEncoding") == "base64":
        return True
    return any(
        isinstance(option, Mapping) and _is_base64(option)
        for key in ("anyOf", "oneOf")
        for option in schema.get(key) or ()
    )


def _exists(text: str) -> bool:
    with contextlib.suppress(OSError, ValueError):
        return Path(text).expanduser().exists()
    return False


def check_output(path: str, return_schema: Mapping[str, Any] | None) -> None:
    """Refuse ``-o path`` before the call when the result cannot go there.

    Raises:
        DasfGeoError: the extension does not fit the function's return type,
            or the library that writes that format is missing.
    """
    suffix = _suffix(Path(path))
    kind = data_type(return_schema)
    if kind in _OUTPUTS:
        allowed = _OUTPUTS[kind]
        if suffix not in allowed:
            raise DasfGeoError(
                f"-o {path}: the result is a {_TYPE_NAMES[kind]}, written as "
                f"{_OUTPUT_NAMES[kind]}, not {suffix or 'a file without extension'}"
            )
    elif return_schema and suffix != ".json":
        raise DasfGeoError(
            f"-o {path}: the result is {_describe(None, return_schema)}, written "
            f"as JSON (.json), not {suffix or 'a file without extension'}"
        )
    if suffix == ".parquet":
        _need("pyarrow", "writing Parquet")
    if suffix == ".zarr":
        _need("zarr", "writing Zarr")


def write_output(value: Any, path: Path) -> None:
    """Write a decoded result to ``path`` in the format its extension names.

    Raises:
        DasfGeoError: the extension does not fit the value's type.
        OSError: the file cannot be written.
    """
    kind = type(value).__module__.split(".")[0] + "." + type(value).__name__
    suffix = _suffix(path)
    if kind in _OUTPUTS and suffix not in _OUTPUTS[kind]:
        raise DasfGeoError(
            f"-o {path}: the result is a {_TYPE_NAMES[kind]}, written as "
            f"{_OUTPUT_NAMES[kind]}"
        )
    if kind in ("xarray.Dataset", "xarray.DataArray"):
        if suffix == ".zarr":
            ds = value.to_dataset() if kind == "xarray.DataArray" else value
            ds.to_zarr(path, mode="w", consolidated=False)
        else:
            value.to_netcdf(path)
    elif kind == "pandas.DataFrame" and suffix == ".parquet":
        value.to_parquet(path)
    elif kind == "pandas.DataFrame" and suffix == ".csv":
        value.to_csv(path)
    elif kind == "numpy.ndarray" and suffix == ".npy":
        import numpy as np

        with path.open("wb") as fh:
            np.save(fh, value, allow_pickle=False)
    else:
        path.write_text(json.dumps(_jsonable(value), indent=2) + "\n")


def _jsonable(value: Any) -> Any:
    kind = type(value).__module__.split(".")[0] + "." + type(value).__name__
    if kind == "pandas.DataFrame":
        return json.loads(value.to_json(orient="table", date_format="iso"))
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value)


def render(value: Any, width: int = 100) -> str:
    """``value`` as a person reads it on a terminal.

    A DataFrame as a table (head and tail when long), a Dataset or
    DataArray as its xarray summary, an array as numpy prints it; anything
    else as indented JSON.
    """
    kind = type(value).__module__.split(".")[0] + "." + type(value).__name__
    if kind == "pandas.DataFrame":
        import pandas as pd

        with pd.option_context(
            "display.width",
            width,
            "display.max_columns",
            20,
            "display.max_rows",
            20,
            "display.min_rows",
            10,
        ):
            return str(value)
    if kind in ("xarray.Dataset", "xarray.DataArray"):
        return str(value)
    if kind == "numpy.ndarray":
        import numpy as np

        with np.printoptions(linewidth=width):
            return str(value)
    return json.dumps(_jsonable(value), indent=2, ensure_ascii=False)
