"""Binary replies: a Dataset or DataArray result as raw NetCDF/zarr bytes.

A JSON reply carries a Dataset as base64 text inside the JSON, and the
transport base64-encodes that JSON once more. Callers that say so (the
``dasfGeoAccept`` request property) get the raw bytes instead, written to a
file by :func:`write_reply`, so the data is base64-encoded once, on the
wire. Both forms go through the same checks (CF, ``crs``, Demap) and the
same format rule; :func:`read_reply` turns the bytes back into the object.

The media types say what the bytes are and what to build from them:
``application/x-netcdf; xarray=Dataset`` (or ``DataArray``), and
``application/vnd.zarr+zip; xarray=…`` for zarr. The law:
``read_reply(t, bytes written by write_reply(obj, …))`` equals ``obj``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import IO, Any

import xarray as xr

from dasf_geo.data._builtins import (
    NETCDF_MEDIA_TYPE,
    ZARR_MEDIA_TYPE,
    prepare_xarray_reply,
)
from dasf_geo.data._netcdf import (
    dataset_to_dataarray,
    open_netcdf_lazily,
    read_netcdf,
    write_netcdf,
)
from dasf_geo.data._options import DataOptions
from dasf_geo.data._registry import RegistryType
from dasf_geo.exceptions import DataError

__all__ = [
    "BINARY_MEDIA_TYPES",
    "open_reply",
    "read_reply",
    "reply_media_type",
    "write_reply",
]

_KINDS = {"xarray.Dataset": xr.Dataset, "xarray.DataArray": xr.DataArray}

#: Every binary reply media type dasf_geo writes and reads.
BINARY_MEDIA_TYPES = tuple(
    f"{base}; xarray={kind}"
    for base in (NETCDF_MEDIA_TYPE, ZARR_MEDIA_TYPE)
    for kind in ("Dataset", "DataArray")
)


def reply_media_type(kind: str, format: str) -> str:
    """The media type of a ``kind`` (Dataset/DataArray) reply in ``format``."""
    base = ZARR_MEDIA_TYPE if format == "zarr" else NETCDF_MEDIA_TYPE
    return f"{base}; xarray={kind}"


def write_reply(
    value: Any,
    metadata: Iterable[Any],
    target: IO[bytes] | str | os.PathLike[str],
    accept: Iterable[str],
    compression: int | None = None,
) -> str | None:
    """Write ``value`` as binary reply bytes into ``target``, if that applies.

    ``target`` is a binary file or a path; given a path, the NetCDF engine
    writes the file itself (no full-size bytes object in memory, and a
    dask-backed Dataset is computed chunk by chunk where the engine can).

    It applies when ``metadata`` (of the return model's field) carries the
    registry's Dataset or DataArray entry — so no custom serializer is in
    the way — ``value`` is such an object, and the caller accepts the media
    type of the format the data options choose.

    ``compression`` is a zlib level a caller asked for this call (see
    :meth:`DataOptions.with_call_compression`).

    Returns:
        The media type written, or None (nothing written: send JSON).

    Raises:
        DataError, CFConventionError, CRSError: as for a JSON reply.
    """
    registry_type = next((m for m in metadata if isinstance(m, RegistryType)), None)
    if registry_type is None:
        return None
    kind = _KINDS.get(registry_type.entry.name)
    if kind is None or not isinstance(value, kind):
        return None
    accepted = set(accept)
    options = (registry_type.options or DataOptions()).with_call_compression(
        compression
    )
    if not any(t in accepted for t in BINARY_MEDIA_TYPES):
        return None
    obj, fmt = prepare_xarray_reply(value, options, kind)
    chosen = "zarr" if fmt == "zarr" else "netcdf"
    if reply_media_type(kind.__name__, chosen) not in accepted:
        return None
    used = write_netcdf(
        obj, target, format=fmt, compression=options.resolved().compression
    )
    return reply_media_type(kind.__name__, used)


def read_reply(
    media_type: str,
    source: bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes],
) -> xr.Dataset | xr.DataArray:
    """Build the Dataset or DataArray of a binary reply.

    Args:
        media_type: the reply's ``dasfGeoEncoding``.
        source: its bytes, or a path or file holding them.

    Raises:
        DataError: an unknown media type, or bytes that are not what it says.
    """
    if media_type not in BINARY_MEDIA_TYPES:
        raise DataError(
            f"unknown binary reply type {media_type!r}; dasf_geo reads "
            f"{', '.join(BINARY_MEDIA_TYPES)}"
        )
    ds = read_netcdf(source)
    return dataset_to_dataarray(ds) if media_type.endswith("DataArray") else ds


def open_reply(
    media_type: str, path: str | os.PathLike[str]
) -> xr.Dataset | xr.DataArray:
    """Open the binary reply in the file at ``path`` lazily, without loading it.

    Values are read from the file when they are used (dask-backed, chunked
    along the file's layout, when dask is installed), so a reply larger
    than memory can be worked on piece by piece. The file must stay in
    place while the object is used. A zarr reply is loaded (zipped zarr
    cannot be read in place).

    Raises:
        DataError: an unknown media type, or a file that is not what it says.
    """
    if media_type not in BINARY_MEDIA_TYPES:
        raise DataError(
            f"unknown binary reply type {media_type!r}; dasf_geo reads "
            f"{', '.join(BINARY_MEDIA_TYPES)}"
        )
    if media_type.startswith(ZARR_MEDIA_TYPE):
        return read_reply(media_type, path)
    ds = open_netcdf_lazily(path, "the reply")
    return dataset_to_dataarray(ds) if media_type.endswith("DataArray") else ds
