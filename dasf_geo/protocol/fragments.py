"""Splitting a payload into fragments and joining them again (sans-I/O).

The reference format (docs/protocol.md, "Fragments"): the payload bytes are
base64-encoded once, the base64 text is cut into pieces of at most
``max_payload_size`` characters, and every piece travels as the ``payload`` of
its own message whose properties carry ``fragment`` (0-based) and
``num_fragments``. Joining the pieces in order and decoding gives the bytes.

This module produces exactly that format, so reference peers can read it, and
adds three properties they ignore (see :mod:`dasf_geo.protocol.constants`):

- ``dasfGeoCrc32`` on every message: CRC-32 of its base64 text, so a corrupt
  fragment is caught and named before anything is decoded;
- ``dasfGeoSize``: the total decoded size, so the receiver can preallocate one
  buffer and check the result's length;
- ``dasfGeoTransfer``: a random id shared by one payload's fragments, so two
  payloads with the same request context (a duplicate, a retry) never mix.

A sender that gives a fragmented payload up half-way (its source broke off,
its caller was cancelled) ends it with :func:`abort_marker`: a copy of
fragment 0's numbering with an empty payload and ``dasfGeoAbort``, on which
:meth:`Reassembler.add` drops the transfer at once. Peers that do not know
``dasfGeoAbort`` see a duplicate of fragment 0, which they drop; they give
the transfer up after their fragment timeout, as before.

Pieces are cut at multiples of 4 characters, so each piece is the base64 of
one slice of the payload and can be encoded and decoded on its own: the
sender never builds the whole base64 text, and the receiver decodes every
fragment straight into its place. Pieces from reference peers whose size is
not a multiple of 4 are still accepted (they are joined as text first).

Joining them again is :class:`~dasf_geo.protocol.reassembly.Reassembler`
(importable from here too). The law: ``Reassembler().add(...)`` over the
fragments of
``split_payload(data, n)``, in any order and with any duplicates, returns
``data``.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from dasf_geo.exceptions import FragmentError

try:
    # ISA-L's CRC-32 (the same checksum as zlib's) runs about six times as
    # fast as the zlib Python links: 13 ms instead of 79 ms per 133 MB of
    # base64, paid by the sender and again by the receiver of every payload
    from isal.isal_zlib import crc32 as _crc32
except ImportError:  # pragma: no cover - isal is a dependency
    from zlib import crc32 as _crc32
from dasf_geo.protocol.constants import (
    DEFAULT_MAX_PAYLOAD_SIZE,
    EXT_ABORT,
    EXT_CHECKSUM,
    EXT_SIZE,
    EXT_TRANSFER,
    PropertyKeys,
)
from dasf_geo.protocol.messages import b64encode

__all__ = [
    "Fragment",
    "Reassembler",
    "abort_marker",
    "crc32_hex",
    "fits_one_message",
    "one_message",
    "piece_chars",
    "split_payload",
    "split_stream",
]

_FRAGMENT = PropertyKeys.FRAGMENT.value
_NUM_FRAGMENTS = PropertyKeys.NUM_FRAGMENTS.value


def crc32_hex(data: bytes | bytearray | memoryview) -> str:
    """CRC-32 of ``data`` as 8 lowercase hex digits (zlib's CRC-32)."""
    return f"{_crc32(data) & 0xFFFFFFFF:08x}"


def piece_chars(max_payload_size: int) -> int:
    """Characters per fragment: ``max_payload_size`` rounded down to a multiple of 4.

    Raises:
        FragmentError: ``max_payload_size`` is smaller than 4.
    """
    if isinstance(max_payload_size, bool) or not isinstance(max_payload_size, int):
        raise FragmentError(
            f"max_payload_size must be an integer, got {max_payload_size!r}"
        )
    if max_payload_size < 4:
        raise FragmentError(
            f"max_payload_size must be at least 4 characters, got {max_payload_size}"
        )
    return max_payload_size - max_payload_size % 4


@dataclass(frozen=True)
class Fragment:
    """One message's share of a payload.

    Attributes:
        payload: base64 text (ASCII bytes) to send as the message payload.
        properties: the fragment's properties, to be merged into the
            message's other properties (empty of ``fragment`` keys when the
            payload fits into one message).
    """

    payload: bytes
    properties: dict[str, Any]


def fits_one_message(size: int, max_payload_size: int) -> bool:
    """True if ``size`` bytes go into one message (their base64 fits)."""
    return 4 * math.ceil(size / 3) <= max_payload_size


def one_message(
    data: bytes | bytearray | memoryview, *, extensions: bool = True
) -> Fragment:
    """``data`` as the single message of an unfragmented payload.

    Its properties carry the checksum and size (``dasfGeo*``) unless
    ``extensions`` is False. See :func:`fits_one_message`.
    """
    text = b64encode(data)
    props: dict[str, Any] = {}
    if extensions:
        props = {EXT_CHECKSUM: crc32_hex(text), EXT_SIZE: len(data)}
    return Fragment(text, props)


def split_stream(
    read: Callable[[int], bytes],
    size: int,
    max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE,
    *,
    extensions: bool = True,
) -> Iterator[Fragment]:
    """Yield the fragments of a payload of ``size`` bytes read with ``read(n)``.

    Only one piece is in memory at a time, so a payload in a (temporary)
    file can be sent with bounded memory.

    Args:
        read: returns up to ``n`` further bytes of the payload.
        size: the payload's exact size in bytes.
        max_payload_size: the largest base64 text per message, in characters.
        extensions: add the ``dasfGeo*`` properties (set False to produce
            byte-for-byte what the reference sends).

    Raises:
        FragmentError: ``read`` returned fewer bytes than ``size`` promised.
    """
    chars = piece_chars(max_payload_size)
    piece_bytes = chars // 4 * 3
    if fits_one_message(size, max_payload_size):
        data = read(size) if size else b""
        if len(data) != size:
            raise FragmentError(
                f"payload source ended after {len(data)} of {size} bytes"
            )
        yield one_message(data, extensions=extensions)
        return
    count = math.ceil(size / piece_bytes)
    transfer = secrets.token_hex(8)
    for index in range(count):
        want = min(piece_bytes, size - index * piece_bytes)
        data = read(want)
        if len(data) != want:
            raise FragmentError(
                f"payload source ended after {index * piece_bytes + len(data)} of "
                f"{size} bytes"
            )
        text = b64encode(data)
        props: dict[str, Any] = {_FRAGMENT: index, _NUM_FRAGMENTS: count}
        if extensions:
            props[EXT_CHECKSUM] = crc32_hex(text)
            props[EXT_SIZE] = size
            props[EXT_TRANSFER] = transfer
        yield Fragment(text, props)


#: The longest ``dasfGeoAbort`` text sent (the reason is for a log line).
MAX_ABORT_REASON = 200


def abort_marker(first: Mapping[str, Any], reason: str) -> Fragment:
    """The message that ends a fragmented payload its sender gave up.

    Args:
        first: the properties of the payload's fragment 0 (as
            :func:`split_stream` made them).
        reason: why the payload stops (logged by the receiver).

    Returns:
        A :class:`Fragment` with an empty payload and fragment 0's
        ``fragment``, ``num_fragments``, ``dasfGeoSize`` and
        ``dasfGeoTransfer``, plus ``dasfGeoAbort: reason``. A receiver
        that knows the property drops the transfer; one that does not sees
        a duplicate of fragment 0 and ignores it.

    Raises:
        FragmentError: ``first`` is not the properties of fragment 0 of a
            fragmented payload.
    """
    if first.get(_FRAGMENT) != 0 or not first.get(_NUM_FRAGMENTS):
        raise FragmentError(
            "an abort marker needs the properties of fragment 0 of a fragmented "
            f"payload, got {dict(first)!r:.200}"
        )
    props: dict[str, Any] = {
        key: first[key]
        for key in (_FRAGMENT, _NUM_FRAGMENTS, EXT_SIZE, EXT_TRANSFER)
        if key in first
    }
    props[EXT_ABORT] = (reason or "abandoned by its sender")[:MAX_ABORT_REASON]
    return Fragment(b"", props)


def split_payload(
    data: bytes | bytearray | memoryview,
    max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE,
    *,
    extensions: bool = True,
) -> Iterator[Fragment]:
    """Yield the fragments of ``data`` (see :func:`split_stream`)."""
    view = memoryview(data).cast("B")
    position = 0

    def read(n: int) -> bytes:
        nonlocal position
        chunk = view[position : position + n]
        position += len(chunk)
        return chunk  # type: ignore[return-value]  # b64encode takes views

    return split_stream(read, len(view), max_payload_size, extensions=extensions)


# --- reassembly ------------------------------------------------------------


# the receiving half lives in its own module; importable from here as before
from dasf_geo.protocol.reassembly import Reassembler  # noqa: E402
