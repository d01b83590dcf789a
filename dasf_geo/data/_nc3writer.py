"""A NetCDF3 writer for in-memory Datasets that converts data chunk by chunk.

scipy's ``netcdf_file`` holds a big-endian copy of every variable and then
makes another one (``tobytes``) while it writes, so an in-memory reply needs
about three times its size. This writer encodes the Dataset exactly as
``Dataset.to_netcdf(engine="scipy")`` does — xarray's CF encoder and NetCDF3
rules (``encode_nc3_variable``, ``encode_nc3_attr_value``), collected by a
data store that records instead of writing — then writes the classic-format
header itself and the data in bounded pieces: at most ``chunk_bytes`` of
big-endian data exist at a time, record variables interleaved per record as
the format requires.

The bytes are the ones scipy writes (same variable order, header, padding
and fill bytes), with two deliberate differences:

* scipy places 0-d variables after the record variables and writes them
  into the record section, over the second record (the data of a Dataset
  with an unlimited dimension and a scalar variable such as ``crs`` come
  back altered, and netCDF-C refuses the file); here they come before the
  records, as the format requires;
* with zero records, scipy gives record variables ``vsize`` 0; here it is
  the size of one record, as the format specifies.

A file whose data starts beyond 2 GiB - 1 uses the 64-bit offset variant
(``CDF\\x02``), which scipy, netCDF-C and xarray read; scipy's writer fails
there.

Anything else this writer does not handle (dask-backed or object data,
non-ASCII names, attribute values scipy stores oddly such as string lists,
more than one zero-length or unlimited dimension, a record dimension that
is not the first of a variable, a variable of 4 GiB or more) makes
:func:`plan_nc3` raise :class:`NC3Unsupported`, and the caller writes with
scipy as before.

Format: https://docs.unidata.ucar.edu/netcdf-c/current/file_format_specifications.html
"""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from numbers import Number
from typing import IO, Any

import numpy as np
import xarray as xr
from xarray.backends.common import WritableCFDataStore
from xarray.backends.netcdf3 import (
    encode_nc3_attr_value,
    encode_nc3_variable,
    is_valid_nc3_name,
)

__all__ = ["CHUNK_BYTES", "NC3Plan", "NC3Unsupported", "plan_nc3", "write_nc3"]

_log = logging.getLogger(__name__)

#: big-endian bytes converted (and held) at a time while writing
CHUNK_BYTES = 4 << 20

# largest data offset of the classic format (CDF-1); beyond it, CDF-2
_CDF1_MAX_OFFSET = 2**31 - 1
# vsize is an unsigned 32-bit field; larger variables are not written here
_MAX_VSIZE = 2**32 - 4

_ABSENT = b"\0" * 8
_NC_DIMENSION = b"\0\0\0\x0a"
_NC_VARIABLE = b"\0\0\0\x0b"
_NC_ATTRIBUTE = b"\0\0\0\x0c"

# dtype (kind, itemsize) -> (nc_type, big-endian dtype, default fill bytes)
_TYPES: dict[tuple[str, int], tuple[bytes, np.dtype[Any], bytes]] = {
    ("i", 1): (b"\0\0\0\x01", np.dtype("i1"), b"\x81"),
    ("S", 1): (b"\0\0\0\x02", np.dtype("S1"), b"\x00"),
    ("i", 2): (b"\0\0\0\x03", np.dtype(">i2"), b"\x80\x01"),
    ("i", 4): (b"\0\0\0\x04", np.dtype(">i4"), b"\x80\x00\x00\x01"),
    ("f", 4): (b"\0\0\0\x05", np.dtype(">f4"), b"\x7c\xf0\x00\x00"),
    ("f", 8): (b"\0\0\0\x06", np.dtype(">f8"), b"\x47\x9e\x00\x00\x00\x00\x00\x00"),
}

# attribute value types xarray's to_netcdf accepts
_ATTR_TYPES = (str, Number, np.ndarray, np.number, list, tuple, bytes)


class NC3Unsupported(Exception):
    """The Dataset needs something this writer leaves to scipy's writer."""


class _Slot:
    """Write target handed to xarray's ArrayWriter: keeps the source array."""

    def __init__(self) -> None:
        self.source: Any = None
        self.filled = False

    def __setitem__(self, key: Any, value: Any) -> None:
        self.source = value
        self.filled = True


