"""The chunked NetCDF3 writer against scipy's: same bytes, same decoded data.

Law: for every Dataset ``ds.to_netcdf(engine="scipy")`` can write,
``write_nc3`` either declines (and scipy writes, as before) for the cases
the writer documents, or writes a file that decodes identical to scipy's,
that scipy and the netCDF4 library both read, and whose bytes are scipy's
except for the two documented corrections (0-d variables next to records,
``vsize`` with zero records).
"""

from __future__ import annotations

import io
import tracemalloc

import netCDF4
import numpy as np
import pandas as pd
import pytest
import scipy.io
import xarray as xr
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dasf_geo.data import _nc3writer, read_netcdf, write_netcdf
from dasf_geo.data._nc3writer import CHUNK_BYTES, plan_nc3, write_nc3
from dasf_geo.data._ncformat import _SCIPY_GLOBAL_CLASH, _SCIPY_VARIABLE_CLASH
from dasf_geo.data._netcdf import netcdf_bytes

names = st.text(alphabet="abcdefghijklmnop_", min_size=1, max_size=4).filter(
    lambda s: s[0] != "_"
)
# scipy keeps attributes as Python attributes: it cannot write these names
# (dasf_geo refuses them before writing); this writer could
attr_names = names.filter(
    lambda n: n not in _SCIPY_GLOBAL_CLASH and n not in _SCIPY_VARIABLE_CLASH
)

_SCALARS = {
    "i1": np.int8,
    "i2": np.int16,
    "i4": np.int32,
    "f4": np.float32,
    "f8": np.float64,
}

# attribute values of every NetCDF3 type, in the forms users write them
attr_values = st.one_of(
    st.text(alphabet="abc xyzä0", max_size=6),
    st.binary(max_size=5).map(lambda b: b.replace(b"\0", b"")),
    st.integers(-(2**31), 2**31 - 1),
    st.floats(allow_nan=False, width=64),
    st.sampled_from(sorted(_SCALARS)).flatmap(
        lambda code: st.integers(-100, 100).map(lambda v: _SCALARS[code](v))
    ),
    st.sampled_from(sorted(_SCALARS)).flatmap(
        lambda code: hnp.arrays(np.dtype(code), st.integers(0, 3))
    ),
    st.lists(st.integers(-1000, 1000), min_size=1, max_size=3),
    st.lists(st.floats(allow_nan=False, width=32), min_size=1, max_size=3),
)
attrs = st.dictionaries(attr_names, attr_values, max_size=3)

VAR_DTYPES = ["i1", "i2", "i4", "f4", "f8", "bool", "S3", "U2"]


@st.composite
def arrays_any_layout(draw: st.DrawFn, dtype: np.dtype, shape: tuple[int, ...]):
    """An array of ``shape``: C order, Fortran order, transposed or strided."""
    layout = draw(st.sampled_from(["c", "f", "transposed", "strided"]))
    elements = (
        hnp.from_dtype(dtype, allow_nan=True, allow_infinity=True)
        if dtype.kind == "f"
        else None
    )
    if layout == "transposed" and len(shape) > 1:
        base = draw(hnp.arrays(dtype, shape[::-1], elements=elements))
        return base.T
    if layout == "strided" and shape:
        wide = (*shape[:-1], shape[-1] * 2)
        return draw(hnp.arrays(dtype, wide, elements=elements))[..., ::2]
    arr = draw(hnp.arrays(dtype, shape, elements=elements))
    return np.asfortranarray(arr) if layout == "f" and arr.ndim > 1 else arr


