"""Regenerate the sample data files in this folder (deterministic).

Run ``python sample_data/make_sample_data.py``. It writes:

- ``gridded_temperature.nc``: a monthly near-surface air temperature series
  on a 10-degree global grid (12 x 18 x 36, float32), CF-1.8 compliant, with
  the DASF/Demap global ``crs = "EPSG:4326"``; NetCDF3 classic, Demap-ready.
  The values are a smooth synthetic climatology (latitude gradient +
  seasonal cycle + reproducible noise), not observations.
- ``stations.csv``: 40 weather stations x 3 days of daily mean temperature
  (station_id, name, latitude, longitude, elevation, time, temperature).
- ``noncompliant.nc``: a small grid with deliberate CF and ``crs`` defects,
  each listed in its ``comment`` attribute, used to test the checks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

HERE = Path(__file__).resolve().parent


def gridded_temperature() -> xr.Dataset:
    """The CF-compliant, Demap-ready gridded time series."""
    rng = np.random.default_rng(20240501)
    lat = np.arange(-85.0, 90.0, 10.0)
    lon = np.arange(-175.0, 180.0, 10.0)
    time = pd.date_range("2023-01-15", periods=12, freq="MS") + pd.Timedelta("14D")
    month = np.arange(12)[:, None, None]
    la = lat[None, :, None]
    base = 288.0 - 40.0 * np.sin(np.deg2rad(np.abs(la))) ** 2
    season = -12.0 * np.cos(2 * np.pi * (month + 0.5) / 12) * np.sin(np.deg2rad(la))
    noise = rng.normal(0.0, 1.0, (12, lat.size, lon.size))
    tas = (base + season + noise).astype("float32")
    ds = xr.Dataset(
        {
            "tas": (
                ("time", "lat", "lon"),
                tas,
                {
                    "standard_name": "air_temperature",
                    "long_name": "Near-surface air temperature",
                    "units": "K",
                },
            )
        },
        coords={
            "time": ("time", time, {"standard_name": "time", "axis": "T"}),
            "lat": (
                "lat",
                lat,
                {"standard_name": "latitude", "units": "degrees_north", "axis": "Y"},
            ),
            "lon": (
                "lon",
                lon,
                {"standard_name": "longitude", "units": "degrees_east", "axis": "X"},
            ),
        },
        attrs={
            "Conventions": "CF-1.8",
            "title": "Synthetic monthly near-surface air temperature, 10 degree grid",
            "institution": "dasf_geo sample data",
            "source": "sample_data/make_sample_data.py (synthetic)",
            "crs": "EPSG:4326",
        },
    )
    ds["time"].encoding = {"units": "days since 2023-01-01", "calendar": "standard"}
    return ds


def stations() -> pd.DataFrame:
    """The station table."""
    rng = np.random.default_rng(7)
    n = 40
    ids = [f"ST{i:03d}" for i in range(n)]
    names = [f"Station {chr(65 + i % 26)}{i // 26}" for i in range(n)]
    lat = np.round(rng.uniform(47.0, 55.0, n), 4)
    lon = np.round(rng.uniform(6.0, 15.0, n), 4)
    elev = np.round(rng.uniform(0.0, 1500.0, n), 1)
    rows = []
    for day in pd.date_range("2024-03-01", periods=3, freq="D"):
        temps = np.round(8.0 - 0.0065 * elev + rng.normal(0, 1.5, n), 2)
        for i in range(n):
            rows.append((ids[i], names[i], lat[i], lon[i], elev[i], day, temps[i]))
    return pd.DataFrame(
        rows,
        columns=[
            "station_id",
            "name",
            "latitude",
            "longitude",
            "elevation",
            "time",
            "temperature",
        ],
    )


def noncompliant() -> xr.Dataset:
    """A small grid with planted CF and crs defects."""
    ds = xr.Dataset(
        {
            "temp": (
                ("lat", "lon"),
                np.arange(12, dtype="float32").reshape(3, 4),
                {
                    "units": "Kelvinn",
                    "standard_name": "air_temprature",
                    "coordinates": "height",
                },
            ),
            "precip": (
                ("lat", "lon"),
                np.ones((3, 4), dtype="float32"),
                {"units": "K", "standard_name": "precipitation_flux"},
            ),
        },
        coords={
            "lat": ("lat", [0.0, 45.0, 95.0], {"units": "degrees_north"}),
            "lon": ("lon", [0.0, 90.0, 180.0, 270.0], {"units": "degrees_east"}),
        },
        attrs={
            "crs": "EPSG:999999",
            "comment": (
                "Deliberately broken: no Conventions attribute; temp units "
                "'Kelvinn' unparseable; temp standard_name misspelt; temp "
                "coordinates names missing variable 'height'; precip units "
                "not convertible to its standard_name's; lat value 95 out of "
                "range; crs EPSG:999999 unknown."
            ),
        },
    )
    return ds


def main() -> None:
    """Write all sample files next to this script."""
    gridded_temperature().to_netcdf(
        HERE / "gridded_temperature.nc", format="NETCDF3_CLASSIC", engine="scipy"
    )
    stations().to_csv(HERE / "stations.csv", index=False)
    noncompliant().to_netcdf(
        HERE / "noncompliant.nc", format="NETCDF3_CLASSIC", engine="scipy"
    )


if __name__ == "__main__":
    main()
