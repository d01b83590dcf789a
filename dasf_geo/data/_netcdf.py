"""Dataset and DataArray encodings: NetCDF3, NetCDF4 and zipped zarr.

Every writer here has a reader and the pair obeys the law
``read(write(x))`` equals ``x`` (values including NaN and fill values, dtypes,
dims, coordinates and attributes) for every value the chosen format can
represent; values it cannot represent raise :class:`~dasf_geo.exceptions.DataError`
naming the variable and the feature, they are never silently altered.

The format rule (``format="auto"``) — NetCDF3 classic is what demessaging
callers and the DASF web map (Demap) read, so it is used unless the data need
more:

1. ``compression`` was requested → NetCDF4 (NetCDF3 has no compression);
2. an attribute name clashes with scipy's NetCDF3 writer (e.g. a global
   ``fp`` or a variable attribute ``data``) → NetCDF4;
3. a variable has a dtype NetCDF3 cannot hold exactly — ``int64``,
   ``uint8``/``uint16``/``uint32``/``uint64``, or fixed-width unicode
   (``<U``, which NetCDF3 returns as ``object`` strings) — → NetCDF4
   (``complex`` is never supported);
4. NetCDF3 encoding fails for a value (e.g. datetimes that need 64-bit
   offsets) → NetCDF4;
5. otherwise NetCDF3 classic: in-memory data by :mod:`._nc3writer` (the
   bytes scipy's writer makes, converted chunk by chunk instead of copied
   whole), whatever it leaves aside by scipy, dask-backed data written to a
   path by the netCDF4 library.

Datetimes: values round-trip exactly, but xarray decodes ``datetime64`` to
nanosecond resolution, so ``datetime64[s]``/``[us]`` come back as
``datetime64[ns]`` with equal values; dates outside 1677-2262 are refused
(use cftime datetimes for them). Timedeltas keep their unit. Fixed-width
strings keep their kind but may come back narrower (the width of their
longest value).
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import warnings
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import IO, Any, Literal

import cftime
import numpy as np
import xarray as xr
from xarray.backends.netcdf3 import is_valid_nc3_name

from dasf_geo.dask import ClusterComputeError
from dasf_geo.data._nc3writer import write_nc3
from dasf_geo.data._types import decode_types, encode_types
from dasf_geo.exceptions import DataError

# Dataset/DataArray arguments (binary parts) larger than LAZY_THRESHOLD bytes,
# received into a temporary file, are opened lazily instead of loaded (the
# callers' binary replies use the same value, ``client.LAZY_THRESHOLD``)
from dasf_geo.protocol.limits import LAZY_THRESHOLD

__all__ = [
    "FORMATS",
    "LAZY_THRESHOLD",
    "choose_format",
    "detect_format",
    "netcdf_bytes",
    "open_netcdf_lazily",
    "read_netcdf",
    "write_netcdf",
]

Format = Literal["netcdf3", "netcdf4", "zarr"]

#: refuse to load decoded data larger than this (compressed NetCDF4/zarr can
#: expand a small message enormously); raise it for bigger trusted data
MAX_DECODED_BYTES = 4 << 30
FORMATS: tuple[str, ...] = ("auto", "netcdf3", "netcdf4", "zarr")

#: dtypes NetCDF3 cannot store exactly (xarray would narrow or reinterpret them)
_NC3_UNSUPPORTED = {"i8", "u1", "u2", "u4", "u8"}

# scipy's NetCDF3 writer keeps attributes as Python attributes of its file and
# variable objects, so these attribute names break writing or reading
_SCIPY_GLOBAL_CLASH = frozenset(
    {
        "fp",
        "use_mmap",
        "mode",
        "dimensions",
        "variables",
        "flush",
        "sync",
        "close",
        "createVariable",
        "createDimension",
        "_dims",
        "_recs",
        "_recsize",
        "_mm",
        "_mm_buf",
        "_attributes",
    }
)
_SCIPY_VARIABLE_CLASH = frozenset(
    {
        "data",
        "dimensions",
        "typecode",
        "itemsize",
        "getValue",
        "assignValue",
        "_typecode",
        "_size",
        "_shape",
        "_attributes",
    }
)


#: CDL's type names, which xarray's NetCDF3 writers refuse as attribute names
#: (NetCDF4 stores them)
_CDL_TYPE_NAMES = frozenset(
    {"byte", "char", "short", "ushort", "int", "uint", "int64", "uint64"}
    | {"float", "real", "double", "bool", "string"}
)


def _attributes(ds: xr.Dataset) -> Iterator[tuple[Hashable, str, bool]]:
    """Every attribute name of ``ds``: ``(key, label for messages, global?)``."""
    for key in ds.attrs:
        yield key, f"global attribute {key!r}", True
    for name, var in ds.variables.items():
        for key in var.attrs:
            yield key, f"variable {_var_label(name)} attribute {key!r}", False


def _nc3_attribute_clash(ds: xr.Dataset) -> str | None:
    """Say why the first attribute only NetCDF3 refuses cannot be stored.

    Two kinds: names scipy's writer keeps for itself, and CDL type names
    (``string``, ``int``, ...), which xarray's NetCDF3 writers reject. Both
    are fine in NetCDF4. ``None`` when there is none.
    """
    for key, label, is_global in _attributes(ds):
        if key in (_SCIPY_GLOBAL_CLASH if is_global else _SCIPY_VARIABLE_CLASH):
            return (
                f"{label} cannot be written by the NetCDF3 (scipy) engine, "
                "which reserves that name"
            )
        if key in _CDL_TYPE_NAMES:
            return f"{label} is a CDL type name, which NetCDF3 does not allow"
    return None


def _check_attribute_names(ds: xr.Dataset, netcdf: bool) -> None:
    """Refuse attribute names the format cannot hold, naming the first.

    Any format needs strings; NetCDF (``netcdf``) also valid NetCDF names.
    """
    for key, label, _ in _attributes(ds):
        if not isinstance(key, str):
            problem = f"is of type {type(key).__name__}, not a string"
        elif not netcdf:
            continue
        elif not key:
            problem = "is empty"
        elif key in _CDL_TYPE_NAMES or is_valid_nc3_name(key):
            continue  # CDL type names: only NetCDF3 refuses them (see above)
        else:
            problem = (
                "is not a valid NetCDF name (a name starts with a letter, digit "
                "or '_', is NFC-normalised Unicode, and has no '/', no control "
                "characters and no trailing space)"
            )
        raise DataError(f"{label} {problem}; rename the attribute")


def _check_netcdf_text(ds: xr.Dataset) -> None:
    """Refuse strings with NUL characters, which NetCDF would cut short."""
    for name, var in ds.variables.items():
        if var.dtype.kind not in "USO" or not var.size:
            continue
        # str()/bytes() of numpy's fixed-width items drop the padding NULs
        for value in var.values.ravel().tolist():
            if (isinstance(value, str) and "\x00" in value) or (
                isinstance(value, bytes) and b"\x00" in value
            ):
                raise DataError(
                    f"variable {_var_label(name)} holds a string with a NUL "
                    "character ('\\x00'), where NetCDF would end the string; "
                    "remove it, or store the text as bytes in an integer array"
                )


def _check_zarr_names(ds: xr.Dataset) -> None:
    """Refuse names zarr would misread: '/' nests a name into a group."""
    for name in [*ds.variables, *ds.dims]:
        if not isinstance(name, str) or not name or "/" in name:
            kind = "dimension" if name in ds.dims else "variable"
            raise DataError(
                f"{kind} {_var_label(name)} cannot be stored in zarr, whose names "
                "are non-empty strings without '/'; rename it or use format "
                "'netcdf3'"
            )


# xarray's own names for an unnamed DataArray stored as a Dataset; we use the
# same convention so xr.open_dataarray() of demessaging callers reads ours.
DATAARRAY_VARIABLE = "__xarray_dataarray_variable__"
DATAARRAY_NAME = "__xarray_dataarray_name__"

_MAGIC = {b"CDF\x01": "netcdf3", b"CDF\x02": "netcdf3", b"\x89HDF": "netcdf4"}


def _var_label(name: Hashable) -> str:
    return repr(name) if not isinstance(name, str) else f"'{name}'"


def dataarray_to_dataset(da: xr.DataArray) -> xr.Dataset:
    """Wrap a DataArray as a one-variable Dataset the way xarray's writers do.

    ``dataset_to_dataarray(dataarray_to_dataset(da))`` is identical to ``da``.
    """
    if da.name is None:
        return da.to_dataset(name=DATAARRAY_VARIABLE)
    if da.name in da.coords or da.name in da.dims:
        ds = da.to_dataset(name=DATAARRAY_VARIABLE)
        ds.attrs[DATAARRAY_NAME] = da.name
        return ds
    return da.to_dataset()


def dataset_to_dataarray(ds: xr.Dataset) -> xr.DataArray:
    """Inverse of :func:`dataarray_to_dataset`.

    Raises:
        DataError: ``ds`` does not hold exactly one data variable.
    """
    if len(ds.data_vars) != 1:
        raise DataError(
            "expected a DataArray, i.e. NetCDF data with exactly one data "
            f"variable, got {len(ds.data_vars)}: {sorted(map(str, ds.data_vars))}; "
            "send a Dataset to a Dataset argument instead"
        )
    (name,) = ds.data_vars
    da = ds[name]
    if name == DATAARRAY_VARIABLE:
        da = da.rename(ds.attrs.get(DATAARRAY_NAME))
    da.attrs = dict(da.attrs)
    return da


# xarray decodes datetimes to nanoseconds: only dates in that range survive
_NS_MIN = np.datetime64("1677-09-22", "s")
_NS_MAX = np.datetime64("2262-04-11", "s")


def _check_times(ds: xr.Dataset, nc_format: str) -> None:
    """Round-trip each datetime/timedelta variable; refuse any change.

    xarray's CF time encoding can lose the last nanoseconds of some values
    (e.g. NetCDF3 stores int64 offsets as float64) or overflow; checking the
    (usually small) time variables keeps that from happening silently.
    """
    engine = "scipy" if nc_format == "NETCDF3_CLASSIC" else "netcdf4"
    for name, var in ds.variables.items():
        if var.dtype.kind not in "mM" or not var.size:
            continue
        try:
            raw = xr.Dataset({"v": var}).to_netcdf(format=nc_format, engine=engine)  # type: ignore[call-overload]
            with xr.open_dataset(
                io.BytesIO(raw) if engine == "scipy" else bytes(raw), engine=engine
            ) as back:
                values = back["v"].values
        except Exception as exc:  # xarray/pandas raise many kinds here
            raise DataError(
                f"variable {_var_label(name)}: its times cannot be encoded "
                f"({type(exc).__name__}: {exc}); round them to a coarser unit"
            ) from exc
        if values.dtype.kind != var.dtype.kind or not np.array_equal(
            values.astype(var.dtype), var.values, equal_nan=True
        ):
            raise DataError(
                f"variable {_var_label(name)}: its times do not survive "
                f"{'NetCDF3' if engine == 'scipy' else 'NetCDF4'} encoding exactly "
                "(precision beyond what the stored offsets hold); round them to a "
                "coarser unit, e.g. .dt.floor('us')"
            )


def _check_supported(ds: xr.Dataset) -> None:
    for name, var in ds.variables.items():
        kind = var.dtype.kind
        if kind == "M" and var.size and np.datetime_data(var.dtype)[0] != "ns":
            values = var.values
            values = values[~np.isnat(values)]
            if values.size and (values.min() < _NS_MIN or values.max() > _NS_MAX):
                raise DataError(
                    f"variable {_var_label(name)} has datetimes outside "
                    "1677-09-22..2262-04-11, which xarray cannot decode as "
                    "datetime64[ns]; use cftime datetimes for such dates"
                )
        if kind == "c":
            raise DataError(
                f"variable {_var_label(name)} has complex dtype {var.dtype}, which "
                "no NetCDF or zarr encoding here can hold; store the real and "
                "imaginary parts as two variables"
            )
        if kind == "O" and var.size:
            sample = var.values.ravel()
            ok = (str, bytes, cftime.datetime)  # cftime: non-standard calendars
            bad = {type(v).__name__ for v in sample if not isinstance(v, ok)}
            if bad:
                raise DataError(
                    f"variable {_var_label(name)} has object dtype holding "
                    f"{sorted(bad)}; only str, bytes or cftime datetimes can be "
                    "encoded, "
                    "convert the variable to a numeric or string dtype"
                )


def choose_format(
    obj: xr.Dataset | xr.DataArray,
    format: str = "auto",
    compression: int | None = None,
) -> Format:
    """Apply the format rule of this module (see the module docstring).

    Args:
        obj: the data to encode.
        format: ``auto``, ``netcdf3``, ``netcdf4`` or ``zarr``.
        compression: zlib level 1-9, or ``None``.

    Returns:
        The concrete format (rule step 3, a failing NetCDF3 encoding, is
        applied by :func:`write_netcdf` itself).

    Raises:
        DataError: unknown format, or compression with ``netcdf3``.
    """
    if format not in FORMATS:
        raise DataError(
            f"unknown format {format!r}; choose one of {', '.join(FORMATS)}"
        )
    if compression is not None and (
        isinstance(compression, bool)
        or not isinstance(compression, int)
        or not 1 <= compression <= 9
    ):
        raise DataError(f"compression must be a zlib level 1-9, got {compression!r}")
    if format == "netcdf3" and compression is not None:
        raise DataError(
            "compression needs format 'netcdf4' or 'zarr'; NetCDF3 cannot "
            "compress, drop compression or change format"
        )
    if format != "auto":
        return format  # type: ignore[return-value]
    if compression is not None:
        return "netcdf4"
    ds = dataarray_to_dataset(obj) if isinstance(obj, xr.DataArray) else obj
    for var in ds.variables.values():
        if var.dtype.str[1:] in _NC3_UNSUPPORTED or var.dtype.kind == "U":
            return "netcdf4"
    if _nc3_attribute_clash(ds) is not None:
        return "netcdf4"
    return "netcdf3"


def _no_coordinate_fill(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with no ``_FillValue`` written for its coordinate variables.

    xarray writes ``_FillValue = NaN`` on every float variable; CF does not
    allow one on a coordinate variable (a 1-D variable named like its
    dimension), so those get ``_FillValue: None`` in their encoding unless
    it holds a fill value other than NaN (one that masks values). The values
    are unchanged: a NaN stays a NaN.
    """
    names = [
        name
        for name, var in ds.variables.items()
        if var.dims == (name,)
        and var.dtype.kind == "f"
        and "_FillValue" not in var.attrs
        and _nan_or_absent(var.encoding.get("_FillValue", np.nan))
    ]
    if not names:
        return ds
    ds = ds.copy(deep=False)
    for name in names:
        var = ds.variables[name]
        var.encoding = {**var.encoding, "_FillValue": None}
    return ds


