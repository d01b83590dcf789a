"""CF-convention, ``crs`` and Demap checks for Datasets and DataArrays.

Each check returns a list of :class:`Finding`; each finding names the
variable (``None`` for the global attributes), the attribute and the rule, so
that a message like ``variable 'tas' attribute 'units': 'Kelvinn' is not a
valid UDUNITS unit [rule units-parseable]`` tells the data owner what to fix.

Modes: ``strict``/``required`` raise (:class:`~dasf_geo.exceptions.CFConventionError`,
:class:`~dasf_geo.exceptions.CRSError`) carrying ``.findings``; ``warn``/
``optional`` emit a :class:`CFConventionWarning`/:class:`CRSWarning` and log at
WARNING on the ``dasf_geo.data`` logger; ``off`` checks nothing.

Libraries: cf-units (UDUNITS-2) parses units, cftime validates time units and
calendars, cf-xarray identifies axes and coordinates, pyproj parses CRSs.
"""

from __future__ import annotations

import gzip
import logging
import re
import warnings
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import xarray as xr

from dasf_geo.exceptions import CFConventionError, CRSError, DataError

__all__ = [
    "CFConventionWarning",
    "CRSWarning",
    "DataWarning",
    "Finding",
    "check_cf",
    "check_crs",
    "check_demap",
    "coerce_demap",
    "standard_name_table",
]

logger = logging.getLogger("dasf_geo.data")

CF_CALENDARS = frozenset(
    {
        "standard",
        "gregorian",
        "proleptic_gregorian",
        "noleap",
        "365_day",
        "all_leap",
        "366_day",
        "360_day",
        "julian",
        "none",
    }
)
STANDARD_NAME_MODIFIERS = frozenset(
    {"detection_minimum", "number_of_observations", "standard_error", "status_flag"}
)
#: stand-in names for unnamed DataArrays (ours and xarray's); not user names
_UNNAMED = "__dasf_unnamed__"
_PLACEHOLDERS = frozenset({_UNNAMED, "__xarray_dataarray_variable__"})
_VALID_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
LAT_UNITS = frozenset(
    {"degrees_north", "degree_north", "degree_N", "degrees_N", "degreeN", "degreesN"}
)
LON_UNITS = frozenset(
    {"degrees_east", "degree_east", "degree_E", "degrees_E", "degreeE", "degreesE"}
)
_LAT_NAMES = frozenset({"lat", "latitude", "nav_lat"})
_LON_NAMES = frozenset({"lon", "long", "longitude", "nav_lon"})
_X_NAMES = frozenset({"x", "easting", "projection_x_coordinate"})
_Y_NAMES = frozenset({"y", "northing", "projection_y_coordinate"})
_TIME_NAMES = frozenset({"time", "t", "date", "datetime"})
#: dtypes the NetCDF3 classic format (and so Demap) stores natively
NC3_DTYPES = frozenset({"i1", "i2", "i4", "f4", "f8", "S1", "b1"})


class DataWarning(UserWarning):
    """Base class of the data layer's warnings (``warn``/``optional`` modes)."""


class CFConventionWarning(DataWarning):
    """CF-convention findings in ``warn`` mode; ``.findings`` lists them."""

    def __init__(self, message: str, findings: list[Finding] | None = None) -> None:
        super().__init__(message)
        self.findings = list(findings or [])


class CRSWarning(DataWarning):
    """``crs`` findings in ``optional`` mode; ``.findings`` lists them."""

    def __init__(self, message: str, findings: list[Finding] | None = None) -> None:
        super().__init__(message)
        self.findings = list(findings or [])


@dataclass(frozen=True)
class Finding:
    """One violation: where (variable, attribute), which rule, what to do.

    Attributes:
        variable: the variable name, or ``None`` for the dataset itself.
        attribute: the attribute concerned, or ``None``.
        rule: a short stable rule id, e.g. ``units-parseable``.
        message: what is wrong and how to fix it.
    """

    variable: str | None
    attribute: str | None
    rule: str
    message: str

    def __str__(self) -> str:
        if self.variable is None:
            where = "dataset" if self.attribute is None else "global attribute"
            where += f" {self.attribute!r}" if self.attribute else ""
        else:
            where = f"variable {self.variable!r}"
            if self.attribute:
                where += f" attribute {self.attribute!r}"
        return f"{where}: {self.message} [rule {self.rule}]"

    def to_dict(self) -> dict[str, Any]:
        """The finding as a JSON-able dict."""
        return {
            "variable": self.variable,
            "attribute": self.attribute,
            "rule": self.rule,
            "message": self.message,
        }


