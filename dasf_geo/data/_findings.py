"""Findings of the CF, ``crs`` and Demap checks, and how they are reported.

A :class:`Finding` names the variable, the attribute and the rule, and may
carry a suggestion. A check run in ``warn``/``optional`` mode makes a
:class:`FindingReport` (the findings of one value, with the one-line text
that is logged and warned). Where the reports go depends on who checks:

* a plain call (``check_cf(ds)``): the text is logged at WARNING on the
  ``dasf_geo.data`` logger and a :class:`CFConventionWarning` /
  :class:`CRSWarning` is raised;
* inside :func:`collect_findings` (a backend handling a request, a client
  reading a reply): each value is checked once per label, each report is
  logged once and collected, and no Python warning is raised; the backend
  sends the collected reports back with its reply (see
  :func:`encode_reports`) and the caller raises them with
  :func:`warn_reports`.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import warnings
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import xarray as xr

from dasf_geo.exceptions import CFConventionError, CRSError, DataError

__all__ = [
    "CFConventionWarning",
    "CRSWarning",
    "DataWarning",
    "Finding",
    "FindingReport",
    "attach_reports",
    "collect_findings",
    "decode_reports",
    "encode_reports",
    "reports_of",
    "warn_reports",
]

logger = logging.getLogger("dasf_geo.data")

#: stand-in names for unnamed DataArrays (ours and xarray's); not user names
UNNAMED = "__dasf_unnamed__"
PLACEHOLDERS = frozenset({UNNAMED, "__xarray_dataarray_variable__"})
#: Most findings quoted in one report's text (all are in ``.findings``).
SUMMARY_FINDINGS = 20
#: Most reports and findings per report sent back with one reply.
MAX_REPORTS = 20
MAX_REPORT_FINDINGS = 50
#: Longest text of one message, suggestion or name decoded from a reply.
MAX_TEXT = 2000


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
        suggestion: a likely correct value (e.g. the closest standard
            names), or ``None``.
    """

    variable: str | None
    attribute: str | None
    rule: str
    message: str
    suggestion: str | None = None

    def __str__(self) -> str:
        if self.variable is None:
            where = "dataset" if self.attribute is None else "global attribute"
            where += f" {self.attribute!r}" if self.attribute else ""
        else:
            where = f"variable {self.variable!r}"
            if self.attribute:
                where += f" attribute {self.attribute!r}"
        hint = f"; {self.suggestion}" if self.suggestion else ""
        return f"{where}: {self.message}{hint} [rule {self.rule}]"

    def to_dict(self) -> dict[str, Any]:
        """The finding as a JSON-able dict (``suggestion`` only when set)."""
        out: dict[str, Any] = {
            "variable": self.variable,
            "attribute": self.attribute,
            "rule": self.rule,
            "message": self.message,
        }
        if self.suggestion is not None:
            out["suggestion"] = self.suggestion
        return out

    @classmethod
    def from_dict(cls, value: Any) -> Finding:
        """The inverse of :meth:`to_dict`.

        Raises:
            DataError: ``value`` is not such a dict (wrong types, missing
                ``rule`` or ``message``, texts above 2,000 characters).
        """
        if not isinstance(value, dict):
            raise DataError(f"a finding must be an object, got {type(value).__name__}")
        fields: dict[str, str | None] = {}
        for key in ("variable", "attribute", "rule", "message", "suggestion"):
            item = value.get(key)
            required = key in ("rule", "message")
            if item is None and not required:
                fields[key] = None
                continue
            if not isinstance(item, str) or len(item) > MAX_TEXT:
                raise DataError(
                    f"a finding's {key!r} must be a string of at most {MAX_TEXT} "
                    f"characters, got {type(item).__name__}"
                )
            fields[key] = item
        return cls(**fields)  # type: ignore[arg-type]


def summary(kind: str, findings: list[Finding], label: str | None) -> str:
    """The one-line text of a report: ``label: n kind finding(s): …``."""
    head = f"{label}: " if label else ""
    lines = "; ".join(str(f) for f in findings[:SUMMARY_FINDINGS])
    extra = len(findings) - SUMMARY_FINDINGS
    more = f" (and {extra} more)" if extra > 0 else ""
    return f"{head}{len(findings)} {kind} finding(s): {lines}{more}"


