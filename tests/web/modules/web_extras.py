"""A service for the dashboard tests: progress, awkward Datasets, unions, failures."""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, Field

from dasf_geo import main
from dasf_geo.protocol.progress import ProgressReport

__all__ = [
    "all_nan",
    "big_grid",
    "count",
    "fails",
    "no_coords",
    "one_step",
    "place",
    "projected",
    "summarize",
]


def count(
    n: int = 5,
    delay: float = 0.4,
    reporter: ProgressReport = ProgressReport(step_message="counting"),
) -> int:
    """Count to ``n`` slowly, reporting each step.

    Args:
        n: how many steps.
        delay: seconds per step.
    """
    reporter.steps = n
    with reporter:
        for i in range(n):
            time.sleep(delay)
            reporter.create_subreport(f"step {i + 1} of {n}", submit=True).complete()
    return n


def _latlon(values: np.ndarray, **attrs: str) -> xr.Dataset:
    ny, nx = values.shape[-2:]
    lat = np.linspace(-90 + 90 / ny, 90 - 90 / ny, ny)
    lon = np.linspace(-180 + 180 / nx, 180 - 180 / nx, nx)
    dims = ("time", "lat", "lon") if values.ndim == 3 else ("lat", "lon")
    coords: dict[str, object] = {"lat": ("lat", lat, {"units": "degrees_north"})}
    coords["lon"] = ("lon", lon, {"units": "degrees_east"})
    if values.ndim == 3:
        coords["time"] = pd.date_range("2024-01-01", periods=values.shape[0], freq="D")
    ds = xr.Dataset({"v": (dims, values, {"units": "1"})}, coords=coords)
    ds.attrs.update({"crs": "EPSG:4326", **attrs})
    return ds


def all_nan() -> xr.Dataset:
    """A 4 x 8 grid whose values are all missing."""
    return _latlon(np.full((4, 8), np.nan, dtype="float32"))


def one_step() -> xr.Dataset:
    """A grid with a time dimension of length one."""
    return _latlon(np.arange(32, dtype="float32").reshape(1, 4, 8))


def big_grid() -> xr.Dataset:
    """A 2,000 x 2,000 grid (16 MB of float32)."""
    y = np.linspace(-1, 1, 2000, dtype="float32")
    return _latlon(np.add.outer(y, y).astype("float32"))


def no_coords() -> xr.Dataset:
    """A Dataset with no spatial coordinates."""
    return xr.Dataset({"counts": (("bin",), np.arange(5.0))})


def projected() -> xr.Dataset:
    """A 3 x 4 grid on Web Mercator x/y (EPSG:3857), west to east, north to south."""
    x = np.array([-1.5e6, -0.5e6, 0.5e6, 1.5e6])
    y = np.array([1.0e6, 0.0, -1.0e6])
    values = np.arange(12, dtype="float32").reshape(3, 4)
    ds = xr.Dataset(
        {"v": (("y", "x"), values)},
        coords={
            "x": ("x", x, {"standard_name": "projection_x_coordinate", "units": "m"}),
            "y": ("y", y, {"standard_name": "projection_y_coordinate", "units": "m"}),
        },
    )
    ds.attrs["crs"] = "EPSG:3857"
    return ds


def fails(reason: str = "it always fails") -> int:
    """Raise an error with ``reason``.

    Args:
        reason: the error's text.
    """
    raise ValueError(reason)


class Box(BaseModel):
    """A latitude/longitude box."""

    south: float = Field(ge=-90, le=90)
    north: float = Field(ge=-90, le=90)
    label: str | None = None


def place(
    box: Box,
    mode: Literal["centre", "corner"] = "centre",
    tag: int | str = 0,
    weights: list[float] | None = None,
) -> dict[str, object]:
    """Describe a box: a nested model, an enum and unions.

    Args:
        box: the box.
        mode: what to report.
        tag: a number or a name.
        weights: optional weights.
    """
    where = (box.south + box.north) / 2 if mode == "centre" else box.south
    return {"where": where, "tag": tag, "weights": weights or []}


def summarize(table: pd.DataFrame, column: str = "elevation") -> pd.DataFrame:
    """The rows, mean and maximum of one column of an uploaded table.

    Args:
        table: any table with a numeric ``column``.
        column: the column to summarize.
    """
    values = table[column]
    return pd.DataFrame(
        {"rows": [len(table)], "mean": [float(values.mean())], "max": [values.max()]}
    )


if __name__ == "__main__":
    main(messaging_config=dict(topic="web_extras"))
