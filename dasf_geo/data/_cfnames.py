"""What the CF, ``crs`` and Demap checks share: names, units, coordinates.

The CF standard-name table, UDUNITS parsing (cf-units), the identification
of latitude/longitude/x/y/time coordinates and the range of a coordinate's
data values (fill values left out).
"""

from __future__ import annotations

import difflib
import gzip
import re
from collections.abc import Hashable
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import xarray as xr

__all__ = [
    "LAT_UNITS",
    "LON_UNITS",
    "closest_standard_names",
    "data_range",
    "spatial_coords",
    "standard_name_table",
]

LAT_UNITS = frozenset(
    {"degrees_north", "degree_north", "degree_N", "degrees_N", "degreeN", "degreesN"}
)
LON_UNITS = frozenset(
    {"degrees_east", "degree_east", "degree_E", "degrees_E", "degreeE", "degreesE"}
)
LAT_NAMES = frozenset({"lat", "latitude", "nav_lat"})
LON_NAMES = frozenset({"lon", "long", "longitude", "nav_lon"})
X_NAMES = frozenset({"x", "easting", "projection_x_coordinate"})
Y_NAMES = frozenset({"y", "northing", "projection_y_coordinate"})
TIME_NAMES = frozenset({"time", "t", "date", "datetime"})
#: UDUNITS time references written without "since"
_OTHER_REFERENCE = re.compile(r"^\s*[A-Za-z]+\s+(?:after|from|ref|@)\s+\S")
#: The NetCDF default fill value per dtype (netCDF-C's NC_FILL_*): a value
#: that was never written, not data, even without a ``_FillValue``.
DEFAULT_FILLS: dict[str, Any] = {
    "i1": -127,
    "u1": 255,
    "i2": -32767,
    "u2": 65535,
    "i4": -2147483647,
    "u4": 4294967295,
    "i8": -9223372036854775806,
    "u8": 18446744073709551614,
    "f4": np.float32(9.969209968386869e36),
    "f8": 9.969209968386869e36,
}


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


@lru_cache(maxsize=256)
def closest_standard_names(name: str, n: int = 3) -> tuple[str, ...]:
    """The names of the table closest to ``name``, best first.

    Names with a difflib similarity of at least 0.8 that are about as close
    as the best one (within 0.05); at most ``n``.
    """
    if not name or len(name) > 200:
        return ()
    scored = []
    matcher = difflib.SequenceMatcher(b=name, autojunk=False)
    for candidate in standard_name_table():
        matcher.set_seq1(candidate)
        if matcher.real_quick_ratio() >= 0.8 and matcher.quick_ratio() >= 0.8:
            ratio = matcher.ratio()
            if ratio >= 0.8:
                scored.append((ratio, candidate))
    scored.sort(key=lambda item: (-item[0], item[1]))
    if not scored:
        return ()
    best = scored[0][0]
    return tuple(c for r, c in scored[:n] if r >= best - 0.05)


@lru_cache(maxsize=1024)
def parse_units(units: str) -> Any:
    """``cf_units.Unit(units)`` (cached).

    Raises:
        ValueError: not a UDUNITS unit.
    """
    import cf_units

    return cf_units.Unit(units)


def units_error(units: str) -> str | None:
    """Why ``units`` is not a UDUNITS unit, or None if it is one."""
    try:
        parse_units(units)
    except (ValueError, TypeError) as exc:
        # cf-units appends the C library's errno text, which is whatever the
        # last system call of the thread left there: not about the unit
        detail = re.sub(r": b'[^']*'$", "", str(exc))
        return f"{units!r} is not a valid UDUNITS unit ({detail})"
    return None


def is_time_reference(units: str) -> bool:
    """Whether ``units`` is a UDUNITS time reference (``<unit> since <date>``,
    also ``after``/``from``/``ref``) rather than a plain unit."""
    try:
        unit = parse_units(units)
    except (ValueError, TypeError):
        return " since " in units
    # cf-units parses "days after 2000" but calls only "since" a reference
    return bool(unit.is_time_reference()) or bool(_OTHER_REFERENCE.match(units))


