"""The listener's decisions, without I/O: what to do with each message.

A :class:`RequestIntake` takes every message of a backend topic
(:meth:`RequestIntake.receive`) and says what to do with it, as one event:

- :class:`Acknowledge` — ack these messages, nothing else (a fragment held
  for later, an answer that arrived on a request topic, the rest of a
  request answered with an error already, the ``dasfGeoAbort`` marker of an
  upload its caller gave up, whose fragments are dropped at once);
- :class:`Refuse` — answer the request with one error reply (missing or
  invalid ``requestContext``/``messageType``/``response_topic``, fragments
  beyond the memory caps, a broken transfer), then ack it;
- :class:`Deliver` — the request is whole: its payload is attached.

For a whole request, :meth:`RequestIntake.dispatch` decides next:
:class:`Answer` (a ``pong``, ``info`` or ``api_info`` reply), :class:`Run`
(hand it to the handler), or a :class:`Refuse` (bad options, a full queue,
an unsupported message type). It joins fragments within the limits of
fragmented requests held at a time and of their bytes held in memory, and
remembers requests that failed mid-transfer so that each gets exactly one
error reply.

The replies themselves are built in :mod:`dasf_geo.transport.answers`.
Tests feed messages in and read the events
(``tests/transport/test_dispatch.py``), as the ``websockets`` library tests
its protocol objects; :class:`~dasf_geo.transport.listener.Listener` does
the I/O.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from dasf_geo.exceptions import (
    FragmentError,
    PartError,
    ProtocolError,
)
from dasf_geo.protocol.constants import (
    EXT_ABORT,
    EXT_ACCEPT,
    EXT_PARTS,
    EXT_SIZE,
    EXT_TRANSFER,
    KEY_MESSAGE_TYPE,
    KEY_REQUEST_CONTEXT,
    KEY_RESPONSE_TOPIC,
    MessageType,
    PropertyKeys,
)
from dasf_geo.protocol.fragments import Reassembler
from dasf_geo.protocol.messages import (
    ConsumerMessage,
    RequestHeader,
    parse_request_header,
)
from dasf_geo.protocol.options import (
    TransferOptions,
    format_size,
)
from dasf_geo.protocol.parts import parse_parts
from dasf_geo.transport.handler import (
    parse_accept,
)

__all__ = [
    "DEFAULT_MAX_INCOMPLETE",
    "DEFAULT_MAX_INCOMPLETE_BYTES",
    "REMEMBER_FAILED",
    "Acknowledge",
    "Answer",
    "Deliver",
    "Refuse",
    "RequestIntake",
    "Run",
    "redeliverable",
]

logger = logging.getLogger("dasf_geo.transport.backend")

#: Fragmented requests one backend receives at a time (``max_incomplete_requests``).
DEFAULT_MAX_INCOMPLETE = 64
#: Decoded bytes of incomplete requests one backend holds in memory
#: (``max_incomplete_bytes``); larger payloads are spooled to a file.
DEFAULT_MAX_INCOMPLETE_BYTES = 256 * 1024 * 1024
#: Requests that failed while their fragments arrived, remembered so that
#: their later fragments are dropped instead of answered again.
REMEMBER_FAILED = 4096

_FRAGMENT = PropertyKeys.FRAGMENT.value
#: message types that answer something: acknowledged, never run or answered
_ANSWERS = frozenset(
    {
        MessageType.PONG.value,
        MessageType.RESPONSE.value,
        MessageType.PROGRESS.value,
        MessageType.LOG.value,
    }
)


@dataclass
class _Incoming:
    header: RequestHeader
    message_ids: list[str] = field(default_factory=list)
    #: media types the caller takes as a raw binary reply (``dasfGeoAccept``)
    accept: frozenset[str] = frozenset()
    #: the raw ``dasfGeoParts`` property of a multipart request, else None
    parts: Any = None
    #: the caller's per-call options (``dasfGeoFragmentSize``, …)
    options: TransferOptions = field(default_factory=TransferOptions)
    #: what is wrong with those properties (answered with an error), if anything
    options_error: str | None = None
    #: the called function's own options (see :class:`FunctionReply`)
    function_options: TransferOptions = field(default_factory=TransferOptions)
    #: ``redeliveryCount`` of the message that completed the request
    redelivery_count: int = 0
    #: decoded bytes of its fragments held in memory so far
    held_bytes: int = 0
    #: its fragments are spooled to a file (announced above the threshold)
    spooled: bool = False


# --- the events ------------------------------------------------------------


@dataclass
class Acknowledge:
    """Acknowledge these messages; nothing to answer."""

    message_ids: list[str]


@dataclass
class Refuse:
    """Answer ``incoming`` with one error reply, then acknowledge it.

    ``ack_first`` lists messages to acknowledge at once (a message that is
    no valid request is acknowledged before its error reply is sent).
    """

    incoming: _Incoming
    text: str
    errors: list[dict[str, Any]] | None = None
    ack_first: tuple[str, ...] = ()


@dataclass
class Deliver:
    """A whole request: its envelope and options, and its payload."""

    incoming: _Incoming
    data: bytes | bytearray


@dataclass
class Answer:
    """Answer a metadata request: ``kind`` is ``ping``, ``info`` or ``api_info``."""

    incoming: _Incoming
    kind: str


@dataclass
class Run:
    """Hand the request to the handler (in the worker pool)."""

    incoming: _Incoming
    data: bytes | bytearray


# --- the intake ------------------------------------------------------------


class RequestIntake:
    """What to do with each message of a backend topic (sans-I/O).

    Args:
        topic: the backend's topic, to name it in error replies.
        reassembler: joins the fragments of requests.
        max_incomplete: most fragmented requests received at a time.
        max_incomplete_bytes: most decoded bytes of them held in memory.
        spool_threshold: announced sizes above this are spooled to a file
            (and do not count against ``max_incomplete_bytes``).
        queue_size: most requests running or waiting for a worker (None:
            no limit).
    """

    def __init__(
        self,
        topic: str,
        reassembler: Reassembler,
        *,
        max_incomplete: int = DEFAULT_MAX_INCOMPLETE,
        max_incomplete_bytes: int = DEFAULT_MAX_INCOMPLETE_BYTES,
        spool_threshold: int = 1 << 62,
        queue_size: int | None = None,
    ) -> None:
        self.topic = topic
        self.reassembler = reassembler
        self.max_incomplete = max_incomplete
        self.max_incomplete_bytes = max_incomplete_bytes
        self.spool_threshold = spool_threshold
        self.queue_size = queue_size
        #: decoded bytes of incomplete requests held in memory
        self.incomplete_bytes = 0
        #: requests whose fragments are arriving, by (context, reply topic)
        self.incoming: dict[tuple[str, str], _Incoming] = {}
        #: requests that failed while their fragments arrived (key -> time)
        self.failed: dict[tuple[str, str], float] = {}

    def drop(self, key: tuple[str, str], now: float | None = None) -> _Incoming | None:
        """Forget an incomplete request; with ``now``, as failed at that time."""
        incoming = self.incoming.pop(key, None)
        if incoming is not None:
            self.incomplete_bytes -= incoming.held_bytes
            incoming.held_bytes = 0
        self.reassembler.discard(key)
        if now is not None:
            self.failed[key] = now
            if len(self.failed) > REMEMBER_FAILED:
                del self.failed[next(iter(self.failed))]
        return incoming

    def expire(self, now: float) -> list[Refuse]:
        """The error replies for requests whose fragments stopped coming.

        Also forgets the failed requests older than twice the fragment
        timeout (their late fragments cannot come any more).
        """
        refusals = []
        for key, error in self.reassembler.expire(now):
            incoming = self.drop(key, now)  # type: ignore[arg-type]
            if incoming is not None:
                refusals.append(Refuse(incoming, f"error receiving request: {error}"))
        horizon = now - 2 * self.reassembler.timeout
        for key, failed_at in list(self.failed.items()):
            if failed_at >= horizon:
                break  # in order of failure
            del self.failed[key]
        return refusals

    def receive(
        self, msg: ConsumerMessage, now: float
    ) -> Acknowledge | Refuse | Deliver | None:
        """What to do with one message of the topic.

        Returns None for a message that is dropped unanswered and
        unacknowledged (none today; reserved).
        """
        try:
            header = parse_request_header(msg.properties)
        except ProtocolError as exc:
            return self._refuse_envelope(msg, exc)
        if header.message_type in _ANSWERS:
            # an answer on a request topic (another backend's pong, a
            # misrouted reply): nothing to run and never answered
            return Acknowledge([msg.message_id])
        key = (header.request_context, header.response_topic)
        props = msg.properties
        if props.get(EXT_ABORT) is not None:
            return self._abandon(key, msg)
        fragment = props.get(_FRAGMENT) is not None
        if fragment and key in self.failed:
            # the rest of a request that was answered with an error already
            return Acknowledge([msg.message_id])
        incoming = self.incoming.get(key)
        created = incoming is None
        if incoming is None:
            incoming = _Incoming(
                header,
                accept=parse_accept(props.get(EXT_ACCEPT)),
                parts=props.get(EXT_PARTS),
            )
            try:
                incoming.options = TransferOptions.from_properties(props)
            except ProtocolError as exc:
                incoming.options_error = str(exc)
            if fragment:
                if len(self.incoming) >= self.max_incomplete:
                    return self._refuse_fragments(
                        key,
                        incoming,
                        msg,
                        "error receiving request: the backend on topic "
                        f"{self.topic!r} is receiving "
                        f"{len(self.incoming)} fragmented requests already (the "
                        f"limit is {self.max_incomplete}); try again later",
                        now,
                    )
                total = props.get(EXT_SIZE)
                incoming.spooled = (
                    isinstance(total, int) and total > self.spool_threshold
                )
            self.incoming[key] = incoming
        try:
            data = self.reassembler.add(key, props, msg.payload, now)
        except FragmentError as exc:
            text = f"error receiving request: {exc}"
            if incoming.parts is not None and "more than the limit" in text:
                text += _parts_over(incoming.parts, self.reassembler.max_size)
            return self._refuse_fragments(key, incoming, msg, text, now)
        if data is None:
            if created and not self.reassembler.holds(key):
                # a late duplicate of a transfer that completed (or was
                # given up) already: nothing is held for it, so no entry
                # stays behind to count against max_incomplete_requests
                del self.incoming[key]
                return Acknowledge([msg.message_id])
            if not incoming.spooled:
                size = len(msg.payload) // 4 * 3
                incoming.held_bytes += size
                self.incomplete_bytes += size
                if self.incomplete_bytes > self.max_incomplete_bytes:
                    return self._refuse_fragments(
                        key,
                        incoming,
                        msg,
                        "error receiving request: the backend on topic "
                        f"{self.topic!r} holds "
                        f"{format_size(self.incomplete_bytes)} of incomplete "
                        "requests, above its limit of "
                        f"{format_size(self.max_incomplete_bytes)}; try again later",
                        now,
                    )
            # A fragment of a larger request: acknowledged at once, because a
            # broker holds only so many unacknowledged bytes per consumer
            # (32 MiB on dasf-geo broker) and a larger request would never
            # complete. The message that completes the request is acked
            # after the reply, so a request that fits one message is
            # redelivered if this backend dies; a fragmented one is not.
            return Acknowledge([msg.message_id])
        incoming.message_ids.append(msg.message_id)
        incoming.redelivery_count = msg.redelivery_count
        if self.incoming.get(key) is incoming:
            self.drop(key)
        return Deliver(incoming, data)

    def _abandon(self, key: tuple[str, str], msg: ConsumerMessage) -> Acknowledge:
        """Forget a request whose caller gave its upload up (``dasfGeoAbort``).

        Its fragments' memory and temporary file go at once; nothing is
        answered (the caller is gone). A marker for a transfer not held
        here (complete already, failed, or never begun) changes nothing.
        """
        props = msg.properties
        transfer = props.get(EXT_TRANSFER)
        held = self.reassembler.abandon(
            key, None if transfer is None else str(transfer)
        )
        if held is not None:
            self.drop(key)
            logger.info(
                "request %s: its caller abandoned the upload (%.200s); dropped "
                "the %s received",
                key[0][:100],
                props.get(EXT_ABORT),
                format_size(held),
            )
        return Acknowledge([msg.message_id])

    def _refuse_fragments(
        self,
        key: tuple[str, str],
        incoming: _Incoming,
        msg: ConsumerMessage,
        text: str,
        now: float,
    ) -> Refuse:
        """Answer a request whose fragments cannot be taken, once.

        Its later fragments are acknowledged and dropped (see
        :data:`REMEMBER_FAILED`), so the caller gets exactly one error.
        """
        self.drop(key, now)
        incoming.message_ids.append(msg.message_id)
        return Refuse(incoming, text)

    def _refuse_envelope(
        self, msg: ConsumerMessage, error: ProtocolError
    ) -> Acknowledge | Refuse:
        """Answer a message that names a reply topic but is no valid request.

        A message without a usable ``response_topic`` cannot be answered and
        is only logged. Either way the message is acknowledged at once.
        """
        props = msg.properties
        topic = props.get(KEY_RESPONSE_TOPIC)
        if not isinstance(topic, str) or not topic:
            logger.warning("dropping message %s: %s", msg.message_id, error)
            return Acknowledge([msg.message_id])
        context = props.get(KEY_REQUEST_CONTEXT)
        if props.get(KEY_MESSAGE_TYPE) in _ANSWERS:
            return Acknowledge([msg.message_id])  # never answer an answer
        logger.warning("answering message %s with an error: %s", msg.message_id, error)
        header = RequestHeader(
            response_topic=topic,
            request_context=(
                str(context)[:100]
                if isinstance(context, (str, int)) and not isinstance(context, bool)
                else ""
            ),
            message_type=MessageType.REQUEST.value,
        )
        return Refuse(
            _Incoming(header),
            f"error in the request's properties: {error}",
            ack_first=(msg.message_id,),
        )

    def dispatch(
        self, incoming: _Incoming, data: bytes | bytearray, active: int
    ) -> Answer | Run | Refuse | Acknowledge:
        """What to do with a whole request, with ``active`` requests running."""
        mtype = incoming.header.message_type
        if mtype == MessageType.PING.value:
            return Answer(incoming, mtype)
        if mtype == MessageType.INFO.value:
            return Answer(incoming, mtype)
        if mtype == MessageType.API_INFO.value:
            return Answer(incoming, mtype)
        if mtype == MessageType.REQUEST.value:
            if incoming.options_error is not None:
                return Refuse(
                    incoming,
                    f"error in the request's options: {incoming.options_error}",
                )
            if self.queue_size is not None and active >= self.queue_size:
                return Refuse(
                    incoming,
                    f"request rejected: the backend's queue of {self.queue_size} "
                    "requests is full, try again later",
                )
            return Run(incoming, data)
        if mtype in _ANSWERS:  # pragma: no cover - dropped on arrival
            return Acknowledge(incoming.message_ids)
        return Refuse(incoming, f"unsupported message type {mtype!r}")


def redeliverable(incoming: _Incoming, max_redeliveries: int) -> bool:
    """True if a request whose reply failed may be given back for redelivery.

    Only a request of one message (a fragmented one cannot be delivered
    again: its fragments were acknowledged), delivered fewer than
    ``max_redeliveries`` times so far.
    """
    return (
        incoming.redelivery_count < max_redeliveries and len(incoming.message_ids) == 1
    )


def _parts_over(parts: Any, limit: int) -> str:
    """Which parts of a multipart request that is too large are the cause.

    Returns ``"; part 1 (…) is above the limit of N bytes"`` (or, when no
    part alone is, the largest part), to append to the error.
    """
    try:
        specs = parse_parts(parts, None)
    except PartError as exc:
        return f"; {exc}"
    over = [spec for spec in specs if spec.size > limit]
    if over:
        names = ", ".join(spec.describe() for spec in over)
        verb = "is" if len(over) == 1 else "are"
        return f"; {names} {verb} above the limit of {limit} bytes"
    largest = max(specs[1:] or specs, key=lambda spec: spec.size)
    return f"; the largest part is {largest.describe()}"
