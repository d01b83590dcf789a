"""xarray validators, compatible with ``demessaging.validators.xarray``."""

from __future__ import annotations

from typing import Any

import xarray as xr

from dasf_geo.data._builtins import to_dataarray, to_dataset
from dasf_geo.validators._common import _MISSING, pick_value

__all__ = ["validate_dataarray", "validate_dataset"]


def validate_dataset(cls: Any, v: Any = _MISSING) -> xr.Dataset:
    """Coerce a value into an :class:`xarray.Dataset`.

    A drop-in for ``demessaging.validators.xarray.validate_dataset``
    (``field_validator("ds")(validate_dataset)`` or
    ``return_validators=[validate_dataset]``); ``validate_dataset(v)`` works
    too. Accepted values: a Dataset; a ``str`` of base64 NetCDF3, NetCDF4 or
    zipped zarr (e.g. from ``encode_xarray``); the raw ``bytes``; a
    ``Dataset.to_dict()`` dict; a DataArray. The data is loaded into memory.

    Raises:
        DataError: (a ``ValueError``, so pydantic reports it as a validation
            error) the value is none of these or its content is not
            decodable; the message says which.
    """
    return to_dataset(pick_value(cls, v))


def validate_dataarray(cls: Any, v: Any = _MISSING) -> xr.DataArray:
    """Coerce a value into an :class:`xarray.DataArray`.

    A drop-in for ``demessaging.validators.xarray.validate_dataarray``.
    Accepted values: a DataArray; base64 NetCDF text or raw bytes holding one
    data variable (as written by ``DataArray.to_netcdf`` or
    ``encode_xarray``); a ``DataArray.to_dict()`` dict; nested lists or an
    ndarray.

    Raises:
        DataError: the value is none of these or not decodable.
    """
    return to_dataarray(pick_value(cls, v))
