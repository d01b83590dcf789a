"""``dasf-geo check``: the CF, crs and Demap checks on files, stores and URLs.

::

    dasf-geo check data.nc other.nc
    dasf-geo check store.zarr --format json
    dasf-geo check https://example.org/thredds/dodsC/sst --cf warn
    dasf-geo check grid.nc --demap --fix grid-demap.nc

Each ``PATH`` is a NetCDF3/NetCDF4 file, a zarr store (a directory) or an
OPeNDAP/HTTP URL xarray can open; a NetCDF4 file or zarr store with groups
is checked group by group. Values are read undecoded in time (the file's own
``units``) and with fill values masked, as ``xr.open_dataset`` does.

Severity: with ``--cf strict`` (the default) CF findings are errors, with
``--cf warn`` warnings; ``--crs required`` makes a missing or bad global
``crs`` an error, ``--crs optional`` (the default) reports crs problems as
warnings and accepts a missing one; ``--demap`` adds the Demap rules as
errors. Exit status: 0 when nothing is an error, 1 when a finding is an
error, 2 when a path cannot be read (which wins).

``--fix OUT`` writes a Demap-ready NetCDF3 copy of the (single) ``PATH``
with :func:`~dasf_geo.data.coerce_demap` and says what it changed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dasf_geo.cli._common import positive_seconds, print_error
from dasf_geo.exceptions import DasfGeoError

__all__ = ["add_parser", "check_path", "run"]

#: Most groups of one file that are checked.
MAX_GROUPS = 10_000


def add_parser(sub: Any) -> None:
    """Register ``dasf-geo check`` with the sub-command parsers ``sub``."""
    parser = sub.add_parser(
        "check",
        help="check NetCDF files, zarr stores and OPeNDAP URLs (CF, crs, Demap)",
        description="Run dasf_geo's CF, crs and Demap checks on data files and "
        "print one line per finding. Exit status: 0 clean, 1 findings that are "
        "errors, 2 a path cannot be read.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="file, store or URL")
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format"
    )
    parser.add_argument(
        "--cf",
        choices=("strict", "warn", "off"),
        default="strict",
        help="CF findings are errors (strict, default), warnings, or not checked",
    )
    parser.add_argument(
        "--crs",
        choices=("required", "optional", "off"),
        default="optional",
        help="the global crs: required (missing or bad is an error), optional "
        "(default: problems are warnings) or off",
    )
    parser.add_argument(
        "--demap", action="store_true", help="also check that Demap can draw it"
    )
    parser.add_argument(
        "--fix",
        metavar="OUT",
        help="write a Demap-ready NetCDF3 copy of the one PATH to OUT",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=60.0,
        metavar="SECONDS",
        help="longest wait for one path to open (URLs; default 60)",
    )
    parser.set_defaults(run=run)


@dataclass
class Checked:
    """What checking one path found.

    Attributes:
        path: the path or URL as given.
        findings: ``(severity, group, finding)``; group is ``/`` for the root.
        error: why the path could not be read, or None.
    """

    path: str
    findings: list[tuple[str, str, Any]] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the result."""
        return {
            "path": self.path,
            "error": self.error,
            "findings": [
                {"severity": sev, "group": group, **f.to_dict()}
                for sev, group, f in self.findings
            ],
        }


def _is_url(path: str) -> bool:
    return path.startswith(("http://", "https://", "dap2://", "dap4://"))


def _open_local(path: str) -> Any:
    """The DataTree (groups) or Dataset at a local path.

    Raises:
        DasfGeoError: not there, not NetCDF or zarr, truncated, corrupt.
    """
    import xarray as xr

    from dasf_geo.data import detect_format
    from dasf_geo.data._netcdf import verify_netcdf3
    from dasf_geo.exceptions import DataError

    p = Path(path)
    if not p.exists():
        raise DasfGeoError("no such file or directory")
    if p.is_dir():
        if not any((p / name).exists() for name in (".zgroup", ".zattrs", "zarr.json")):
            raise DasfGeoError("a directory that is not a zarr store")
        return xr.open_datatree(p, engine="zarr", decode_times=False)
    with p.open("rb") as fh:
        head = fh.read(8)
    try:
        fmt = detect_format(head)
    except DataError as exc:
        raise DasfGeoError(str(exc)) from None
    if fmt == "zarr":
        raise DasfGeoError("zipped zarr; unzip it and check the store")
    if fmt == "netcdf4":
        return xr.open_datatree(p, engine="netcdf4", decode_times=False)
    try:
        verify_netcdf3(p, "it")
    except DataError as exc:
        raise DasfGeoError(str(exc).removeprefix("it is ")) from None
    return xr.open_dataset(p, decode_times=False)


