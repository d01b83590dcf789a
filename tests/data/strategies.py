"""Hypothesis strategies for Datasets within each format's supported space."""

from __future__ import annotations

import numpy as np
import xarray as xr
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

NC3_DTYPES = ["i1", "i2", "i4", "f4", "f8"]
NC4_DTYPES = [*NC3_DTYPES, "i8", "u1", "u2", "u4", "u8"]

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8).filter(
    lambda s: s[0] != "_"
)
attr_values = st.one_of(
    st.text(
        alphabet="abcdefghijklmnopqrstuvwxyz ABC0123456789", min_size=1, max_size=12
    ),
    st.integers(-(2**31), 2**31 - 1),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
)
# attribute names scipy's NetCDF3 writer reserves, and the CDL type names
# xarray's NetCDF3 writers refuse, are tested on their own (test_netcdf.py)
_RESERVED = {"fp", "mode", "data", "flush", "sync", "close", "variables"}
_RESERVED |= {"dimensions", "typecode", "itemsize", "use_mmap"}
_RESERVED |= {"byte", "char", "short", "ushort", "int", "uint", "int64", "uint64"}
_RESERVED |= {"float", "real", "double", "bool", "string"}
attrs = st.dictionaries(
    names.filter(lambda n: n not in _RESERVED), attr_values, max_size=3
)


@st.composite
def datasets(draw: st.DrawFn, dtypes: list[str]) -> xr.Dataset:
    """A Dataset of 1-3 variables over up to 3 dims, with coords and attrs."""
    dim_names = draw(st.lists(names, min_size=1, max_size=3, unique=True))
    sizes = {d: draw(st.integers(1, 4)) for d in dim_names}
    var_names = draw(
        st.lists(
            names.filter(lambda n: n not in sizes), min_size=1, max_size=3, unique=True
        )
    )
    data_vars = {}
    for name in var_names:
        dims = draw(st.lists(st.sampled_from(dim_names), max_size=3, unique=True))
        dtype = np.dtype(draw(st.sampled_from(dtypes)))
        shape = tuple(sizes[d] for d in dims)
        values = draw(
            hnp.arrays(
                dtype,
                shape,
                elements=hnp.from_dtype(dtype, allow_nan=True, allow_infinity=True)
                if dtype.kind == "f"
                else None,
            )
        )
        data_vars[name] = (tuple(dims), values, draw(attrs))
    coords = {}
    for d in dim_names:
        if draw(st.booleans()):
            coords[d] = (
                d,
                np.arange(sizes[d], dtype="f8")
                * draw(st.sampled_from([1.0, 0.5, -2.0])),
                draw(attrs),
            )
    return xr.Dataset(data_vars, coords=coords, attrs=draw(attrs))
