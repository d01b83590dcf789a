"""More of xarray and pandas: ``xr.DataTree``, ``pd.Series`` and boolean
attributes through NetCDF.

* Boolean attributes: NetCDF has no boolean type (xarray stores ``True`` as
  the byte 1 in NetCDF3, and refuses it for NetCDF4). They are written as
  ``int8`` and listed in the global attribute ``dasf_geo_types``, so that
  they come back as ``True``/``False``. The attribute is written only when
  a boolean attribute exists, so NetCDF of ordinary data (and the replies
  Demap and demessaging read) does not change; a reader that does not know
  it sees an ordinary attribute.
* ``datetime64`` resolutions: NetCDF stores instants, not numpy's unit,
  and xarray decodes them to ``ns``. Variables in ``s`` or ``ms`` are
  listed in ``dasf_geo_types`` (``"datetime": {variable: unit}``) and come
  back in their unit. ``ns`` (what xarray decodes files to) and ``us``
  (what pandas 3 makes by default) are not listed: xarray writes the same
  bytes for both, and the NetCDF of ordinary data stays byte for byte what
  xarray, demessaging and Demap write and read. So a ``us`` variable comes
  back as ``ns`` (the same instants); a reader that lists ``us`` itself is
  honoured.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np
import pandas as pd
import pybase64
import xarray as xr

from dasf_geo.data._frames import FRAME_FORMAT, decode_dataframe, encode_dataframe
from dasf_geo.exceptions import DataError

__all__ = [
    "MARKED_TIME_UNITS",
    "MAX_GROUPS",
    "TYPES_ATTRIBUTE",
    "decode_types",
    "encode_datatree",
    "encode_series",
    "encode_types",
    "to_datatree",
    "to_series",
]

#: the global attribute that lists boolean attributes and time resolutions
TYPES_ATTRIBUTE = "dasf_geo_types"
#: Most groups of a DataTree that are sent or read.
MAX_GROUPS = 10_000
#: datetime64 units listed in ``dasf_geo_types`` when written (see above)
MARKED_TIME_UNITS = ("s", "ms")
#: datetime64 units a ``dasf_geo_types`` listing may restore
_UNITS = ("s", "ms", "us")


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def encode_types(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` ready for NetCDF: boolean attributes as int8, listed with the
    resolutions of ``s``/``ms`` datetime variables in ``dasf_geo_types``.

    Returns ``ds`` itself when there is nothing to list.
    """
    bools: list[list[str]] = []
    times: dict[str, str] = {}
    for key, value in ds.attrs.items():
        if _is_bool(value):
            bools.append(["", str(key)])
    for name, var in ds.variables.items():
        for key, value in var.attrs.items():
            if _is_bool(value):
                bools.append([str(name), str(key)])
        if var.dtype.kind == "M":
            unit = np.datetime_data(var.dtype)[0]
            if unit in MARKED_TIME_UNITS:
                times[str(name)] = unit
    if not bools and not times:
        return ds
    out = ds.copy(deep=False)
    out.attrs = dict(ds.attrs)
    for where, key in bools:
        target = out.attrs if not where else out.variables[where].attrs
        target[key] = np.int8(bool(target[key]))
    out.attrs[TYPES_ATTRIBUTE] = json.dumps({"bool_attrs": bools, "datetime": times})
    return out


def decode_types(ds: xr.Dataset) -> xr.Dataset:
    """The inverse of :func:`encode_types` on a decoded Dataset.

    A ``dasf_geo_types`` attribute that is not ours (not JSON, wrong
    shape, naming what is not there) is left alone as an attribute.
    """
    raw = ds.attrs.get(TYPES_ATTRIBUTE)
    if not isinstance(raw, str):
        return ds
    try:
        spec = json.loads(raw)
        bools = [(str(w), str(k)) for w, k in spec.get("bool_attrs", [])]
        times = {str(k): str(v) for k, v in dict(spec.get("datetime", {})).items()}
    except (ValueError, TypeError, AttributeError, RecursionError):
        return ds
    missing = [w for w, _ in bools if w and w not in ds.variables]
    missing += [n for n in times if n not in ds.variables]
    if missing or any(u not in _UNITS for u in times.values()):
        return ds
    out = ds.copy(deep=False)
    out.attrs = {k: v for k, v in ds.attrs.items() if k != TYPES_ATTRIBUTE}
    for where, key in bools:
        target = out.attrs if not where else out.variables[where].attrs
        if key in target:
            target[key] = bool(target[key])
    for name, unit in times.items():
        var = out[name]
        if var.dtype.kind == "M":
            converted = var.astype(f"datetime64[{unit}]")
            if name in out.coords:
                out = out.assign_coords({name: converted})
            else:
                out[name] = converted
    return out


# --------------------------------------------------------------------------
# pandas.Series