def _nan_or_absent(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(np.all(np.isnan(np.asarray(value, dtype="f8"))))
    except (TypeError, ValueError):
        return False


def _encoding_for(ds: xr.Dataset, compression: int | None) -> dict[Hashable, Any]:
    if compression is None:
        return {}
    # coordinates too: a curvilinear grid's 2-D lat/lon weigh as much as data
    return {
        name: {"zlib": True, "complevel": int(compression)}
        for name, var in ds.variables.items()
        if var.dtype.kind in "biuf"
    }


def _failing_variable(ds: xr.Dataset, exc: Exception, nc_format: str) -> str:
    """Name the variable an encoder failed on ("the data" if unknown)."""
    # xarray notes "Raised while encoding variable 'x' with value ..."
    for note in getattr(exc, "__notes__", ()):
        match = re.search(r"while encoding variable '([^']*)'", str(note))
        if match:
            return f"variable '{match.group(1)}'"
    engine = "scipy" if nc_format == "NETCDF3_CLASSIC" else "netcdf4"
    for name, var in ds.variables.items():
        try:
            xr.Dataset({"v": var}).to_netcdf(format=nc_format, engine=engine)  # type: ignore[call-overload]
        except Exception:  # any failure marks the culprit
            return f"variable {_var_label(name)}"
    return "the data"


def _nc3_error(ds: xr.Dataset, exc: Exception) -> DataError:
    where = _failing_variable(ds, exc, "NETCDF3_CLASSIC")
    return DataError(
        f"NetCDF3 cannot represent {where}: {type(exc).__name__}: {exc}; use "
        "format 'netcdf4' or 'auto', or convert the variable (e.g. datetimes to "
        "a coarser unit, integers to int32/float64)"
    )


def netcdf_bytes(
    obj: xr.Dataset | xr.DataArray,
    format: str = "auto",
    compression: int | None = None,
) -> tuple[bytes | memoryview, str]:
    """Encode ``obj`` in memory; return ``(buffer, format used)``.

    The in-memory form of :func:`write_netcdf` (no extra copy of the
    buffer); ``read_netcdf(buffer)`` inverts it.

    Raises:
        DataError: as :func:`write_netcdf`.
    """
    out: list[Any] = []

    class _Sink:
        def write(self, data: Any) -> int:
            out.append(data)
            return len(data)

    fmt = write_netcdf(obj, _Sink(), format=format, compression=compression)  # type: ignore[arg-type]
    return (out[0] if len(out) == 1 else b"".join(out)), fmt


def write_netcdf(
    obj: xr.Dataset | xr.DataArray,
    target: IO[bytes] | str | os.PathLike[str],
    format: str = "auto",
    compression: int | None = None,
) -> str:
    """Encode ``obj`` as NetCDF3, NetCDF4 or zipped zarr into ``target``.

    Law: ``read_netcdf(target)`` after ``write_netcdf(ds, target)`` is
    identical to ``ds`` for every value the chosen format holds exactly
    (DataArrays come back through :func:`read_dataarray`).

    Args:
        obj: a Dataset, or a DataArray (stored the way ``DataArray.to_netcdf``
            stores it, so ``xr.open_dataarray`` reads it).
        target: a binary file object (e.g. a ``SpooledTemporaryFile`` for
            streaming) or a path.
        format: ``auto`` (see the module rule), ``netcdf3``, ``netcdf4``,
            ``zarr``.
        compression: zlib level 1-9 for netcdf4/zarr, or ``None``.

    Returns:
        The format used: ``netcdf3``, ``netcdf4`` or ``zarr``.

    Raises:
        DataError: the data cannot be represented in the chosen format; the
            message names the variable and what to change.
    """
    if not isinstance(obj, (xr.Dataset, xr.DataArray)):
        raise DataError(
            f"expected an xarray Dataset or DataArray, got {type(obj).__name__}"
        )
    ds = dataarray_to_dataset(obj) if isinstance(obj, xr.DataArray) else obj
    _check_supported(ds)
    ds = encode_types(ds)
    fmt = choose_format(ds, format, compression)
    if fmt != "zarr":
        ds = _no_coordinate_fill(ds)
    _check_attribute_names(ds, netcdf=fmt != "zarr")
    if fmt == "zarr":
        _check_zarr_names(ds)
    else:
        _check_netcdf_text(ds)
    encoding = _encoding_for(ds, compression)
    if fmt == "netcdf3":
        for name, var in ds.variables.items():
            if var.dtype.str[1:] in _NC3_UNSUPPORTED:
                raise DataError(
                    f"variable {_var_label(name)} has dtype {var.dtype}, which "
                    "NetCDF3 cannot hold exactly; use format 'netcdf4' or "
                    "'auto', or convert it to int32/float64"
                )
        clash = _nc3_attribute_clash(ds)
        if clash is not None:
            raise DataError(
                f"{clash}; rename the attribute or use format 'netcdf4' or 'auto'"
            )
        try:
            _check_times(ds, "NETCDF3_CLASSIC")
        except DataError:
            if format != "auto":
                raise
            fmt = "netcdf4"
    if fmt == "netcdf3":
        try:
            _to_netcdf(ds, target, "NETCDF3_CLASSIC", "scipy", {})
        except ClusterComputeError:
            raise
        except Exception as exc:  # xarray's encoders raise many kinds
            if format != "auto":
                raise _nc3_error(ds, exc) from exc
            fmt = "netcdf4"
        else:
            return "netcdf3"
    if fmt in ("netcdf4", "zarr"):
        _check_times(ds, "NETCDF4")
    if fmt == "netcdf4":
        try:
            _to_netcdf(ds, target, "NETCDF4", "netcdf4", encoding)
        except ClusterComputeError:
            raise
        except Exception as exc:  # xarray's encoders raise many kinds
            where = _failing_variable(ds, exc, "NETCDF4")
            raise DataError(
                f"NetCDF4 cannot encode {where}: {type(exc).__name__}: {exc}; "
                "convert the variable (e.g. datetimes to a coarser unit)"
            ) from exc
        return "netcdf4"
    _write_zarr(ds, target, compression)
    return "zarr"


def _to_netcdf(
    ds: xr.Dataset,
    target: IO[bytes] | str | os.PathLike[str],
    nc_format: str,
    engine: str,
    encoding: dict[Hashable, Any],
) -> None:
    if any(var.chunks is not None for var in ds.variables.values()):
        # computed on the dask cluster chunk by chunk, if one is configured
        from dasf_geo.dask import on_cluster

        ds = on_cluster(ds)
    if (
        engine == "scipy"
        and isinstance(target, (str, os.PathLike))
        and any(var.chunks is not None for var in ds.variables.values())
    ):
        # scipy's writer holds every variable in memory until it closes the
        # file; the netCDF4 library writes the same NetCDF3 classic format
        # chunk by chunk, so a dask-backed Dataset never exists in full
        engine = "netcdf4"
    if (
        engine == "scipy"
        and nc_format == "NETCDF3_CLASSIC"
        and not encoding
        and write_nc3(ds, target)
    ):
        # the same bytes as scipy's writer, without its full copies of the
        # data; anything it does not handle goes on to scipy (see _nc3writer)
        return
    kwargs: dict[str, Any] = {"format": nc_format, "engine": engine}
    if encoding:
        kwargs["encoding"] = encoding
    if isinstance(target, (str, os.PathLike)):
        # written by the engine itself: dask-backed variables go chunk by chunk
        ds.to_netcdf(os.fspath(target), **kwargs)
    else:
        target.write(ds.to_netcdf(**kwargs))


def _write_zarr(
    ds: xr.Dataset, target: IO[bytes] | str | os.PathLike[str], compression: int | None
) -> None:
    try:
        import zarr
    except ImportError as exc:  # pragma: no cover - zarr is a test dependency
        raise DataError(
            "format 'zarr' needs the zarr package: pip install 'dasf_geo[zarr]'"
        ) from exc
    ds = ds.copy()
    for var in ds.variables.values():
        var.encoding = {}
    encoding: dict[Hashable, Any] = {}
    if compression is not None:
        # zarr compresses with zstd by default; the level follows `compression`
        from zarr.codecs import ZstdCodec

        codec = ZstdCodec(level=compression)
        encoding = {name: {"compressors": [codec]} for name in ds.data_vars}
    with tempfile.TemporaryDirectory(prefix="dasf-geo-zarr-") as tmp:
        path = Path(tmp) / "data.zarr.zip"
        store = zarr.storage.ZipStore(path, mode="w")
        try:
            with warnings.catch_warnings():
                # zarr's zip store rewrites its metadata entries: harmless
                warnings.simplefilter("ignore", UserWarning)
                ds.to_zarr(store, consolidated=False, zarr_format=3, encoding=encoding)
        except Exception as exc:  # xarray's encoders raise many kinds
            raise DataError(
                f"zarr cannot encode the data: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            store.close()
        if isinstance(target, (str, os.PathLike)):
            os.replace(path, target)
        else:
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 22):
                    target.write(chunk)


def detect_format(head: bytes) -> str:
    """Name the encoding of NetCDF/zarr bytes from their first bytes.

    Raises:
        DataError: the bytes are neither NetCDF3, NetCDF4/HDF5 nor a zip.
    """
    head = bytes(head[:4])
    if head in _MAGIC:
        return _MAGIC[head]
    if head[:2] == b"PK":
        return "zarr"
    raise DataError(
        f"the data is not NetCDF3, NetCDF4 or zipped zarr (starts with {head!r}); "
        "send base64 of the bytes written by to_netcdf()"
    )


Source = bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes]


