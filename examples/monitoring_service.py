"""A geo monitoring service: a regional mean, a threshold and the latest field.

Every ``MONITORING_INTERVAL`` seconds (default 10) the service reads the
next month of ``sample_data/gridded_temperature.nc`` (as if a new file had
arrived), computes the mean near-surface temperature over Europe, stores it
in the monitoring database and sends a notification when the mean crosses
the ``threshold`` parameter (in either direction). Callers get the latest
field as a Demap-ready Dataset and the latest mean, and can change the
threshold while the service runs::

    python examples/monitoring_service.py
    dasf-geo call monitoring_service latest_field --broker ws://127.0.0.1:8080 -o t.nc

From Python::

    svc = dasf_geo.connect("monitoring_service", "ws://127.0.0.1:8080")
    svc.parameters["threshold"] = 275.0
    svc.latest_field()
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import xarray as xr

from dasf_geo import configure, service
from dasf_geo.service.communication import Severity, notify

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"
INTERVAL = float(os.environ.get("MONITORING_INTERVAL", "10"))
#: Europe, as (south, north) and (west, east) in degrees
REGION = {"lat": slice(35.0, 70.0), "lon": slice(-10.0, 40.0)}

service.add_parameter("threshold", 280.0, monitor=True)

_lock = threading.Lock()
_state: dict = {"step": 0, "above": None, "field": None, "mean": None}


def regional_mean_of(field: xr.Dataset) -> float:
    """The area-weighted mean of ``tas`` over :data:`REGION`, in kelvin."""
    import numpy as np

    region = field["tas"].sel(**REGION)
    weights = np.cos(np.deg2rad(region["lat"]))
    return float(region.weighted(weights).mean())


@service.call_every(seconds=INTERVAL)
def update() -> None:
    """Read the next month, store its regional mean, check the threshold."""
    with xr.open_dataset(SAMPLE_DATA / "gridded_temperature.nc") as ds:
        with _lock:
            step = _state["step"] % ds.sizes["time"]
            _state["step"] += 1
        field = ds.isel(time=[step]).load()
    mean = regional_mean_of(field)
    month = str(field["time"].values[0])[:10]
    service.store(regional_mean=mean, month=month)
    threshold = service.get_parameter("threshold")
    above = mean > threshold
    with _lock:
        crossed = _state["above"] is not None and above != _state["above"]
        _state.update(above=above, field=field, mean=mean)
    if crossed:
        direction = "above" if above else "below"
        notify(
            msg=f"The regional mean {mean:.2f} K of {month} is {direction} the "
            f"threshold of {threshold} K",
            severity=Severity.WARNING if above else Severity.INFO,
        )


@service.entrypoint(method="GET")
@configure(data_options={"demap": "check", "crs": "required"})
def latest_field() -> xr.Dataset:
    """The most recent month of near-surface air temperature (Demap-ready)."""
    with _lock:
        field = _state["field"]
    if field is None:
        raise RuntimeError("no field has been read yet; try again in a moment")
    return field


@service.entrypoint(method="GET")
def latest_mean() -> float:
    """The most recent regional mean temperature over Europe, in kelvin."""
    with _lock:
        mean = _state["mean"]
    if mean is None:
        raise RuntimeError("no field has been read yet; try again in a moment")
    return mean


if __name__ == "__main__":
    service.run()