@st.composite
def nc3_datasets(draw: st.DrawFn) -> xr.Dataset:
    """Datasets over 0-3 dims (some empty, one maybe unlimited), 0-d variables,
    every NetCDF3 type, fill values and packing, datetimes, attributes."""
    dim_names = draw(st.lists(names, max_size=3, unique=True))
    sizes = {d: draw(st.integers(0, 4)) for d in dim_names}
    var_names = draw(
        st.lists(
            names.filter(lambda n: n not in sizes), min_size=1, max_size=4, unique=True
        )
    )
    data_vars = {}
    for name in var_names:
        dims = tuple(draw(st.permutations(dim_names))[: draw(st.integers(0, 3))])
        dtype = np.dtype(draw(st.sampled_from(VAR_DTYPES)))
        shape = tuple(sizes[d] for d in dims)
        values = draw(arrays_any_layout(dtype, shape))
        var = xr.Variable(dims, values, draw(attrs))
        if dtype.kind == "i" and draw(st.booleans()):
            var.encoding["_FillValue"] = dtype.type(draw(st.integers(-100, 100)))
        if dtype.kind == "f" and draw(st.booleans()):
            var.encoding.update(
                {"dtype": "i2", "scale_factor": 0.5, "_FillValue": np.int16(-999)}
            )
        data_vars[name] = var
    coords: dict[str, xr.Variable] = {}
    for d in dim_names:
        kind = draw(st.sampled_from(["none", "float", "time"]))
        if kind == "float":
            coords[d] = xr.Variable(d, np.arange(sizes[d], dtype="f8") * -0.5)
        elif kind == "time":
            times = np.array(pd.date_range("2000-01-01", periods=sizes[d], freq="6h"))
            if sizes[d] and draw(st.booleans()):
                times[-1] = np.datetime64("NaT")
            coords[d] = xr.Variable(d, times, draw(attrs))
    ds = xr.Dataset(data_vars, coords=coords, attrs=draw(attrs))
    if len(ds.dims) > 0 and draw(st.booleans()):
        ds.encoding["unlimited_dims"] = {
            draw(st.sampled_from(sorted(map(str, ds.dims))))
        }
    return ds


def _record_dims(ds: xr.Dataset) -> set:
    empty = {d for d, n in ds.sizes.items() if n == 0}
    return empty | set(ds.encoding.get("unlimited_dims", ()))


def _expected_unsupported(ds: xr.Dataset) -> bool:
    records = _record_dims(ds)
    if len(records) > 1:
        return True
    return any(d in records for var in ds.variables.values() for d in var.dims[1:])


def _scipy_bytes(ds: xr.Dataset, fmt: str = "NETCDF3_CLASSIC") -> bytes:
    return bytes(ds.to_netcdf(engine="scipy", format=fmt))  # type: ignore[call-overload]


def _open(raw: bytes, engine: str = "scipy") -> xr.Dataset:
    src = io.BytesIO(raw) if engine == "scipy" else raw
    with xr.open_dataset(src, engine=engine) as opened:
        return opened.load()


def _ours(ds: xr.Dataset, chunk_bytes: int = CHUNK_BYTES) -> bytes | None:
    out = io.BytesIO()
    if not write_nc3(ds, out, chunk_bytes=chunk_bytes):
        return None
    return out.getvalue()


def _scipy_misplaces_scalars(ds: xr.Dataset) -> bool:
    """scipy writes 0-d variables into the record section (over record 1)."""
    records = _record_dims(ds)
    has_records = any(v.dims and v.dims[0] in records for v in ds.variables.values())
    has_scalars = any(not v.dims for v in ds.variables.values())
    numrecs = max((ds.sizes[d] for d in records), default=0)
    return has_records and has_scalars and numrecs > 0


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # packing inf into int16
@given(nc3_datasets(), st.sampled_from([16, 24, 40, 64, 4096]))
def test_law_same_file_as_scipy(tmp_path_factory, ds, chunk_bytes):
    try:
        ref = _scipy_bytes(ds)
    except Exception:
        # what scipy cannot write, the writer declines too: scipy then
        # raises its own error, as it did before
        assert _ours(ds, chunk_bytes) is None
        event("scipy fails")
        return
    new = _ours(ds, chunk_bytes)
    if _expected_unsupported(ds):
        assert new is None
        event("declined")
        return
    assert new is not None, "the writer declined a Dataset it supports"
    records = _record_dims(ds)
    zero_records = any(ds.sizes[d] == 0 for d in records) and any(
        v.dims and v.dims[0] in records for v in ds.variables.values()
    )
    if not _scipy_misplaces_scalars(ds) and not zero_records:
        assert new == ref
        event("same bytes")
    if _scipy_misplaces_scalars(ds):
        fixed = ds.copy()
        fixed.encoding = {}
        ref = _scipy_bytes(fixed)  # the same data without a record dimension
    back = _open(new)
    xr.testing.assert_identical(back, _open(ref))
    # the netCDF4 library reads the same data from it
    path = tmp_path_factory.mktemp("nc3") / "new.nc"
    path.write_bytes(new)
    with xr.open_dataset(path, engine="netcdf4") as opened:
        xr.testing.assert_identical(opened.load(), back)
    with netCDF4.Dataset(path) as nc:
        assert nc.data_model == "NETCDF3_CLASSIC"


