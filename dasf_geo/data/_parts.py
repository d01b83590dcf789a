"""Dataset and DataArray arguments as binary parts of a multipart request.

A multipart request (see :mod:`dasf_geo.protocol.parts`) carries a Dataset
or DataArray argument as raw NetCDF bytes after the request's JSON, where a
placeholder ``{"$dasfGeoPart": n}`` stands for it. Both sides of that live
here, next to the registry entries they plug into:

- the caller serializes a request with a :class:`PartWriter` in pydantic's
  serialization context (key :data:`PARTS_CONTEXT`): the registry's
  Dataset/DataArray serializer then checks and writes each object exactly
  as for a binary reply (:func:`~dasf_geo.data.write_reply`: CF, ``crs``,
  Demap, the format rule of the data options) into a temporary file, and
  returns the placeholder instead of base64 text;
- the backend validates the JSON part inside :func:`request_parts`: the
  registry's validators turn each placeholder into the :class:`BinaryPart`
  it names, which :func:`~dasf_geo.data.to_dataset` and
  :func:`~dasf_geo.data.to_dataarray` decode from the part's bytes or its
  temporary file — no base64 text in between.

The law: validating (inside ``request_parts``) the JSON written with a
``PartWriter``, with the parts' bytes, gives the objects that validating
the plain JSON form gives.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

import xarray as xr

from dasf_geo.data._netcdf import (
    LAZY_THRESHOLD,
    detect_format,
    open_netcdf_lazily,
    read_netcdf,
)
from dasf_geo.data._registry import PARTS_CONTEXT
from dasf_geo.exceptions import DataError, PartError
from dasf_geo.protocol.constants import PART_KEY
from dasf_geo.protocol.parts import part_index, placeholder

__all__ = [
    "PARTS_CONTEXT",
    "BinaryPart",
    "OutgoingPart",
    "PartWriter",
    "request_parts",
    "resolve_placeholder",
]

#: Registry entries whose values may travel as binary parts.
PART_ENTRIES = frozenset({"xarray.Dataset", "xarray.DataArray"})


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
    :data:`PARTS_CONTEXT` (``model.model_dump_json(context={PARTS_CONTEXT:
    writer})``); every Dataset or DataArray the registry serializes is then
    written to a temporary file and replaced by a placeholder. Close the
    writer (or use ``with``) once the request is sent: that removes the
    files.

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
        from dasf_geo.data._replies import BINARY_MEDIA_TYPES, write_reply

        if registry_type.entry.name not in PART_ENTRIES:
            return None
        fd, path = tempfile.mkstemp(
            prefix="dasf-geo-arg-", suffix=".part", dir=self.dir
        )
        os.close(fd)
        try:
            media_type = write_reply(
                value, [registry_type], path, BINARY_MEDIA_TYPES, self.compression
            )
            if media_type is None:
                return None
            file = open(path, "rb")  # noqa: SIM115  # closed by close()
        finally:
            os.unlink(path)  # the open file keeps the data until it is closed
        size = os.fstat(file.fileno()).st_size
        self.parts.append(OutgoingPart(file, size, media_type))
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


#: base media type -> the formats its bytes may be in (see detect_format)
_FORMATS_OF = {
    "application/x-netcdf": frozenset({"netcdf3", "netcdf4"}),
    "application/vnd.zarr+zip": frozenset({"zarr"}),
}


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
    if entry_name not in PART_ENTRIES:
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