def verify_netcdf3(path: str | os.PathLike[str], what: str) -> None:
    """Check that the NetCDF3 file at ``path`` holds what its header says.

    The netCDF library opens a truncated NetCDF3 file without a word (its
    variables are simply missing); scipy's reader maps the file and finds
    every variable's bytes, so a short or corrupt file is named here.

    Raises:
        DataError: the file is shorter than its header says, or the header
            is corrupt.
    """
    import warnings

    from scipy.io import netcdf_file

    with open(path, "rb") as fh:
        head = fh.read(4)
    if head not in (b"CDF\x01", b"CDF\x02"):
        return  # CDF-5 and the rest: left to the netCDF library
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # close() warns about the map
            nc = netcdf_file(path, "r", mmap=True)
            nc.close()
    except Exception as exc:
        raise DataError(
            f"{what} is a truncated or corrupt NetCDF3 file ({type(exc).__name__}: "
            f"{exc})"
        ) from exc


def open_netcdf_lazily(path: str | os.PathLike[str], what: str) -> xr.Dataset:
    """Open the NetCDF3/4 file at ``path`` without loading its values.

    Values are read from the file when they are used (dask-backed, chunked
    along the file's layout, when dask is installed). The file must stay in
    place while the Dataset is used. ``what`` names the data in errors.

    Raises:
        DataError: the file is not NetCDF, or is truncated or corrupt.
    """
    with open(path, "rb") as fh:
        head = fh.read(4)
    fmt = detect_format(head)  # a clear error for bytes that are not NetCDF
    if fmt == "zarr":
        raise DataError(f"{what} is zipped zarr, which cannot be opened in place")
    if fmt == "netcdf3":
        verify_netcdf3(path, what)
    try:
        import dask  # noqa: F401

        chunks: dict[str, Any] | None = {}
    except ImportError:  # lazily indexed arrays without dask
        chunks = None
    try:
        # the netCDF4 library reads NetCDF3 too, with reads rather than a
        # memory map, so values read once do not stay in the process
        return decode_types(xr.open_dataset(path, engine="netcdf4", chunks=chunks))
    except Exception as exc:
        raise DataError(
            f"cannot open {what}: {type(exc).__name__}: {exc}; the bytes are "
            "truncated or corrupt"
        ) from exc


