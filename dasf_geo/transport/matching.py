"""Request matching on the caller's side, without I/O.

A :class:`ReplyMatcher` holds the calls of one caller that wait for a
reply: messages from the response topic go in (:meth:`ReplyMatcher.receive`,
with their properties, payload and the time), and each call's waiter comes
out completed exactly once: with its :class:`~dasf_geo.transport.replies.Reply`
or with an error. It joins reply fragments (within each call's size limit),
routes progress reports and transfer progress to the call's callback, drops
replies nobody waits for (duplicates, late replies, replies of abandoned
calls), and fails calls whose reply cannot come any more.

A waiter is anything with ``done()``, ``set_result(reply)`` and
``set_exception(error)``: an asyncio future of
:class:`~dasf_geo.transport.caller.AsyncClient`, or the lock-based waiter
of a blocking caller (:mod:`dasf_geo.transport.blocking`). Nothing here
touches a socket, a clock or an event loop, so the matcher is tested by
feeding it messages (``tests/transport/test_matching.py``), as the
``websockets`` library tests its protocol objects.

:func:`call_properties` is the one place that builds a request's
properties, for the fast path (one message, sent at once) and the
fragmented path alike.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dasf_geo.exceptions import FragmentError, FragmentTooLarge, PayloadTooLarge
from dasf_geo.protocol.constants import (
    EXT_ACCEPT,
    EXT_SIZE,
    KEY_MESSAGE_TYPE,
    KEY_REQUEST_CONTEXT,
    KEY_STATUS,
    MessageType,
    PropertyKeys,
    Status,
)
from dasf_geo.protocol.fragments import Reassembler
from dasf_geo.protocol.messages import b64decode, request_properties
from dasf_geo.protocol.options import TransferOptions, format_size
from dasf_geo.transport._common import OutgoingParts
from dasf_geo.transport.replies import Reply

__all__ = [
    "ProgressCallback",
    "ReplyMatcher",
    "call_properties",
    "check_request_size",
    "describe_request",
]

logger = logging.getLogger("dasf_geo.transport.client")

# enum values as plain strings for the per-reply code (``.value`` of an enum
# member costs about half a microsecond each time)
_PROGRESS = MessageType.PROGRESS.value
_RESPONSE = MessageType.RESPONSE.value
_SUCCESS = Status.SUCCESS.value
_ERROR = Status.ERROR.value
_NUM_FRAGMENTS = PropertyKeys.NUM_FRAGMENTS.value

#: Called with progress information of a call: ``{"kind": "report", …}``
#: (the backend's progress reports), ``{"kind": "transfer", …}`` (the reply's
#: fragments arriving) or ``{"kind": "upload", …}`` (the request's fragments
#: acknowledged by the broker).
ProgressCallback = Callable[[dict[str, Any]], None]


@dataclass
class _Pending:
    #: an asyncio future, or a :class:`_ThreadWaiter` of a blocking caller
    future: Any
    what: str
    progress: ProgressCallback | None = None
    received: int = field(default=0)
    #: the call's ``max_size`` (None: the client's ``max_request_size``)
    max_size: int | None = None
    #: takes every message (properties, payload) of a streamed call's reply
    #: as it comes, unjoined (see ``AsyncClient.request_stream``)
    sink: Callable[[Mapping[str, Any], bytes], None] | None = None


def deliver_progress(progress: ProgressCallback | None, payload: bytes) -> None:
    """Hand the progress report in ``payload`` (base64 JSON) to ``progress``.

    A broken report is logged and ignored, and a failing callback never
    breaks the reply it belongs to.
    """
    if progress is None:
        return
    try:
        report = json.loads(b64decode(payload, "progress report"))
    except Exception as exc:  # a broken report must not break the reply
        logger.warning("ignoring a broken progress report: %s", exc)
        return
    with contextlib.suppress(Exception):
        progress({"kind": "report", "report": report})


def call_properties(
    response_topic: str,
    context: str,
    message_type: MessageType | str,
    accept: Iterable[str] | None,
    options: TransferOptions,
) -> dict[str, Any]:
    """The properties of a request, however it is sent.

    The envelope (:func:`~dasf_geo.protocol.messages.request_properties`),
    the binary media types the caller takes (``dasfGeoAccept``) and the
    call's transfer options. The sender adds the size and checksum of one
    message, or the properties of each fragment.
    """
    props = request_properties(response_topic, context, message_type)
    if accept:
        props[EXT_ACCEPT] = ",".join(accept)
    if options:
        props.update(options.properties())
    return props


def check_request_size(
    payload: bytes | bytearray | memoryview | OutgoingParts,
    options: TransferOptions,
    what: str,
    topic: str,
) -> None:
    """Refuse to send a request above the call's ``max_size``.

    Raises:
        PayloadTooLarge: naming the request, the topic and both sizes.
    """
    limit = options.max_size
    if limit is None:
        return
    size = payload.size if isinstance(payload, OutgoingParts) else len(payload)
    if size > limit:
        raise PayloadTooLarge(
            f"the request to {what} for topic {topic!r} is "
            f"{format_size(size)}, above the limit of {format_size(limit)} "
            "(max_size); it was not sent",
            size=size,
            limit=limit,
            topic=topic,
        )


class ReplyMatcher:
    """The calls of one caller waiting for replies, matched by context.

    Args:
        topic: the backend's topic, to name it in errors.
        reassembler: joins the fragments of replies (its ``max_size`` is the
            limit of calls without their own ``max_size``).
    """

    def __init__(self, topic: str, reassembler: Reassembler) -> None:
        self.topic = topic
        self.reassembler = reassembler
        #: the waiting calls by request context
        self.pending: dict[str, _Pending] = {}

    def expect(
        self,
        context: str,
        future: Any,
        what: str,
        progress: ProgressCallback | None = None,
        max_size: int | None = None,
    ) -> None:
        """Wait for the reply to ``context``; ``future`` gets it."""
        self.pending[context] = _Pending(future, what, progress, max_size=max_size)

    def forget(self, context: str) -> None:
        """Stop waiting for the reply to ``context`` (done, timed out, abandoned).

        Its fragments received so far are dropped; later ones are ignored.
        """
        self.pending.pop(context, None)
        self.reassembler.discard((context, _RESPONSE))

    def receive(
        self, properties: Mapping[str, Any], payload: bytes, now: float
    ) -> None:
        """Take one message from the response topic.

        Completes the waiter of its call when the reply is whole (or
        broken, or too large); routes progress to the call's callback; a
        message for no waiting call is dropped.
        """
        props = properties
        context = props.get(KEY_REQUEST_CONTEXT)
        pending = self.pending.get(str(context)) if context is not None else None
        if pending is None:
            logger.debug("dropping a reply for no waiting request: %r", context)
            return
        if pending.sink is not None:  # a streamed call takes its messages as is
            pending.sink(props, payload)
            return
        mtype = str(props.get(KEY_MESSAGE_TYPE) or "")
        if mtype == _PROGRESS:
            self._handle_progress(pending, payload)
            return
        try:
            data = self.reassembler.add(
                (str(context), mtype), props, payload, now, pending.max_size
            )
        except FragmentTooLarge as exc:
            self.finish(str(context), error=self._reply_too_large(pending, exc))
            return
        except FragmentError as exc:
            self.finish(
                str(context),
                error=FragmentError(
                    f"the reply to {pending.what} from topic {self.topic!r} is "
                    f"broken: {exc}"
                ),
            )
            return
        pending.received += len(payload) // 4 * 3
        if pending.progress is not None and (
            data is None or props.get(_NUM_FRAGMENTS) is not None
        ):
            total = props.get(EXT_SIZE)
            with contextlib.suppress(Exception):  # a broken callback must not hurt
                pending.progress(
                    {
                        "kind": "transfer",
                        "received": len(data) if data is not None else pending.received,
                        "total": total if isinstance(total, int) else None,
                        "done": data is not None,
                    }
                )
        if data is None:
            return
        status = str(props.get(KEY_STATUS) or _SUCCESS)
        self.finish(
            str(context),
            reply=Reply(
                status=status,
                payload=data,
                properties=props if isinstance(props, dict) else dict(props),
                message_type=mtype,
            ),
        )

    def _reply_too_large(
        self, pending: _Pending, exc: FragmentTooLarge
    ) -> FragmentTooLarge:
        """The error for a reply announced or grown above the size limit.

        A :class:`FragmentTooLarge`: both a
        :class:`~dasf_geo.exceptions.PayloadTooLarge` and a
        :class:`~dasf_geo.exceptions.FragmentError`.
        """
        limit = exc.limit if exc.limit is not None else 0
        name = (
            "max_size"
            if pending.max_size is not None
            else "the client's max_request_size"
        )
        size = exc.size if exc.size is not None else 0
        return FragmentTooLarge(
            f"the reply to {pending.what} from topic {self.topic!r} is above the "
            f"limit of {format_size(limit)} ({name}): {format_size(size)} "
            "announced or received; it was not kept",
            size=exc.size,
            limit=exc.limit,
            topic=self.topic,
        )

    def _handle_progress(self, pending: _Pending, payload: bytes) -> None:
        deliver_progress(pending.progress, payload)

    def finish(
        self,
        context: str,
        *,
        reply: Reply | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Complete the call ``context`` with ``reply`` or ``error``, once."""
        pending = self.pending.pop(context, None)
        if pending is None or pending.future.done():
            return
        if error is not None:
            pending.future.set_exception(error)
        else:
            pending.future.set_result(reply)

    def fail_all(self, error: BaseException) -> None:
        """Fail every waiting call with ``error`` (the caller closes)."""
        for pending in self.pending.values():
            if not pending.future.done():
                pending.future.set_exception(error)
        self.pending.clear()

    def fail_in_flight(self, error_for: Callable[[str], BaseException]) -> None:
        """Fail every waiting call: its reply may be lost.

        ``error_for(what)`` makes the error of the call named ``what``.
        """
        pending, self.pending = self.pending, {}
        for context, call in pending.items():
            self.reassembler.discard((context, _RESPONSE))
            if not call.future.done():
                call.future.set_exception(error_for(call.what))

    def expire(self, now: float) -> None:
        """Fail the calls whose reply fragments stopped coming before ``now``."""
        for key, error in self.reassembler.expire(now):
            context = str(key[0] if isinstance(key, tuple) else key)
            pending = self.pending.get(context)
            what = pending.what if pending is not None else "a request"
            self.finish(
                context,
                error=FragmentError(
                    f"the reply to {what} from topic {self.topic!r} did not "
                    f"arrive whole: {error}"
                ),
            )


def _upload_progress(
    progress: ProgressCallback | None,
) -> Callable[[int, int], None] | None:
    """``send_payload``'s ``on_acked`` giving ``upload`` events to ``progress``."""
    if progress is None:
        return None

    def on_acked(sent: int, total: int) -> None:
        progress(
            {"kind": "upload", "sent": sent, "total": total, "done": sent >= total}
        )

    return on_acked


def _request_payload(request: dict[str, Any], parts: Any) -> bytes | OutgoingParts:
    """The payload of ``request``: its JSON, followed by any binary parts."""
    payload = json.dumps(request).encode("utf-8")
    if parts is not None and parts.parts:
        return OutgoingParts(payload, parts.parts)
    return payload


def describe_request(request: Any) -> str:
    """How to name a request in messages: ``func()`` or ``Class.method()``."""
    if isinstance(request, dict):
        if "func_name" in request:
            return f"{request['func_name']}()"
        if "class_name" in request:
            func = request.get("function")
            method = func.get("func_name") if isinstance(func, dict) else None
            return f"{request['class_name']}.{method or '?'}()"
    return "the request"
