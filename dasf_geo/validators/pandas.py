"""Validator for pandas DataFrames."""

from __future__ import annotations

from typing import Any

import pandas as pd

from dasf_geo.data._frames import to_dataframe
from dasf_geo.validators._common import _MISSING, pick_value

__all__ = ["validate_dataframe"]


def validate_dataframe(cls: Any, v: Any = _MISSING) -> pd.DataFrame:
    """Coerce a value into a DataFrame (``(cls, v)`` or ``(v)``).

    Accepted: a DataFrame; the typed ``dasf-frame/1`` object from
    :func:`dasf_geo.serializers.pandas.encode_dataframe`; a pandas
    ``orient="split"`` dict; a list of records; a dict of columns.

    Raises:
        DataError: none of these, or a malformed typed object.
    """
    return to_dataframe(pick_value(cls, v))
