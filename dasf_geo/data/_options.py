"""Options of the data layer, set per module and per function."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DEFAULTS", "DataOptions"]

DEFAULTS: dict[str, Any] = {
    "cf": "warn",
    "crs": "optional",
    "demap": "off",
    "format": "auto",
    "compression": None,
}


class DataOptions(BaseModel):
    """Per-module / per-function options of the data layer.

    ``None`` means "inherit": :meth:`merge` layers function options over
    module options and :meth:`resolved` fills the defaults (``cf="warn"``,
    ``crs="optional"``, ``demap="off"``, ``format="auto"``, no compression).

    Attributes:
        cf: CF-convention checks of Datasets/DataArrays, in and out:
            ``strict`` (violations are validation errors), ``warn`` or ``off``.
        crs: the global ``crs`` attribute: ``required``, ``optional`` (checked
            if present, problems warned) or ``off``.
        demap: replies for the DASF web map: ``check`` (reject a reply Demap
            cannot draw), ``coerce`` (fix what can be fixed safely, see
            :func:`dasf_geo.data.coerce_demap`) or ``off``.
        format: encoding of Dataset/DataArray replies: ``auto`` (NetCDF3
            unless the data need NetCDF4; see :mod:`dasf_geo.data`),
            ``netcdf3``, ``netcdf4`` or ``zarr``.
        compression: zlib level 1-9 for NetCDF4/zarr replies, or ``None``.

    Example:
        >>> opts = DataOptions(cf="strict").merge(DataOptions(crs="required"))
        >>> opts.resolved().demap
        'off'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    cf: Literal["strict", "warn", "off"] | None = None
    crs: Literal["required", "optional", "off"] | None = None
    demap: Literal["check", "coerce", "off"] | None = None
    format: Literal["auto", "netcdf3", "netcdf4", "zarr"] | None = None
    compression: int | None = Field(default=None, ge=1, le=9)

    @field_validator("compression", mode="before")
    @classmethod
    def _no_bool_compression(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(
                "compression must be a zlib level 1-9 (or None), not a bool; "
                "use e.g. compression=4"
            )
        return value

    def merge(self, override: DataOptions | None) -> DataOptions:
        """Return these options with every field set (not ``None``) in
        ``override`` taking precedence."""
        if override is None:
            return self
        update = {
            k: v
            for k, v in override.model_dump().items()
            if v is not None and k in override.model_fields_set
        }
        return self.model_copy(update=update) if update else self

    def with_call_compression(self, level: int | None) -> DataOptions:
        """These options with the zlib ``level`` a caller asked for one call.

        Unchanged when ``level`` is None, or when the options force NetCDF3
        (``format="netcdf3"``, or ``demap`` checks: the web map reads only
        NetCDF3), which cannot be compressed: then the value is sent
        uncompressed, as its function says.
        """
        if (
            level is None
            or self.format == "netcdf3"
            or self.demap
            in (
                "check",
                "coerce",
            )
        ):
            return self
        return self.model_copy(update={"compression": level})

    def resolved(self) -> DataOptions:
        """Return a copy where every ``None`` is replaced by its default."""
        update = {
            k: DEFAULTS[k]
            for k, v in self.model_dump().items()
            if v is None and DEFAULTS[k] is not None
        }
        return self.model_copy(update=update) if update else self