def read_netcdf(source: Source) -> xr.Dataset:
    """Decode NetCDF3, NetCDF4 or zipped-zarr bytes into a loaded Dataset.

    Law: ``read_netcdf(buf)`` is identical to ``ds`` after
    ``write_netcdf(ds, buf)``. The engine is chosen from the magic bytes, so
    demessaging's ``encode_xarray`` output is read as well.

    Args:
        source: the raw bytes (not base64), a path or a binary file object.

    Raises:
        DataError: the input is not one of the three formats or is corrupt.
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as fh:
            head = fh.read(4)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        head = bytes(memoryview(source)[:4])
    else:
        pos = source.tell()
        head = source.read(4)
        source.seek(pos)
    fmt = detect_format(head)
    try:
        if fmt == "zarr":
            return decode_types(_read_zarr(source))
        # a NetCDF3 *file* is read by the netCDF4 library too: scipy maps the
        # file and load() copies every page it touched, twice the data at the
        # peak; netCDF4 reads straight into the arrays (about 1.2x)
        in_file = isinstance(source, (str, os.PathLike))
        if in_file and fmt == "netcdf3":
            verify_netcdf3(source, "the file")  # type: ignore[arg-type]
        engine = "scipy" if fmt == "netcdf3" and not in_file else "netcdf4"
        obj: Any = source
        if isinstance(source, memoryview | bytearray):
            obj = bytes(source) if engine == "netcdf4" else io.BytesIO(source)
        with xr.open_dataset(obj, engine=engine) as opened:
            _check_size(opened)
            return decode_types(opened.load())
    except DataError:
        raise
    except Exception as exc:
        raise DataError(
            f"cannot read the {fmt} data: {type(exc).__name__}: {exc}; the bytes "
            "are truncated or corrupt"
        ) from exc


def _check_size(ds: xr.Dataset) -> None:
    nbytes = ds.nbytes
    if nbytes > MAX_DECODED_BYTES:
        raise DataError(
            f"the decoded data would take {nbytes} bytes, more than the limit of "
            f"{MAX_DECODED_BYTES} (dasf_geo.data._netcdf.MAX_DECODED_BYTES); send "
            "smaller pieces or raise the limit for trusted data"
        )


def read_dataarray(source: Source) -> xr.DataArray:
    """Like :func:`read_netcdf`, for data written from a DataArray.

    Raises:
        DataError: as :func:`read_netcdf`, or the data has not exactly one
            data variable.
    """
    return dataset_to_dataarray(read_netcdf(source))


def _read_zarr(source: Source) -> xr.Dataset:
    import zarr

    with tempfile.TemporaryDirectory(prefix="dasf-geo-zarr-") as tmp:
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
        else:
            path = Path(tmp) / "data.zarr.zip"
            with open(path, "wb") as fh:
                if isinstance(source, (bytes, bytearray, memoryview)):
                    fh.write(source)
                else:
                    while chunk := source.read(1 << 22):
                        fh.write(chunk)
        store = zarr.storage.ZipStore(path, mode="r")
        try:
            with xr.open_zarr(store, consolidated=False, chunks=None) as opened:
                _check_size(opened)
                ds = opened.load()
        finally:
            store.close()
    for var in ds.variables.values():
        var.encoding = {}
    return ds
