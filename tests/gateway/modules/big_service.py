"""A backend with large Datasets, for the gateway's streaming tests."""

from __future__ import annotations

import numpy as np
import xarray as xr

from dasf_geo.protocol.progress import ProgressReport

__all__ = ["make", "slow_steps", "total"]


def make(megabytes: int, seed: int = 0) -> xr.Dataset:
    """A float32 Dataset of about ``megabytes`` MB with reproducible values.

    Args:
        megabytes: the size of the data variable in MB.
        seed: the random seed.
    """
    n = megabytes * 1_000_000 // 4 // 1000
    values = np.random.default_rng(seed).random((n, 1000), dtype=np.float32)
    return xr.Dataset(
        {"v": (("row", "col"), values, {"units": "1", "long_name": "random"})},
        coords={
            "row": np.arange(n, dtype=np.int32),
            "col": np.arange(1000, dtype=np.int32),
        },
        attrs={"Conventions": "CF-1.8"},
    )


def total(ds: xr.Dataset) -> float:
    """The sum of variable ``v`` (as float64).

    Args:
        ds: a Dataset made by :func:`make`.
    """
    return float(ds["v"].astype("float64").sum())


def slow_steps(
    steps: int,
    delay: float = 0.2,
    reporter: ProgressReport = ProgressReport(step_message="working"),
) -> int:
    """Count to ``steps``, one progress report per step, ``delay`` s each.

    Args:
        steps: how many steps.
        delay: seconds per step.
    """
    import time

    reporter.steps = steps
    with reporter:
        for i in range(steps):
            with reporter.create_subreport(f"step {i + 1} of {steps}"):
                time.sleep(delay)
    return steps
