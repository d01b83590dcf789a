"""dasf_geo's CF checks against the IOOS compliance-checker, on its own corpus.

compliance-checker 6.1.0 lives in a cached venv (tests/interop/peers.py);
its test corpus (``compliance_checker/tests/data``: NetCDF files and CDL
files, which Debian's ``ncgen`` turns into NetCDF4) is checked by both. For
every finding class both cover, keyed by (file, variable) — or by file, or
by the standard name — :data:`CLASSES` says how the two are compared:

* ``both``: we report a key exactly when compliance-checker does;
* ``subset``: we report nothing it does not (it checks more, or more
  strictly: docs/data.md lists those differences);
* ``never``: it has no such rule, and the corpus has no such defect, so we
  must report nothing (a range check that fired on fill values did).

The files are read the way ``dasf-geo check`` reads them (time undecoded)
and, for the ``subset``/``never`` direction, also fully decoded as
``xr.open_dataset`` does by default.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import xarray as xr

from dasf_geo.cli._check import check_path
from dasf_geo.data import Finding, cf_findings
from tests.conftest import REPO_ROOT, timeout

pytestmark = [pytest.mark.interop, pytest.mark.timeout(900)]

HERE = Path(__file__).resolve().parent
#: corpus files xarray cannot open (compliance-checker reads them with
#: netCDF4 directly); `dasf-geo check` names the problem instead
UNREADABLE = {"ioos_1_1.nc": "already exists as a scalar variable"}

#: (file, class) -> keys only we report, and rightly so (docs/data.md):
KNOWN: dict[tuple[str, str], set[str]] = {
    # CF §2.5.1: missing_value has the variable's type; compliance-checker
    # 6.1 checks the type of _FillValue and valid_* only
    ("examples_3mf07.nc", "fillvalue-type"): {"flag", "haul", "time"},
    # 'station_name' and '43093' are not in the table; compliance-checker
    # skips the standard names of string variables and of cf_role variables
    ("examples_l01-met.nc", "standard-name-table"): {"station_name"},
    ("examples_sldmb_43093_agg.nc", "standard-name-table"): {"43093"},
    # DEPTH's coordinates name variables that do not exist; compliance-
    # checker looks at the coordinates of data variables only
    ("self-referencing-var.nc", "coordinates-reference"): {"DEPTH"},
}


@dataclass(frozen=True)
class Class:
    """One finding class: our rules and compliance-checker's messages."""

    name: str
    rules: frozenset[str]
    #: compliance-checker section name -> message regex (group 1: the key)
    theirs: tuple[tuple[str, str], ...]
    mode: str  # "both", "subset" or "never"
    #: the key of one of our findings (default: its variable)
    key: Callable[[Finding], str | None] = lambda f: f.variable
    #: further messages of compliance-checker that report the same defect
    #: (they count when we report it, but we need not report all of them)
    also: tuple[tuple[str, str], ...] = ()


def _sn_value(f: Finding) -> str | None:
    m = re.match(r"^'(\S+)[^']*' is not in the CF standard name table", f.message)
    return m.group(1) if m else None


def _conventions_missing(f: Finding) -> str | None:
    return "-" if f.message.startswith("missing") else None


def _conventions_version(f: Finding) -> str | None:
    return None if f.message.startswith("missing") else "-"