def test_scalar_next_to_records_is_not_overwritten(tmp_path):
    ds = xr.Dataset(
        {
            "a": ("time", np.arange(5, dtype="f4")),
            "b": (("time", "x"), np.arange(10, dtype="i2").reshape(5, 2)),
            "crs": ((), np.int32(7), {"grid_mapping_name": "latitude_longitude"}),
        }
    )
    ds.encoding["unlimited_dims"] = {"time"}
    # scipy's own writer alters record 1 here
    assert not _open(_scipy_bytes(ds)).identical(ds)
    path = tmp_path / "out.nc"
    assert write_netcdf(ds, path) == "netcdf3"
    xr.testing.assert_identical(read_netcdf(path), ds)
    with xr.open_dataset(path, engine="netcdf4") as opened:
        xr.testing.assert_identical(opened.load(), ds)
        assert opened.encoding["unlimited_dims"] == {"time"}


@pytest.mark.parametrize("order", ["C", "transposed", "strided"])
def test_big_arrays_cross_the_chunk_size(tmp_path, order):
    rng = np.random.default_rng(1)
    values = rng.random((3, 700, 1100), dtype="f4")  # 9.2 MB, > 2 chunks
    if order == "transposed":
        values = values.transpose(2, 0, 1)
    elif order == "strided":
        values = values[:, ::2, ::-1]
    ds = xr.Dataset(
        {
            "v": (("a", "b", "c"), values, {"units": "K"}),
            "i": (
                ("a", "b"),
                np.arange(np.prod(values.shape[:2]), dtype="i1").reshape(
                    values.shape[:2]
                ),
            ),
        }
    )
    path = tmp_path / "out.nc"
    assert write_nc3(ds, path)
    assert path.read_bytes() == _scipy_bytes(ds)


def test_many_records_in_batches():
    rng = np.random.default_rng(2)
    n = 1000
    ds = xr.Dataset(
        {
            "time": ("time", pd.date_range("2001-01-01", periods=n, freq="h")),
            "flag": ("time", rng.integers(-100, 100, n).astype("i1")),
            "grid": (("time", "y", "x"), rng.random((n, 3, 5), dtype="f4")),
            "code": (("time", "k"), rng.integers(0, 9, (n, 3)).astype("i2")),
        }
    )
    ds.encoding["unlimited_dims"] = ["time"]
    ref = _scipy_bytes(ds)
    for chunk_bytes in (16, 100, 1000, CHUNK_BYTES):  # per record, batches, all
        assert _ours(ds, chunk_bytes) == ref, chunk_bytes


def test_single_record_variable_is_not_padded():
    ds = xr.Dataset({"c": ("time", np.array([1, 2, 3], "i1"))})
    ds.encoding["unlimited_dims"] = {"time"}
    assert _ours(ds, 16) == _scipy_bytes(ds)


def test_64_bit_offsets_when_data_starts_beyond_the_classic_limit(monkeypatch):
    ds = xr.Dataset(
        {
            "a": (("x", "y"), np.arange(60, dtype="f8").reshape(6, 10)),
            "b": ("x", np.arange(6, dtype="i2")),
            "r": (("t", "x"), np.ones((2, 6), "f4")),
        },
        attrs={"title": "offsets"},
    )
    ds.encoding["unlimited_dims"] = {"t"}
    monkeypatch.setattr(_nc3writer, "_CDF1_MAX_OFFSET", 300)
    new = _ours(ds, 32)
    assert new is not None
    assert new[:4] == b"CDF\x02"
    assert new == _scipy_bytes(ds, "NETCDF3_64BIT")
    xr.testing.assert_identical(_open(new), ds)
    xr.testing.assert_identical(_open(new, "netcdf4"), ds)


def test_the_plan_refers_to_the_data_without_copies():
    values = np.random.default_rng(3).random((50, 40), dtype="f4")
    ds = xr.Dataset({"v": (("y", "x"), values)}, coords={"x": np.arange(40.0)})
    plan = plan_nc3(ds)
    (var,) = (v for v in plan._vars if v.name == "v")
    assert np.shares_memory(var.data, values)


