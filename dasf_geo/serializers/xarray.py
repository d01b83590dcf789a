"""xarray serializers, compatible with ``demessaging.serializers.xarray``."""

from __future__ import annotations

import xarray as xr

from dasf_geo.data._builtins import encode_base64_xarray

__all__ = ["encode_xarray"]


def encode_xarray(
    obj: xr.DataArray | xr.Dataset,
    format: str = "auto",
    compression: int | None = None,
) -> str:
    """Encode a Dataset or DataArray as base64 NetCDF text.

    A drop-in for ``demessaging.serializers.xarray.encode_xarray``: for data
    NetCDF3 can hold, the result is the same text (base64 of
    ``obj.to_netcdf(format="NETCDF3_CLASSIC")`` written by scipy), readable by
    demessaging callers and Demap with
    ``xr.open_dataset(b64decode(text))``. Data NetCDF3 cannot hold exactly
    (int64, unsigned integers) is written as NetCDF4 instead of being
    narrowed (see the format rule in :mod:`dasf_geo.data`); pass
    ``format="netcdf3"`` to get an error instead.

    Use it as in the DASF docs::

        @configure(
            return_serializer=encode_xarray, return_validators=[validate_dataset]
        )
        def f() -> xr.Dataset: ...

    Law: ``validate_dataset(None, encode_xarray(ds))`` is identical to
    ``ds`` (``validate_dataarray`` for DataArrays).

    Args:
        obj: the Dataset or DataArray.
        format: ``auto``, ``netcdf3``, ``netcdf4`` or ``zarr``.
        compression: zlib level 1-9 (NetCDF4/zarr only).

    Returns:
        ASCII base64 text.

    Raises:
        DataError: ``obj`` is not an xarray object or the format cannot
            represent it (the message names the variable).
    """
    return encode_base64_xarray(obj, format=format, compression=compression)