CLASSES = (
    Class(
        "units-parseable",
        frozenset({"units-parseable"}),
        (("§3.1 Units", r'^units for (\S+), ".*" are not recognized by UDUNITS'),),
        "both",
        also=(
            ("§4.1 Latitude Coordinate", r"^latitude variable '(\S+)' should define"),
            ("§4.2 Longitude Coordinate", r"^longitude variable '(\S+)' should def"),
        ),
    ),
    Class(
        "standard-name-table",
        frozenset({"standard-name-table"}),
        (
            (
                "§3.3 Standard Name",
                r"^standard_name (\S+) is not defined in Standard Name Table",
            ),
        ),
        "both",
        _sn_value,
    ),
    Class(
        "standard-name-modifier",
        frozenset({"standard-name-modifier"}),
        (
            (
                "§3.3 Standard Name",
                r'^Standard name modifier ".*" for variable (\S+) is not a valid',
            ),
        ),
        "both",
    ),
    Class(
        "standard-name-units",
        frozenset({"standard-name-units", "latitude-units", "longitude-units"}),
        (
            (
                "§3.1 Units",
                r'^Units "(?!None")[^"]*" for variable (\S+) must be convertible',
            ),
        ),
        "both",
        also=(
            ("§4.1 Latitude Coordinate", r"^latitude variable '(\S+)' should define"),
            ("§4.2 Longitude Coordinate", r"^longitude variable '(\S+)' should def"),
        ),
    ),
    Class(
        "time-units",
        frozenset({"time-units"}),
        (
            ("§3.1 Units", r"^(\S+) must be in a valid units format <unit> since"),
            ("§4.4 Time Coordinate", r"^(\S+) does not have correct time units"),
        ),
        "both",
    ),
    Class(
        "time-calendar",
        frozenset({"time-calendar"}),
        (("§4.4.1 Calendar", r"^(?!For time variable).*?(\S+)"),),
        "subset",
    ),
    Class(
        "variable-name",
        frozenset({"variable-name"}),
        (("§2.3 Naming Conventions", r"^variable (.+) should begin with a letter"),),
        "both",
    ),
    Class(
        "axis-attribute",
        frozenset({"axis-attribute"}),
        (("§4 Coordinate Types", r"^(\S+)'s axis attribute must be T, X, Y, or Z"),),
        "both",
    ),
    Class(
        "coordinates-reference",
        frozenset({"coordinates-reference"}),
        (
            (
                "§5 Coordinate Systems",
                r"^The 'coordinates' attribute of variable '(\S+)' references",
            ),
            (
                "§5 Coordinate Systems",
                r"^(\S+)'s auxiliary coordinate specified by the coordinates "
                r"attribute, .* is not a variable in this dataset",
            ),
        ),
        "both",
    ),
    Class(
        "conventions-missing",
        frozenset({"conventions-attribute"}),
        (("§2.6 Attributes", r"^§2.6.1 Conventions field is not present"),),
        "both",
        _conventions_missing,
    ),
    Class(
        "conventions-version",
        frozenset({"conventions-attribute"}),
        (("§2.6 Attributes", r"^§2.6.1 Conventions global attribute does not "),),
        "subset",
        _conventions_version,
    ),
    Class(
        "fillvalue-type",
        frozenset({"fillvalue-type"}),
        (
            (
                "§2.5 Variables",
                r"^Attribute '(?:_FillValue|missing_value)'.*?parent "
                r"variable '(\S+)'",
            ),
            (
                "§2.5.1. Missing data, valid and actual range of data",
                r"^.*?(?:_FillValue|missing_value).*?variable '?(\w+)",
            ),
            ("§2.2 Data Types", r"^The variable (\S+) failed"),
        ),
        "subset",
    ),
    Class(
        "axis-identification",
        frozenset({"axis-identification"}),
        (
            (
                "§5.1 Independent Latitude, Longitude, Vertical, and Time Axes",
                r"^Coordinate variable '(\S+)' should have standard_name",
            ),
            (
                "§3.3 Standard Name",
                r"^Attribute long_name or/and standard_name is highly recommended "
                r"for variable (\S+)",
            ),
        ),
        "subset",
    ),
    Class(
        "references",
        frozenset({"bounds-reference", "grid-mapping-reference"}),
        (
            ("§7.1 Cell Boundaries", r"^.*?(?:for|by) (\w+)"),
            (
                "§5.6 Horizontal Coordinate Reference Systems, Grid Mappings, "
                "Projections",
                r"^.*?variable (\w+)",
            ),
        ),
        "subset",
    ),
    Class(
        "coordinate-ranges",
        frozenset({"latitude-range", "longitude-range"}),
        (),
        "never",
    ),
)


def _covered_rules() -> set[str]:
    return {rule for c in CLASSES for rule in c.rules}


