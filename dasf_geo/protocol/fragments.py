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

The law: ``Reassembler().add(...)`` over the fragments of
``split_payload(data, n)``, in any order and with any duplicates, returns
``data``.
"""

from __future__ import annotations

import math
import secrets
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from dasf_geo.exceptions import FragmentError, FragmentTooLarge, ProtocolError

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
from dasf_geo.protocol.limits import MAX_REQUEST_SIZE
from dasf_geo.protocol.messages import b64decode, b64encode

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


def _int_prop(props: Mapping[str, Any], key: str, what: str) -> int | None:
    value = props.get(key)
    if value is None:
        return None
    # Pulsar turns property values into strings; the reference sends ints.
    if isinstance(value, bool):
        raise FragmentError(
            f"property {key!r} ({what}) must be an integer, got {value!r}"
        )
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise FragmentError(
                f"property {key!r} ({what}) must be an integer, got {value!r:.40}"
            ) from None
    if not isinstance(value, int):
        raise FragmentError(
            f"property {key!r} ({what}) must be an integer, got {value!r:.40}"
        )
    return value


def _decode(payload: bytes, where: str) -> bytes:
    try:
        return b64decode(payload, where)
    except ProtocolError as exc:
        raise FragmentError(str(exc)) from exc


def _check_crc(props: Mapping[str, Any], payload: bytes, where: str) -> None:
    expected = props.get(EXT_CHECKSUM)
    if expected is None:
        return
    if not isinstance(expected, str) or crc32_hex(payload) != expected.lower():
        raise FragmentError(f"{where} failed its CRC-32 integrity check")


@dataclass
class _Transfer:
    count: int
    total: int | None
    started: float
    touched: float
    max_size: int
    # decoded pieces are written into ``buffer`` when the total size is
    # known, kept in ``pieces`` otherwise; ``text`` holds raw base64 pieces
    # once a piece that is not a multiple of 4 characters showed up.
    buffer: Any = None
    piece_len: int | None = None
    pieces: dict[int, bytes] = field(default_factory=dict)
    text: dict[int, bytes] | None = None
    received: set[int] = field(default_factory=set)
    received_bytes: int = 0

    def describe(self) -> str:
        return f"received {len(self.received)} of {self.count} fragments"


def _check_size(size: int, limit: int) -> None:
    if size > limit:
        raise FragmentTooLarge(
            f"the payload has {size} bytes, more than the limit of {limit} bytes",
            size=size,
            limit=limit,
        )


class Reassembler:
    """Collects fragments and returns each payload once it is complete.

    Tolerates duplicates (ignored) and any arrival order; checks the
    ``dasfGeoCrc32`` and ``dasfGeoSize`` properties when present; bounds the
    size of every payload by ``max_size`` decoded bytes; forgets transfers
    that stay incomplete for ``timeout`` seconds (see :meth:`expire`), and
    at once those whose sender gave them up (:func:`abort_marker`).

    Time is passed in (``now``) so the class stays free of clocks and I/O.

    Args:
        max_size: the largest payload, in decoded bytes, that is accepted.
        timeout: seconds without a new fragment after which
            :meth:`expire` gives a transfer up.
        remember: how many completed transfers to remember, so that late
            duplicates of their fragments are dropped silently.
        buffer_factory: called with the announced total size of a payload
            to get the buffer its pieces are written into (default:
            ``bytearray``). It needs ``len()``, slice assignment and slice
            reading; a ``close()`` method, if it has one, is called when a
            transfer is given up. A completed payload is returned as this
            buffer (or what its ``finish()`` method returns, if it has one),
            and closing it is then the caller's job. This lets the
            transport put large payloads into a temporary file.
    """

    def __init__(
        self,
        max_size: int = MAX_REQUEST_SIZE,
        timeout: float = 60.0,
        remember: int = 4096,
        buffer_factory: Callable[[int], Any] | None = None,
    ) -> None:
        self.max_size = max_size
        self.timeout = timeout
        self._buffer_factory = buffer_factory or bytearray
        self._transfers: dict[Hashable, _Transfer] = {}
        self._done: OrderedDict[Hashable, None] = OrderedDict()
        self._remember = remember

    @property
    def pending(self) -> int:
        """Number of incomplete transfers held."""
        return len(self._transfers)

    def pending_bytes(self) -> int:
        """Decoded bytes held for incomplete transfers."""
        return sum(t.received_bytes for t in self._transfers.values())

    def abandon(self, key: Hashable, transfer_id: str | None) -> int | None:
        """Drop the transfer ``transfer_id`` of ``key``: its sender gave it up.

        Its fragments arriving late are then dropped as duplicates.

        Returns:
            The decoded bytes it held, or None when no such transfer is
            held (complete already, failed, or never begun here).
        """
        full_key = (key, transfer_id)
        transfer = self._transfers.get(full_key)
        if transfer is None:
            return None
        held = transfer.received_bytes
        self._drop(full_key)
        self._remember_done(full_key)
        return held

    def holds(self, key: Hashable) -> bool:
        """Whether an incomplete transfer of ``key`` is held (any transfer id)."""
        return any(k[0] == key for k in self._transfers)  # type: ignore[index]

    def discard(self, key: Hashable) -> None:
        """Forget every transfer whose key is ``key`` (e.g. a cancelled request)."""
        for full_key in [k for k in self._transfers if k[0] == key]:  # type: ignore[index]
            self._drop(full_key)

    def _drop(self, full_key: Hashable) -> None:
        transfer = self._transfers.pop(full_key, None)
        close = getattr(transfer.buffer, "close", None) if transfer else None
        if close is not None:
            close()

    def expire(self, now: float) -> list[tuple[Hashable, FragmentError]]:
        """Drop transfers idle for more than ``timeout`` seconds.

        Returns:
            ``(key, error)`` for each dropped transfer; ``error`` says how
            many fragments had arrived.
        """
        expired = []
        for full_key, transfer in list(self._transfers.items()):
            if now - transfer.touched > self.timeout:
                self._drop(full_key)
                expired.append(
                    (
                        full_key[0],  # type: ignore[index]
                        FragmentError(
                            f"gave up waiting for fragments after {self.timeout:g} s "
                            f"without one: {transfer.describe()}"
                        ),
                    )
                )
        return expired

    def add(
        self,
        key: Hashable,
        properties: Mapping[str, Any],
        payload: bytes,
        now: float = 0.0,
        max_size: int | None = None,
    ) -> bytes | bytearray | None:
        """Add one message's payload.

        Args:
            key: what the payload belongs to (e.g. request context and
                message type); fragments are only joined within one key.
            properties: the message's properties.
            payload: its base64 text as ASCII bytes.
            now: the current time in seconds (any monotonic clock).
            max_size: the size limit of this payload, in decoded bytes, if
                not the reassembler's ``max_size`` (the first fragment's
                value holds for the whole transfer).

        Returns:
            The decoded payload when this message completes it (at once for
            an unfragmented message), else None (more fragments needed, a
            duplicate, or an abort marker, which drops its transfer).

        Raises:
            FragmentError: the message is inconsistent with the others of its
                transfer, corrupt, or the payload exceeds ``max_size``
                (:class:`~dasf_geo.exceptions.FragmentTooLarge`, with the
                size and the limit). The transfer is dropped.
        """
        if properties.get(EXT_ABORT) is not None:
            # the sender gave the payload up (see abort_marker): never data
            transfer_id = properties.get(EXT_TRANSFER)
            self.abandon(key, None if transfer_id is None else str(transfer_id))
            return None
        index = _int_prop(properties, _FRAGMENT, "fragment index")
        count = _int_prop(properties, _NUM_FRAGMENTS, "number of fragments")
        total = _int_prop(properties, EXT_SIZE, "payload size")
        limit = self.max_size if max_size is None else max_size
        if index is None and count is None:
            _check_crc(properties, payload, "the message")
            _check_size(total if total is not None else len(payload) // 4 * 3, limit)
            data = _decode(payload, "payload")
            if total is not None and len(data) != total:
                raise FragmentError(
                    f"the payload has {len(data)} bytes, but its sender announced "
                    f"{total}"
                )
            _check_size(len(data), limit)
            return data
        if index is None or count is None:
            raise FragmentError(
                f"a fragment needs both {_FRAGMENT!r} and {_NUM_FRAGMENTS!r} properties"
            )
        transfer_id = properties.get(EXT_TRANSFER)
        full_key = (key, None if transfer_id is None else str(transfer_id))
        if full_key in self._done:
            return None  # a late duplicate of a completed transfer
        try:
            return self._add_fragment(
                full_key, index, count, total, payload, properties, now, limit
            )
        except FragmentError:
            self._drop(full_key)
            raise

    def _add_fragment(
        self,
        full_key: Hashable,
        index: int,
        count: int,
        total: int | None,
        payload: bytes,
        properties: Mapping[str, Any],
        now: float,
        limit: int,
    ) -> bytes | bytearray | None:
        where = f"fragment {index} of {count}"
        if count < 1 or not 0 <= index < count:
            raise FragmentError(f"invalid {where}")
        if total is not None and total < 0:
            raise FragmentError(f"invalid payload size {total} in {where}")
        transfer = self._transfers.get(full_key)
        if transfer is not None:
            limit = transfer.max_size
        if total is not None:
            _check_size(total, limit)
        if transfer is None:
            # a hostile count must not make us reserve anything up front;
            # each piece carries at least 1 byte, so count is bounded by size
            if count > limit + 1:
                _check_size(count, limit)
            transfer = _Transfer(
                count=count,
                total=total,
                started=now,
                touched=now,
                max_size=limit,
            )
            if total is not None:
                transfer.buffer = self._buffer_factory(total)
            self._transfers[full_key] = transfer
        elif transfer.count != count or transfer.total != total:
            raise FragmentError(
                f"{where} disagrees with earlier fragments of the same payload "
                f"(they announced {transfer.count} fragments"
                + (
                    f" and {transfer.total} bytes)"
                    if transfer.total is not None
                    else ")"
                )
            )
        transfer.touched = now
        if index in transfer.received:
            return None  # duplicate
        _check_crc(properties, payload, where)
        last = index == count - 1
        if transfer.text is None and len(payload) % 4:
            # reference peer with a max_payload_size that is not a multiple
            # of 4: pieces can only be decoded after joining the text. (The
            # whole text is a multiple of 4 long, so an unaligned last piece
            # means an unaligned piece before it.)
            self._switch_to_text(transfer)
        if transfer.text is not None:
            transfer.text[index] = payload
            transfer.received_bytes += len(payload) // 4 * 3
        else:
            self._store_decoded(transfer, index, last, _decode(payload, where), where)
        transfer.received.add(index)
        _check_size(transfer.received_bytes, transfer.max_size)
        if len(transfer.received) < count:
            return None
        del self._transfers[full_key]
        self._remember_done(full_key)
        return self._finish(transfer)

    def _remember_done(self, full_key: Hashable) -> None:
        self._done[full_key] = None
        if len(self._done) > self._remember:
            self._done.popitem(last=False)

    def _store_decoded(
        self, transfer: _Transfer, index: int, last: bool, data: bytes, where: str
    ) -> None:
        transfer.received_bytes += len(data)
        if not last:
            if transfer.piece_len is None:
                transfer.piece_len = len(data)
            elif len(data) != transfer.piece_len:
                raise FragmentError(
                    f"{where} has {len(data)} bytes; the other fragments have "
                    f"{transfer.piece_len}"
                )
        if transfer.buffer is None:
            transfer.pieces[index] = data
            return
        total = len(transfer.buffer)
        if last:
            offset = total - len(data)
            if transfer.piece_len is not None and offset != index * transfer.piece_len:
                raise FragmentError(f"{where} does not fit the announced size {total}")
        else:
            offset = index * len(data)
        if offset < 0 or offset + len(data) > total:
            raise FragmentError(f"{where} does not fit the announced size {total}")
        transfer.buffer[offset : offset + len(data)] = data

    def _switch_to_text(self, transfer: _Transfer) -> None:
        text: dict[int, bytes] = {}
        for i in transfer.received:
            if transfer.buffer is not None:
                assert transfer.piece_len is not None or i == transfer.count - 1
                if i == transfer.count - 1:
                    raw = bytes(
                        transfer.buffer[
                            len(transfer.buffer) - self._last_len(transfer) :
                        ]
                    )
                else:
                    pl = transfer.piece_len or 0
                    raw = bytes(transfer.buffer[i * pl : (i + 1) * pl])
            else:
                raw = transfer.pieces[i]
            text[i] = b64encode(raw)
        transfer.text = text
        transfer.pieces = {}
        close = getattr(transfer.buffer, "close", None)
        if close is not None:
            close()
        transfer.buffer = None
        transfer.piece_len = None

    @staticmethod
    def _last_len(transfer: _Transfer) -> int:
        # only reached when the last piece was stored before the switch
        assert transfer.buffer is not None
        if transfer.piece_len is None:
            return len(transfer.buffer)
        return len(transfer.buffer) - (transfer.count - 1) * transfer.piece_len

    def _finish(self, transfer: _Transfer) -> Any:
        if transfer.text is not None:
            data: Any = _decode(
                b"".join(transfer.text[i] for i in range(transfer.count)),
                "joined payload",
            )
        elif transfer.buffer is not None:
            data = transfer.buffer
            finish = getattr(data, "finish", None)
            if finish is not None:  # a buffer that hands over its payload
                data = finish()
        else:
            data = b"".join(transfer.pieces[i] for i in range(transfer.count))
        if transfer.total is not None and (
            len(data) != transfer.total or transfer.received_bytes != transfer.total
        ):
            close = getattr(data, "close", None)
            if close is not None:
                close()
            raise FragmentError(
                f"the joined payload has {transfer.received_bytes} bytes, but its "
                f"sender announced {transfer.total}"
            )
        _check_size(len(data), transfer.max_size)
        return data