class _RecordingStore(WritableCFDataStore):
    """A data store that keeps what ``ScipyDataStore`` would give scipy.

    Encoding (``encode_variable``, attribute encoding and validation,
    dimension handling) follows ``xarray.backends.ScipyDataStore`` line by
    line; nothing is written.
    """

    def __init__(self) -> None:
        self.dims: dict[str, int | None] = {}
        self.attrs: dict[str, Any] = {}
        self.vars: dict[str, tuple[tuple[str, ...], dict[str, Any], _Slot]] = {}

    def get_dimensions(self) -> dict[str, int | None]:
        return self.dims

    def get_attrs(self) -> dict[str, Any]:
        return self.attrs

    def get_variables(self) -> dict[str, Any]:
        return {}

    def encode_variable(self, variable: Any, name: Any = None) -> Any:
        return encode_nc3_variable(variable, name=name)

    def set_dimension(self, name: Any, length: Any, is_unlimited: bool = False) -> None:
        if name in self.dims:
            raise ValueError(f"dimension {name!r} set twice")
        if is_unlimited and self.dims:
            # scipy: "Only first dimension may be unlimited!"
            raise NC3Unsupported("more than one unlimited dimension")
        self.dims[str(name)] = None if is_unlimited else int(length)

    def set_attribute(self, key: Any, value: Any) -> None:
        if not is_valid_nc3_name(key):
            raise ValueError("Not a valid attribute name")
        self.attrs[key] = encode_nc3_attr_value(value)

    def prepare_variable(
        self,
        name: Any,
        variable: Any,
        check_encoding: bool = False,
        unlimited_dims: Any = None,
    ) -> tuple[_Slot, Any]:
        for key in variable.attrs:
            if not is_valid_nc3_name(key):
                raise ValueError("Not a valid attribute name")
        slot = _Slot()
        dims = tuple(str(d) for d in variable.dims)
        self.vars[name] = (dims, dict(variable.attrs), slot)
        return slot, variable.data

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class _Var:
    name: str
    dimids: list[int]
    attrs: dict[str, Any]
    data: np.ndarray[Any, Any]
    nc_type: bytes
    dtype: np.dtype[Any]  # big-endian
    isrec: bool
    count: int  # data bytes (of one record, for record variables)
    vsize: int  # count padded as the format wants
    fill: bytes  # padding pattern
    begin: int = 0


def _int(value: int) -> bytes:
    return int(value).to_bytes(4, "big", signed=True)


def _name(name: str) -> bytes:
    try:
        raw = name.encode("ascii")
    except UnicodeEncodeError as exc:
        raise NC3Unsupported(f"non-ASCII name {name!r}") from exc
    if not raw:
        raise NC3Unsupported("an empty name")
    return _int(len(raw)) + raw + b"\0" * (-len(raw) % 4)


def _attr_value(value: Any) -> bytes:
    """Encode one attribute value as scipy's ``_write_att_values`` does."""
    if isinstance(value, bytes):
        arr = np.asarray(value, dtype="S")  # b"" becomes one NUL, as in scipy
        raw = arr.tobytes()
        return b"\0\0\0\x02" + _int(arr.itemsize) + raw + b"\0" * (-len(raw) % 4)
    if isinstance(value, np.ndarray) and value.ndim == 1:
        spec = _TYPES.get((value.dtype.kind, value.dtype.itemsize))
        if spec is not None and value.dtype.kind != "S":
            nc_type, be, _ = spec
            raw = np.asarray(value, dtype=be).tobytes()
            return nc_type + _int(value.size) + raw + b"\0" * (-len(raw) % 4)
    raise NC3Unsupported(
        f"attribute value {value!r:.60} of type {type(value).__name__}"
    )


def _attr_list(attrs: dict[str, Any]) -> bytes:
    if not attrs:
        return _ABSENT
    parts = [_NC_ATTRIBUTE, _int(len(attrs))]
    for key, value in attrs.items():
        parts += [_name(key), _attr_value(value)]
    return b"".join(parts)


def _fill_bytes(attrs: dict[str, Any], dtype: np.dtype[Any], default: bytes) -> bytes:
    """The padding pattern scipy writes: ``_FillValue`` if one value, else default."""
    if "_FillValue" not in attrs:
        return default
    try:
        raw = np.array(attrs["_FillValue"], dtype=dtype).tobytes()
    except (TypeError, ValueError, OverflowError) as exc:
        raise NC3Unsupported(f"_FillValue {attrs['_FillValue']!r}") from exc
    return raw if len(raw) == dtype.itemsize else default


