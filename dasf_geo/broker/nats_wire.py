"""The NATS client protocol, without I/O: a parser and the commands a front sends.

A broker front's data plane (:mod:`dasf_geo.broker.nats_data`) speaks the
NATS client protocol itself (https://docs.nats.io/reference/reference-protocols/nats-protocol)
rather than through nats-py, because a cluster front moves half-megabyte
fragments and nats-py copies each of them several times on the way (its
stream reader joins and trims its buffer, its parser extends, slices and
trims another, its publish joins control line, payload and CRLF).

:class:`Parser` follows the ``asyncio.BufferedProtocol`` contract but
touches no socket: :meth:`Parser.get_buffer` hands out the memory the next
read goes into and :meth:`Parser.buffer_updated` parses what arrived and
returns the events. Control lines and small messages are read into one
reusable buffer; the payload of a large ``MSG``/``HMSG`` gets a buffer of
its own, allocated once when its control line is parsed, and the reads go
straight into it, so a fragment is never copied between the socket and
:class:`Msg` (only the part that arrived with its control line is). The
commands (:func:`pub_header`, :func:`sub_command`, …) are formatted here,
the payload is not: a publisher writes ``[control line, body pieces…,
CRLF]`` one after the other.

Errors: malformed server input raises
:class:`~dasf_geo.exceptions.ProtocolError` naming the offending line; the
parser is then unusable (the connection must be dropped).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dasf_geo.exceptions import ProtocolError

__all__ = [
    "CRLF",
    "Err",
    "Info",
    "Msg",
    "Parser",
    "Ping",
    "Pong",
    "connect_command",
    "headers_block",
    "parse_headers",
    "pub_header",
    "sub_command",
    "unsub_command",
]

CRLF = b"\r\n"
#: longest control line taken from a server (an INFO with many cluster URLs
#: is the longest a server sends; NATS' own limit for clients is 4 KiB)
MAX_CONTROL_LINE = 1024 * 1024
#: payloads at least this large are read straight into a buffer of their own
DIRECT_PAYLOAD = 16 * 1024
#: size of the buffer control lines and small messages are read into
READ_CHUNK = 64 * 1024


@dataclass(slots=True)
class Msg:
    """A message delivered on a subscription (``MSG`` or ``HMSG``).

    Attributes:
        subject: the subject it was published to.
        sid: the subscription id it was delivered for.
        reply: its reply subject ("" for none).
        data: the payload (a bytearray of its own for a large payload).
        headers: the headers of an ``HMSG`` (with ``Status`` and
            ``Description`` from its status line, as nats-py gives them), or
            None.
    """

    subject: str
    sid: int
    reply: str
    data: bytes | bytearray
    headers: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Info:
    """The server's ``INFO`` (its JSON object)."""

    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Err:
    """The server's ``-ERR`` with its text (quotes removed)."""

    text: str


class Ping:
    """The server asks for a ``PONG``."""


class Pong:
    """The answer to a ``PING`` of ours."""


_PING = Ping()
_PONG = Pong()

Event = Msg | Info | Err | Ping | Pong


def parse_headers(raw: bytes | bytearray) -> dict[str, str]:
    """The headers block of an ``HMSG`` (``NATS/1.0 …`` and ``Key: Value`` lines).

    A status line ``NATS/1.0 503 No Responders`` gives ``Status: "503"`` and
    ``Description: "No Responders"``.

    Raises:
        ProtocolError: the block does not start with ``NATS/1.0`` or a
            line has no ``:``.
    """
    text = bytes(raw).decode("utf-8", "replace")
    lines = text.split("\r\n")
    first = lines[0]
    if not first.startswith("NATS/1.0"):
        raise ProtocolError(
            f"NATS sent a message whose headers do not start with NATS/1.0: "
            f"{first[:80]!r}"
        )
    headers: dict[str, str] = {}
    status = first[len("NATS/1.0") :].strip()
    if status:
        code, _, description = status.partition(" ")
        headers["Status"] = code
        if description:
            headers["Description"] = description.strip()
    for line in lines[1:]:
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(f"NATS sent a header line without ':': {line[:80]!r}")
        headers[key.strip()] = value.strip()
    return headers


def _size(text: bytes, line: bytes) -> int:
    if not text.isdigit():
        raise ProtocolError(
            f"NATS sent a message line with a bad size: {bytes(line[:120])!r}"
        )
    return int(text)