def test_writing_holds_one_chunk_not_a_copy(tmp_path):
    values = np.random.default_rng(4).random((16, 1000, 1000), dtype="f4")  # 64 MB
    ds = xr.Dataset({"v": (("t", "y", "x"), values)})
    path = tmp_path / "out.nc"
    tracemalloc.start()
    try:
        assert write_nc3(ds, path)
        _, ours = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        ds.to_netcdf(tmp_path / "scipy.nc", engine="scipy", format="NETCDF3_CLASSIC")
        _, scipys = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ours < CHUNK_BYTES + (4 << 20)
    assert scipys > values.nbytes  # what this writer saves
    assert path.read_bytes() == (tmp_path / "scipy.nc").read_bytes()


def test_write_netcdf_and_netcdf_bytes_use_it(tmp_path):
    ds = xr.Dataset(
        {"v": (("y", "x"), np.arange(12, dtype="f4").reshape(3, 4))},
        coords={"time": pd.Timestamp("2020-01-01")},
        attrs={"history": "x"},
    )
    path = tmp_path / "out.nc"
    assert write_netcdf(ds, path) == "netcdf3"
    ref = _scipy_bytes(ds)
    assert path.read_bytes() == ref
    buf, fmt = netcdf_bytes(ds)
    assert fmt == "netcdf3" and bytes(buf) == ref
    da = ds["v"].rename(None)
    assert bytes(netcdf_bytes(da)[0]) == bytes(
        da.to_netcdf(engine="scipy", format="NETCDF3_CLASSIC")
    )


@pytest.mark.parametrize(
    "ds",
    [
        pytest.param(
            xr.Dataset({"v": ("x", [1.0])}, attrs={"tags": ["a", "b"]}),
            id="string-list-attribute",
        ),
        pytest.param(xr.Dataset({"wärme": ("x", [1.0])}), id="non-ascii-name"),
        pytest.param(
            xr.Dataset({"v": (("x", "y"), np.zeros((0, 0)))}), id="two-empty-dims"
        ),
        pytest.param(
            xr.Dataset({"v": (("x", "y"), np.zeros((2, 0)))}), id="empty-dim-not-first"
        ),
    ],
)
def test_unsupported_data_go_to_scipy_as_before(ds):
    assert _ours(ds) is None
    try:
        ref = _scipy_bytes(ds)
    except Exception:
        return
    assert bytes(netcdf_bytes(ds, format="netcdf3")[0]) == ref


def test_dask_backed_data_are_declined():
    pytest.importorskip("dask")
    ds = xr.Dataset({"v": ("x", np.arange(4.0))}).chunk({"x": 2})
    assert _ours(ds) is None


def test_scipy_reads_every_header_field(tmp_path):
    ds = xr.Dataset(
        {
            "v": (
                ("t", "x"),
                np.arange(6, dtype="i2").reshape(3, 2),
                {"a": np.int8(1)},
            ),
            "s": ("x", np.array([b"ab", b"c"])),
        },
        attrs={"f": np.float32(0.5), "d": 0.25, "i": 3, "txt": "é"},
    )
    ds.encoding["unlimited_dims"] = {"t"}
    path = tmp_path / "out.nc"
    assert write_nc3(ds, path)
    with scipy.io.netcdf_file(path, mmap=False) as nc:
        assert nc.version_byte == 1
        assert nc.dimensions == {"t": None, "x": 2, "string2": 2}
        assert nc.variables["v"].data.tolist() == [[0, 1], [2, 3], [4, 5]]
        assert nc.f == np.float32(0.5) and nc.d == 0.25 and nc.i == 3
        assert nc.txt == "é".encode()


@pytest.mark.parametrize("layout", ["C", "transposed"])
def test_big_endian_input(layout):
    values = np.arange(24, dtype=">f4").reshape(2, 3, 4)
    if layout == "transposed":
        values = values.transpose(2, 0, 1)
    ds = xr.Dataset(
        {
            "v": (("a", "b", "c"), values),
            "n": ("a", np.arange(values.shape[0], dtype=">i2")),
        }
    )
    assert _ours(ds, 16) == _scipy_bytes(ds)