def encode_series(series: pd.Series) -> dict[str, Any]:
    """The typed columnar form of a DataFrame with the one column, plus
    ``"series": true``.

    Law: ``to_series(encode_series(s))`` equals ``s`` exactly (name, index,
    dtype, attrs).

    Raises:
        DataError: not a Series, or its values cannot be encoded exactly.
    """
    if not isinstance(series, pd.Series):
        raise DataError(f"expected a pandas Series, got {type(series).__name__}")
    frame = series.to_frame(name=series.name)
    frame.attrs = dict(series.attrs)
    out = encode_dataframe(frame)
    out["series"] = True
    return out


def to_series(value: Any, label: str | None = None) -> pd.Series:
    """Accept a Series, its wire form, or a one-column DataFrame (or form).

    Raises:
        DataError: anything else; the message starts with ``label``.
    """
    prefix = f"{label}: " if label else ""
    if isinstance(value, pd.Series):
        return value
    frame: Any = value
    if isinstance(value, dict) and value.get("format") == FRAME_FORMAT:
        try:
            frame = decode_dataframe(value)
        except DataError as exc:
            raise DataError(f"{prefix}{exc}") from exc
    if isinstance(frame, pd.DataFrame):
        if frame.shape[1] != 1:
            raise DataError(
                f"{prefix}a Series is a DataFrame with one column, got "
                f"{frame.shape[1]} columns"
            )
        series = frame.iloc[:, 0]
        series.attrs = dict(frame.attrs)
        return series
    raise DataError(
        f'{prefix}expected a pandas Series (object with "format": '
        f'"{FRAME_FORMAT}" and "series": true), got {type(value).__name__}'
    )


# --------------------------------------------------------------------------
# xarray.DataTree


def _count_groups(tree: xr.DataTree) -> int:
    count = 0
    for _ in tree.subtree:
        count += 1
        if count > MAX_GROUPS:
            break
    return count


def _limit(tree: xr.DataTree, what: str) -> None:
    if _count_groups(tree) > MAX_GROUPS:
        raise DataError(
            f"{what} has more than {MAX_GROUPS} groups "
            "(dasf_geo.data._types.MAX_GROUPS); send fewer, larger groups"
        )


def encode_datatree(tree: xr.DataTree) -> bytes:
    """NetCDF4 bytes of ``tree`` (one group per node).

    Law: ``to_datatree(encode_datatree(t))`` is identical to ``t`` for what
    NetCDF4 holds exactly.

    Raises:
        DataError: not a DataTree, too many groups, or a node NetCDF4
            cannot hold (the message names the group).
    """
    if not isinstance(tree, xr.DataTree):
        raise DataError(f"expected an xarray DataTree, got {type(tree).__name__}")
    _limit(tree, "the DataTree")
    for node in tree.subtree:
        clash = set(node.children) & {str(d) for d in node.dims}
        if clash:
            name = sorted(clash)[0]
            raise DataError(
                f"group {node.path.rstrip('/')}/{name} is named like a dimension "
                f"of its parent group {node.path!r}; NetCDF4 cannot store both, "
                "rename one"
            )
    encoded = tree.copy()
    for node in encoded.subtree:
        ds = encode_types(node.to_dataset(inherit=False))
        if ds is not node.to_dataset(inherit=False):
            node.dataset = ds
    fd, path = tempfile.mkstemp(prefix="dasf-geo-tree-", suffix=".nc")
    os.close(fd)
    try:
        try:
            encoded.to_netcdf(path, format="NETCDF4", engine="netcdf4")
        except Exception as exc:  # xarray's encoders raise many kinds
            raise DataError(
                f"NetCDF4 cannot encode the DataTree: {type(exc).__name__}: {exc}"
            ) from exc
        with open(path, "rb") as fh:
            return fh.read()
    finally:
        os.unlink(path)


def _read_tree(raw: bytes | bytearray | memoryview, what: str) -> xr.DataTree:
    head = bytes(memoryview(raw)[:8])
    if not head.startswith(b"\x89HDF"):
        if head.startswith(b"CDF"):
            from dasf_geo.data._netcdf import read_netcdf

            return xr.DataTree(dataset=read_netcdf(raw))
        raise DataError(
            f"{what} is not NetCDF4 (starts with {head[:4]!r}); send base64 of "
            "the bytes of tree.to_netcdf()"
        )
    fd, path = tempfile.mkstemp(prefix="dasf-geo-tree-", suffix=".nc")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        try:
            with xr.open_datatree(path, engine="netcdf4") as opened:
                _limit(opened, what)
                # each node's own variables, read now: the file goes away
                nodes = {
                    node.path: node.to_dataset(inherit=False).load()
                    for node in opened.subtree
                }
        except DataError:
            raise
        except Exception as exc:
            raise DataError(
                f"cannot read {what}: {type(exc).__name__}: {exc}; the bytes are "
                "truncated or corrupt"
            ) from exc
    finally:
        os.unlink(path)
    for path_, ds in nodes.items():
        for var in ds.variables.values():
            var.encoding = {}
        nodes[path_] = decode_types(ds)
    tree = xr.DataTree.from_dict(nodes)
    return tree


