"""CF-convention checks for Datasets and DataArrays: the rule table.

Each rule (a function of :mod:`._cfrules`) returns
:class:`~dasf_geo.data.Finding` objects that name the variable (``None``
for the global attributes), the attribute and the rule, so that a message
like ``variable 'tas' attribute 'units': 'Kelvinn' is not a valid UDUNITS
unit [rule units-parseable]`` tells the data owner what to fix.
:data:`CF_RULES` lists the rules in the order they run (per variable); the
rule table of ``docs/data.md`` is made from it (:func:`rules_markdown`).

Modes: ``strict`` raises :class:`~dasf_geo.exceptions.CFConventionError`
carrying ``.findings``; ``warn`` reports them (see
:mod:`dasf_geo.data._findings`); ``off`` checks nothing. The ``crs`` checks
are in :mod:`dasf_geo.data._crs`, the Demap checks in
:mod:`dasf_geo.data._demap`; this module re-exports both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import xarray as xr

from dasf_geo.data._cfnames import spatial_coords, standard_name_table
from dasf_geo.data._cfrules import (
    Context,
    Var,
    axis_attribute,
    axis_identification,
    conventions_attribute,
    degree_units,
    fillvalue_type,
    references,
    standard_name_in_table,
    standard_name_modifier,
    standard_name_units,
    time_calendar,
    time_units,
    units_parseable,
    value_range,
    variable_name,
)
from dasf_geo.data._crs import check_crs
from dasf_geo.data._demap import NC3_DTYPES, check_demap, coerce_demap
from dasf_geo.data._findings import (
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


#: The CF rules, in the order they run.
CF_RULES: tuple[Rule, ...] = (
    Rule(
        ("conventions-attribute",),
        "a global `Conventions` naming a CF version (Datasets only)",
        conventions_attribute,
        dataset=True,
    ),
    Rule(
        ("variable-name",),
        "names start with a letter; letters, digits, `_`",
        variable_name,
    ),
    Rule(
        ("units-parseable",),
        "`units` parse with UDUNITS-2 (cf-units)",
        units_parseable,
    ),
    Rule(
        ("time-calendar",),
        "the calendar of a time variable is a CF calendar",
        time_calendar,
    ),
    Rule(
        ("time-units",),
        "time coordinates (`standard_name: time`, `axis: T`) have units "
        '`"<unit> since <date>"` (not UDUNITS\' `after`/`from`/`ref`) that '
        "parse with cftime",
        time_units,
    ),
    Rule(
        ("standard-name-table",),
        "`standard_name` is in the CF standard name table (shipped offline, "
        "version 93); misspellings get the closest names",
        standard_name_in_table,
    ),
    Rule(
        ("standard-name-modifier",),
        "only the CF modifiers (`standard_error`, …)",
        standard_name_modifier,
    ),
    Rule(
        ("standard-name-units",),
        "`units` convertible to the canonical units of the standard name "
        "(reference-time units are valid for `time` and `forecast_reference_time`)",
        standard_name_units,
    ),
    Rule(
        ("fillvalue-type",),
        "`_FillValue`/`missing_value` have the variable's type",
        fillvalue_type,
    ),
    Rule(
        ("coordinates-reference",),
        "variables named in `coordinates` exist",
        references("coordinates"),
    ),
    Rule(
        ("bounds-reference",),
        "the variable named in `bounds` exists",
        references("bounds"),
    ),
    Rule(
        ("grid-mapping-reference",),
        "variables named in `grid_mapping` exist",
        references("grid_mapping"),
    ),
    Rule(("axis-attribute",), "`axis` is X, Y, Z or T", axis_attribute),
    Rule(
        ("axis-identification",),
        "coordinate-like dimensions carry attributes cf-xarray can identify",
        axis_identification,
    ),
    Rule(
        ("latitude-units",),
        "a latitude's units are degrees_north",
        degree_units("latitude"),
    ),
    Rule(
        ("latitude-range",),
        "latitude values (fill values left out) within [-90, 90]",
        value_range("latitude", -90, 90),
    ),
    Rule(
        ("longitude-units",),
        "a longitude's units are degrees_east",
        degree_units("longitude"),
    ),
    Rule(
        ("longitude-range",),
        "longitude values (fill values left out) within [-180, 360]",
        value_range("longitude", -180, 360),
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
    ctx = Context(ds, globals_, names)
    out: list[Finding] = []
    for rule in CF_RULES:
        if rule.dataset:
            out.extend(rule.run(ctx))
    per_var = [rule.run for rule in CF_RULES if not rule.dataset]
    for hname, var in ds.variables.items():
        v = Var(str(hname), var, hname in ds.coords)
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