def _summary(kind: str, findings: list[Finding], label: str | None) -> str:
    head = f"{label}: " if label else ""
    lines = "; ".join(str(f) for f in findings[:20])
    more = f" (and {len(findings) - 20} more)" if len(findings) > 20 else ""
    return f"{head}{len(findings)} {kind} finding(s): {lines}{more}"


def _as_dataset(obj: xr.Dataset | xr.DataArray) -> xr.Dataset:
    if isinstance(obj, xr.Dataset):
        return obj
    if isinstance(obj, xr.DataArray):
        name = obj.name if obj.name is not None else _UNNAMED
        if name in obj.coords:
            name = _UNNAMED
        ds = obj.to_dataset(name=name)
        ds.attrs = dict(obj.attrs)
        return ds
    raise DataError(
        f"expected an xarray Dataset or DataArray, got {type(obj).__name__}"
    )


@lru_cache(maxsize=1)
def standard_name_table() -> dict[str, str]:
    """The CF standard-name table shipped with dasf_geo: name → canonical units.

    Aliases map to the canonical units of the name they stand for. The
    table's version and source are in the header of
    ``dasf_geo/data/resources/cf-standard-name-table.txt.gz``.
    """
    raw = (
        resources.files("dasf_geo.data")
        .joinpath("resources/cf-standard-name-table.txt.gz")
        .read_bytes()
    )
    table: dict[str, str] = {}
    aliases: dict[str, str] = {}
    for line in gzip.decompress(raw).decode("utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, units = line.partition("\t")
        if units.startswith("="):
            aliases[name] = units[1:]
        else:
            table[name] = units
    for alias, target in aliases.items():
        table.setdefault(alias, table.get(target, ""))
    return table


@lru_cache(maxsize=1024)
def _parse_units(units: str) -> Any:
    import cf_units

    return cf_units.Unit(units)


def _units_error(units: str) -> str | None:
    try:
        _parse_units(units)
    except (ValueError, TypeError) as exc:
        return f"{units!r} is not a valid UDUNITS unit ({exc})"
    return None


def _sattr(attrs: Any, key: str) -> str | None:
    """The attribute as a string, or None (arrays and numbers are not names)."""
    value = attrs.get(key)
    return value if isinstance(value, str) else None


def _is_lat(name: Hashable, var: xr.Variable) -> bool:
    sn = _sattr(var.attrs, "standard_name")
    if sn in ("latitude", "grid_latitude"):
        return True
    if _sattr(var.attrs, "units") in LAT_UNITS:
        return True
    return sn is None and str(name).lower() in _LAT_NAMES


def _is_lon(name: Hashable, var: xr.Variable) -> bool:
    sn = _sattr(var.attrs, "standard_name")
    if sn in ("longitude", "grid_longitude"):
        return True
    if _sattr(var.attrs, "units") in LON_UNITS:
        return True
    return sn is None and str(name).lower() in _LON_NAMES


def _is_x(name: Hashable, var: xr.Variable) -> bool:
    return (
        _sattr(var.attrs, "standard_name") == "projection_x_coordinate"
        or _sattr(var.attrs, "axis") == "X"
        or str(name).lower() in _X_NAMES
    )


def _is_y(name: Hashable, var: xr.Variable) -> bool:
    return (
        _sattr(var.attrs, "standard_name") == "projection_y_coordinate"
        or _sattr(var.attrs, "axis") == "Y"
        or str(name).lower() in _Y_NAMES
    )


def spatial_coords(ds: xr.Dataset) -> dict[str, list[str]]:
    """Find latitude, longitude, x and y coordinate names in ``ds``."""
    out: dict[str, list[str]] = {"latitude": [], "longitude": [], "x": [], "y": []}
    for name, var in ds.coords.items():
        if var.dtype.kind not in "iuf":
            continue
        if _is_lat(name, var.variable):
            out["latitude"].append(str(name))
        elif _is_lon(name, var.variable):
            out["longitude"].append(str(name))
        elif _is_x(name, var.variable):
            out["x"].append(str(name))
        elif _is_y(name, var.variable):
            out["y"].append(str(name))
    return out


def _referenced_names(value: str, grid_mapping: bool = False) -> list[str]:
    if grid_mapping and ":" in value:
        # extended form "crsA: lat lon crsB: x y" - the names before colons
        return re.findall(r"(\S+):", value)
    return value.split()


def _check_fill(name: str, var: xr.Variable, out: list[Finding]) -> None:
    for attr in ("_FillValue", "missing_value"):
        for source in (var.attrs, var.encoding):
            if attr not in source or source[attr] is None:
                continue
            value = np.asarray(source[attr])
            target = np.dtype(var.encoding.get("dtype", var.dtype))
            if source is var.attrs:
                target = var.dtype
            if target.kind in "mMOSU":
                continue
            if value.dtype.kind not in "biuf" or (
                target.kind in "iu"
                and value.dtype.kind == "f"
                and not np.all(np.isnan(value) | (value == np.round(value)))
            ):
                out.append(
                    Finding(
                        name,
                        attr,
                        "fillvalue-type",
                        f"{attr}={source[attr]!r} is not a number of the "
                        f"variable's type {target}; use a value of type {target}",
                    )
                )
            elif value.dtype.kind == "f" and target.kind in "iu":
                out.append(
                    Finding(
                        name,
                        attr,
                        "fillvalue-type",
                        f"{attr} is a float but the variable is {target}; CF "
                        f"requires the variable's type, use {target.type.__name__}",
                    )
                )


def _check_cf_findings(ds: xr.Dataset, globals_: bool = True) -> list[Finding]:
    out: list[Finding] = []
    conv = ds.attrs.get("Conventions")
    if not globals_:
        pass  # a DataArray has no global attributes to carry Conventions
    elif conv is None:
        out.append(
            Finding(
                None,
                "Conventions",
                "conventions-attribute",
                "missing; set ds.attrs['Conventions'] = 'CF-1.8'",
            )
        )
    elif not isinstance(conv, str) or not re.search(r"\bCF-\d+\.\d+", conv):
        out.append(
            Finding(
                None,
                "Conventions",
                "conventions-attribute",
                f"{conv!r} names no CF version; use e.g. 'CF-1.8'",
            )
        )
    table = standard_name_table()
    names = {str(n) for n in ds.variables}
    try:
        identified = {v for vs in ds.cf.axes.values() for v in vs} | {
            v for vs in ds.cf.coordinates.values() for v in vs
        }
    except Exception:  # cf-xarray can choke on odd attributes: identify nothing
        identified = set()
    for hname, var in ds.variables.items():
        name = str(hname)
        attrs = var.attrs
        if name not in _PLACEHOLDERS and not _VALID_NAME.match(name):
            out.append(
                Finding(
                    name,
                    None,
                    "variable-name",
                    "CF names start with a letter and contain only letters, "
                    "digits and underscores; rename the variable",
                )
            )
        units = attrs.get("units")
        if units is not None:
            if not isinstance(units, str):
                out.append(
                    Finding(name, "units", "units-parseable", "must be a string")
                )
                units = None
            elif (err := _units_error(units)) is not None:
                out.append(Finding(name, "units", "units-parseable", err))
                units = None
        time_units = units if units and " since " in units else None
        if time_units is None and isinstance(var.encoding.get("units"), str):
            enc = var.encoding["units"]
            time_units = enc if " since " in enc else None
        if time_units is not None:
            cal = attrs.get("calendar", var.encoding.get("calendar", "standard"))
            if not isinstance(cal, str) or cal.lower() not in CF_CALENDARS:
                out.append(
                    Finding(
                        name,
                        "calendar",
                        "time-calendar",
                        f"{cal!r} is not a CF calendar; use one of "
                        f"{', '.join(sorted(CF_CALENDARS))}",
                    )
                )
            else:
                import cftime

                try:
                    cftime.num2date(0, time_units, calendar=cal.lower())
                except (ValueError, TypeError) as exc:
                    out.append(
                        Finding(
                            name,
                            "units",
                            "time-units",
                            f"{time_units!r} is not a valid '<unit> since <date>' "
                            f"time unit ({exc})",
                        )
                    )
        sn = attrs.get("standard_name")
        if sn is not None:
            base = sn.split()[0] if isinstance(sn, str) and sn.split() else sn
            modifier = sn.split()[1:] if isinstance(sn, str) else []
            if not isinstance(sn, str) or base not in table:
                out.append(
                    Finding(
                        name,
                        "standard_name",
                        "standard-name-table",
                        f"{sn!r} is not in the CF standard name table; fix the "
                        "spelling or use long_name instead",
                    )
                )
            elif len(modifier) > 1 or (
                modifier and modifier[0] not in STANDARD_NAME_MODIFIERS
            ):
                out.append(
                    Finding(
                        name,
                        "standard_name",
                        "standard-name-modifier",
                        f"unknown modifier in {sn!r}; allowed: "
                        f"{', '.join(sorted(STANDARD_NAME_MODIFIERS))}",
                    )
                )
            elif units and not modifier and table[base] and var.dtype.kind not in "mM":
                canonical = table[base]
                try:
                    ok = _parse_units(units).is_convertible(_parse_units(canonical))
                except (ValueError, TypeError):
                    ok = True
                if not ok:
                    out.append(
                        Finding(
                            name,
                            "units",
                            "standard-name-units",
                            f"{units!r} cannot be converted to {canonical!r}, the "
                            f"canonical units of standard_name {sn!r}",
                        )
                    )
        _check_fill(name, var, out)
        for attr in ("coordinates", "bounds", "grid_mapping"):
            value = attrs.get(attr, var.encoding.get(attr))
            if value is None:
                continue
            if not isinstance(value, str):
                out.append(Finding(name, attr, f"{attr}-reference", "must be a string"))
                continue
            for ref in _referenced_names(value, attr == "grid_mapping"):
                if ref not in names:
                    out.append(
                        Finding(
                            name,
                            attr,
                            f"{attr.replace('_', '-')}-reference",
                            f"names {ref!r}, which is not a variable of the "
                            "dataset; add it or fix the attribute",
                        )
                    )
        axis = attrs.get("axis")
        if axis is not None and (
            not isinstance(axis, str) or axis not in ("X", "Y", "Z", "T")
        ):
            out.append(
                Finding(
                    name, "axis", "axis-attribute", f"{axis!r} must be X, Y, Z or T"
                )
            )
        if name in ds.dims and var.ndim == 1:
            lower = name.lower()
            spatial = _LAT_NAMES | _LON_NAMES | _X_NAMES | _Y_NAMES | _TIME_NAMES
            if (
                lower in spatial
                and name not in identified
                and var.dtype.kind in "iuf"
                and not {"standard_name", "axis", "units"} & set(attrs)
            ):
                out.append(
                    Finding(
                        name,
                        None,
                        "axis-identification",
                        "looks like a coordinate axis but carries no "
                        "standard_name, units or axis attribute; add them so CF "
                        "tools can identify it",
                    )
                )
        if var.dtype.kind in "iuf" and var.size:
            if _is_lat(name, var) and name in ds.coords:
                if (
                    units not in (None, *LAT_UNITS)
                    and _sattr(attrs, "standard_name") == "latitude"
                ):
                    out.append(
                        Finding(
                            name,
                            "units",
                            "latitude-units",
                            f"{units!r}: latitude needs units 'degrees_north'",
                        )
                    )
                lo, hi = float(np.nanmin(var.values)), float(np.nanmax(var.values))
                if lo < -90 or hi > 90:
                    out.append(
                        Finding(
                            name,
                            None,
                            "latitude-range",
                            f"values span [{lo}, {hi}], outside [-90, 90]",
                        )
                    )
            elif _is_lon(name, var) and name in ds.coords:
                if (
                    units not in (None, *LON_UNITS)
                    and _sattr(attrs, "standard_name") == "longitude"
                ):
                    out.append(
                        Finding(
                            name,
                            "units",
                            "longitude-units",
                            f"{units!r}: longitude needs units 'degrees_east'",
                        )
                    )
                lo, hi = float(np.nanmin(var.values)), float(np.nanmax(var.values))
                if lo < -180 or hi > 360:
                    out.append(
                        Finding(
                            name,
                            None,
                            "longitude-range",
                            f"values span [{lo}, {hi}], outside [-180, 360]",
                        )
                    )
    return out


def _report(
    findings: list[Finding],
    raise_it: bool,
    kind: str,
    label: str | None,
) -> list[Finding]:
    if not findings:
        return findings
    msg = _summary(kind, findings, label)
    if raise_it:
        exc = CFConventionError if kind == "CF" else CRSError
        raise exc(msg, findings)
    logger.warning("%s", msg)
    warning = CFConventionWarning if kind == "CF" else CRSWarning
    warnings.warn(warning(msg, findings), stacklevel=3)
    return findings


def check_cf(
    obj: xr.Dataset | xr.DataArray, mode: str = "warn", *, label: str | None = None
) -> list[Finding]:
    """Check ``obj`` against the CF conventions.

    Rules: ``conventions-attribute``, ``variable-name``, ``units-parseable``,
    ``time-units``, ``time-calendar``, ``standard-name-table``,
    ``standard-name-modifier``, ``standard-name-units``, ``fillvalue-type``,
    ``coordinates-reference``, ``bounds-reference``,
    ``grid-mapping-reference``, ``axis-attribute``, ``axis-identification``,
    ``latitude-units``, ``longitude-units``, ``latitude-range``,
    ``longitude-range``.

    Args:
        obj: the Dataset or DataArray (a DataArray has no global attributes,
            so ``conventions-attribute`` applies to Datasets only).
        mode: ``strict``, ``warn`` or ``off``.
        label: prefix for messages, e.g. the argument name.

    Returns:
        The findings (empty when ``off`` or compliant).

    Raises:
        CFConventionError: ``strict`` and at least one finding.
        ConfigurationError: unknown mode.
    """
    _mode(mode, ("strict", "warn", "off"), "cf")
    if mode == "off":
        return []
    findings = _check_cf_findings(_as_dataset(obj), isinstance(obj, xr.Dataset))
    return _report(findings, mode == "strict", "CF", label)


def _mode(mode: str, allowed: Iterable[str], option: str) -> None:
    allowed = tuple(allowed)
    if mode not in allowed:
        from dasf_geo.exceptions import ConfigurationError

        raise ConfigurationError(
            f"{option}={mode!r} is not a valid mode; use one of {', '.join(allowed)}"
        )


def _parse_crs(value: Any) -> Any:
    import pyproj

    return pyproj.CRS.from_user_input(value)


def _check_crs_findings(ds: xr.Dataset, required: bool) -> list[Finding]:
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
        crs = _parse_crs(value)
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
                var = ds[name]
                if var.size == 0:
                    continue
                vmin, vmax = float(np.nanmin(var.values)), float(np.nanmax(var.values))
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
        for ref in _referenced_names(gm, grid_mapping=True):
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
    _mode(mode, ("required", "optional", "off"), "crs")
    if mode == "off":
        return []
    findings = _check_crs_findings(_as_dataset(obj), mode == "required")
    return _report(findings, mode == "required", "crs", label)


def check_demap(obj: xr.Dataset | xr.DataArray) -> list[Finding]:
    """Check that the DASF web map (Demap) can draw ``obj``.

    Demap reads base64 NetCDF3 with a global ``crs`` like ``EPSG:4326``, two
    CF-identifiable spatial coordinates (latitude/longitude, or x/y for a
    projected crs) and an optional time dimension. Rules: ``demap-crs``,
    ``demap-spatial-coords``, ``demap-dims``, ``demap-dtype``,
    ``demap-data-vars``.

    Returns:
        The findings; empty means Demap-ready.
    """
    ds = _as_dataset(obj)
    out: list[Finding] = []
    value = ds.attrs.get("crs")
    epsg = None
    if isinstance(value, str) and re.fullmatch(r"EPSG:\d+", value):
        try:
            epsg = _parse_crs(value)
        except Exception:
            epsg = None
    if epsg is None:
        out.append(
            Finding(
                None,
                "crs",
                "demap-crs",
                f"Demap needs a global crs 'EPSG:<code>' that pyproj knows, got "
                f"{value!r}; set ds.attrs['crs'] = 'EPSG:4326' for lat/lon data",
            )
        )
    coords = spatial_coords(ds)
    if epsg is not None and epsg.is_projected:
        xs, ys = coords["x"], coords["y"]
        kind = "x/y"
    else:
        xs, ys = coords["longitude"], coords["latitude"]
        kind = "longitude/latitude"
    xdims = [n for n in xs if ds[n].ndim == 1 and ds[n].dims[0] == n]
    ydims = [n for n in ys if ds[n].ndim == 1 and ds[n].dims[0] == n]
    if not xdims or not ydims:
        out.append(
            Finding(
                None,
                None,
                "demap-spatial-coords",
                f"no 1-D {kind} dimension coordinates found; add them with "
                "standard_name and units (degrees_north/degrees_east)",
            )
        )
    if not ds.data_vars:
        out.append(Finding(None, None, "demap-data-vars", "no data variable to draw"))
    times = {
        str(n)
        for n, v in ds.coords.items()
        if v.dtype.kind == "M" or str(n) in _TIME_NAMES
    }
    for name, var in ds.data_vars.items():
        extra = [
            str(d)
            for d in var.dims
            if d not in xdims and d not in ydims and str(d) not in times
        ]
        if (
            xdims
            and ydims
            and (
                not set(var.dims) & set(xdims)
                or not set(var.dims) & set(ydims)
                or extra
            )
        ):
            out.append(
                Finding(
                    str(name),
                    None,
                    "demap-dims",
                    f"dims {tuple(map(str, var.dims))} must be a spatial pair "
                    f"({ydims[0]}, {xdims[0]}) plus an optional time dimension; "
                    f"select or drop {extra or 'nothing'}",
                )
            )
        elif xdims and ydims:
            spatial = [d for d in var.dims if d in xdims or d in ydims]
            if spatial[-2:] != list(var.dims[-2:]) or spatial[-1] not in xdims:
                out.append(
                    Finding(
                        str(name),
                        None,
                        "demap-dims",
                        f"dims {tuple(map(str, var.dims))} must be ordered "
                        f"(time, {ydims[0]}, {xdims[0]}); transpose the variable",
                    )
                )
    for name, variable in ds.variables.items():
        code = variable.dtype.str[1:]
        if variable.dtype.kind not in "mMUO" and code not in NC3_DTYPES:
            out.append(
                Finding(
                    str(name),
                    None,
                    "demap-dtype",
                    f"dtype {variable.dtype} is not NetCDF3; cast to int32 or float64 "
                    "(coerce_demap does this when the values fit)",
                )
            )
    return out


def coerce_demap(obj: xr.Dataset | xr.DataArray) -> xr.Dataset:
    """Return a Demap-ready copy of ``obj`` where that is a safe change.

    Changes: a missing crs on lat/lon data becomes ``EPSG:4326``; a crs that
    pyproj maps to an EPSG code is rewritten as ``EPSG:<code>``; int64 and
    unsigned variables are cast to int32 when every value fits, else to
    float64 (exact up to 2**53; larger values raise); data variables are
    transposed to (time, y, x).

    Raises:
        DataError: the result would still not be Demap-ready; the message
            lists the remaining findings.
    """
    ds = _as_dataset(obj).copy()
    ds.attrs = dict(ds.attrs)
    coords = spatial_coords(ds)
    value = ds.attrs.get("crs")
    if value is None and coords["latitude"] and coords["longitude"]:
        ds.attrs["crs"] = "EPSG:4326"
    elif isinstance(value, str):
        try:
            code = _parse_crs(value).to_epsg()
        except Exception:
            code = None
        if code is not None:
            ds.attrs["crs"] = f"EPSG:{code}"
    for name in list(ds.variables):
        var = ds[name]
        code = var.dtype.str[1:]
        if var.dtype.kind in "iu" and code not in NC3_DTYPES:
            values = var.values
            info = np.iinfo(np.int32)
            if values.size == 0 or (
                values.min() >= info.min and values.max() <= info.max
            ):
                new = values.astype(np.int32)
            elif np.abs(values.astype(object)).max() <= 2**53:
                new = values.astype(np.float64)
            else:
                raise DataError(
                    f"variable {str(name)!r}: integer values beyond 2**53 cannot be "
                    "stored exactly in NetCDF3; scale or split them"
                )
            ds[name] = var.copy(data=new)
    findings = check_demap(ds)
    if not findings:
        return ds
    dims_only = all(f.rule == "demap-dims" for f in findings)
    if dims_only:
        coords = spatial_coords(ds)
        epsg = _parse_crs(ds.attrs["crs"])
        xs = coords["x"] if epsg.is_projected else coords["longitude"]
        ys = coords["y"] if epsg.is_projected else coords["latitude"]
        for name, var in list(ds.data_vars.items()):
            x = next((d for d in var.dims if d in xs), None)
            y = next((d for d in var.dims if d in ys), None)
            if x and y:
                ds[name] = var.transpose(..., y, x)
        findings = check_demap(ds)
    if findings:
        raise DataError(
            "cannot make the data Demap-ready: " + "; ".join(map(str, findings))
        )
    return ds