@pytest.fixture(scope="module")
def corpus(cc_python: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The corpus as NetCDF files (CDL through ncgen)."""
    ncgen = shutil.which("ncgen")
    if ncgen is None:
        pytest.skip(
            "ncgen is not installed (Debian: apt-get install netcdf-bin); it turns "
            "the corpus's CDL files into NetCDF"
        )
    source = Path(
        subprocess.run(
            [str(cc_python), str(HERE / "peers" / "cc_run.py"), "--corpus"],
            capture_output=True,
            text=True,
            check=True,
            timeout=timeout(60),
        ).stdout.strip()
    )
    out = tmp_path_factory.mktemp("cf-corpus")
    files: list[Path] = []
    for cdl in sorted(source.rglob("*.cdl")):
        target = out / (str(cdl.relative_to(source)).replace("/", "_")[:-4] + ".nc")
        subprocess.run(
            [ncgen, "-4", "-o", str(target), str(cdl)],
            check=True,
            capture_output=True,
            timeout=timeout(60),
        )
        files.append(target)
    for nc in sorted(source.rglob("*.nc")):
        target = out / str(nc.relative_to(source)).replace("/", "_")
        shutil.copyfile(nc, target)
        files.append(target)
    assert len(files) > 100
    return files


def _theirs(cc_python: Path, files: list[Path]) -> dict[str, dict]:
    proc = subprocess.run(
        [str(cc_python), str(HERE / "peers" / "cc_run.py"), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=timeout(300),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


def _their_keys(result: dict, patterns: tuple[tuple[str, str], ...]) -> set[str]:
    """The keys of compliance-checker's messages that match ``patterns``
    (group 1; ``-`` for a pattern without a group: the file itself)."""
    keys = set()
    for fail in result.get("fails", []):
        for section, pattern in patterns:
            if fail["name"] != section:
                continue
            for msg in fail["msgs"]:
                m = re.match(pattern, msg)
                if m:
                    keys.add(m.group(1) if m.lastindex else "-")
    return keys


def _our_keys(findings: list[Finding], cls: Class) -> set[str]:
    out = set()
    for f in findings:
        if f.rule in cls.rules:
            key = cls.key(f)
            if key is not None:
                out.add(key)
    return out


def _decoded_findings(path: Path) -> list[Finding]:
    """Our findings on the file opened fully decoded; none where xarray cannot
    decode it (times that are fill values, e.g.)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = xr.open_dataset(path)
        except (ValueError, OverflowError):
            return []
        with ds:
            return cf_findings(ds)


def test_our_cf_findings_agree_with_compliance_checker(cc_python, corpus):
    theirs = _theirs(cc_python, corpus)
    problems: list[str] = []
    compared = 0
    agreed: dict[str, int] = {c.name: 0 for c in CLASSES}
    for path in corpus:
        if path.name in UNREADABLE:
            checked = check_path(str(path), cf="strict", crs="off")
            assert UNREADABLE[path.name] in (checked.error or ""), checked
            continue
        result = theirs[str(path)]
        if "error" in result:
            continue  # compliance-checker could not load it: nothing to compare
        checked = check_path(str(path), cf="strict", crs="off")
        assert checked.error is None, (path.name, checked.error)
        ours = [f for _, _, f in checked.findings]
        decoded = _decoded_findings(path)
        compared += 1
        for cls in CLASSES:
            mine, cc = _our_keys(ours, cls), _their_keys(result, cls.theirs)
            explained = cc | _their_keys(result, cls.also)
            extra = mine - explained
            if cls.mode != "both":
                extra |= _our_keys(decoded, cls) - explained
            extra -= KNOWN.get((path.name, cls.name), set())
            agreed[cls.name] += len(mine & cc)
            if extra:
                problems.append(f"{path.name}: {cls.name}: only we report {extra}")
            if cls.mode == "both" and cc - mine:
                problems.append(
                    f"{path.name}: {cls.name}: only compliance-checker reports "
                    f"{cc - mine}"
                )
    assert compared > 90
    print(agreed)
    # the comparison is not vacuous: the corpus has defects of each class
    # we compare both ways, and both name them alike
    assert all(agreed[c.name] > 0 for c in CLASSES if c.mode == "both"), agreed
    assert problems == [], "\n".join(problems)


def test_every_rule_has_a_comparison_class():
    from dasf_geo.data import CF_RULES

    ours = {rule for r in CF_RULES for rule in r.ids}
    assert ours == _covered_rules()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


def _geo_service_reply(tmp_path: Path) -> Path:
    """The NetCDF3 reply of examples/geo_service.py's get_data, as sent."""
    import importlib.util

    import pybase64

    from dasf_geo import BackendModule

    spec = importlib.util.spec_from_file_location(
        "geo_service_example", REPO_ROOT / "examples" / "geo_service.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = BackendModule.create_model(
        members=[module.get_data], messaging_config=dict(topic="geo-check")
    )
    request = model.model_validate({"func_name": "get_data"})
    reply = json.loads(request().model_dump_json())
    path = tmp_path / "reply.nc"
    path.write_bytes(pybase64.b64decode(reply))
    assert path.read_bytes()[:4] == b"CDF\x01"  # NetCDF3, for Demap
    return path


def test_the_geo_service_reply_passes_both_checkers(cc_python, tmp_path):
    path = _geo_service_reply(tmp_path)
    checked = check_path(str(path), cf="strict", crs="required", demap=True)
    assert (checked.error, checked.findings) == (None, [])
    (result,) = _theirs(cc_python, [path]).values()
    messages = [m for fail in result["fails"] for m in fail["msgs"]]
    assert not [m for m in messages if "_FillValue" in m or "missing_value" in m]
    for cls in CLASSES:
        assert not _their_keys(result, cls.theirs) - {"-"} or cls.mode != "both", cls
