"""A backend whose Dataset argument must follow CF and carry a valid ``crs``."""

from __future__ import annotations

import xarray as xr

from dasf_geo import configure, main

__all__ = ["count_cells"]


@configure(data_options={"cf": "strict", "crs": "required"})
def count_cells(ds: xr.Dataset) -> int:
    """The number of grid cells of ``ds``."""
    return int(ds.sizes.get("lat", 1) * ds.sizes.get("lon", 1))


if __name__ == "__main__":
    main(messaging_config=dict(topic="geo-checks"))
