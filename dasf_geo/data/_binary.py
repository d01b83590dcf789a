"""The binary form of xarray values: NetCDF (or zipped zarr) bytes that travel.

A Dataset or DataArray travels as the bytes of a NetCDF3, NetCDF4 or zipped
zarr file (see :mod:`dasf_geo.data._netcdf` for the format rule). This
module owns everything about those bytes on the way out and back in:

- the media types that say what the bytes are and what to build from them:
  ``application/x-netcdf; xarray=Dataset`` (or ``DataArray``), and
  ``application/vnd.zarr+zip; xarray=…`` for zarr;
- preparing a value to send (:func:`prepare_xarray_reply`: CF, ``crs``,
  Demap, the format the data options choose), which the JSON form (base64
  text of the same bytes, see :mod:`._builtins`) and both binary forms
  share, so they are checked alike;
- binary replies: a caller that says so (the ``dasfGeoAccept`` request
  property) gets the raw bytes, written to a file by :func:`write_reply`
  (or into a temporary file by :func:`write_reply_file`), so the data is
  base64-encoded once, on the wire; :func:`read_reply` and
  :func:`open_reply` turn them back into the object;
- binary parts of multipart requests (see :mod:`dasf_geo.protocol.parts`):
  the caller serializes a request with a :class:`PartWriter` in pydantic's
  serialization context (key :data:`~dasf_geo.data.PARTS_CONTEXT`), which
  writes each Dataset/DataArray exactly as a binary reply into a temporary
  file and puts a placeholder ``{"$dasfGeoPart": n}`` into the JSON; the
  backend validates the JSON inside :func:`request_parts`, where the
  registry hands each placeholder to :func:`resolve_placeholder` (registered
  with :func:`~dasf_geo.data.register_reference`), which gives the
  :class:`BinaryPart` it names.

The laws: ``read_reply(t, bytes written by write_reply(obj, …))`` equals
``obj``; validating (inside ``request_parts``) the JSON written with a
``PartWriter``, with the parts' bytes, gives the objects that validating
the plain JSON form gives.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import tempfile
import typing
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

import xarray as xr

from dasf_geo.data._checks import check_cf, check_crs, check_demap, coerce_demap
from dasf_geo.data._findings import mark_validated, was_validated
from dasf_geo.data._ncformat import (
    DATAARRAY_NAME,
    dataarray_to_dataset,
    dataset_to_dataarray,
    detect_format,
)
from dasf_geo.data._ncwrite import write_netcdf
from dasf_geo.data._netcdf import LAZY_THRESHOLD, open_netcdf_lazily, read_netcdf
from dasf_geo.data._options import DataOptions
from dasf_geo.data._registry import RegistryType, register_reference
from dasf_geo.exceptions import DataError, PartError
from dasf_geo.protocol.constants import PART_KEY
from dasf_geo.protocol.parts import part_index, placeholder

__all__ = [
    "BINARY_MEDIA_TYPES",
    "NETCDF_MEDIA_TYPE",
    "ZARR_MEDIA_TYPE",
    "BinaryPart",
    "OutgoingPart",
    "PartWriter",
    "check_value",
    "open_reply",
    "prepare_xarray_reply",
    "read_reply",
    "reply_media_type",
    "request_parts",
    "resolve_placeholder",
    "write_reply",
    "write_reply_file",
]

NETCDF_MEDIA_TYPE = "application/x-netcdf"
ZARR_MEDIA_TYPE = "application/vnd.zarr+zip"

#: The registry entries whose values travel in binary form, and their types.
KINDS: dict[str, type] = {
    "xarray.Dataset": xr.Dataset,
    "xarray.DataArray": xr.DataArray,
}

#: Every binary reply media type dasf_geo writes and reads.
BINARY_MEDIA_TYPES = tuple(
    f"{base}; xarray={kind}"
    for base in (NETCDF_MEDIA_TYPE, ZARR_MEDIA_TYPE)
    for kind in ("Dataset", "DataArray")
)

#: base media type -> the formats its bytes may be in (see detect_format)
_FORMATS_OF = {
    NETCDF_MEDIA_TYPE: frozenset({"netcdf3", "netcdf4"}),
    ZARR_MEDIA_TYPE: frozenset({"zarr"}),
}


def reply_media_type(kind: str, format: str) -> str:
    """The media type of a ``kind`` (Dataset/DataArray) reply in ``format``."""
    base = ZARR_MEDIA_TYPE if format == "zarr" else NETCDF_MEDIA_TYPE
    return f"{base}; xarray={kind}"


# --------------------------------------------------------------------------
# preparing a value to send (the JSON and the binary forms alike)


def check_value(
    obj: Any, options: DataOptions, label: str | None, validating: bool = True
) -> None:
    """The CF and ``crs`` checks of a Dataset or DataArray, once.

    A value a validator checked (``validating``) is not checked again when
    it is serialized with the same modes.

    Raises:
        CFConventionError, CRSError: strict/required modes and findings.
    """
    cf, crs = options.cf or "warn", options.crs or "optional"
    if not validating and was_validated(obj, cf, crs):
        return
    check_cf(obj, cf, label=label)
    check_crs(obj, crs, label=label)
    if validating:
        mark_validated(obj, cf, crs)


def _coerce(obj: xr.Dataset | xr.DataArray) -> xr.Dataset | xr.DataArray:
    if isinstance(obj, xr.Dataset):
        return coerce_demap(obj)
    # a DataArray's attrs play the role of the global attributes
    ds = dataarray_to_dataset(obj)
    ds.attrs = {**ds.attrs, **obj.attrs}
    fixed = coerce_demap(ds)
    da = dataset_to_dataarray(fixed)
    da.attrs = {
        **da.attrs,
        **{k: v for k, v in fixed.attrs.items() if k != DATAARRAY_NAME},
    }
    return da


def prepare_xarray_reply(
    obj: Any, options: DataOptions, kind: type
) -> tuple[xr.Dataset | xr.DataArray, str]:
    """Check (and, for ``demap="coerce"``, fix) a reply; choose its format.

    The JSON and the binary form of a reply both go through this, so they
    are checked alike.

    Returns:
        The object to encode and the format to encode it in.

    Raises:
        DataError, CFConventionError, CRSError: the reply breaks a rule the
            options make strict.
    """
    if not isinstance(obj, kind):
        raise DataError(f"expected a {kind.__name__} to send, got {type(obj).__name__}")
    obj = typing.cast("xr.Dataset | xr.DataArray", obj)
    options = options.resolved()
    check_value(obj, options, "result", validating=False)
    if options.demap == "coerce":
        obj = _coerce(obj)
    elif options.demap == "check":
        findings = check_demap(obj)
        if findings:
            raise DataError(
                "the reply is not Demap-ready: " + "; ".join(map(str, findings))
            )
    fmt = "netcdf3" if options.demap in ("check", "coerce") else options.format
    return obj, fmt or "auto"


# --------------------------------------------------------------------------
# binary replies


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
    kind = KINDS.get(registry_type.entry.name)
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


def write_reply_file(
    value: Any,
    metadata: Iterable[Any],
    accept: Iterable[str],
    compression: int | None = None,
    *,
    prefix: str = "dasf-geo-reply-",
    dir: str | None = None,
) -> tuple[IO[bytes], int, str] | None:
    """:func:`write_reply` into a new temporary file.

    The engine writes the file by its path; the file is then opened and
    unlinked at once, so it disappears when the returned file is closed
    (and on any error before).

    Returns:
        ``(open binary file, size, media type)``, or None (nothing
        written: send JSON).

    Raises:
        DataError, CFConventionError, CRSError: as for a JSON reply.
    """
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=".part", dir=dir)
    os.close(fd)
    try:
        media_type = write_reply(value, metadata, path, accept, compression)
        if media_type is None:
            return None
        file = open(path, "rb")  # noqa: SIM115  # closed by its new owner
    finally:
        os.unlink(path)  # the open file keeps the data until it is closed
    return file, os.fstat(file.fileno()).st_size, media_type


def _known_media_type(media_type: str) -> None:
    if media_type not in BINARY_MEDIA_TYPES:
        raise DataError(
            f"unknown binary reply type {media_type!r}; dasf_geo reads "
            f"{', '.join(BINARY_MEDIA_TYPES)}"
        )


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
    _known_media_type(media_type)
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
    _known_media_type(media_type)
    if media_type.startswith(ZARR_MEDIA_TYPE):
        return read_reply(media_type, path)
    ds = open_netcdf_lazily(path, "the reply")
    return dataset_to_dataarray(ds) if media_type.endswith("DataArray") else ds


# --------------------------------------------------------------------------
# binary parts of multipart requests: the caller's side


@dataclass
class OutgoingPart:
    """One binary part written by a :class:`PartWriter`.

    Attributes:
        file: the open temporary file holding the part (already unlinked:
            it disappears when closed).
        size: its size in bytes.
        media_type: what the bytes are (``application/x-netcdf;
            xarray=Dataset``…).
    """

    file: IO[bytes]
    size: int
    media_type: str


class PartWriter:
    """Collects the binary parts of one request while it is serialized.

    Put it into pydantic's serialization context under
    :data:`~dasf_geo.data.PARTS_CONTEXT` (``model.model_dump_json(context=
    {PARTS_CONTEXT: writer})``); every Dataset or DataArray the registry
    serializes is then written to a temporary file and replaced by a
    placeholder. Close the writer (or use ``with``) once the request is
    sent: that removes the files.

    Args:
        dir: where to create the temporary files (default: the system's).
        compression: zlib level 1-9 asked for this call: the parts are then
            compressed NetCDF4 (see :meth:`DataOptions.with_call_compression`).
    """

    def __init__(self, dir: str | None = None, compression: int | None = None) -> None:
        self.dir = dir
        self.compression = compression
        self.parts: list[OutgoingPart] = []

    def add(self, value: Any, registry_type: Any) -> dict[str, int] | None:
        """Write ``value`` as the next part; return its placeholder.

        ``registry_type`` is the :class:`~dasf_geo.data.RegistryType` of the
        value's field: its entry and data options decide the checks and the
        format, as for a binary reply.

        Returns:
            ``{"$dasfGeoPart": n}``, or None when the value does not travel
            as a part (not a Dataset/DataArray of a Dataset/DataArray entry):
            serialize it as JSON then.

        Raises:
            DataError, CFConventionError, CRSError: as for a JSON argument.
        """
        if registry_type.entry.name not in KINDS:
            return None
        written = write_reply_file(
            value,
            [registry_type],
            BINARY_MEDIA_TYPES,
            self.compression,
            prefix="dasf-geo-arg-",
            dir=self.dir,
        )
        if written is None:
            return None
        self.parts.append(OutgoingPart(*written))
        return placeholder(len(self.parts))

    def close(self) -> None:
        """Close (and so remove) every part's file (idempotent)."""
        for part in self.parts:
            part.file.close()

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self.parts)


