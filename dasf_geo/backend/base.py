"""What the function, class and module models share.

Each ``create_model`` copies its config (:func:`config_values`), builds the
pydantic model (:func:`build_model`) and checks that its JSON schema can be
made (:func:`check_schema`), turning pydantic's errors about a type it
cannot handle into a :class:`~dasf_geo.exceptions.ConfigurationError` that
says what to do (:func:`schema_error`). :class:`SchemaExtra` gives the three
models their ``model_json_schema``, with the config's ``json_schema_extra``
merged in.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Collection, Iterable
from typing import Any

from pydantic import BaseModel, create_model
from pydantic.errors import PydanticSchemaGenerationError, PydanticUserError
from pydantic_core import SchemaError

from dasf_geo.config.api import merge_config
from dasf_geo.exceptions import ConfigurationError

__all__ = [
    "SchemaExtra",
    "build_model",
    "check_schema",
    "config_values",
    "schema_error",
]

#: what pydantic raises for a type it cannot validate or describe
_SCHEMA_ERRORS = (PydanticSchemaGenerationError, PydanticUserError, SchemaError)


def schema_error(what: str, exc: Exception) -> ConfigurationError:
    """A ConfigurationError for a type without JSON schema / pydantic support."""
    return ConfigurationError(
        f"cannot build the request model of {what}: {exc}. Use types the data "
        "layer supports (JSON types, pydantic models, numpy, pandas, xarray), "
        "or give validators and serializers with @configure"
    )


def config_values(
    config: BaseModel, fields: Iterable[str], shared: Collection[str] = ("registry",)
) -> dict[str, Any]:
    """The ``fields`` of ``config``: containers copied, the ``shared`` ones not.

    A created model gets its own copy of the lists and dicts of the config
    it was made from; the registry (and, for a module, its messaging and
    logging configs) stay the same objects.
    """
    return {
        name: (
            getattr(config, name)
            if name in shared
            else copy.copy(getattr(config, name))
        )
        for name in fields
    }


def build_model(
    name: str,
    base: type[BaseModel],
    what: str,
    module: str,
    doc: str,
    /,
    **fields: Any,
) -> type[BaseModel]:
    """``pydantic.create_model(name, __base__=base, ...)`` for ``what``.

    ``fields`` are the model's fields (any names, ``name`` too).

    Raises:
        ConfigurationError: pydantic cannot build a model of the fields
            (:func:`schema_error`).
    """
    try:
        with warnings.catch_warnings():
            # a parameter named like a deprecated BaseModel method (json,
            # copy, schema...) is a fine field name
            warnings.filterwarnings(
                "ignore",
                message="Field name .* shadows an attribute",
                category=UserWarning,
            )
            return create_model(  # type: ignore[no-any-return]
                name, __base__=base, __module__=module, __doc__=doc, **fields
            )
    except (*_SCHEMA_ERRORS, NameError) as exc:
        raise schema_error(what, exc) from exc


def check_schema(what: str, *models: type[BaseModel]) -> None:
    """Make the JSON schema of each model once.

    Raises:
        ConfigurationError: a type has no JSON schema (:func:`schema_error`).
    """
    try:
        for model in models:
            model.model_json_schema()
    except _SCHEMA_ERRORS as exc:
        raise schema_error(what, exc) from exc


class SchemaExtra:
    """``model_json_schema`` with the config's ``json_schema_extra`` merged in.

    Put first among the bases of a model class with a ``backend_config``.
    """

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The JSON schema, with the config's ``json_schema_extra`` merged in."""
        ret: dict[str, Any] = super().model_json_schema(  # type: ignore[misc]
            *args, **kwargs
        )
        config = getattr(cls, "backend_config", None)
        if config is not None and config.json_schema_extra:
            ret = merge_config(ret, copy.deepcopy(config.json_schema_extra))
        return ret
