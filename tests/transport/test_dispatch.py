"""The listener's decisions without sockets: messages in, events out.

:class:`~dasf_geo.transport.dispatch.RequestIntake` is fed consumer
messages as the Listener's consumer would; the events say what the
Listener does (acknowledge, answer with an error, run, answer metadata).
:mod:`dasf_geo.transport.answers` builds the replies.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from dasf_geo.exceptions import RequestError
from dasf_geo.protocol.constants import EXT_ERRORS, EXT_SIZE
from dasf_geo.protocol.fragments import Reassembler, one_message, split_payload
from dasf_geo.protocol.messages import ConsumerMessage
from dasf_geo.protocol.options import TransferOptions
from dasf_geo.transport._common import OutgoingFile
from dasf_geo.transport.answers import (
    answer_properties,
    checked_result,
    error_reply,
    execute,
    failure_reply,
    fragment_size,
)
from dasf_geo.transport.dispatch import (
    Acknowledge,
    Answer,
    Deliver,
    Refuse,
    RequestIntake,
    Run,
)
from dasf_geo.transport.handler import FunctionReply

_ids = iter(range(10**9))


def intake(**kwargs: Any) -> RequestIntake:
    reassembler = Reassembler(
        max_size=kwargs.pop("max_size", 1 << 20), timeout=kwargs.pop("timeout", 60.0)
    )
    return RequestIntake("backend", reassembler, **kwargs)


def envelope(context: str = "1", mtype: str = "request", **extra: Any) -> dict:
    return {
        "response_topic": "caller-topic",
        "requestContext": context,
        "messageType": mtype,
        **extra,
    }


def message(props: dict[str, Any], payload: bytes = b"") -> ConsumerMessage:
    return ConsumerMessage(str(next(_ids)), payload, props)


def request_messages(
    context: str, payload: bytes, size: int = 1 << 20, **extra: Any
) -> list[ConsumerMessage]:
    return [
        message({**envelope(context, **extra), **f.properties}, f.payload)
        for f in split_payload(payload, size)
    ]


def test_a_whole_request_is_delivered_and_run() -> None:
    i = intake()
    (msg,) = request_messages("1", b'{"func_name": "f"}')
    event = i.receive(msg, 0.0)
    assert isinstance(event, Deliver)
    assert bytes(event.data) == b'{"func_name": "f"}'
    assert event.incoming.message_ids == [msg.message_id]
    assert isinstance(i.dispatch(event.incoming, event.data, 0), Run)


def test_metadata_requests_are_answered() -> None:
    i = intake()
    for mtype in ("ping", "info", "api_info"):
        event = i.receive(message(envelope(mtype=mtype)), 0.0)
        assert isinstance(event, Deliver)
        answer = i.dispatch(event.incoming, event.data, 0)
        assert isinstance(answer, Answer) and answer.kind == mtype


def test_answers_on_a_request_topic_are_acknowledged_never_answered() -> None:
    i = intake()
    for mtype in ("pong", "response", "progress", "log"):
        msg = message(envelope(mtype=mtype))
        assert i.receive(msg, 0.0) == Acknowledge([msg.message_id])


def test_missing_context_or_message_type_gets_one_error_reply() -> None:
    i = intake()
    for missing in ("requestContext", "messageType"):
        props = envelope()
        del props[missing]
        msg = message(props)
        event = i.receive(msg, 0.0)
        assert isinstance(event, Refuse)
        assert repr(missing) in event.text
        assert event.ack_first == (msg.message_id,)
        assert event.incoming.header.response_topic == "caller-topic"


def test_no_reply_topic_means_no_reply_but_an_ack() -> None:
    i = intake()
    msg = message({"requestContext": "1", "messageType": "request"})
    assert i.receive(msg, 0.0) == Acknowledge([msg.message_id])


def test_an_invalid_answer_is_never_answered() -> None:
    msg = message({"response_topic": "x", "messageType": "pong"})
    assert intake().receive(msg, 0.0) == Acknowledge([msg.message_id])


def test_fragments_are_acked_as_they_come_and_joined() -> None:
    i = intake()
    payload = bytes(range(256)) * 12
    messages = request_messages("1", payload, size=1024)
    events = [i.receive(msg, 0.0) for msg in messages]
    assert all(isinstance(e, Acknowledge) for e in events[:-1])
    assert i.incomplete_bytes == 0 and not i.incoming
    last = events[-1]
    assert isinstance(last, Deliver) and bytes(last.data) == payload
    assert last.incoming.message_ids == [messages[-1].message_id]


def test_a_late_duplicate_of_a_joined_request_leaves_nothing_behind() -> None:
    i = intake(max_incomplete=1)
    messages = request_messages("1", bytes(3000), size=1024)
    events = [i.receive(msg, 0.0) for msg in messages]
    assert isinstance(events[-1], Deliver)
    # the broker redelivers a fragment after the request was joined
    assert isinstance(i.receive(messages[0], 1.0), Acknowledge)
    assert not i.incoming and i.incomplete_bytes == 0
    # so the one place for a fragmented request is free for the next
    following = request_messages("2", bytes(3000), size=1024)
    events = [i.receive(msg, 2.0) for msg in following]
    assert all(isinstance(e, Acknowledge) for e in events[:-1])
    assert isinstance(events[-1], Deliver)


def test_too_many_fragmented_requests_get_one_error_each() -> None:
    i = intake(max_incomplete=1)
    first = request_messages("1", bytes(3000), size=1024)
    second = request_messages("2", bytes(3000), size=1024)
    assert isinstance(i.receive(first[0], 0.0), Acknowledge)
    refused = i.receive(second[0], 0.0)
    assert isinstance(refused, Refuse)
    assert "fragmented requests already (the limit is 1)" in refused.text
    # its later fragments are dropped without a second error
    assert all(isinstance(i.receive(m, 0.0), Acknowledge) for m in second[1:])
    assert all(isinstance(i.receive(m, 0.0), Acknowledge) for m in first[1:-1])
    assert isinstance(i.receive(first[-1], 0.0), Deliver)


def test_bytes_held_in_memory_are_capped() -> None:
    i = intake(max_incomplete_bytes=1000)
    messages = request_messages("1", bytes(4000), size=1024)
    assert isinstance(i.receive(messages[0], 0.0), Acknowledge)
    assert i.incomplete_bytes == 768
    refused = i.receive(messages[1], 0.0)
    assert isinstance(refused, Refuse) and "of incomplete requests" in refused.text
    assert i.incomplete_bytes == 0


def test_announced_large_requests_are_spooled_and_not_counted() -> None:
    i = intake(max_incomplete_bytes=1000, spool_threshold=2000)
    messages = request_messages("1", bytes(4000), size=1024)
    assert messages[0].properties[EXT_SIZE] == 4000
    events = [i.receive(m, 0.0) for m in messages]
    assert i.incomplete_bytes == 0
    assert isinstance(events[-1], Deliver)


def test_a_request_above_the_size_limit_is_refused_once() -> None:
    i = intake(max_size=2000)
    messages = request_messages("1", bytes(4000), size=1024)
    refused = i.receive(messages[0], 0.0)
    assert isinstance(refused, Refuse)
    assert all(isinstance(i.receive(m, 0.0), Acknowledge) for m in messages[1:])


def test_expired_requests_get_an_error_and_are_forgotten_later() -> None:
    i = intake(timeout=5.0)
    messages = request_messages("1", bytes(3000), size=1024)
    i.receive(messages[0], 0.0)
    assert i.expire(1.0) == []
    (refusal,) = i.expire(10.0)
    assert "error receiving request" in refusal.text
    assert i.incoming == {} and len(i.failed) == 1
    assert isinstance(i.receive(messages[1], 11.0), Acknowledge)
    i.expire(100.0)
    assert i.failed == {}


def test_bad_options_unknown_types_and_a_full_queue_are_refused() -> None:
    i = intake(queue_size=2)
    msg = message(envelope(dasfGeoFragmentSize="tiny"))
    event = i.receive(msg, 0.0)
    assert isinstance(event, Deliver)
    refused = i.dispatch(event.incoming, event.data, 0)
    assert isinstance(refused, Refuse) and "request's options" in refused.text
    event = i.receive(message(envelope("2")), 0.0)
    assert isinstance(event, Deliver)
    assert isinstance(i.dispatch(event.incoming, event.data, 1), Run)
    full = i.dispatch(event.incoming, event.data, 2)
    assert isinstance(full, Refuse) and "queue of 2 requests is full" in full.text
    event = i.receive(message(envelope("3", mtype="dance")), 0.0)
    assert isinstance(event, Deliver)
    odd = i.dispatch(event.incoming, event.data, 0)
    assert isinstance(odd, Refuse) and "unsupported message type 'dance'" in odd.text


@st.composite
def fragmented_requests(draw: st.DrawFn) -> tuple[dict[str, bytes], list[Any]]:
    """Requests of several callers, fragmented and interleaved."""
    payloads = {
        str(c): draw(st.binary(max_size=3000)) for c in range(draw(st.integers(1, 4)))
    }
    streams = [
        request_messages(c, p, size=draw(st.sampled_from([1024, 1 << 20])))
        for c, p in payloads.items()
    ]
    order = []
    while any(streams):
        stream = draw(st.sampled_from([s for s in streams if s]))
        order.append(stream.pop(0))
    return payloads, order


@settings(max_examples=100, deadline=None)
@given(fragmented_requests(), st.integers(1, 4), st.integers(500, 5000))
def test_every_request_is_delivered_or_refused_exactly_once(
    case: tuple[dict[str, bytes], list[Any]], max_incomplete: int, max_bytes: int
) -> None:
    payloads, order = case
    i = intake(max_incomplete=max_incomplete, max_incomplete_bytes=max_bytes)
    outcome: dict[str, list[Any]] = {c: [] for c in payloads}
    for msg in order:
        event = i.receive(msg, 0.0)
        if isinstance(event, (Deliver, Refuse)):
            outcome[event.incoming.header.request_context].append(event)
        assert i.incomplete_bytes <= max_bytes
        assert len(i.incoming) <= max_incomplete
    for context, events in outcome.items():
        assert len(events) == 1, context
        if isinstance(events[0], Deliver):
            assert bytes(events[0].data) == payloads[context]
    assert i.incoming == {} and i.incomplete_bytes == 0


# --- building replies ------------------------------------------------------


def delivered(**extra: Any) -> Any:
    event = intake().receive(message(envelope("42", **extra)), 0.0)
    assert isinstance(event, Deliver)
    return event.incoming


def test_reply_properties_are_built_in_one_place_for_every_reply() -> None:
    incoming = delivered()
    props = answer_properties(incoming, "backend", "response", "success", x="1")
    assert props == {
        "requestContext": "42",
        "messageType": "response",
        "source_topic": "backend",
        "status": "success",
        "x": "1",
    }
    # what each send path adds on top never overrides them
    for fragment in [one_message(b"x"), *split_payload(bytes(3000), 1024)]:
        assert not set(fragment.properties) & set(props)


def test_error_replies_carry_the_structured_errors() -> None:
    payload, extra = error_reply("bad", [{"loc": ["x"]}])
    assert payload == b"bad" and json.loads(extra[EXT_ERRORS]) == [{"loc": ["x"]}]
    assert error_reply("bad") == (b"bad", {})
    text, errors = failure_reply(RequestError("invalid", [{"a": 1}]), "1", False)
    assert (text, errors) == ("invalid", [{"a": 1}])
    text, errors = failure_reply(ValueError("oops"), "1", False)
    assert text == "error executing request: ValueError: oops" and errors is None
    try:
        raise ValueError("oops")
    except ValueError as exc:
        raised = exc
    text, _ = failure_reply(raised, "1", True)
    assert "Traceback (most recent call last)" in text


def test_the_smallest_fragment_size_wins() -> None:
    incoming = delivered(dasfGeoFragmentSize="4096")
    assert fragment_size(incoming, 1 << 20) == 4096
    assert fragment_size(incoming, 2048) == 2048
    incoming.function_options = TransferOptions(fragment_size=3000)
    assert fragment_size(incoming, 1 << 20) == 3000


def test_a_reply_above_a_max_size_becomes_a_too_large_error() -> None:
    incoming = delivered(dasfGeoMaxSize="100")
    result, error = checked_result(incoming, b"x" * 50, None)
    assert result == b"x" * 50 and error is None
    result, error = checked_result(
        incoming,
        FunctionReply(b"x" * 500, TransferOptions(max_size=200), "function 'f'"),
        None,
    )
    assert result is None and isinstance(error, RequestError)
    assert error.errors and error.errors[0]["ctx"] == {"size": 500, "limit": 100}
    with tempfile.TemporaryFile() as file:
        big = OutgoingFile(file, 1000)
        result, error = checked_result(incoming, big, None)
        assert result is None and isinstance(error, RequestError)
        assert file.closed


class _Request(BaseModel):
    x: int


class _Handler:
    topic = "backend"
    debug = False

    def handle(self, payload: bytes, progress: Any, accept: Any, **kw: Any) -> bytes:
        return _Request.model_validate_json(payload).model_dump_json().encode()


def test_execute_turns_invalid_requests_into_request_errors() -> None:
    handler: Any = _Handler()
    assert execute(handler, b'{"x": 1}') == b'{"x":1}'
    for payload, errors in ((b'{"x": "a"}', True), (b"not json", True)):
        try:
            execute(handler, payload)
        except RequestError as exc:
            assert exc.text.startswith("error validating request")
            assert bool(exc.errors) is errors
        else:  # pragma: no cover
            raise AssertionError("no error")
    try:
        execute(handler, b"{}", parts=json.dumps([]))
    except RequestError as exc:
        assert "does not take multipart requests" in exc.text
    else:  # pragma: no cover
        raise AssertionError("no error")


def test_request_error_is_public_and_its_old_private_names_still_work() -> None:
    from dasf_geo.exceptions import DasfGeoError
    from dasf_geo.transport.backend import _RequestError as via_backend
    from dasf_geo.transport.handler import _RequestError as via_handler

    assert via_handler is RequestError and via_backend is RequestError
    assert issubclass(RequestError, DasfGeoError)
    error = RequestError("unknown parameter 'x'", [{"type": "missing"}])
    assert (error.text, error.errors, str(error)) == (
        "unknown parameter 'x'",
        [{"type": "missing"}],
        "unknown parameter 'x'",
    )
    assert failure_reply(error, "1", True) == (
        "unknown parameter 'x'",
        [{"type": "missing"}],
    )