@dataclass
class FindingReport:
    """The findings of one check of one value.

    Attributes:
        kind: ``CF`` or ``crs``.
        label: what was checked (an argument's name, ``result``), or None.
        message: the text that is logged and warned.
        findings: the findings.
    """

    kind: str
    label: str | None
    message: str
    findings: list[Finding] = field(default_factory=list)

    def warning(self) -> DataWarning:
        """The :class:`CFConventionWarning` or :class:`CRSWarning` to raise."""
        cls = CFConventionWarning if self.kind == "CF" else CRSWarning
        return cls(self.message, self.findings)

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-able dict (at most 50 findings)."""
        return {
            "kind": self.kind,
            "label": self.label,
            "message": self.message,
            "findings": [f.to_dict() for f in self.findings[:MAX_REPORT_FINDINGS]],
        }


def check_mode(mode: str, allowed: Iterable[str], option: str) -> None:
    """Raise a ConfigurationError unless ``mode`` is one of ``allowed``."""
    allowed = tuple(allowed)
    if mode not in allowed:
        from dasf_geo.exceptions import ConfigurationError

        raise ConfigurationError(
            f"{option}={mode!r} is not a valid mode; use one of {', '.join(allowed)}"
        )


def as_dataset(obj: xr.Dataset | xr.DataArray) -> xr.Dataset:
    """A Dataset view of ``obj`` (a DataArray's attrs become the globals).

    Raises:
        DataError: ``obj`` is neither a Dataset nor a DataArray.
    """
    if isinstance(obj, xr.Dataset):
        return obj
    if isinstance(obj, xr.DataArray):
        name = obj.name if obj.name is not None else UNNAMED
        if name in obj.coords:
            name = UNNAMED
        ds = obj.to_dataset(name=name)
        ds.attrs = dict(obj.attrs)
        return ds
    raise DataError(
        f"expected an xarray Dataset or DataArray, got {type(obj).__name__}"
    )


class _Collector:
    """The reports of one :func:`collect_findings` block."""

    def __init__(self) -> None:
        self.reports: list[FindingReport] = []
        # (id, kind, label) of values checked in this block; the values are
        # kept so that an id is not reused by another object meanwhile
        self.seen: set[tuple[int, str, str | None]] = set()
        self.keep: list[Any] = []


_collector: contextvars.ContextVar[_Collector | None] = contextvars.ContextVar(
    "dasf_geo_findings", default=None
)


@contextlib.contextmanager
def collect_findings() -> Iterator[list[FindingReport]]:
    """Collect the reports of ``warn``/``optional`` checks in this block.

    Inside the block a value is checked once per kind and label (a result
    checked when it is validated is not checked again when it is
    serialized), each report is logged once at WARNING on the
    ``dasf_geo.data`` logger and appended to the yielded list, and no
    Python warning is raised (the caller of the block decides, e.g. with
    :func:`warn_reports`). Strict modes still raise. Blocks nest: an inner
    block collects for itself.
    """
    collector = _Collector()
    token = _collector.set(collector)
    try:
        yield collector.reports
    except BaseException as exc:
        # e.g. a call that failed after its arguments were checked: the
        # error reply carries the findings too (see reports_of)
        attach_reports(exc, collector.reports)
        raise
    finally:
        _collector.reset(token)


#: the attribute of an exception that holds the reports collected before it
_REPORTS_ATTRIBUTE = "__dasf_geo_findings__"


def attach_reports(exc: BaseException, reports: Iterable[FindingReport]) -> None:
    """Let ``exc`` carry ``reports`` (read them with :func:`reports_of`).

    They replace what ``exc`` carried: an exception object raised again (a
    module-level instance, say) carries the reports of the last block it
    left, never those of an earlier request. Exceptions that take no
    attributes are left as they are.
    """
    with contextlib.suppress(AttributeError, TypeError):
        setattr(exc, _REPORTS_ATTRIBUTE, list(reports))


def reports_of(exc: BaseException | None) -> list[FindingReport]:
    """The reports attached to ``exc`` and to the exceptions it was raised
    from or while handling (``__cause__``/``__context__``), in that order.

    :func:`collect_findings` attaches the reports of a block that ends with
    an exception, so the error reply of a failed call can carry the
    findings of its arguments.
    """
    out: list[FindingReport] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        out.extend(getattr(exc, _REPORTS_ATTRIBUTE, ()))
        exc = exc.__cause__ or exc.__context__
    return out


def already_checked(obj: Any, kind: str, label: str | None) -> bool:
    """Inside :func:`collect_findings`: True if ``obj`` was checked already
    for ``kind`` under ``label`` (and remember it as checked now)."""
    collector = _collector.get()
    if collector is None:
        return False
    key = (id(obj), kind, label)
    if key in collector.seen:
        return True
    collector.seen.add(key)
    collector.keep.append(obj)
    return False


#: values a validator checked, per (cf, crs) mode: serializing one of them
#: again (an argument a caller sends, a result a backend replies) does not
#: check it twice
_validated: dict[tuple[str, str], weakref.WeakValueDictionary[int, Any]] = {}


def mark_validated(obj: Any, cf: str, crs: str) -> None:
    """Remember that a validator checked ``obj`` with these modes."""
    memo = _validated.setdefault((cf, crs), weakref.WeakValueDictionary())
    with contextlib.suppress(TypeError):  # not weak-referenceable: check again
        memo[id(obj)] = obj


def was_validated(obj: Any, cf: str, crs: str) -> bool:
    """Whether a validator checked this very object with these modes."""
    memo = _validated.get((cf, crs))
    return memo is not None and memo.get(id(obj)) is obj


def report(
    findings: list[Finding], raise_it: bool, kind: str, label: str | None
) -> list[Finding]:
    """Raise, collect or warn ``findings`` of one check (see the module).

    Raises:
        CFConventionError, CRSError: ``raise_it`` and there are findings.
    """
    if not findings:
        return findings
    msg = summary(kind, findings, label)
    if raise_it:
        exc = CFConventionError if kind == "CF" else CRSError
        raise exc(msg, findings)
    logger.warning("%s", msg)
    collector = _collector.get()
    found = FindingReport(kind, label, msg, list(findings))
    if collector is not None:
        collector.reports.append(found)
    else:
        warnings.warn(found.warning(), stacklevel=3)
    return findings


def encode_reports(reports: list[FindingReport], limit: int = 64 * 1024) -> str:
    """The JSON text of ``reports`` for a reply property.

    At most 20 reports of at most 50 findings; above ``limit`` characters
    the findings are cut to 5 per report and the texts shortened, then
    reports are left out from the end, so a property never grows with the
    data.
    """
    dicts = [r.to_dict() for r in reports[:MAX_REPORTS]]
    text = json.dumps(dicts)
    if len(text) > limit:
        for item in dicts:
            item["findings"] = item["findings"][:5]
            item["message"] = item["message"][:MAX_TEXT]
        text = json.dumps(dicts)
    while len(text) > limit and dicts:
        dicts.pop()
        text = json.dumps(dicts)
    return text


def decode_reports(text: Any) -> list[FindingReport]:
    """The reports in a reply property; whatever is malformed is left out.

    A property from a peer is not trusted: entries that are not reports
    (wrong types, unknown kinds, oversized texts) are dropped, and at most
    20 reports of at most 50 findings are read.
    """
    if not isinstance(text, str) or len(text) > 4_000_000:
        return []
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested too deep
        return []
    if not isinstance(raw, list):
        return []
    out: list[FindingReport] = []
    for item in raw[:MAX_REPORTS]:
        if not isinstance(item, dict) or item.get("kind") not in ("CF", "crs"):
            continue
        label, message = item.get("label"), item.get("message")
        findings = item.get("findings")
        if not isinstance(message, str) or len(message) > 20 * MAX_TEXT:
            continue
        if label is not None and (not isinstance(label, str) or len(label) > 200):
            continue
        if not isinstance(findings, list):
            continue
        parsed = []
        for entry in findings[:MAX_REPORT_FINDINGS]:
            with contextlib.suppress(DataError):
                parsed.append(Finding.from_dict(entry))
        out.append(FindingReport(item["kind"], label, message, parsed))
    return out


def warn_reports(reports: Iterable[FindingReport], stacklevel: int = 2) -> None:
    """Raise each report as its :class:`CFConventionWarning`/:class:`CRSWarning`."""
    for found in reports:
        warnings.warn(found.warning(), stacklevel=stacklevel + 1)