class Parser:
    """Parses what a NATS server sends (see the module docstring).

    Use as the read side of an ``asyncio.BufferedProtocol``: read into
    :meth:`get_buffer`, then call :meth:`buffer_updated` with the count;
    or call :meth:`feed` with bytes (tests, other transports).
    """

    def __init__(self, chunk: int = READ_CHUNK) -> None:
        self._buf = bytearray(chunk)
        self._start = 0  # unread bytes are self._buf[_start:_end]
        self._end = 0
        # the message whose payload is being read: (subject, sid, reply,
        # header size, total size); its payload buffer and how much is in
        self._msg: tuple[str, int, str, int, int] | None = None
        self._headers: dict[str, str] | None = None
        self._body: bytearray | None = None
        self._got = 0
        self._failed: ProtocolError | None = None

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Memory the next read goes into (never empty)."""
        body = self._body
        if body is not None and self._got < len(body):
            return memoryview(body)[self._got :]
        buf = self._buf
        if self._start == self._end:
            self._start = self._end = 0
        elif len(buf) - self._end < 4096:
            # make room: move the unread bytes (a partial line or a small
            # message) to the front, or grow for a long control line
            unread = self._end - self._start
            if self._start:
                buf[:unread] = buf[self._start : self._end]
                self._start, self._end = 0, unread
            if len(buf) - self._end < 4096:
                buf.extend(bytes(len(buf)))
        return memoryview(buf)[self._end :]

    def buffer_updated(self, nbytes: int) -> list[Event]:
        """Parse ``nbytes`` just read into :meth:`get_buffer`'s memory.

        Raises:
            ProtocolError: the server sent something that is not the NATS
                protocol; the parser takes nothing more.
        """
        if self._failed is not None:
            raise self._failed
        events: list[Event] = []
        body = self._body
        if body is not None and self._got < len(body):
            self._got += nbytes
            if self._got < len(body):
                return events
        else:
            self._end += nbytes
        try:
            self._parse(events)
        except ProtocolError as exc:
            self._failed = exc
            raise
        return events

    def feed(self, data: bytes) -> list[Event]:
        """Parse ``data`` (copied into the parser's memory piece by piece)."""
        events: list[Event] = []
        view = memoryview(data)
        while view:
            target = self.get_buffer(len(view))
            n = min(len(target), len(view))
            target[:n] = view[:n]
            del target  # the parser may resize its buffer on the next call
            view = view[n:]
            events.extend(self.buffer_updated(n))
        return events

    def _parse(self, events: list[Event]) -> None:
        buf = self._buf
        while True:
            if self._msg is not None:
                if not self._payload(events):
                    return
                continue
            end = buf.find(CRLF, self._start, self._end)
            if end < 0:
                if self._end - self._start > MAX_CONTROL_LINE:
                    start = bytes(buf[self._start : min(self._end, self._start + 60)])
                    raise ProtocolError(
                        f"NATS sent a line longer than {MAX_CONTROL_LINE} bytes "
                        f"without CRLF (it starts {start!r})"
                    )
                return
            line = bytes(buf[self._start : end])
            self._start = end + 2
            self._control(line, events)

    def _control(self, line: bytes, events: list[Event]) -> None:
        op, _, rest = line.partition(b" ")
        op = op.upper()
        if op == b"MSG":
            args = rest.split()
            if len(args) not in (3, 4):
                raise ProtocolError(f"NATS sent a malformed MSG line: {line[:120]!r}")
            size = _size(args[-1], line)
            reply = args[2].decode() if len(args) == 4 else ""
            self._start_msg(args[0].decode(), args[1], reply, 0, size, line)
        elif op == b"HMSG":
            args = rest.split()
            if len(args) not in (4, 5):
                raise ProtocolError(f"NATS sent a malformed HMSG line: {line[:120]!r}")
            hsize = _size(args[-2], line)
            size = _size(args[-1], line)
            if hsize > size:
                raise ProtocolError(
                    f"NATS sent an HMSG whose headers are larger than the "
                    f"message: {line[:120]!r}"
                )
            reply = args[2].decode() if len(args) == 5 else ""
            self._start_msg(args[0].decode(), args[1], reply, hsize, size, line)
        elif op == b"PING":
            events.append(_PING)
        elif op == b"PONG":
            events.append(_PONG)
        elif op == b"+OK":
            pass
        elif op == b"-ERR":
            events.append(Err(rest.decode("utf-8", "replace").strip().strip("'")))
        elif op == b"INFO":
            try:
                fields = json.loads(rest)
            except ValueError as exc:
                raise ProtocolError(
                    f"NATS sent an INFO that is not JSON ({exc}): {line[:120]!r}"
                ) from None
            if not isinstance(fields, dict):
                raise ProtocolError(
                    f"NATS sent an INFO that is no object: {line[:120]!r}"
                )
            events.append(Info(fields))
        else:
            raise ProtocolError(
                f"NATS sent an unknown protocol line: {line[:120]!r} (is this a "
                "NATS server?)"
            )

    def _start_msg(
        self, subject: str, sid: bytes, reply: str, hsize: int, size: int, line: bytes
    ) -> None:
        if not sid.isdigit():
            raise ProtocolError(f"NATS sent a message with a bad sid: {line[:120]!r}")
        self._msg = (subject, int(sid), reply, hsize, size)
        self._headers = None

    def _payload(self, events: list[Event]) -> bool:
        """Go on reading the current message; True once it is complete."""
        assert self._msg is not None
        hsize, size = self._msg[3], self._msg[4]
        buf = self._buf
        if hsize and self._headers is None:
            # headers are small: read them from the chunk buffer
            if self._end - self._start < hsize:
                self._room(hsize)
                return False
            self._headers = parse_headers(buf[self._start : self._start + hsize])
            self._start += hsize
        length = size - hsize
        body = self._body
        if body is None:
            available = self._end - self._start
            if length < DIRECT_PAYLOAD:
                if available < length + 2:
                    self._room(length + 2)
                    return False
                data: bytes | bytearray = bytes(buf[self._start : self._start + length])
                self._start += length
                return self._finish(data, events)
            # a large payload: its own buffer; what came with the control
            # line is copied in, the rest is read straight into it
            body = bytearray(length)
            take = min(available, length)
            body[:take] = buf[self._start : self._start + take]
            self._start += take
            self._body = body
            self._got = take
            if take < length:
                return False
        elif self._got < len(body):
            return False
        if self._end - self._start < 2:
            return False
        return self._finish(body, events)

    def _room(self, need: int) -> None:
        """Make sure ``need`` bytes fit the chunk buffer after the read position."""
        if len(self._buf) - self._start < need:
            unread = self._end - self._start
            grown = bytearray(max(need, len(self._buf)))
            grown[:unread] = self._buf[self._start : self._end]
            self._buf = grown
            self._start, self._end = 0, unread

    def _finish(self, data: bytes | bytearray, events: list[Event]) -> bool:
        buf = self._buf
        if buf[self._start : self._start + 2] != CRLF:
            assert self._msg is not None
            raise ProtocolError(
                f"NATS sent a message on {self._msg[0][:80]!r} whose payload is "
                "not followed by CRLF (got "
                f"{bytes(buf[self._start : min(self._end, self._start + 8)])!r})"
            )
        self._start += 2
        assert self._msg is not None
        subject, sid, reply, _, _ = self._msg
        events.append(Msg(subject, sid, reply, data, self._headers))
        self._msg = None
        self._headers = None
        self._body = None
        self._got = 0
        return True


def connect_command(options: dict[str, Any]) -> bytes:
    """``CONNECT {json}`` and ``PING`` (the server's PONG confirms it)."""
    return (
        b"CONNECT "
        + json.dumps(options, separators=(",", ":")).encode()
        + b"\r\nPING\r\n"
    )


def pub_header(subject: str, reply: str, size: int, headers: bytes = b"") -> bytes:
    """The control line of a ``PUB`` (``HPUB`` with ``headers``) of ``size`` bytes.

    ``size`` counts the payload only; with headers, the line carries both
    sizes and the headers block follows it (it is part of the result).
    """
    if headers:
        total = len(headers) + size
        if reply:
            line = f"HPUB {subject} {reply} {len(headers)} {total}\r\n"
        else:
            line = f"HPUB {subject} {len(headers)} {total}\r\n"
        return line.encode() + headers
    if reply:
        return f"PUB {subject} {reply} {size}\r\n".encode()
    return f"PUB {subject} {size}\r\n".encode()


def headers_block(headers: dict[str, str]) -> bytes:
    """The ``NATS/1.0`` headers block of ``headers`` (for ``HPUB``).

    Raises:
        ProtocolError: a name or value holds a line break, or a name a ``:``.
    """
    lines = ["NATS/1.0"]
    for key, value in headers.items():
        if any(c in key for c in "\r\n:") or any(c in value for c in "\r\n"):
            raise ProtocolError(
                f"a NATS header cannot hold a line break (or ':' in its name): "
                f"{key[:40]!r}: {value[:40]!r}"
            )
        lines.append(f"{key}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def sub_command(subject: str, sid: int, queue: str = "") -> bytes:
    """``SUB subject [queue] sid``."""
    if queue:
        return f"SUB {subject} {queue} {sid}\r\n".encode()
    return f"SUB {subject} {sid}\r\n".encode()


def unsub_command(sid: int) -> bytes:
    """``UNSUB sid``."""
    return f"UNSUB {sid}\r\n".encode()
