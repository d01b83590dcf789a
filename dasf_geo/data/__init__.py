"""Layer 2, data: the type registry.

For each supported type (``xr.Dataset``, ``xr.DataArray``, ``pd.DataFrame``,
``np.ndarray``, pydantic models, plain JSON types) it knows how to validate an
incoming value, how to serialize an outgoing one and which JSON schema
describes it. CF-convention and ``crs`` checks live here too.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["DataOptions", "resolve_annotation"]


class DataOptions(BaseModel):
    """Per-function options of the data layer (CF, ``crs``, Demap, encoding).

    Interface placeholder: the type registry fills this in.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    cf: Literal["strict", "warn", "off"] = "warn"
    crs: Literal["required", "optional", "off"] = "optional"


def resolve_annotation(annotation: Any, options: DataOptions | None = None) -> Any:
    """Return a pydantic-compatible annotation for ``annotation``.

    Registered types (``xr.Dataset``, ``pd.DataFrame``…) are replaced, also
    inside ``Optional``/``list``/``dict``, by ``Annotated`` types that carry
    their validator, serializer and JSON schema; anything else comes back
    unchanged.
    """
    return annotation
