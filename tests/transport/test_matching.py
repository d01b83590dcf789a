"""The caller's request matching without sockets: messages in, calls completed.

:class:`~dasf_geo.transport.matching.ReplyMatcher` is fed reply messages
(properties and base64 payload) as the reply consumer would; the waiters
record how often and with what they were completed.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dasf_geo.exceptions import FragmentError, FragmentTooLarge, PayloadTooLarge
from dasf_geo.protocol.constants import EXT_ACCEPT
from dasf_geo.protocol.fragments import Reassembler, one_message, split_payload
from dasf_geo.protocol.options import TransferOptions
from dasf_geo.transport.matching import ReplyMatcher, call_properties
from dasf_geo.transport.replies import Reply


class Waiter:
    """A waiter that counts its completions (an asyncio future would raise)."""

    def __init__(self) -> None:
        self.results: list[Reply] = []
        self.errors: list[BaseException] = []

    def done(self) -> bool:
        return bool(self.results or self.errors)

    def set_result(self, reply: Reply) -> None:
        self.results.append(reply)

    def set_exception(self, error: BaseException) -> None:
        self.errors.append(error)

    @property
    def completions(self) -> int:
        return len(self.results) + len(self.errors)


def matcher(max_size: int = 1 << 20, timeout: float = 60.0) -> ReplyMatcher:
    return ReplyMatcher("t", Reassembler(max_size=max_size, timeout=timeout))


def reply_messages(
    context: str,
    payload: bytes,
    fragment_size: int = 1 << 20,
    status: str = "success",
) -> list[tuple[dict[str, Any], bytes]]:
    """The messages of a reply to ``context``, fragmented above ``fragment_size``."""
    base = {"requestContext": context, "messageType": "response", "status": status}
    return [
        ({**base, **fragment.properties}, fragment.payload)
        for fragment in split_payload(payload, fragment_size)
    ]


def test_a_reply_completes_its_call_once_and_later_copies_are_dropped() -> None:
    m = matcher()
    waiter = Waiter()
    m.expect("7", waiter, "f()")
    ((props, payload),) = reply_messages("7", b'{"x": 1}')
    m.receive(props, payload, 0.0)
    m.receive(props, payload, 0.0)  # a redelivered duplicate
    assert waiter.completions == 1
    reply = waiter.results[0]
    assert reply.status == "success" and bytes(reply.payload) == b'{"x": 1}'
    assert m.pending == {}


def test_a_reply_for_no_call_is_dropped() -> None:
    m = matcher()
    waiter = Waiter()
    m.expect("1", waiter, "f()")
    for props, payload in reply_messages("2", b"late"):
        m.receive(props, payload, 0.0)
    m.receive({"messageType": "response"}, b"", 0.0)  # no context at all
    assert waiter.completions == 0
    assert list(m.pending) == ["1"]


def test_an_error_reply_keeps_its_status() -> None:
    m = matcher()
    waiter = Waiter()
    m.expect("1", waiter, "f()")
    for props, payload in reply_messages("1", b"boom", status="error"):
        m.receive(props, payload, 0.0)
    assert waiter.results[0].status == "error"


def test_progress_reports_and_transfer_progress_go_to_the_callback() -> None:
    m = matcher()
    waiter, events = Waiter(), list[dict[str, Any]]()
    m.expect("1", waiter, "f()", progress=events.append)
    report = base64.b64encode(json.dumps({"step": 1}).encode())
    m.receive({"requestContext": "1", "messageType": "progress"}, report, 0.0)
    for props, payload in reply_messages("1", bytes(3000), fragment_size=1000):
        m.receive(props, payload, 0.0)
    assert events[0] == {"kind": "report", "report": {"step": 1}}
    transfers = [e for e in events if e["kind"] == "transfer"]
    assert transfers[-1]["done"] and transfers[-1]["received"] == 3000
    assert not any(e["done"] for e in transfers[:-1])
    assert waiter.completions == 1


def test_a_broken_progress_report_or_callback_does_not_hurt_the_call() -> None:
    m = matcher()
    waiter = Waiter()

    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("callback")

    m.expect("1", waiter, "f()", progress=broken)
    m.receive({"requestContext": "1", "messageType": "progress"}, b"@@", 0.0)
    for props, payload in reply_messages("1", b"fine"):
        m.receive(props, payload, 0.0)
    assert bytes(waiter.results[0].payload) == b"fine"


def test_a_reply_above_the_calls_max_size_fails_it_naming_the_limit() -> None:
    m = matcher()
    waiter = Waiter()
    m.expect("1", waiter, "f()", max_size=100)
    props, payload = reply_messages("1", bytes(3000), fragment_size=1000)[0]
    m.receive(props, payload, 0.0)
    (error,) = waiter.errors
    assert isinstance(error, FragmentTooLarge) and isinstance(error, PayloadTooLarge)
    assert "f()" in str(error) and "(max_size)" in str(error)


def test_a_corrupt_reply_fails_its_call() -> None:
    m = matcher()
    waiter = Waiter()
    m.expect("1", waiter, "f()")
    props, payload = reply_messages("1", bytes(3000), fragment_size=1000)[0]
    m.receive(props, b"!!" + payload[2:], 0.0)
    (error,) = waiter.errors
    assert isinstance(error, FragmentError) and "is broken" in str(error)


def test_forget_drops_the_fragments_so_far_and_ignores_later_ones() -> None:
    m = matcher()
    waiter = Waiter()
    m.expect("1", waiter, "f()")
    messages = reply_messages("1", bytes(3000), fragment_size=1000)
    m.receive(*messages[0], 0.0)
    m.forget("1")  # the call timed out
    assert m.reassembler.pending == 0
    for props, payload in messages[1:]:
        m.receive(props, payload, 0.0)
    assert waiter.completions == 0 and m.reassembler.pending == 0


def test_expire_fails_a_call_whose_fragments_stopped() -> None:
    m = matcher(timeout=5.0)
    waiter = Waiter()
    m.expect("1", waiter, "f()")
    m.receive(*reply_messages("1", bytes(3000), fragment_size=1000)[0], 0.0)
    m.expire(1.0)
    assert waiter.completions == 0
    m.expire(10.0)
    (error,) = waiter.errors
    assert "did not arrive whole" in str(error)


def test_fail_in_flight_and_fail_all_complete_every_call_once() -> None:
    m = matcher()
    first, second, done = Waiter(), Waiter(), Waiter()
    done.set_result(
        Reply(status="success", payload=b"", properties={}, message_type="response")
    )
    m.expect("1", first, "f()")
    m.expect("2", done, "g()")
    m.receive(*reply_messages("1", bytes(3000), fragment_size=1000)[0], 0.0)
    m.fail_in_flight(lambda what: RuntimeError(f"lost {what}"))
    assert [str(e) for e in first.errors] == ["lost f()"]
    assert done.completions == 1 and m.pending == {}
    assert m.reassembler.pending == 0
    m.expect("3", second, "h()")
    m.fail_all(RuntimeError("closed"))
    m.fail_all(RuntimeError("closed again"))
    assert second.completions == 1 and m.pending == {}


def test_call_properties_are_the_same_for_both_send_paths() -> None:
    options = TransferOptions(fragment_size=2048, compression=3)
    props = call_properties("reply-topic", "5", "request", ["a/b", "c/d"], options)
    assert props["response_topic"] == "reply-topic"
    assert props["requestContext"] == "5"
    assert props["messageType"] == "request"
    assert props[EXT_ACCEPT] == "a/b,c/d"
    assert options.properties().items() <= props.items()
    # what each send path adds on top never overrides the envelope
    for fragment in [one_message(b"x"), *split_payload(bytes(3000), 1000)]:
        assert not set(fragment.properties) & set(props)


@st.composite
def interleaved_replies(draw: st.DrawFn) -> tuple[dict[str, bytes], list[Any]]:
    """Replies of several calls, fragmented, duplicated and interleaved."""
    count = draw(st.integers(1, 5))
    payloads = {
        str(context): draw(st.binary(min_size=0, max_size=2000))
        for context in range(count)
    }
    streams = []
    for context, payload in payloads.items():
        size = draw(st.sampled_from([8, 100, 1 << 20]))
        messages = reply_messages(context, payload, fragment_size=size)
        # a redelivered copy of some messages
        dupes = draw(st.lists(st.sampled_from(messages), max_size=3))
        streams.append(messages + dupes)
    # a stray reply for a call nobody waits for
    streams.append(reply_messages("999", b"stray"))
    order = []
    positions = [0] * len(streams)
    while any(p < len(s) for p, s in zip(positions, streams, strict=True)):
        live = [i for i, s in enumerate(streams) if positions[i] < len(s)]
        i = draw(st.sampled_from(live))
        order.append(streams[i][positions[i]])
        positions[i] += 1
    return payloads, order


@settings(max_examples=200, deadline=None)
@given(interleaved_replies())
def test_any_interleaving_of_reply_fragments_resolves_each_call_once(
    case: tuple[dict[str, bytes], list[Any]],
) -> None:
    payloads, order = case
    m = matcher()
    waiters = {context: Waiter() for context in payloads}
    for context, waiter in waiters.items():
        m.expect(context, waiter, f"call {context}")
    for props, payload in order:
        m.receive(props, payload, 0.0)
    for context, waiter in waiters.items():
        assert waiter.completions == 1, context
        assert not waiter.errors
        assert bytes(waiter.results[0].payload) == payloads[context]
    assert m.pending == {}
    assert m.reassembler.pending == 0


@pytest.mark.parametrize("status", ["success", "error"])
def test_the_reply_carries_the_message_properties(status: str) -> None:
    m = matcher()
    waiter = Waiter()
    m.expect("1", waiter, "f()")
    ((props, payload),) = reply_messages("1", b"{}", status=status)
    props["dasfGeoFindings"] = "[]"
    m.receive(props, payload, 0.0)
    assert waiter.results[0].properties["dasfGeoFindings"] == "[]"
    assert waiter.results[0].message_type == "response"
