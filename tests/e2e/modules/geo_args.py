"""A backend that hands Dataset and DataArray arguments back, for multipart tests."""

from __future__ import annotations

import os

import xarray as xr

from dasf_geo import main

__all__ = ["argument_file", "echo_dataarray", "echo_dataset"]


def echo_dataset(ds: xr.Dataset) -> xr.Dataset:
    """Return ``ds`` as it arrived."""
    return ds


def echo_dataarray(da: xr.DataArray) -> xr.DataArray:
    """Return ``da`` as it arrived."""
    return da


def argument_file(ds: xr.Dataset) -> dict:
    """The file ``ds`` was read from (empty if from memory) and whether it exists."""
    source = str(ds.encoding.get("source", ""))
    return {"source": source, "exists": bool(source) and os.path.exists(source)}


if __name__ == "__main__":
    main(messaging_config=dict(topic="geo-args"))
