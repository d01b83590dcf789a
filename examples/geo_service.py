"""A sample geo service: gridded data, station tables and arrays over DASF.

Serve it on one machine (an embedded broker starts with it)::

    dasf-geo serve examples/geo_service.py

and call it from another terminal::

    dasf-geo call geo_service get_data --broker ws://127.0.0.1:8080 -o data.nc
    dasf-geo call geo_service stations min_elevation=500 --broker ws://127.0.0.1:8080

or from Python with ``dasf_geo.connect("geo_service", "ws://127.0.0.1:8080")``.

No ``@configure`` is needed for the data types: ``xr.Dataset``,
``xr.DataArray``, ``pd.DataFrame`` and ``np.ndarray`` arguments and return
values are validated and encoded from the annotations. ``get_data`` is the
DASF documentation's spatio-temporal example; its reply is checked to be
drawable by the DASF web map (Demap).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from dasf_geo import configure, main

__all__ = ["get_data", "histogram", "monthly_anomaly", "stations", "time_series"]

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"


@configure(data_options={"demap": "check", "crs": "required"})
def get_data() -> xr.Dataset:
    """Monthly near-surface air temperature on a 10 degree grid (Demap-ready)."""
    return xr.load_dataset(SAMPLE_DATA / "gridded_temperature.nc")


def monthly_anomaly(ds: xr.Dataset, variable: str = "tas") -> xr.Dataset:
    """Subtract the time mean of ``variable`` from each month.

    Args:
        ds: a Dataset with a ``time`` dimension.
        variable: the data variable to use.
    """
    if variable not in ds.data_vars:
        raise ValueError(
            f"the Dataset has no variable {variable!r}; it has {list(ds.data_vars)}"
        )
    anomaly = ds[variable] - ds[variable].mean("time")
    anomaly.attrs = {**ds[variable].attrs, "long_name": f"{variable} anomaly"}
    out = anomaly.to_dataset(name=f"{variable}_anomaly")
    out.attrs = dict(ds.attrs)
    return out


def time_series(lat: float, lon: float) -> xr.DataArray:
    """The temperature time series at the grid cell nearest to a point.

    Args:
        lat: latitude in degrees north.
        lon: longitude in degrees east.
    """
    ds = xr.load_dataset(SAMPLE_DATA / "gridded_temperature.nc")
    return ds["tas"].sel(lat=lat, lon=lon, method="nearest")


def stations(min_elevation: float = 0.0) -> pd.DataFrame:
    """The weather stations at or above ``min_elevation`` metres.

    Args:
        min_elevation: the lowest station elevation to include, in metres.
    """
    table = pd.read_csv(SAMPLE_DATA / "stations.csv", parse_dates=["time"])
    return table[table["elevation"] >= min_elevation].reset_index(drop=True)


def histogram(values: np.ndarray, bins: int = 10) -> np.ndarray:
    """Counts of ``values`` in ``bins`` equal-width bins.

    Args:
        values: any numeric array (NaN values are ignored).
        bins: how many bins.
    """
    finite = values[np.isfinite(values)]
    counts, _ = np.histogram(finite, bins=bins)
    return counts


if __name__ == "__main__":
    main(messaging_config=dict(topic="geo_service"))
