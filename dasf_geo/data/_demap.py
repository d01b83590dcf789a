"""Demap checks: can the DASF web map draw a Dataset, and a fixed copy."""

from __future__ import annotations

import re

import numpy as np
import xarray as xr

from dasf_geo.data._cfnames import TIME_NAMES, spatial_coords
from dasf_geo.data._crs import parse_crs
from dasf_geo.data._findings import Finding, as_dataset
from dasf_geo.exceptions import DataError

__all__ = ["NC3_DTYPES", "check_demap", "coerce_demap"]

#: dtypes the NetCDF3 classic format (and so Demap) stores natively
NC3_DTYPES = frozenset({"i1", "i2", "i4", "f4", "f8", "S1", "b1"})


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
    ds = as_dataset(obj)
    out: list[Finding] = []
    value = ds.attrs.get("crs")
    epsg = None
    if isinstance(value, str) and re.fullmatch(r"EPSG:\d+", value):
        try:
            epsg = parse_crs(value)
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
        if v.dtype.kind == "M" or str(n) in TIME_NAMES
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
    ds = as_dataset(obj).copy()
    ds.attrs = dict(ds.attrs)
    coords = spatial_coords(ds)
    value = ds.attrs.get("crs")
    if value is None and coords["latitude"] and coords["longitude"]:
        ds.attrs["crs"] = "EPSG:4326"
    elif isinstance(value, str):
        try:
            code = parse_crs(value).to_epsg()
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
        epsg = parse_crs(ds.attrs["crs"])
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
