"""daeploy's data types for pydantic v2: arrays and DataFrames in and out.

They are interchangeable with plain ``np.ndarray`` and ``pd.DataFrame``
annotations in an entrypoint, and accept the JSON shapes daeploy accepts:

- ``ArrayInput``: nested lists (``[[1, 2], [3, 4]]``), an ndarray, or
  dasf_geo's ``{"dtype", "shape", "data"}`` form;
- ``DataFrameInput``: a dict of columns (``{"a": [1, 2]}`` or
  ``{"a": {"0": 1, "1": 2}}``), a list of records, a pandas ``split`` dict
  (``index``/``columns``/``data``), a DataFrame, or dasf_geo's frame form;
- ``ArrayOutput`` is sent as nested lists, ``DataFrameOutput`` as
  ``DataFrame.to_dict()`` (a dict of columns, each ``{index: value}``), so
  that plain HTTP and JSON callers read them as daeploy's callers did.

Each class also works in any pydantic v2 model (``__get_pydantic_core_schema__``),
which daeploy's (pydantic v1 only) do not.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from dasf_geo.data import (
    encode_dataframe,
    encode_ndarray,
    register,
    to_dataframe,
    to_ndarray,
)
from dasf_geo.exceptions import DataError

__all__ = ["ArrayInput", "ArrayOutput", "DataFrameInput", "DataFrameOutput"]

_ARRAY_SCHEMA: dict[str, Any] = {
    "description": "an array as nested lists",
    "type": "array",
    "items": {},
}
_FRAME_SCHEMA: dict[str, Any] = {
    "description": "a table as a dict of columns (DataFrame.to_dict()), a list of "
    "records or a pandas 'split' dict",
    "anyOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}],
}


def _frame(value: Any) -> pd.DataFrame:
    try:
        return to_dataframe(value)
    except DataError as exc:
        raise ValueError(str(exc)) from None


def _array(value: Any) -> np.ndarray:
    try:
        return to_ndarray(value)
    except DataError as exc:
        raise ValueError(str(exc)) from None


def _frame_to_dict(frame: pd.DataFrame) -> dict[str, Any]:
    """``frame.to_dict()`` with JSON keys and values (what daeploy sends)."""
    import json

    return json.loads(frame.to_json(orient="columns", date_format="iso"))  # type: ignore[no-any-return]


def _to_lists(value: Any) -> list[Any]:
    return np.asarray(value).tolist()  # type: ignore[no-any-return]


class _DaeployType:
    """The pydantic hooks the four daeploy types share.

    A subclass names how a value is read (``_read``), how it is written
    (``_write``) and its JSON schema (``_schema``).
    """

    _read: ClassVar[staticmethod[[Any], Any]]
    _write: ClassVar[staticmethod[[Any], Any]]
    _schema: ClassVar[dict[str, Any]]

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._read,
            serialization=core_schema.plain_serializer_function_ser_schema(cls._write),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return dict(cls._schema)


class ArrayInput(_DaeployType, np.ndarray):
    """Pydantic compatible data type for numpy ndarray input."""

    _read = staticmethod(_array)
    _write = staticmethod(_to_lists)
    _schema = _ARRAY_SCHEMA

    @classmethod
    def validate(cls, value: list[Any]) -> np.ndarray:
        """Nested lists (or an ndarray) as an ndarray.

        Raises:
            ValueError: ragged lists or lists holding objects.
        """
        return _array(value)


class ArrayOutput(_DaeployType, np.ndarray):
    """Pydantic compatible data type for numpy ndarray output."""

    _read = staticmethod(_array)
    _write = staticmethod(_to_lists)
    _schema = _ARRAY_SCHEMA

    @classmethod
    def validate(cls, value: np.ndarray) -> list[Any]:
        """The array as nested lists."""
        return _to_lists(value)


class DataFrameInput(_DaeployType, pd.DataFrame):
    """Pydantic compatible data type for pandas DataFrame input."""

    _read = staticmethod(_frame)
    _write = staticmethod(_frame_to_dict)
    _schema = _FRAME_SCHEMA

    @classmethod
    def validate(cls, value: dict[str, Any]) -> pd.DataFrame:
        """A dict of columns, records or a split dict as a DataFrame.

        Raises:
            ValueError: the value cannot be made a DataFrame.
        """
        return _frame(value)


class DataFrameOutput(_DaeployType, pd.DataFrame):
    """Pydantic compatible data type for pandas DataFrame output."""

    _read = staticmethod(_frame)
    _write = staticmethod(_frame_to_dict)
    _schema = _FRAME_SCHEMA

    @classmethod
    def validate(cls, value: pd.DataFrame) -> dict[str, Any]:
        """The DataFrame as ``to_dict()`` (a dict of columns)."""
        return _frame_to_dict(value)


# In dasf_geo functions the data registry handles these types (it would take
# them for np.ndarray / pd.DataFrame by their base class): inputs accept
# daeploy's shapes and dasf_geo's, outputs are sent in daeploy's shapes.
register(
    ArrayInput,
    validate=lambda value: _array(value),
    serialize=lambda value: encode_ndarray(np.asarray(value)),
    json_schema={
        "description": "an array as nested lists or as {dtype, shape, data}",
        "anyOf": [{"type": "array"}, {"type": "object"}],
    },
    name="dasf_geo.service.ArrayInput",
    replace=True,
)
register(
    ArrayOutput,
    validate=lambda value: _array(value),
    serialize=lambda value: np.asarray(value).tolist(),
    json_schema=_ARRAY_SCHEMA,
    name="dasf_geo.service.ArrayOutput",
    decode=lambda value: np.asarray(value),
    replace=True,
)
register(
    DataFrameInput,
    validate=lambda value: _frame(value),
    serialize=lambda value: encode_dataframe(value),
    json_schema=_FRAME_SCHEMA,
    name="dasf_geo.service.DataFrameInput",
    replace=True,
)
register(
    DataFrameOutput,
    validate=lambda value: _frame(value),
    serialize=_frame_to_dict,
    json_schema=_FRAME_SCHEMA,
    name="dasf_geo.service.DataFrameOutput",
    decode=lambda value: pd.DataFrame(value),
    replace=True,
)
