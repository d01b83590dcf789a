"""CF-convention checks for Datasets and DataArrays: one function per rule.

Each rule returns :class:`~dasf_geo.data.Finding` objects that name the
variable (``None`` for the global attributes), the attribute and the rule,
so that a message like ``variable 'tas' attribute 'units': 'Kelvinn' is not
a valid UDUNITS unit [rule units-parseable]`` tells the data owner what to
fix. :data:`CF_RULES` lists the rules in the order they run (per variable);
the rule table of ``docs/data.md`` is made from it (:func:`rules_markdown`).

Modes: ``strict`` raises :class:`~dasf_geo.exceptions.CFConventionError`
carrying ``.findings``; ``warn`` reports them (see
:mod:`dasf_geo.data._findings`); ``off`` checks nothing. The ``crs`` checks
are in :mod:`dasf_geo.data._crs`, the Demap checks in
:mod:`dasf_geo.data._demap`; this module re-exports both.

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
    spatial_coords,
    standard_name_table,
    units_error,
)
from dasf_geo.data._crs import check_crs
from dasf_geo.data._demap import NC3_DTYPES, check_demap, coerce_demap
from dasf_geo.data._findings import (
    PLACEHOLDERS,
    CFConventionWarning,
    CRSWarning,
    DataWarning,
    Finding,
    already_checked,
    as_dataset,
    check_mode,
    report,
)

__all__ = [
    "CF_RULES",
    "NC3_DTYPES",
    "CFConventionWarning",
    "CRSWarning",
    "DataWarning",
    "Finding",
    "Rule",
    "check_cf",
    "check_crs",
    "check_demap",
    "coerce_demap",
    "rules_markdown",
    "spatial_coords",
    "standard_name_table",
]

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


class _Dataset:
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
class _Var:
    """One variable as the rules see it."""

    name: str
    var: xr.Variable
    is_coord: bool
    #: the ``units`` attribute if it is a string UDUNITS parses, else None
    units: str | None = None
    #: a standard name from the table with no modifier, else None
    standard_name: str | None = None


VarRule = Callable[[_Dataset, _Var], Iterator[Finding]]
DatasetRule = Callable[[_Dataset], Iterator[Finding]]


@dataclass(frozen=True)
class Rule:
    """One CF rule.

    Attributes:
        ids: the rule ids its findings carry.
        checks: what it checks (one line of Markdown, for the docs).
        run: the function; per variable unless ``dataset`` is True.
        dataset: the rule looks at the global attributes once.
    """

    ids: tuple[str, ...]
    checks: str
    run: Callable[..., Iterator[Finding]]
    dataset: bool = False


# --------------------------------------------------------------------------
# the rules


def _conventions(ctx: _Dataset) -> Iterator[Finding]:
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


def _variable_name(ctx: _Dataset, v: _Var) -> Iterator[Finding]:
    if v.name not in PLACEHOLDERS and not _VALID_NAME.match(v.name):
        yield Finding(
            v.name,
            None,
            "variable-name",
            "CF names start with a letter and contain only letters, "
            "digits and underscores; rename the variable",
        )


def _units_parseable(ctx: _Dataset, v: _Var) -> Iterator[Finding]:
    units = v.var.attrs.get("units")
    if units is None:
        return
    if not isinstance(units, str):
        yield Finding(v.name, "units", "units-parseable", "must be a string")
    elif (err := units_error(units)) is not None:
        yield Finding(v.name, "units", "units-parseable", err)
    else:
        v.units = units


def _time_units_of(v: _Var) -> str | None:
    """The reference-time units of ``v`` (attribute, else encoding)."""
    if v.units is not None and is_time_reference(v.units):
        return v.units
    enc = v.var.encoding.get("units")
    if isinstance(enc, str) and " since " in enc:
        return enc
    return None


def _calendar_of(v: _Var) -> Any:
    return v.var.attrs.get("calendar", v.var.encoding.get("calendar", "standard"))


def _time_calendar(ctx: _Dataset, v: _Var) -> Iterator[Finding]:
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


def _time_units(ctx: _Dataset, v: _Var) -> Iterator[Finding]:
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


def _standard_name_table(ctx: _Dataset, v: _Var) -> Iterator[Finding]:
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


def _standard_name_modifier(ctx: _Dataset, v: _Var) -> Iterator[Finding]:
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


def _standard_name_units(ctx: _Dataset, v: _Var) -> Iterator[Finding]:
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


def _fillvalue_type(ctx: _Dataset, v: _Var) -> Iterator[Finding]:
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


def _references(attr: str) -> VarRule:
    rule = f"{attr.replace('_', '-')}-reference"

    def check(ctx: _Dataset, v: _Var) -> Iterator[Finding]:
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


def _axis_attribute(ctx: _Dataset, v: _Var) -> Iterator[Finding]:
    axis = v.var.attrs.get("axis")
    if axis is not None and (
        not isinstance(axis, str) or axis not in ("X", "Y", "Z", "T")
    ):
        yield Finding(
            v.name, "axis", "axis-attribute", f"{axis!r} must be X, Y, Z or T"
        )


def _axis_identification(ctx: _Dataset, v: _Var) -> Iterator[Finding]:
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


def _degrees(kind: str) -> VarRule:
    lat = kind == "latitude"
    allowed, wanted = (
        (LAT_UNITS, "degrees_north") if lat else (LON_UNITS, "degrees_east")
    )
    test = is_lat if lat else is_lon

    def check(ctx: _Dataset, v: _Var) -> Iterator[Finding]:
        var = v.var
        if not v.is_coord or var.dtype.kind not in "iuf" or not var.size:
            return
        if not test(v.name, var) or (not lat and is_lat(v.name, var)):
            return
        units = v.units
        if units not in (None, *allowed) and sattr(var.attrs, "standard_name") == kind:
            yield Finding(
                v.name,
                "units",
                f"{kind}-units",
                f"{units!r}: {kind} needs units {wanted!r}",
            )

    check.__name__ = f"_{kind}_units"
    return check


def _range(kind: str, lo: float, hi: float) -> VarRule:
    lat = kind == "latitude"
    test = is_lat if lat else is_lon

    def check(ctx: _Dataset, v: _Var) -> Iterator[Finding]:
        var = v.var
        if not v.is_coord or var.dtype.kind not in "iuf" or not var.size:
            return
        if not test(v.name, var) or (not lat and is_lat(v.name, var)):
            return
        span = data_range(var)
        if span is not None and (span[0] < lo or span[1] > hi):
            yield Finding(
                v.name,
                None,
                f"{kind}-range",
                f"values span [{span[0]}, {span[1]}], outside [{lo:g}, {hi:g}]",
            )

    check.__name__ = f"_{kind}_range"
    return check


#: The CF rules, in the order they run.
CF_RULES: tuple[Rule, ...] = (
    Rule(
        ("conventions-attribute",),
        "a global `Conventions` naming a CF version (Datasets only)",
        _conventions,
        dataset=True,
    ),
    Rule(
        ("variable-name",),
        "names start with a letter; letters, digits, `_`",
        _variable_name,
    ),
    Rule(
        ("units-parseable",),
        "`units` parse with UDUNITS-2 (cf-units)",
        _units_parseable,
    ),
    Rule(
        ("time-calendar",),
        "the calendar of a time variable is a CF calendar",
        _time_calendar,
    ),
    Rule(
        ("time-units",),
        "time coordinates (`standard_name: time`, `axis: T`) have units "
        '`"<unit> since <date>"` (not UDUNITS\' `after`/`from`/`ref`) that '
        "parse with cftime",
        _time_units,
    ),
    Rule(
        ("standard-name-table",),
        "`standard_name` is in the CF standard name table (shipped offline, "
        "version 93); misspellings get the closest names",
        _standard_name_table,
    ),
    Rule(
        ("standard-name-modifier",),
        "only the CF modifiers (`standard_error`, …)",
        _standard_name_modifier,
    ),
    Rule(
        ("standard-name-units",),
        "`units` convertible to the canonical units of the standard name "
        "(reference-time units are valid for `time` and `forecast_reference_time`)",
        _standard_name_units,
    ),
    Rule(
        ("fillvalue-type",),
        "`_FillValue`/`missing_value` have the variable's type",
        _fillvalue_type,
    ),
    Rule(
        ("coordinates-reference",),
        "variables named in `coordinates` exist",
        _references("coordinates"),
    ),
    Rule(
        ("bounds-reference",),
        "the variable named in `bounds` exists",
        _references("bounds"),
    ),
    Rule(
        ("grid-mapping-reference",),
        "variables named in `grid_mapping` exist",
        _references("grid_mapping"),
    ),
    Rule(("axis-attribute",), "`axis` is X, Y, Z or T", _axis_attribute),
    Rule(
        ("axis-identification",),
        "coordinate-like dimensions carry attributes cf-xarray can identify",
        _axis_identification,
    ),
    Rule(
        ("latitude-units",),
        "a latitude's units are degrees_north",
        _degrees("latitude"),
    ),
    Rule(
        ("latitude-range",),
        "latitude values (fill values left out) within [-90, 90]",
        _range("latitude", -90, 90),
    ),
    Rule(
        ("longitude-units",),
        "a longitude's units are degrees_east",
        _degrees("longitude"),
    ),
    Rule(
        ("longitude-range",),
        "longitude values (fill values left out) within [-180, 360]",
        _range("longitude", -180, 360),
    ),
)


def rules_markdown() -> str:
    """The Markdown table of :data:`CF_RULES` (as in ``docs/data.md``)."""
    lines = ["| rule | checks |", "| --- | --- |"]
    for rule in CF_RULES:
        ids = ", ".join(f"`{i}`" for i in rule.ids)
        lines.append(f"| {ids} | {rule.checks} |")
    return "\n".join(lines) + "\n"


def cf_findings(
    ds: xr.Dataset, globals_: bool = True, names: Iterable[str] = ()
) -> list[Finding]:
    """All CF findings of ``ds``, without reporting them.

    Args:
        ds: the Dataset (one group of a file).
        globals_: whether its attributes are the file's global attributes.
        names: further variable names references may name (those of the
            other groups of a file: CF 1.8 finds them by search).
    """
    ctx = _Dataset(ds, globals_, names)
    out: list[Finding] = []
    for rule in CF_RULES:
        if rule.dataset:
            out.extend(rule.run(ctx))
    per_var = [rule.run for rule in CF_RULES if not rule.dataset]
    for hname, var in ds.variables.items():
        v = _Var(str(hname), var, hname in ds.coords)
        for run in per_var:
            out.extend(run(ctx, v))
    return out


def check_cf(
    obj: xr.Dataset | xr.DataArray, mode: str = "warn", *, label: str | None = None
) -> list[Finding]:
    """Check ``obj`` against the CF conventions.

    Rules (see :data:`CF_RULES`): ``conventions-attribute``,
    ``variable-name``, ``units-parseable``, ``time-calendar``,
    ``time-units``, ``standard-name-table``, ``standard-name-modifier``,
    ``standard-name-units``, ``fillvalue-type``, ``coordinates-reference``,
    ``bounds-reference``, ``grid-mapping-reference``, ``axis-attribute``,
    ``axis-identification``, ``latitude-units``, ``latitude-range``,
    ``longitude-units``, ``longitude-range``.

    Args:
        obj: the Dataset or DataArray (a DataArray has no global attributes,
            so ``conventions-attribute`` applies to Datasets only).
        mode: ``strict``, ``warn`` or ``off``.
        label: prefix for messages, e.g. the argument name.

    Returns:
        The findings (empty when ``off`` or compliant, and inside
        :func:`~dasf_geo.data.collect_findings` when ``obj`` was checked
        under this label already).

    Raises:
        CFConventionError: ``strict`` and at least one finding.
        ConfigurationError: unknown mode.
        DataError: ``obj`` is neither a Dataset nor a DataArray.
    """
    check_mode(mode, ("strict", "warn", "off"), "cf")
    if mode == "off":
        return []
    ds = as_dataset(obj)
    if already_checked(obj, "CF", label):
        return []
    findings = cf_findings(ds, isinstance(obj, xr.Dataset))
    return report(findings, mode == "strict", "CF", label)