def _check_names_and_attrs(ds: xr.Dataset) -> None:
    # what xarray's to_netcdf validates before any store sees the data
    for name in ds.variables:
        if not isinstance(name, str) or not name:
            raise NC3Unsupported(f"variable name {name!r}")
    for attrs in [ds.attrs, *(v.attrs for v in ds.variables.values())]:
        for key, value in attrs.items():
            if not isinstance(key, str) or not key:
                raise NC3Unsupported(f"attribute name {key!r}")
            if not isinstance(value, _ATTR_TYPES):
                raise NC3Unsupported(
                    f"attribute {key!r} of type {type(value).__name__}"
                )


def _unlimited_dims(ds: xr.Dataset) -> set[Hashable]:
    declared = ds.encoding.get("unlimited_dims")
    if declared is None:
        return set()
    if isinstance(declared, str) or not isinstance(declared, Iterable):
        declared = [declared]
    unlimited = set(declared)
    if unlimited - set(ds.dims):
        # xarray warns and scipy writes an extra dimension; leave it to them
        raise NC3Unsupported(f"unlimited dimensions {unlimited - set(ds.dims)} unused")
    return unlimited


class NC3Plan:
    """The layout of one NetCDF3 file: its header and where each variable goes.

    Built by :func:`plan_nc3`; :meth:`write` writes the file.

    Attributes:
        version: 1 (classic, ``CDF\\x01``) or 2 (64-bit offset, ``CDF\\x02``).
        header: the encoded header, begin offsets included.
        size: the file's size in bytes.
        numrecs: the number of records.
    """

    def __init__(
        self,
        dims: dict[str, int | None],
        attrs: dict[str, Any],
        variables: list[_Var],
        numrecs: int,
    ) -> None:
        self._dims = dims
        self._attrs = attrs
        self._vars = variables
        self.numrecs = numrecs
        self._recvars = [v for v in variables if v.isrec]
        self._fixed = [v for v in variables if not v.isrec]
        self.recsize = sum(v.vsize for v in self._recvars)
        self.version = 1
        self.header, self.size = self._layout()
        fixed_begins = [v.begin for v in variables]
        if fixed_begins and max(fixed_begins) > _CDF1_MAX_OFFSET:
            self.version = 2
            self.header, self.size = self._layout()

    def _layout(self) -> tuple[bytes, int]:
        """Set every variable's begin; return the header and the file size."""
        width = 4 if self.version == 1 else 8
        head = [b"CDF", bytes([self.version]), _int(self.numrecs)]
        if self._dims:
            head += [_NC_DIMENSION, _int(len(self._dims))]
            for name, length in self._dims.items():
                head += [_name(name), _int(length or 0)]
        else:
            head.append(_ABSENT)
        head.append(_attr_list(self._attrs))
        if not self._vars:
            head.append(_ABSENT)
            header = b"".join(head)
            return header, len(header)
        head += [_NC_VARIABLE, _int(len(self._vars))]
        entries = []  # (bytes before begin) per variable
        for var in self._vars:
            entries.append(
                b"".join(
                    [
                        _name(var.name),
                        _int(len(var.dimids)),
                        *map(_int, var.dimids),
                        _attr_list(var.attrs),
                        var.nc_type,
                        var.vsize.to_bytes(4, "big"),
                    ]
                )
            )
        pos = sum(map(len, head)) + sum(len(e) + width for e in entries)
        for var in self._vars:
            var.begin = pos
            pos += var.vsize
        size = pos + (self.numrecs - 1) * self.recsize
        for var, entry in zip(self._vars, entries, strict=True):
            head += [entry, var.begin.to_bytes(width, "big")]
        return b"".join(head), size

    def write(self, out: IO[bytes], chunk_bytes: int = CHUNK_BYTES) -> None:
        """Write the file to the binary stream ``out``, sequentially.

        ``out.write`` must copy what it is given (files do): one buffer of
        at most ``chunk_bytes`` is reused for all the data.
        """
        out.write(self.header)
        chunk_bytes = max(chunk_bytes, 16)
        buf = np.empty(chunk_bytes, np.uint8)
        view = memoryview(buf)  # type: ignore[arg-type]
        for var in self._fixed:
            _write_array(out, var.data, var.dtype, buf, view)
            _write_padding(out, var)
        if self._recvars and self.numrecs:
            self._write_records(out, buf, view)

    def _write_records(
        self, out: IO[bytes], buf: np.ndarray[Any, Any], view: memoryview
    ) -> None:
        recsize = self.recsize
        if recsize > len(buf):  # records bigger than a chunk: one at a time
            for rec in range(self.numrecs):
                for var in self._recvars:
                    _write_array(out, var.data[rec], var.dtype, buf, view)
                    _write_padding(out, var)
            return
        per_batch = len(buf) // recsize
        for start in range(0, self.numrecs, per_batch):
            n = min(per_batch, self.numrecs - start)
            table = buf[: n * recsize].reshape(n, recsize)
            offset = 0
            for var in self._recvars:
                if var.count:
                    # the variable's slots in n records, as an array of its dtype
                    rest = var.data.shape[1:]
                    strides = [var.dtype.itemsize]
                    for length in reversed(rest[1:]):
                        strides.insert(0, strides[0] * length)
                    dst = np.lib.stride_tricks.as_strided(
                        table[:, offset : offset + var.count].view(var.dtype),
                        shape=(n, *rest),
                        strides=(recsize, *strides[: len(rest)]),
                        writeable=True,
                    )
                    np.copyto(dst, var.data[start : start + n], casting="same_kind")
                if var.vsize > var.count:
                    pad = var.vsize - var.count
                    table[:, offset + var.count : offset + var.vsize] = np.frombuffer(
                        var.fill * (pad // len(var.fill)), np.uint8
                    )
                offset += var.vsize
            out.write(view[: n * recsize])


def _blocks(
    arr: np.ndarray[Any, Any], max_elems: int
) -> Iterator[np.ndarray[Any, Any]]:
    """Split ``arr`` into C-order pieces of at most ``max_elems`` elements."""
    if arr.size == 0:
        return
    if arr.size <= max_elems:
        yield arr
        return
    shape = arr.shape
    inner, axis = 1, arr.ndim - 1
    while axis > 0 and inner * shape[axis] <= max_elems:
        inner *= shape[axis]
        axis -= 1
    step = max(1, max_elems // inner)
    for index in np.ndindex(*shape[:axis]):
        sub = arr[index]
        for j in range(0, shape[axis], step):
            yield sub[j : j + step]


def _write_array(
    out: IO[bytes],
    arr: np.ndarray[Any, Any],
    dtype: np.dtype[Any],
    buf: np.ndarray[Any, Any],
    view: memoryview,
) -> None:
    """Write ``arr`` in C order as ``dtype`` (big-endian), a chunk at a time."""
    max_elems = len(buf) // dtype.itemsize
    if arr.dtype == dtype and arr.flags.c_contiguous:
        flat = memoryview(np.ascontiguousarray(arr).reshape(-1).view(np.uint8))  # type: ignore[arg-type]
        step = max_elems * dtype.itemsize
        for i in range(0, len(flat), step):
            out.write(flat[i : i + step])
        return
    for block in _blocks(arr, max_elems):
        nbytes = block.size * dtype.itemsize
        dst = buf[:nbytes].view(dtype).reshape(block.shape)
        np.copyto(dst, block, casting="same_kind")
        out.write(view[:nbytes])


def _write_padding(out: IO[bytes], var: _Var) -> None:
    pad = var.vsize - var.count
    if pad:
        out.write(var.fill * (pad // len(var.fill)))


def plan_nc3(ds: xr.Dataset) -> NC3Plan:
    """Encode ``ds`` as ``to_netcdf(engine="scipy")`` would; lay out its file.

    No data is copied: the plan refers to the Dataset's (encoded) arrays.

    Raises:
        NC3Unsupported: the data need something this writer does not do
            (see the module docstring); write them with scipy instead.
        Exception: whatever xarray's encoders raise for data NetCDF3 cannot
            hold (scipy's path raises the same).
    """
    _check_names_and_attrs(ds)
    unlimited = _unlimited_dims(ds)
    if any(var.chunks is not None for var in ds.variables.values()):
        raise NC3Unsupported("dask-backed variables")
    store = _RecordingStore()
    ds.dump_to_store(store, encoding={}, unlimited_dims=unlimited)  # type: ignore[arg-type]

    dims = store.dims
    record_dims = [name for name, length in dims.items() if not length]
    if len(record_dims) > 1:
        raise NC3Unsupported(
            f"several zero-length or unlimited dimensions {record_dims}"
        )
    record_dim = record_dims[0] if record_dims else None
    dim_ids = {name: i for i, name in enumerate(dims)}

    variables: list[_Var] = []
    numrecs = 0
    for name, (vdims, attrs, slot) in store.vars.items():
        if not slot.filled:
            raise NC3Unsupported(f"variable {name!r} is not in memory")
        data = np.asarray(slot.source)
        spec = _TYPES.get((data.dtype.kind, data.dtype.itemsize))
        if spec is None:
            raise NC3Unsupported(f"variable {name!r} of dtype {data.dtype}")
        nc_type, be, default_fill = spec
        if record_dim in vdims[1:]:
            raise NC3Unsupported(f"variable {name!r}: record dimension not first")
        if len(vdims) != data.ndim or any(
            dims[d] is not None and dims[d] != n
            for d, n in zip(vdims, data.shape, strict=True)
        ):
            raise NC3Unsupported(f"variable {name!r}: shape and dimensions differ")
        isrec = bool(vdims) and vdims[0] == record_dim
        itemsize = be.itemsize
        if isrec:
            numrecs = max(numrecs, data.shape[0])
            count = int(np.prod(data.shape[1:], dtype=np.int64)) * itemsize
        else:
            count = data.size * itemsize
        variables.append(
            _Var(
                name=name,
                dimids=[dim_ids[d] for d in vdims],
                attrs=attrs,
                data=data,
                nc_type=nc_type,
                dtype=be,
                isrec=isrec,
                count=count,
                vsize=count,
                fill=_fill_bytes(attrs, be, default_fill),
            )
        )
    n_rec = sum(v.isrec for v in variables)
    for var in variables:
        if not var.isrec or n_rec > 1:
            var.vsize += -var.count % 4
        if var.vsize > _MAX_VSIZE:
            raise NC3Unsupported(f"variable {var.name!r} has 4 GiB or more")
    if n_rec and sum(v.vsize for v in variables if v.isrec) > _MAX_VSIZE:
        raise NC3Unsupported("records of 4 GiB or more")
    # scipy's order (largest fixed shape first), but 0-d variables before the
    # record variables rather than in the record section
    fixed = sorted(
        (v for v in variables if not v.isrec and v.data.ndim),
        key=lambda v: v.data.shape,
        reverse=True,
    )
    scalars = [v for v in variables if not v.data.ndim]
    records = [v for v in variables if v.isrec]
    return NC3Plan(dims, store.attrs, [*fixed, *scalars, *records], numrecs)


def write_nc3(
    obj: xr.Dataset,
    target: IO[bytes] | str | os.PathLike[str],
    chunk_bytes: int = CHUNK_BYTES,
) -> bool:
    """Write ``obj`` as NetCDF3 into ``target`` if this writer supports it.

    A path is written chunk by chunk (at most ``chunk_bytes`` of converted
    data at a time); a file object receives the whole file in one ``write``
    of a buffer built in place (so sinks that keep what they are given, like
    ``netcdf_bytes``, get one object of the file's size).

    Returns:
        True when written; False when the data need scipy's writer (nothing
        was written then).

    Raises:
        OSError: writing failed.
    """
    try:
        plan = plan_nc3(obj)
    except NC3Unsupported as exc:
        _log.debug("NetCDF3 writer: %s; writing with scipy", exc)
        return False
    except Exception as exc:  # xarray's encoders raise many kinds
        _log.debug("NetCDF3 writer: encoding failed (%r); writing with scipy", exc)
        return False
    if isinstance(target, (str, os.PathLike)):
        with open(target, "wb", buffering=1 << 16) as fh:
            plan.write(fh, chunk_bytes)
    else:
        whole = bytearray(plan.size)
        plan.write(_Filler(whole), chunk_bytes)  # type: ignore[arg-type]
        target.write(memoryview(whole))
    return True


class _Filler:
    """A write-only stream into a preallocated buffer."""

    def __init__(self, buf: bytearray) -> None:
        self._view = memoryview(buf)
        self._pos = 0

    def write(self, data: Any) -> int:
        n = memoryview(data).nbytes
        self._view[self._pos : self._pos + n] = memoryview(data).cast("B")
        self._pos += n
        return n
