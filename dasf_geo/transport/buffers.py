"""Where received payloads land: buffers and the parts of a multipart request.

:class:`FileBuffer` (a fixed-size buffer in an anonymous temporary file)
and :class:`GrowingBuffer` (memory that holds only what arrived) are the
buffers a :class:`~dasf_geo.protocol.reassembly.Reassembler` decodes
fragments into, chosen by :func:`buffer_factory`; :func:`payload_bytes`
reads one whole; :func:`received_parts` cuts a reassembled multipart
request into its JSON head and its :class:`ReceivedPart` binary parts.
Importable from :mod:`dasf_geo.transport._common` too, where they lived
first.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from dasf_geo.protocol.limits import DEFAULT_SPOOL_THRESHOLD
from dasf_geo.protocol.parts import PartSpec

__all__ = [
    "FileBuffer",
    "GrowingBuffer",
    "ReceivedPart",
    "buffer_factory",
    "payload_bytes",
    "received_parts",
]


class FileBuffer:
    """A fixed-size byte buffer kept in an anonymous temporary file.

    It supports what :class:`~dasf_geo.protocol.fragments.Reassembler` needs
    (``len()``, slice assignment and slice reading) with ``os.pwrite`` and
    ``os.pread``, so a large payload is reassembled on disk (the page cache)
    rather than in the process's memory. The file disappears when the buffer
    is closed or garbage-collected.

    Args:
        size: the buffer's size in bytes.
        dir: where to create the temporary file (default: the system's).
    """

    def __init__(self, size: int, dir: str | None = None) -> None:
        # a named file, so that readers that need a path (netCDF4) can open
        # it; it is removed on close()
        self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115  # see close()
            prefix="dasf-geo-", suffix=".part", dir=dir
        )
        self._file.truncate(size)
        self._size = size

    def __len__(self) -> int:
        return self._size

    def _range(self, key: slice) -> tuple[int, int]:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("FileBuffer only supports contiguous slices")
        start, stop, _ = key.indices(self._size)
        return start, max(start, stop)

    def __setitem__(self, key: slice, data: bytes | bytearray | memoryview) -> None:
        start, stop = self._range(key)
        view = memoryview(data).cast("B")
        if len(view) != stop - start:
            raise ValueError("FileBuffer slices cannot change the buffer's size")
        fd = self._file.fileno()
        while view:
            written = os.pwrite(fd, view, start)
            view = view[written:]
            start += written

    def __getitem__(self, key: slice) -> bytes:
        start, stop = self._range(key)
        return os.pread(self._file.fileno(), stop - start, start)

    def __bytes__(self) -> bytes:
        return self[:]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (bytes, bytearray, memoryview)):
            return len(other) == self._size and bytes(self) == bytes(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like bytearray

    @property
    def file(self) -> Any:
        """The underlying binary file (seek before reading)."""
        return self._file

    @property
    def path(self) -> str:
        """The temporary file's path (valid until :meth:`close`)."""
        return str(self._file.name)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return bool(self._file.closed)

    def close(self) -> None:
        """Close and remove the temporary file (idempotent)."""
        self._file.close()

    def __repr__(self) -> str:
        return f"<FileBuffer {self._size} bytes>"


class GrowingBuffer:
    """A buffer of an announced size whose memory grows as data arrives.

    The announced size of a fragmented payload comes from its first
    fragment, so allocating it up front would let a few hostile bytes
    reserve megabytes; this buffer holds only what was written. Pieces
    written in order are appended to one ``bytearray``; a piece that comes
    early waits on its own until the gap before it is filled.
    It offers what :class:`~dasf_geo.protocol.fragments.Reassembler` needs
    (``len()`` is the announced size, slice assignment and reading) and
    :meth:`finish`, which hands over the complete payload.

    Args:
        size: the announced size in bytes.
    """

    __slots__ = ("_data", "_early", "_size")

    def __init__(self, size: int) -> None:
        self._size = size
        self._data = bytearray()
        self._early: dict[int, bytes] = {}

    def __len__(self) -> int:
        return self._size

    @property
    def held(self) -> int:
        """Bytes held in memory."""
        return len(self._data) + sum(len(p) for p in self._early.values())

    def __setitem__(self, key: slice, data: bytes | bytearray | memoryview) -> None:
        start, stop, _ = key.indices(self._size)
        if len(data) != stop - start:
            raise ValueError("GrowingBuffer slices cannot change the buffer's size")
        filled = len(self._data)
        if start < filled:  # rewriting what is there (a duplicate)
            if stop <= filled:
                self._data[start:stop] = data
                return
            self._data[start:filled] = data[: filled - start]
            data, start = data[filled - start :], filled
        if start > filled:
            self._early[start] = bytes(data)
            return
        self._data += data
        early = self._early
        while early and len(self._data) in early:
            self._data += early.pop(len(self._data))

    def __getitem__(self, key: slice) -> bytes:
        start, stop, _ = key.indices(self._size)
        if stop <= len(self._data):
            return bytes(self._data[start:stop])
        piece = self._early.get(start)
        if piece is not None and len(piece) >= stop - start:
            return piece[: stop - start]
        raise ValueError(f"bytes {start}..{stop} of the buffer were not written")

    def finish(self) -> bytearray:
        """The payload (all of it written, else shorter than announced)."""
        data, self._data, self._early = self._data, bytearray(), {}
        return data


def buffer_factory(threshold: int = DEFAULT_SPOOL_THRESHOLD) -> Callable[[int], Any]:
    """A Reassembler buffer factory: memory up to ``threshold`` bytes, else a file.

    In memory, a :class:`GrowingBuffer`: it holds only the bytes that
    arrived, never the announced size in advance.
    """

    def make(size: int) -> Any:
        return GrowingBuffer(size) if size <= threshold else FileBuffer(size)

    return make


def payload_bytes(payload: Any) -> bytes | bytearray:
    """The bytes of a reassembled payload (reads a :class:`FileBuffer` whole)."""
    if isinstance(payload, (bytes, bytearray)):
        return payload
    return bytes(payload)


@dataclass(frozen=True)
class ReceivedPart:
    """One binary part of a received multipart request.

    Attributes:
        index: the part's number (from 1).
        media_type: its declared media type.
        source: its bytes (a view into the reassembled payload) or the path
            of a temporary file that holds exactly them.
        size: its size in bytes.
    """

    index: int
    media_type: str
    source: memoryview | str
    size: int


def _copy_range(src: int, dst: int, offset: int, count: int) -> None:
    """Copy ``count`` bytes at ``offset`` of file ``src`` to the start of ``dst``.

    In the kernel where it can (``copy_file_range``, else ``sendfile``),
    so the bytes never pass through this process.
    """
    done = 0
    try:
        while done < count:
            n = os.copy_file_range(src, dst, count - done, offset + done, done)
            if n == 0:
                break
            done += n
    except OSError:  # not supported between these files: fall back
        pass
    if done < count:
        os.lseek(dst, done, os.SEEK_SET)
        try:
            while done < count:
                n = os.sendfile(dst, src, offset + done, count - done)
                if n == 0:
                    break
                done += n
        except OSError:
            while done < count:
                chunk = os.pread(src, min(count - done, 1 << 22), offset + done)
                if not chunk:
                    break
                os.pwrite(dst, chunk, done)
                done += len(chunk)
    if done != count:
        raise OSError(f"copied {done} of {count} bytes of a request part")


@contextlib.contextmanager
def received_parts(
    data: Any, specs: list[PartSpec]
) -> Iterator[tuple[bytes, list[ReceivedPart]]]:
    """Cut a reassembled multipart payload into its JSON and binary parts.

    A payload in memory is cut into views (no copies). A payload reassembled
    in a :class:`FileBuffer` gives each binary part a temporary file of its
    own, copied in the kernel, so that a NetCDF reader can open it; leaving
    the block removes those files and the buffer's.

    Args:
        data: the reassembled payload (``bytes``, ``bytearray`` or
            :class:`FileBuffer`).
        specs: the parts, as :func:`~dasf_geo.protocol.parts.parse_parts`
            returns them (the JSON part first).

    Yields:
        The JSON text and the binary parts.
    """
    files: list[FileBuffer] = []
    try:
        head_spec, *binary = specs
        if isinstance(data, FileBuffer):
            head = data[head_spec.offset : head_spec.end]
            parts = []
            for spec in binary:
                part_file = FileBuffer(spec.size)
                files.append(part_file)
                _copy_range(
                    data.file.fileno(), part_file.file.fileno(), spec.offset, spec.size
                )
                parts.append(
                    ReceivedPart(spec.index, spec.media_type, part_file.path, spec.size)
                )
        else:
            view = memoryview(data).cast("B")
            head = bytes(view[head_spec.offset : head_spec.end])
            parts = [
                ReceivedPart(
                    spec.index, spec.media_type, view[spec.offset : spec.end], spec.size
                )
                for spec in binary
            ]
        yield head, parts
    finally:
        for part_file in files:
            part_file.close()
        if isinstance(data, FileBuffer):
            data.close()
