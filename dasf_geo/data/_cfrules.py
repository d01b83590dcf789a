"""The CF rules: one function per rule, over one variable or the dataset.

A rule takes the :class:`Context` of one check (the Dataset and what is
derived from it once) and, for a per-variable rule, a :class:`Var`; it
yields :class:`~dasf_geo.data.Finding` objects naming the variable, the
attribute and the rule id. :data:`dasf_geo.data.CF_RULES`
(:mod:`._checks`) lists them in the order they run and describes each.

Libraries: cf-units (UDUNITS-2) parses units, cftime validates time units and
calendars, cf-xarray identifies axes and coordinates.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import cf_xarray  # noqa: F401  (registers the ``.cf`` accessor)
import numpy as np
import xarray as xr

from dasf_geo.data._cfnames import (
    LAT_NAMES,
    LAT_UNITS,
    LON_NAMES,
    LON_UNITS,
    TIME_NAMES,
    X_NAMES,
    Y_NAMES,
    closest_standard_names,
    data_range,
    is_lat,
    is_lon,
    is_time_reference,
    parse_units,
    referenced_names,
    sattr,
    standard_name_table,
    units_error,
)
from dasf_geo.data._findings import PLACEHOLDERS, Finding

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
_VALID_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
#: standard names whose values are instants: reference-time units are valid
TIME_INSTANTS = frozenset({"time", "forecast_reference_time"})
_SPATIAL_NAMES = LAT_NAMES | LON_NAMES | X_NAMES | Y_NAMES | TIME_NAMES


class Context:
    """What the rules of one check share: the Dataset and what is derived
    from it once (variable names, cf-xarray's identified coordinates)."""

    def __init__(
        self, ds: xr.Dataset, globals_: bool, names: Iterable[str] = ()
    ) -> None:
        self.ds = ds
        self.globals = globals_
        self.names = {str(n) for n in ds.variables} | set(names)

    @cached_property
    def identified(self) -> set[str]:
        ds = self.ds
        try:
            axes = ds.cf.axes
            coords = ds.cf.coordinates
        except Exception:  # cf-xarray can choke on odd attributes
            return set()
        return {str(v) for vs in axes.values() for v in vs} | {
            str(v) for vs in coords.values() for v in vs
        }


@dataclass
class Var:
    """One variable as the rules see it."""

    name: str
    var: xr.Variable
    is_coord: bool
    #: the ``units`` attribute if it is a string UDUNITS parses, else None
    units: str | None = None
    #: a standard name from the table with no modifier, else None
    standard_name: str | None = None


VarRule = Callable[[Context, Var], Iterator[Finding]]
DatasetRule = Callable[[Context], Iterator[Finding]]


# --------------------------------------------------------------------------
# the rules


def conventions_attribute(ctx: Context) -> Iterator[Finding]:
    if not ctx.globals:
        return  # a DataArray has no global attributes to carry Conventions
    conv = ctx.ds.attrs.get("Conventions")
    if conv is None:
        yield Finding(
            None,
            "Conventions",
            "conventions-attribute",
            "missing; set ds.attrs['Conventions'] = 'CF-1.8'",
        )
    elif not isinstance(conv, str) or not re.search(r"\bCF-\d+\.\d+", conv):
        yield Finding(
            None,
            "Conventions",
            "conventions-attribute",
            f"{conv!r} names no CF version; use e.g. 'CF-1.8'",
        )


def variable_name(ctx: Context, v: Var) -> Iterator[Finding]:
    if v.name not in PLACEHOLDERS and not _VALID_NAME.match(v.name):
        yield Finding(
            v.name,
            None,
            "variable-name",
            "CF names start with a letter and contain only letters, "
            "digits and underscores; rename the variable",
        )


def units_parseable(ctx: Context, v: Var) -> Iterator[Finding]:
    units = v.var.attrs.get("units")
    if units is None:
        return
    if not isinstance(units, str):
        yield Finding(v.name, "units", "units-parseable", "must be a string")
    elif (err := units_error(units)) is not None:
        yield Finding(v.name, "units", "units-parseable", err)
    else:
        v.units = units


def _time_units_of(v: Var) -> str | None:
    """The reference-time units of ``v`` (attribute, else encoding)."""
    if v.units is not None and is_time_reference(v.units):
        return v.units
    enc = v.var.encoding.get("units")
    if isinstance(enc, str) and " since " in enc:
        return enc
    return None


def _calendar_of(v: Var) -> Any:
    return v.var.attrs.get("calendar", v.var.encoding.get("calendar", "standard"))


def time_calendar(ctx: Context, v: Var) -> Iterator[Finding]:
    if _time_units_of(v) is None:
        return
    cal = _calendar_of(v)
    if not isinstance(cal, str) or cal.lower() not in CF_CALENDARS:
        yield Finding(
            v.name,
            "calendar",
            "time-calendar",
            f"{cal!r} is not a CF calendar; use one of "
            f"{', '.join(sorted(CF_CALENDARS))}",
        )


def time_units(ctx: Context, v: Var) -> Iterator[Finding]:
    units = _time_units_of(v)
    if units is None:
        attrs = v.var.attrs
        timelike = (
            sattr(attrs, "standard_name") == "time" or sattr(attrs, "axis") == "T"
        )
        if timelike and v.units is not None and v.var.dtype.kind not in "mM":
            yield Finding(
                v.name,
                "units",
                "time-units",
                f"{v.units!r}: a time coordinate needs units '<unit> since <date>'",
                "use e.g. 'seconds since 1970-01-01'",
            )
        return
    if " since " not in units:
        # UDUNITS also takes "after", "from" and "ref"; CF says "since"
        m = re.match(r"^\s*(\S+)\s+(?:after|from|ref|@)\s+(.+)$", units)
        hint = f"'{m[1]} since {m[2]}'" if m else "'<unit> since <date>'"
        yield Finding(
            v.name,
            "units",
            "time-units",
            f"{units!r} is a UDUNITS time reference but CF time units read "
            "'<unit> since <date>'",
            f"use {hint}",
        )
        return
    cal = _calendar_of(v)
    if not isinstance(cal, str) or cal.lower() not in CF_CALENDARS:
        return  # time-calendar speaks
    import cftime

    try:
        cftime.num2date(0, units, calendar=cal.lower())
    except (ValueError, TypeError) as exc:
        yield Finding(
            v.name,
            "units",
            "time-units",
            f"{units!r} is not a valid '<unit> since <date>' time unit ({exc})",
        )


def standard_name_in_table(ctx: Context, v: Var) -> Iterator[Finding]:
    sn = v.var.attrs.get("standard_name")
    if sn is None:
        return
    words = sn.split() if isinstance(sn, str) else []
    if words and words[0] in standard_name_table():
        if len(words) == 1:
            v.standard_name = words[0]
        return
    close = closest_standard_names(words[0]) if words else ()
    yield Finding(
        v.name,
        "standard_name",
        "standard-name-table",
        f"{sn!r} is not in the CF standard name table; fix the "
        "spelling or use long_name instead",
        "did you mean " + " or ".join(repr(c) for c in close) + "?" if close else None,
    )


def standard_name_modifier(ctx: Context, v: Var) -> Iterator[Finding]:
    sn = v.var.attrs.get("standard_name")
    if not isinstance(sn, str) or not sn.split():
        return
    _base, *modifier = sn.split()
    if not modifier:
        return
    if len(modifier) > 1 or modifier[0] not in STANDARD_NAME_MODIFIERS:
        yield Finding(
            v.name,
            "standard_name",
            "standard-name-modifier",
            f"unknown modifier in {sn!r}; allowed: "
            f"{', '.join(sorted(STANDARD_NAME_MODIFIERS))}",
        )


def standard_name_units(ctx: Context, v: Var) -> Iterator[Finding]:
    if v.standard_name is None or v.units is None or v.var.dtype.kind in "mM":
        return
    if v.standard_name in TIME_INSTANTS and is_time_reference(v.units):
        return  # reference times are valid here; time-units checks them
    canonical = standard_name_table()[v.standard_name]
    if not canonical:
        return
    try:
        ok = parse_units(v.units).is_convertible(parse_units(canonical))
    except (ValueError, TypeError):
        ok = True
    if not ok:
        yield Finding(
            v.name,
            "units",
            "standard-name-units",
            f"{v.units!r} cannot be converted to {canonical!r}, the "
            f"canonical units of standard_name {v.standard_name!r}",
        )


def fillvalue_type(ctx: Context, v: Var) -> Iterator[Finding]:
    var = v.var
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
                yield Finding(
                    v.name,
                    attr,
                    "fillvalue-type",
                    f"{attr}={source[attr]!r} is not a number of the "
                    f"variable's type {target}; use a value of type {target}",
                )
            elif value.dtype.kind == "f" and target.kind in "iu":
                yield Finding(
                    v.name,
                    attr,
                    "fillvalue-type",
                    f"{attr} is a float but the variable is {target}; CF "
                    f"requires the variable's type, use {target.type.__name__}",
                )


def references(attr: str) -> VarRule:
    rule = f"{attr.replace('_', '-')}-reference"

    def check(ctx: Context, v: Var) -> Iterator[Finding]:
        value = v.var.attrs.get(attr, v.var.encoding.get(attr))
        if value is None:
            return
        if not isinstance(value, str):
            yield Finding(v.name, attr, f"{attr}-reference", "must be a string")
            return
        for ref in referenced_names(value, attr == "grid_mapping"):
            # a name in another group: "/g/lat", "../lat" (CF 1.8 groups)
            if ref not in ctx.names and ref.rsplit("/", 1)[-1] not in ctx.names:
                yield Finding(
                    v.name,
                    attr,
                    rule,
                    f"names {ref!r}, which is not a variable of the "
                    "dataset; add it or fix the attribute",
                )

    check.__name__ = f"_{attr}_reference"
    return check


def axis_attribute(ctx: Context, v: Var) -> Iterator[Finding]:
    axis = v.var.attrs.get("axis")
    if axis is not None and (
        not isinstance(axis, str) or axis not in ("X", "Y", "Z", "T")
    ):
        yield Finding(
            v.name, "axis", "axis-attribute", f"{axis!r} must be X, Y, Z or T"
        )


def axis_identification(ctx: Context, v: Var) -> Iterator[Finding]:
    var = v.var
    if v.name not in ctx.ds.dims or var.ndim != 1:
        return
    if (
        v.name.lower() in _SPATIAL_NAMES
        and var.dtype.kind in "iuf"
        and not {"standard_name", "axis", "units"} & set(var.attrs)
        and v.name not in ctx.identified
    ):
        yield Finding(
            v.name,
            None,
            "axis-identification",
            "looks like a coordinate axis but carries no "
            "standard_name, units or axis attribute; add them so CF "
            "tools can identify it",
        )


def _is_coordinate(v: Var, kind: str) -> bool:
    """Whether ``v`` is a numeric, non-empty coordinate that is a latitude,
    or (``kind="longitude"``) a longitude that is not also a latitude."""
    var = v.var
    if not v.is_coord or var.dtype.kind not in "iuf" or not var.size:
        return False
    if kind == "latitude":
        return bool(is_lat(v.name, var))
    return bool(is_lon(v.name, var)) and not is_lat(v.name, var)


def degree_units(kind: str) -> VarRule:
    lat = kind == "latitude"
    allowed, wanted = (
        (LAT_UNITS, "degrees_north") if lat else (LON_UNITS, "degrees_east")
    )

    def check(ctx: Context, v: Var) -> Iterator[Finding]:
        if not _is_coordinate(v, kind):
            return
        var, units = v.var, v.units
        if units not in (None, *allowed) and sattr(var.attrs, "standard_name") == kind:
            yield Finding(
                v.name,
                "units",
                f"{kind}-units",
                f"{units!r}: {kind} needs units {wanted!r}",
            )

    check.__name__ = f"_{kind}_units"
    return check


def value_range(kind: str, lo: float, hi: float) -> VarRule:

    def check(ctx: Context, v: Var) -> Iterator[Finding]:
        if not _is_coordinate(v, kind):
            return
        span = data_range(v.var)
        if span is not None and (span[0] < lo or span[1] > hi):
            yield Finding(
                v.name,
                None,
                f"{kind}-range",
                f"values span [{span[0]}, {span[1]}], outside [{lo:g}, {hi:g}]",
            )

    check.__name__ = f"_{kind}_range"
    return check
