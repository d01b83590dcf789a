"""The backend of bench_scale.py: an I/O-bound function and a dask reduction."""

from __future__ import annotations

import time

import numpy as np
import xarray as xr

from dasf_geo import main

__all__ = ["io_bound", "mean_over_time"]


def io_bound(value: int) -> int:
    """Wait 20 ms (as for a database or a remote file), then return ``value``."""
    time.sleep(0.02)
    return value


def mean_over_time(nt: int, ny: int = 1000, nx: int = 1000) -> xr.Dataset:
    """The time mean of ``nt`` x ``ny`` x ``nx`` float32 values, on the cluster.

    The data (``4 * nt * ny * nx`` bytes, 1 GB for ``nt=250``) is made on
    the dask workers in chunks of 25 time steps and never leaves them; the
    backend gets the ``ny`` x ``nx`` mean chunk by chunk.
    """
    import dask.array as da

    import dasf_geo.dask

    dasf_geo.dask.client()
    data = da.random.default_rng(0).random(
        (nt, ny, nx), chunks=(25, ny // 2, nx), dtype="float32"
    )
    mean = data.mean(axis=0)
    return xr.Dataset(
        {"mean": (("lat", "lon"), mean, {"units": "1"})},
        coords={
            "lat": ("lat", np.linspace(-89.5, 89.5, ny), {"units": "degrees_north"}),
            "lon": ("lon", np.linspace(-179.5, 179.5, nx), {"units": "degrees_east"}),
        },
        attrs={"Conventions": "CF-1.8", "crs": "EPSG:4326"},
    )


if __name__ == "__main__":
    main(messaging_config=dict(topic="bench-scale"))
