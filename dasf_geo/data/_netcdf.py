"""NetCDF and zarr I/O of Datasets and DataArrays; the readers live here.

The format rule and what each format holds are in :mod:`._ncformat`
(its docstring states the rule), the writers in :mod:`._ncwrite`; their
public names are importable from here too. The readers decode NetCDF3,
NetCDF4 or zipped-zarr bytes, paths or files into loaded Datasets
(:func:`read_netcdf`) or open a file lazily (:func:`open_netcdf_lazily`);
the law ``read_netcdf(write_netcdf(x))`` equals ``x`` is stated in
:mod:`._ncformat`.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import IO, Any

import xarray as xr

from dasf_geo.data._ncformat import (
    DATAARRAY_NAME,
    DATAARRAY_VARIABLE,
    FORMATS,
    choose_format,
    dataarray_to_dataset,
    dataset_to_dataarray,
    detect_format,
)
from dasf_geo.data._ncwrite import netcdf_bytes, write_netcdf
from dasf_geo.data._types import decode_types
from dasf_geo.exceptions import DataError

# Dataset/DataArray arguments (binary parts) larger than LAZY_THRESHOLD bytes,
# received into a temporary file, are opened lazily instead of loaded (the
# callers' binary replies use the same value, ``client.LAZY_THRESHOLD``)
from dasf_geo.protocol.limits import LAZY_THRESHOLD

__all__ = [
    "DATAARRAY_NAME",
    "DATAARRAY_VARIABLE",
    "FORMATS",
    "LAZY_THRESHOLD",
    "MAX_DECODED_BYTES",
    "choose_format",
    "dataarray_to_dataset",
    "dataset_to_dataarray",
    "detect_format",
    "netcdf_bytes",
    "open_netcdf_lazily",
    "read_dataarray",
    "read_netcdf",
    "verify_netcdf3",
    "write_netcdf",
]

#: refuse to load decoded data larger than this (compressed NetCDF4/zarr can
#: expand a small message enormously); raise it for bigger trusted data
MAX_DECODED_BYTES = 4 << 30


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
