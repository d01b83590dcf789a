"""A backend whose functions compute on a dask.distributed cluster."""

from __future__ import annotations

import os
import time

import dask.array as da
import numpy as np
import xarray as xr

import dasf_geo.dask
from dasf_geo import main

__all__ = ["doubled", "total", "where"]


def _slow_double(block: np.ndarray, delay: float) -> np.ndarray:
    time.sleep(delay)
    return block * 2.0


def doubled(ny: int, nx: int, rows_per_chunk: int, delay: float = 0.0) -> xr.Dataset:
    """``2 * arange(ny * nx)`` on a lat/lon grid, computed on the cluster.

    Each chunk of ``rows_per_chunk`` rows sleeps ``delay`` seconds on its
    worker; the result goes back chunk by chunk.
    """
    dasf_geo.dask.client()
    base = da.arange(ny * nx, dtype="float64", chunks=rows_per_chunk * nx)
    grid = base.reshape(ny, nx).rechunk((rows_per_chunk, nx))
    data = grid.map_blocks(_slow_double, delay, dtype="float64")
    return xr.Dataset(
        {"v": (("lat", "lon"), data, {"units": "K"})},
        coords={
            "lat": ("lat", np.linspace(-80, 80, ny), {"units": "degrees_north"}),
            "lon": ("lon", np.linspace(-170, 170, nx), {"units": "degrees_east"}),
        },
        attrs={"Conventions": "CF-1.8", "crs": "EPSG:4326"},
    )


def total(n: int, chunk: int) -> float:
    """The sum of ``arange(n)``, computed on the cluster (a plain number)."""
    client = dasf_geo.dask.client()
    return float(
        client.compute(da.arange(n, chunks=chunk, dtype="float64").sum()).result()
    )


def where() -> int:
    """The process id of the backend (to see that it kept serving)."""
    return os.getpid()


if __name__ == "__main__":
    main(messaging_config=dict(topic="dask-service"))