# --------------------------------------------------------------------------
# binary parts of multipart requests: the backend's side


class BinaryPart:
    """One binary part of a received multipart request.

    What a Dataset or DataArray validator receives for a placeholder: the
    part's raw bytes (a slice of the reassembled payload) or the path of a
    temporary file that holds just this part. :meth:`dataset` decodes it
    once; later validations of the same part (a union tried member by
    member) get the same object.

    Args:
        index: the part's number in the request (from 1).
        media_type: the part's declared media type.
        source: its bytes, or the path of a file holding exactly them.
        size: its size in bytes.
    """

    __slots__ = ("_dataset", "index", "media_type", "size", "source", "used")

    def __init__(
        self,
        index: int,
        media_type: str,
        source: bytes | bytearray | memoryview | str | os.PathLike[str],
        size: int,
    ) -> None:
        self.index = index
        self.media_type = media_type
        self.source = source
        self.size = size
        #: True once a placeholder referred to this part
        self.used = False
        self._dataset: xr.Dataset | None = None

    def describe(self) -> str:
        """``part 1 (application/x-netcdf; xarray=Dataset, 5000 bytes)``."""
        return f"part {self.index} ({self.media_type}, {self.size} bytes)"

    def _head(self) -> bytes:
        if isinstance(self.source, (bytes, bytearray, memoryview)):
            return bytes(memoryview(self.source)[:4])
        with open(self.source, "rb") as fh:
            return fh.read(4)

    def dataset(self) -> xr.Dataset:
        """The part decoded into a Dataset (once).

        A NetCDF part larger than :data:`~dasf_geo.data.LAZY_THRESHOLD` in
        its own temporary file is opened lazily: its values are read from
        the file when the function uses them (dask-backed), so a function
        that works through a large argument piece by piece never holds it
        all. The file is removed when the request is answered: a function
        that keeps the Dataset beyond its call must ``.load()`` it.

        Raises:
            DataError: the bytes are not what the media type says (not
                NetCDF, or truncated or corrupt).
        """
        if self._dataset is not None:
            return self._dataset
        base = self.media_type.split(";", 1)[0].strip()
        head = self._head()
        try:
            found = detect_format(head)
        except DataError:
            raise DataError(
                f"{self.describe()} is not {base} data (it starts with {head!r})"
            ) from None
        if found not in _FORMATS_OF.get(base, ()):
            raise DataError(f"{self.describe()} holds {found} data, not {base}")
        try:
            if (
                isinstance(self.source, (str, os.PathLike))
                and self.size > LAZY_THRESHOLD
                and found != "zarr"
            ):
                self._dataset = open_netcdf_lazily(self.source, self.describe())
            else:
                self._dataset = read_netcdf(self.source)
        except DataError as exc:
            raise DataError(f"{self.describe()}: {exc}") from exc
        return self._dataset

    def __repr__(self) -> str:
        return f"<BinaryPart {self.describe()}>"