def _open_url(path: str) -> Any:
    import xarray as xr

    try:
        return xr.open_dataset(path, decode_times=False, engine="netcdf4")
    except OSError:
        if path.startswith(("http://", "https://")) and "#" not in path:
            # a plain HTTP file: the netCDF library reads it with byte ranges
            return xr.open_dataset(
                path + "#mode=bytes", decode_times=False, engine="netcdf4"
            )
        raise


def _probe(url: str, timeout: float) -> None:
    """Fail fast, naming the problem, when a URL's server does not answer."""
    import urllib.error
    import urllib.request

    target = url.split("#", 1)[0]
    if not target.startswith(("http://", "https://")):
        return
    request = urllib.request.Request(target, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            pass
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 410, 401, 403):
            raise DasfGeoError(f"the server answered {exc.code} {exc.reason}") from None
        # a DAP server may refuse HEAD on the dataset URL: let xarray try
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DasfGeoError(f"the server does not answer ({reason})") from None


def open_path(path: str, timeout: float) -> Any:
    """Open ``path`` within ``timeout`` seconds; a Dataset or a DataTree.

    Raises:
        DasfGeoError: the path cannot be read; the message says why.
    """
    if _is_url(path):
        _probe(path, timeout)
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = _open_url(path) if _is_url(path) else _open_local(path)
        except BaseException as exc:  # reported on the calling thread
            box["error"] = exc

    thread = threading.Thread(target=work, name="dasf-geo-check-open", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise DasfGeoError(f"could not open it within {timeout:g} s")
    error = box.get("error")
    if isinstance(error, DasfGeoError):
        raise error
    if error is not None:
        raise DasfGeoError(_describe(error)) from None
    return box["value"]


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "HDF error" in text or "NetCDF: HDF error" in text:
        return "an HDF5 file that is not NetCDF4, or a truncated NetCDF4 file"
    if "NetCDF: Unknown file format" in text or "not a valid NetCDF 3" in text:
        return "not NetCDF, or a truncated or corrupt file"
    return f"cannot be read ({type(exc).__name__}: {text})"


def _datasets(value: Any) -> list[tuple[str, Any, set[str]]]:
    """``(group path, Dataset, own variable names)`` of a Dataset, or of each
    node of a DataTree (with the coordinates it inherits from its parents,
    which are reported where they are defined)."""
    import xarray as xr

    if isinstance(value, xr.Dataset):
        return [("/", value, {str(n) for n in value.variables})]
    nodes = list(value.subtree)
    if len(nodes) > MAX_GROUPS:
        raise DasfGeoError(
            f"{len(nodes)} groups, more than the {MAX_GROUPS} that are checked"
        )
    return [
        (
            node.path,
            node.to_dataset(inherit=True),
            {str(n) for n in node.to_dataset(inherit=False).variables},
        )
        for node in nodes
    ]


def _plain(value: Any) -> str:
    """A numpy scalar as people write it (``nan``, ``0``), else its repr."""
    item = getattr(value, "item", None)
    return repr(item() if callable(item) else value)


def _missing_chunks(path: str) -> list[Any]:
    """Findings for arrays of a local zarr store whose chunks are not all
    there (they read as the fill value; a store written with empty chunks
    skipped has them missing on purpose, so these are warnings)."""
    if _is_url(path) or not Path(path).is_dir():
        return []
    import zarr

    from dasf_geo.data import Finding

    out = []
    group = zarr.open_group(path, mode="r")
    for name, array in group.arrays() if hasattr(group, "arrays") else ():
        total, present = array.nchunks, array.nchunks_initialized
        if present < total:
            out.append(
                Finding(
                    str(name),
                    None,
                    "zarr-missing-chunks",
                    f"{total - present} of {total} chunks are not in the store; "
                    f"they read as the fill value {_plain(array.fill_value)}",
                    "copy the store again if it was not written sparse on purpose",
                )
            )
    return out


def check_path(
    path: str,
    cf: str = "strict",
    crs: str = "optional",
    demap: bool = False,
    timeout: float = 60.0,
) -> Checked:
    """Check one path; never raises for bad data (see :class:`Checked`)."""
    from dasf_geo.data import cf_findings, check_demap, crs_findings

    result = Checked(path)
    try:
        value = open_path(path, timeout)
        try:
            groups = _datasets(value)
            tree_names = {n for _, _, own in groups for n in own}
            for group, ds, own in groups:
                root = group == "/"
                if cf != "off" and (own or root):
                    sev = "error" if cf == "strict" else "warning"
                    found = cf_findings(ds, globals_=root, names=tree_names)
                    result.findings += [
                        (sev, group, f)
                        for f in found
                        if f.variable is None or f.variable in own
                    ]
                if crs != "off" and root:
                    sev = "error" if crs == "required" else "warning"
                    found = crs_findings(ds, required=crs == "required")
                    result.findings += [(sev, group, f) for f in found]
                if demap and root:
                    result.findings += [("error", group, f) for f in check_demap(ds)]
            result.findings += [("warning", "/", f) for f in _missing_chunks(path)]
        finally:
            close = getattr(value, "close", None)
            if close is not None:
                close()
    except DasfGeoError as exc:
        result.error = str(exc)
    except Exception as exc:  # reading values can fail late (a missing chunk)
        result.error = _describe(exc)
    return result


class _CannotFix(DasfGeoError):
    """The data cannot be made Demap-ready (exit status 1, not 2)."""


def _fix(path: str, out: str, timeout: float) -> list[str]:
    """Write the Demap-ready copy; return what changed.

    Raises:
        _CannotFix: coerce_demap cannot fix the data.
        DasfGeoError: cannot read or write.
    """
    import xarray as xr

    from dasf_geo.data import coerce_demap, write_netcdf
    from dasf_geo.exceptions import DataError

    value = open_path(path, timeout)
    try:
        ds = value if isinstance(value, xr.Dataset) else value.to_dataset()
        ds = xr.decode_cf(ds).load()
        try:
            fixed = coerce_demap(ds)
        except DataError as exc:
            raise _CannotFix(str(exc)) from None
        changes = []
        if ds.attrs.get("crs") != fixed.attrs.get("crs"):
            before, after = ds.attrs.get("crs"), fixed.attrs.get("crs")
            changes.append(f"crs: {before!r} -> {after!r}")
        for name in fixed.variables:
            old, new = ds[name], fixed[name]
            label = f"variable {str(name)!r}"
            if old.dtype != new.dtype:
                changes.append(f"{label}: dtype {old.dtype} -> {new.dtype}")
            if old.dims != new.dims:
                changes.append(f"{label}: dims {old.dims} -> {new.dims}")
        try:
            write_netcdf(fixed, out, format="netcdf3")
        except (DataError, OSError) as exc:
            raise DasfGeoError(f"cannot write {out}: {exc}") from None
        return changes
    finally:
        value.close()


def _line(path: str, severity: str, group: str, finding: Any) -> str:
    where = path if group == "/" else f"{path} group {group}"
    return f"{where}: {severity}: {finding}"


def run(args: argparse.Namespace) -> int:
    """Run ``dasf-geo check``; return the exit code."""
    if args.fix and len(args.paths) != 1:
        print_error(DasfGeoError("--fix takes exactly one PATH"))
        return 2
    results = [
        check_path(p, args.cf, args.crs, args.demap, args.timeout) for p in args.paths
    ]
    if args.format == "json":
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        for r in results:
            if r.error is not None:
                print(f"{r.path}: cannot read: {r.error}", file=sys.stderr)
            for severity, group, finding in r.findings:
                print(_line(r.path, severity, group, finding))
    code = 0
    if any(sev == "error" for r in results for sev, _, _ in r.findings):
        code = 1
    if any(r.error is not None for r in results):
        code = 2
    if args.fix and code != 2:
        try:
            changes = _fix(args.paths[0], args.fix, args.timeout)
        except DasfGeoError as exc:
            print_error(DasfGeoError(f"--fix: {exc}"))
            return 1 if isinstance(exc, _CannotFix) else 2
        for change in changes or ["nothing to change"]:
            print(f"fixed: {change}", file=sys.stderr)
        print(f"wrote {os.fspath(args.fix)}", file=sys.stderr)
    return code
