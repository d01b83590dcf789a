"""The service of ``bench_web.py``: a float32 lat/lon grid of a given size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from dasf_geo import main

__all__ = ["grid"]


def grid(times: int, ny: int, nx: int) -> xr.Dataset:
    """A ``times`` x ``ny`` x ``nx`` float32 field on a global lat/lon grid.

    Args:
        times: time steps.
        ny: latitudes.
        nx: longitudes.
    """
    rng = np.random.default_rng(0)
    lat = np.linspace(-90 + 90 / ny, 90 - 90 / ny, ny)
    lon = np.linspace(-180 + 180 / nx, 180 - 180 / nx, nx)
    values = rng.standard_normal((times, ny, nx), dtype=np.float32)
    ds = xr.Dataset(
        {"v": (("time", "lat", "lon"), values, {"units": "1"})},
        coords={
            "time": pd.date_range("2024-01-01", periods=times, freq="D"),
            "lat": ("lat", lat, {"units": "degrees_north"}),
            "lon": ("lon", lon, {"units": "degrees_east"}),
        },
    )
    ds.attrs["crs"] = "EPSG:4326"
    return ds


if __name__ == "__main__":
    main(messaging_config=dict(topic="web_grid_service"))