_current: contextvars.ContextVar[Sequence[BinaryPart] | None] = contextvars.ContextVar(
    "dasf_geo_request_parts", default=None
)


@contextlib.contextmanager
def request_parts(parts: Sequence[BinaryPart]) -> Iterator[Sequence[BinaryPart]]:
    """Let placeholders validated within the block refer to ``parts``.

    ``parts[0]`` is part 1. On leaving without an error, every part must
    have been referred to by a placeholder of a Dataset or DataArray value.

    Raises:
        PartError: (on leaving) a part no placeholder referred to.
    """
    token = _current.set(parts)
    try:
        yield parts
    finally:
        _current.reset(token)
    unused = [part.describe() for part in parts if not part.used]
    if unused:
        raise PartError(
            f"{', '.join(unused)} {'is' if len(unused) == 1 else 'are'} not "
            f"referred to by a {PART_KEY!r} placeholder of a Dataset or "
            "DataArray argument"
        )


def resolve_placeholder(value: Any, entry_name: str) -> Any:
    """The :class:`BinaryPart` a placeholder ``value`` refers to.

    Called by the registry's validators for a dict holding the placeholder
    key; ``entry_name`` is the registry entry validating it.

    Raises:
        DataError: the placeholder is malformed, the request has no such
            part, or ``entry_name`` is not a Dataset/DataArray entry.
    """
    try:
        index = part_index(value)
    except PartError as exc:
        raise DataError(str(exc)) from None
    assert index is not None  # the caller checked for the placeholder key
    parts = _current.get()
    if entry_name not in KINDS:
        raise DataError(
            f"a {PART_KEY!r} placeholder can only stand for an xarray Dataset or "
            f"DataArray, not for a {entry_name}"
        )
    if not parts:
        raise DataError(
            f"the value refers to binary part {index}, but the request has no "
            "binary parts (no dasfGeoParts property)"
        )
    if index > len(parts):
        raise DataError(
            f"the value refers to binary part {index}, but the request has "
            f"only {len(parts)} binary part{'s' if len(parts) != 1 else ''}"
        )
    part = parts[index - 1]
    part.used = True
    return part


register_reference(PART_KEY, resolve_placeholder)
