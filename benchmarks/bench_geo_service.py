"""The backend module the streaming benchmark serves: gridded Datasets of any size.

The grid has the shape of the reference benchmark backend's
(``tests/interop/peers/dm_backend.py``); its float32 values are 0, 1, 2, …
(repeating every 2**24, so every value is exact), so that a caller can check
every value without a second copy of the data.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from dasf_geo import main

__all__ = ["dataset_sum", "lazy_dataset", "make_dataset"]

# expected_sum is a helper of the callers, not a service function


def _coords(nx: int, ny: int, nt: int) -> dict:
    return {
        "time": (
            "time",
            np.arange(nt, dtype="float64"),
            {"units": "days since 2000-01-01"},
        ),
        "lat": ("lat", np.linspace(-80, 80, ny), {"units": "degrees_north"}),
        "lon": ("lon", np.linspace(-170, 170, nx), {"units": "degrees_east"}),
    }


ATTRS = {"Conventions": "CF-1.8", "crs": "EPSG:4326"}


#: values repeat every 2**24, the integers float32 holds exactly
PERIOD = 1 << 24


def values(start: int, stop: int) -> np.ndarray:
    """The grid's values ``start`` to ``stop`` (flat), as float32.

    Counted directly in float32, one run per period (every value below
    2**24 is exact there): a single pass over the output, so that building
    the data costs the benchmarked function little next to sending it.
    """
    out = np.empty(stop - start, dtype="float32")
    done = 0
    while start + done < stop:
        first = (start + done) % PERIOD
        n = min(PERIOD - first, stop - start - done)
        out[done : done + n] = np.arange(first, first + n, dtype="float32")
        done += n
    return out


def make_dataset(nx: int, ny: int, nt: int) -> xr.Dataset:
    """A gridded time series in memory (``nx * ny * nt * 4`` bytes)."""
    step = nx * ny
    data = np.empty((nt, ny, nx), dtype="float32")
    for t in range(nt):  # one time step at a time: no second full-size copy
        data[t] = values(t * step, (t + 1) * step).reshape(ny, nx)
    return xr.Dataset(
        {"t2m": (("time", "lat", "lon"), data, {"units": "K"})},
        coords=_coords(nx, ny, nt),
        attrs=ATTRS,
    )


def lazy_dataset(nx: int, ny: int, nt: int, chunk_t: int = 10) -> xr.Dataset:
    """The same grid, dask-backed: computed chunk by chunk while it is sent."""
    import dask.array as da

    data = da.arange(nt * ny * nx, dtype="int64", chunks=chunk_t * ny * nx) % PERIOD
    data = data.astype("float32").reshape(nt, ny, nx).rechunk((chunk_t, ny, nx))
    return xr.Dataset(
        {"t2m": (("time", "lat", "lon"), data, {"units": "K"})},
        coords=_coords(nx, ny, nt),
        attrs=ATTRS,
    )


def dataset_sum(ds: xr.Dataset) -> float:
    """The sum of ``t2m`` (float64), to check a Dataset argument arrived intact.

    Summed one time step at a time by numpy's reduction in place: xarray's
    ``sum(dtype="float64")`` makes a float64 copy of the whole variable
    (twice the payload), which the benchmark would count as the transfer's
    memory, and a large argument (opened lazily from its file) is read one
    step at a time. The values are integers below 2**24, so every order of
    summation gives the same sum.
    """
    var = ds["t2m"]
    return float(
        sum(
            np.add.reduce(np.asarray(var[t].values), axis=None, dtype="float64")
            for t in range(var.shape[0])
        )
    )


def expected_sum(n: int) -> float:
    """The sum of the first ``n`` grid values (see :func:`values`), exactly."""
    periods, rest = divmod(n, PERIOD)
    return float(periods * (PERIOD * (PERIOD - 1) // 2) + rest * (rest - 1) // 2)


if __name__ == "__main__":
    main(messaging_config=dict(topic="bench-geo"))
