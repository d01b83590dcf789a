"""Writing Datasets and DataArrays as NetCDF3, NetCDF4 or zipped zarr.

:func:`write_netcdf` applies the format rule of :mod:`._ncformat` and
writes into a file object or a path; :func:`netcdf_bytes` is its in-memory
form. :func:`~dasf_geo.data.read_netcdf` inverts both.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Hashable
from pathlib import Path
from typing import IO, Any

import xarray as xr

from dasf_geo.dask import ClusterComputeError
from dasf_geo.data._nc3writer import write_nc3
from dasf_geo.data._ncformat import (
    NC3_UNSUPPORTED,
    check_attribute_names,
    check_netcdf_text,
    check_supported,
    check_times,
    check_zarr_names,
    choose_format,
    dataarray_to_dataset,
    encoding_for,
    failing_variable,
    nc3_attribute_clash,
    nc3_error,
    no_coordinate_fill,
    var_label,
)
from dasf_geo.data._types import encode_types
from dasf_geo.exceptions import DataError

__all__ = ["netcdf_bytes", "write_netcdf"]


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
    check_supported(ds)
    ds = encode_types(ds)
    fmt = choose_format(ds, format, compression)
    if fmt != "zarr":
        ds = no_coordinate_fill(ds)
    check_attribute_names(ds, netcdf=fmt != "zarr")
    if fmt == "zarr":
        check_zarr_names(ds)
    else:
        check_netcdf_text(ds)
    encoding = encoding_for(ds, compression)
    if fmt == "netcdf3":
        for name, var in ds.variables.items():
            if var.dtype.str[1:] in NC3_UNSUPPORTED:
                raise DataError(
                    f"variable {var_label(name)} has dtype {var.dtype}, which "
                    "NetCDF3 cannot hold exactly; use format 'netcdf4' or "
                    "'auto', or convert it to int32/float64"
                )
        clash = nc3_attribute_clash(ds)
        if clash is not None:
            raise DataError(
                f"{clash}; rename the attribute or use format 'netcdf4' or 'auto'"
            )
        try:
            check_times(ds, "NETCDF3_CLASSIC")
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
                raise nc3_error(ds, exc) from exc
            fmt = "netcdf4"
        else:
            return "netcdf3"
    if fmt in ("netcdf4", "zarr"):
        check_times(ds, "NETCDF4")
    if fmt == "netcdf4":
        try:
            _to_netcdf(ds, target, "NETCDF4", "netcdf4", encoding)
        except ClusterComputeError:
            raise
        except Exception as exc:  # xarray's encoders raise many kinds
            where = failing_variable(ds, exc, "NETCDF4")
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
