"""A backend with DataTree and Series arguments and results."""

from __future__ import annotations

import pandas as pd
import xarray as xr

from dasf_geo import main

__all__ = ["add_group", "cumulative"]


def add_group(tree: xr.DataTree, name: str) -> xr.DataTree:
    """Return ``tree`` with an empty group ``name`` added under the root."""
    out = tree.copy()
    out[name] = xr.DataTree()
    return out


def cumulative(values: pd.Series) -> pd.Series:
    """The running sum of ``values``."""
    return values.cumsum()


if __name__ == "__main__":
    main(messaging_config=dict(topic="geo-trees"))
