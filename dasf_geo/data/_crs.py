"""The ``crs`` checks: the global ``crs`` attribute (DASF/Demap convention).

Rules: ``crs-missing`` (``required`` mode only), ``crs-parse``,
``crs-geographic-range``, ``crs-projected-xy``, ``crs-grid-mapping``.
``required`` raises :class:`~dasf_geo.exceptions.CRSError` carrying
``.findings``; ``optional`` reports them (see :mod:`dasf_geo.data._findings`).
"""

from __future__ import annotations

from typing import Any

import xarray as xr

from dasf_geo.data._cfnames import data_range, referenced_names, spatial_coords
from dasf_geo.data._findings import (
    Finding,
    already_checked,
    as_dataset,
    check_mode,
    report,
)

__all__ = ["check_crs", "parse_crs"]


def parse_crs(value: Any) -> Any:
    """``pyproj.CRS.from_user_input(value)``.

    Raises:
        pyproj.exceptions.CRSError: pyproj does not understand ``value``.
    """
    import pyproj

    return pyproj.CRS.from_user_input(value)


def crs_findings(ds: xr.Dataset, required: bool) -> list[Finding]:
    """All ``crs`` findings of ``ds``, without reporting them."""
    import pyproj

    out: list[Finding] = []
    value = ds.attrs.get("crs")
    if value is None:
        if required:
            out.append(
                Finding(
                    None,
                    "crs",
                    "crs-missing",
                    "missing; set ds.attrs['crs'] = 'EPSG:4326' (or the EPSG "
                    "code of your data)",
                )
            )
        return out
    if not isinstance(value, str):
        out.append(
            Finding(
                None,
                "crs",
                "crs-parse",
                f"must be a string like 'EPSG:4326', got {value!r}",
            )
        )
        return out
    try:
        crs = parse_crs(value)
    except pyproj.exceptions.CRSError as exc:
        out.append(
            Finding(
                None,
                "crs",
                "crs-parse",
                f"{value!r} is not a CRS pyproj understands ({exc}); use e.g. "
                "'EPSG:4326'",
            )
        )
        return out
    coords = spatial_coords(ds)
    if crs.is_geographic:
        for key, (lo, hi) in (("latitude", (-90, 90)), ("longitude", (-180, 360))):
            for name in coords[key]:
                span = data_range(ds[name].variable)
                if span is None:
                    continue
                vmin, vmax = span
                if vmin < lo or vmax > hi:
                    out.append(
                        Finding(
                            name,
                            None,
                            "crs-geographic-range",
                            f"crs {value!r} is geographic but {key} values span "
                            f"[{vmin}, {vmax}], outside [{lo}, {hi}]; are these "
                            "projected coordinates? fix crs or the coordinates",
                        )
                    )
    elif crs.is_projected and not (coords["x"] and coords["y"]):
        out.append(
            Finding(
                None,
                "crs",
                "crs-projected-xy",
                f"crs {value!r} is projected but no x/y coordinates were found; "
                "add coordinates with standard_name projection_x_coordinate / "
                "projection_y_coordinate (or named x and y)",
            )
        )
    for vname, variable in ds.variables.items():
        gm = variable.attrs.get("grid_mapping", variable.encoding.get("grid_mapping"))
        if not isinstance(gm, str):
            continue
        for ref in referenced_names(gm, grid_mapping=True):
            if ref not in ds.variables:
                continue
            try:
                other = pyproj.CRS.from_cf(dict(ds[ref].attrs))
            except (pyproj.exceptions.CRSError, KeyError, ValueError, TypeError):
                out.append(
                    Finding(
                        ref,
                        "grid_mapping_name",
                        "crs-grid-mapping",
                        f"grid mapping variable {ref!r} (used by {str(vname)!r}) "
                        "cannot be read as a CRS",
                    )
                )
                continue
            if not other.equals(crs, ignore_axis_order=True):
                out.append(
                    Finding(
                        ref,
                        None,
                        "crs-grid-mapping",
                        f"grid mapping {ref!r} describes {other.name!r} but the "
                        f"global crs is {value!r} ({crs.name!r}); make them agree",
                    )
                )
    return out


def check_crs(
    obj: xr.Dataset | xr.DataArray, mode: str = "optional", *, label: str | None = None
) -> list[Finding]:
    """Check the global ``crs`` attribute (DASF/Demap convention) with pyproj.

    Rules: ``crs-missing`` (required mode only), ``crs-parse``,
    ``crs-geographic-range``, ``crs-projected-xy``, ``crs-grid-mapping``.

    Args:
        obj: the Dataset or DataArray (a DataArray's attrs act as globals).
        mode: ``required`` (missing or bad crs raises), ``optional`` (a
            missing crs is fine, problems are warned) or ``off``.
        label: prefix for messages, e.g. the argument name.

    Returns:
        The findings.

    Raises:
        CRSError: ``required`` and at least one finding.
        ConfigurationError: unknown mode.
    """
    check_mode(mode, ("required", "optional", "off"), "crs")
    if mode == "off":
        return []
    ds = as_dataset(obj)
    if already_checked(obj, "crs", label):
        return []
    findings = crs_findings(ds, mode == "required")
    return report(findings, mode == "required", "crs", label)
