"""Joining fragments again: :class:`Reassembler` (sans-I/O).

The receiving half of :mod:`dasf_geo.protocol.fragments` (which cuts a
payload into fragments and describes the format): a :class:`Reassembler`
takes the messages of fragmented payloads in any order, with duplicates,
checks their ``dasfGeoCrc32`` and ``dasfGeoSize``, decodes each piece into
its place, bounds what it holds, forgets transfers that stop coming and
drops at once those whose sender gave them up (``dasfGeoAbort``, see
:func:`~dasf_geo.protocol.fragments.abort_marker`).

It is also importable from :mod:`dasf_geo.protocol.fragments`, where it
lived first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dasf_geo.exceptions import FragmentError, FragmentTooLarge, ProtocolError
from dasf_geo.protocol.constants import EXT_ABORT, EXT_CHECKSUM, EXT_SIZE, EXT_TRANSFER
from dasf_geo.protocol.fragments import _FRAGMENT, _NUM_FRAGMENTS, crc32_hex
from dasf_geo.protocol.limits import MAX_REQUEST_SIZE
from dasf_geo.protocol.messages import b64decode, b64encode

__all__ = ["Reassembler"]


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
