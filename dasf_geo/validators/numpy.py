"""Validator for numpy arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

from dasf_geo.data._arrays import to_ndarray
from dasf_geo.validators._common import _MISSING, pick_value

__all__ = ["validate_ndarray"]


def validate_ndarray(cls: Any, v: Any = _MISSING) -> np.ndarray:
    """Coerce a value into an ndarray (``(cls, v)`` or ``(v)``).

    Accepted: an ndarray; ``{"dtype", "shape", "data"}`` from
    :func:`dasf_geo.serializers.numpy.encode_ndarray`; rectangular nested
    lists of numbers, bools or strings (like daeploy's ``ArrayInput``).

    Raises:
        DataError: none of these, or malformed.
    """
    return to_ndarray(pick_value(cls, v))