def sattr(attrs: Any, key: str) -> str | None:
    """The attribute as a string, or None (arrays and numbers are not names)."""
    value = attrs.get(key)
    return value if isinstance(value, str) else None


def is_lat(name: Hashable, var: xr.Variable) -> bool:
    """Whether ``var`` is a latitude (standard_name, units, or its name)."""
    sn = sattr(var.attrs, "standard_name")
    if sn in ("latitude", "grid_latitude"):
        return True
    if sattr(var.attrs, "units") in LAT_UNITS:
        return True
    return sn is None and str(name).lower() in LAT_NAMES


def is_lon(name: Hashable, var: xr.Variable) -> bool:
    """Whether ``var`` is a longitude (standard_name, units, or its name)."""
    sn = sattr(var.attrs, "standard_name")
    if sn in ("longitude", "grid_longitude"):
        return True
    if sattr(var.attrs, "units") in LON_UNITS:
        return True
    return sn is None and str(name).lower() in LON_NAMES


def is_x(name: Hashable, var: xr.Variable) -> bool:
    """Whether ``var`` is a projection x coordinate."""
    return (
        sattr(var.attrs, "standard_name") == "projection_x_coordinate"
        or sattr(var.attrs, "axis") == "X"
        or str(name).lower() in X_NAMES
    )


def is_y(name: Hashable, var: xr.Variable) -> bool:
    """Whether ``var`` is a projection y coordinate."""
    return (
        sattr(var.attrs, "standard_name") == "projection_y_coordinate"
        or sattr(var.attrs, "axis") == "Y"
        or str(name).lower() in Y_NAMES
    )


def spatial_coords(ds: xr.Dataset) -> dict[str, list[str]]:
    """Find latitude, longitude, x and y coordinate names in ``ds``."""
    out: dict[str, list[str]] = {"latitude": [], "longitude": [], "x": [], "y": []}
    for name, var in ds.coords.items():
        if var.dtype.kind not in "iuf":
            continue
        if is_lat(name, var.variable):
            out["latitude"].append(str(name))
        elif is_lon(name, var.variable):
            out["longitude"].append(str(name))
        elif is_x(name, var.variable):
            out["x"].append(str(name))
        elif is_y(name, var.variable):
            out["y"].append(str(name))
    return out


def referenced_names(value: str, grid_mapping: bool = False) -> list[str]:
    """The variable names an attribute like ``coordinates`` refers to."""
    if grid_mapping and ":" in value:
        # extended form "crsA: lat lon crsB: x y" - the names before colons
        return re.findall(r"(\S+):", value)
    return value.split()


def _fill_values(var: xr.Variable) -> list[Any]:
    """The values of ``var`` that mean "no data": its ``_FillValue`` and
    ``missing_value`` (attributes or encoding) and the NetCDF default fill
    of its dtype."""
    out: list[Any] = []
    for attr in ("_FillValue", "missing_value"):
        for source in (var.attrs, var.encoding):
            value = source.get(attr)
            if value is None:
                continue
            arr = np.asarray(value).ravel()
            if arr.dtype.kind in "biuf":
                out.extend(arr.tolist())
    default = DEFAULT_FILLS.get(var.dtype.str[1:])
    if default is not None:
        out.append(default)
    return out


def data_range(var: xr.Variable) -> tuple[float, float] | None:
    """The smallest and largest data value of ``var``, fill values and NaN
    left out; None when no value is data."""
    values = np.asarray(var.values)
    if values.dtype.kind not in "iuf" or values.size == 0:
        return None
    keep = (
        ~np.isnan(values) if values.dtype.kind == "f" else np.ones(values.shape, bool)
    )
    for fill in _fill_values(var):
        try:
            keep &= values != fill
        except (OverflowError, ValueError, TypeError):  # cannot be a value
            continue
    if not keep.any():
        return None
    kept = values[keep]
    return float(kept.min()), float(kept.max())