def to_datatree(value: Any, label: str | None = None) -> xr.DataTree:
    """Accept a DataTree, a Dataset (a tree of one node), base64 text or
    bytes of NetCDF4 with groups (or NetCDF3), or a ``{path: Dataset}`` dict.

    Raises:
        DataError: anything else, or undecodable content; the message
            starts with ``label``.
    """
    what = label or "the DataTree"
    prefix = f"{label}: " if label else ""
    if isinstance(value, xr.DataTree):
        _limit(value, what)
        return value
    if isinstance(value, xr.Dataset):
        return xr.DataTree(dataset=value)
    if isinstance(value, str):
        try:
            value = pybase64.b64decode(value, validate=True)
        except ValueError as exc:
            raise DataError(
                f"{prefix}the string is not base64-encoded NetCDF ({exc})"
            ) from exc
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _read_tree(value, what)
    if (
        isinstance(value, dict)
        and value
        and all(
            isinstance(k, str) and isinstance(v, (xr.Dataset, xr.DataTree, type(None)))
            for k, v in value.items()
        )
    ):
        if len(value) > MAX_GROUPS:
            raise DataError(f"{prefix}more than {MAX_GROUPS} groups")
        try:
            return xr.DataTree.from_dict(value)
        except Exception as exc:  # from_dict fails in several ways
            raise DataError(
                f"{prefix}the dict is not a DataTree.from_dict() form "
                f"({type(exc).__name__}: {exc})"
            ) from exc
    raise DataError(
        f"{prefix}expected an xarray DataTree as base64 NetCDF4 text, bytes, a "
        f"Dataset or a {{path: Dataset}} dict, got {type(value).__name__}"
    )


def _b64(data: bytes) -> str:
    return pybase64.b64encode(data).decode("ascii")


def check_tree(tree: xr.DataTree, options: Any, label: str | None) -> None:
    """CF (each group) and crs (the root) checks of a DataTree.

    The CF findings of all groups make one report; a variable of a group
    is named by its path (``/forecast/t``). Modes as for Datasets.

    Raises:
        CFConventionError, CRSError: strict/required and findings.
    """
    from dasf_geo.data._checks import cf_findings
    from dasf_geo.data._crs import check_crs
    from dasf_geo.data._findings import (
        Finding,
        already_checked,
        mark_validated,
        report,
        was_validated,
    )

    cf, crs = options.cf or "warn", options.crs or "optional"
    if was_validated(tree, cf, crs):
        return
    if cf != "off" and not already_checked(tree, "CF", label):
        nodes = list(tree.subtree)
        names = {
            str(n) for node in nodes for n in node.to_dataset(inherit=False).variables
        }
        findings: list[Finding] = []
        for node in nodes:
            own = {str(n) for n in node.to_dataset(inherit=False).variables}
            root = node.is_root
            for f in cf_findings(node.to_dataset(inherit=True), root, names):
                if f.variable is not None and f.variable not in own:
                    continue
                if not root and f.variable is not None:
                    f = Finding(
                        f"{node.path}/{f.variable}",
                        f.attribute,
                        f.rule,
                        f.message,
                        f.suggestion,
                    )
                findings.append(f)
        report(findings, cf == "strict", "CF", label)
    if crs != "off":
        check_crs(tree.to_dataset(inherit=False), crs, label=label)
    mark_validated(tree, cf, crs)


def _validate_tree(value: Any, options: Any, label: str | None) -> xr.DataTree:
    tree = to_datatree(value, label)
    check_tree(tree, options.resolved(), label)
    return tree


def _serialize_tree(tree: Any, options: Any) -> str:
    tree = to_datatree(tree, "result")
    check_tree(tree, options.resolved(), "result")
    return _b64(encode_datatree(tree))


def _validate_series(value: Any, options: Any, label: str | None) -> pd.Series:
    return to_series(value, label)


def _register() -> None:
    from dasf_geo.data._registry import register, register_builtin

    register(
        xr.DataTree,
        name="xarray.DataTree",
        validate=_validate_tree,
        serialize=_serialize_tree,
        json_schema=lambda o: {
            "type": "string",
            "contentEncoding": "base64",
            "contentMediaType": "application/x-netcdf",
            "title": "DataTree",
            "description": "xarray.DataTree as base64 NetCDF4, one group per node",
        },
        decode=to_datatree,
        _builtin=True,
    )
    register_builtin(
        pd.Series,
        "pandas.Series",
        _validate_series,
        encode_series,
        {
            "type": "object",
            "title": "Series",
            "contentMediaType": "application/vnd.dasf.frame+json",
            "description": f"pandas.Series as a one-column DataFrame in the typed "
            f'columnar form {FRAME_FORMAT!r} with "series": true (exact index, '
            "name and dtype)",
            "required": ["format", "index", "columns", "data", "series"],
            "properties": {
                "format": {"const": FRAME_FORMAT},
                "series": {"const": True},
                "index": {"type": "object"},
                "columns": {"type": "object"},
                "data": {"type": "array", "items": {"type": "object"}, "maxItems": 1},
            },
        },
        to_series,
    )


_register()
