"""The NATS protocol parser and commands of the fronts' data plane (no I/O)."""

from __future__ import annotations

import json

import pytest

from dasf_geo.broker.nats_wire import (
    DIRECT_PAYLOAD,
    Err,
    Info,
    Msg,
    Parser,
    Ping,
    Pong,
    connect_command,
    headers_block,
    parse_headers,
    pub_header,
    sub_command,
    unsub_command,
)
from dasf_geo.exceptions import ProtocolError


def _stream(payload: bytes) -> bytes:
    return (
        b'INFO {"server_id":"x","max_payload":1048576}\r\n'
        b"PING\r\n"
        b"MSG a.b 1 5\r\nhello\r\n"
        b"MSG a.c 2 _INBOX.r 0\r\n\r\n"
        b"+OK\r\n" + f"MSG big.one 3 {len(payload)}\r\n".encode() + payload + b"\r\n"
        b"HMSG h.s 4 reply.to 24 27\r\nNATS/1.0\r\nA: 1\r\nB: x\r\n\r\nabc\r\n"
        b"PONG\r\n"
        b"-ERR 'Permissions Violation for Publish to foo'\r\n"
    )


def _check(events: list, payload: bytes) -> None:
    assert isinstance(events[0], Info)
    assert events[0].fields["max_payload"] == 1048576
    assert isinstance(events[1], Ping)
    assert events[2] == Msg("a.b", 1, "", b"hello", None)
    assert events[3] == Msg("a.c", 2, "_INBOX.r", b"", None)
    big = events[4]
    assert (big.subject, big.sid, big.reply) == ("big.one", 3, "")
    assert bytes(big.data) == payload
    assert events[5] == Msg("h.s", 4, "reply.to", b"abc", {"A": "1", "B": "x"})
    assert isinstance(events[6], Pong)
    assert events[7] == Err("Permissions Violation for Publish to foo")
    assert len(events) == 8


PAYLOAD = bytes(range(256)) * 300  # 76,800 bytes: read into a buffer of its own


def test_a_whole_stream_at_once():
    assert len(PAYLOAD) >= DIRECT_PAYLOAD
    _check(Parser().feed(_stream(PAYLOAD)), PAYLOAD)


@pytest.mark.parametrize("step", [1, 2, 3, 7, 4096, 65537])
def test_the_stream_in_pieces_of_any_size(step):
    data = _stream(PAYLOAD)
    parser = Parser()
    events: list = []
    for at in range(0, len(data), step):
        events.extend(parser.feed(data[at : at + step]))
    _check(events, PAYLOAD)


def test_a_large_payload_split_at_every_offset():
    # the payload and its CRLF split once at each byte, for a small
    # chunk buffer too (payload larger than the parser's chunk)
    payload = bytes((i * 7) % 251 for i in range(DIRECT_PAYLOAD + 100))
    data = f"MSG s 9 r {len(payload)}\r\n".encode() + payload + b"\r\nPING\r\n"
    for cut in range(len(data) + 1):
        parser = Parser(chunk=8192)
        events = parser.feed(data[:cut]) + parser.feed(data[cut:])
        assert len(events) == 2, cut
        assert bytes(events[0].data) == payload, cut
        assert isinstance(events[1], Ping)


def test_a_small_payload_split_at_every_offset():
    data = b"HMSG s 9 12 17\r\nNATS/1.0\r\n\r\nhello\r\nMSG t 1 2\r\nok\r\n"
    for cut in range(len(data) + 1):
        parser = Parser()
        events = parser.feed(data[:cut]) + parser.feed(data[cut:])
        assert events == [Msg("s", 9, "", b"hello", {}), Msg("t", 1, "", b"ok")], cut


def test_reads_go_straight_into_the_payload_buffer():
    payload = b"z" * (DIRECT_PAYLOAD * 4)
    parser = Parser(chunk=4096 * 2)
    head = f"MSG s 1 {len(payload)}\r\n".encode()
    assert parser.feed(head + payload[:100]) == []
    target = parser.get_buffer(-1)
    # the next read goes into the message's own buffer, sized to the rest
    assert len(target) == len(payload) - 100
    target[:] = payload[100:]
    del target
    assert parser.buffer_updated(len(payload) - 100) == []
    events = parser.feed(b"\r\n")
    assert isinstance(events[0].data, bytearray) and events[0].data == payload


def test_a_long_control_line_grows_the_buffer():
    info = {"connect_urls": [f"10.0.0.{i}:4222" for i in range(2000)]}
    line = b"INFO " + json.dumps(info).encode() + b"\r\n"
    assert len(line) > 8192
    (event,) = Parser(chunk=8192).feed(line)
    assert event == Info(info)


def test_a_status_header():
    raw = b"NATS/1.0 503 No Responders\r\n\r\n"
    assert parse_headers(raw) == {"Status": "503", "Description": "No Responders"}
    (event,) = Parser().feed(
        b"HMSG _INBOX.x 1 %d %d\r\n%s\r\n" % (len(raw), len(raw), raw)
    )
    assert event.headers == {"Status": "503", "Description": "No Responders"}
    assert event.data == b""


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"HELLO world\r\n", "unknown protocol line: b'HELLO world'"),
        (b"MSG a 1\r\n", "malformed MSG line"),
        (b"MSG a x 3\r\nabc\r\n", "bad sid"),
        (b"MSG a 1 -3\r\n", "bad size"),
        (b"HMSG a 1 9 3\r\n", "headers are larger than the message"),
        (b"MSG a 1 3\r\nabcXY", "not followed by CRLF (got b'XY')"),
        (b"INFO {nope\r\n", "INFO that is not JSON"),
        (b"INFO [1]\r\n", "INFO that is no object"),
        (b"HMSG a 1 8 8\r\nHTTP/1.1\r\n", "headers do not start with NATS/1.0"),
    ],
)
def test_malformed_input_is_named(data, text):
    parser = Parser()
    with pytest.raises(ProtocolError) as info:
        parser.feed(data)
    assert text in str(info.value)
    # the parser stays failed
    with pytest.raises(ProtocolError):
        parser.feed(b"PING\r\n")


def test_a_line_without_end_is_refused(monkeypatch):
    import dasf_geo.broker.nats_wire as wire

    monkeypatch.setattr(wire, "MAX_CONTROL_LINE", 100)
    with pytest.raises(ProtocolError, match="longer than 100 bytes without CRLF"):
        Parser().feed(b"INFO " + b"x" * 200)


def test_commands():
    assert pub_header("a.b", "", 5) == b"PUB a.b 5\r\n"
    assert pub_header("a.b", "r.1", 5) == b"PUB a.b r.1 5\r\n"
    block = headers_block({"Dasf-Topic": "t"})
    assert block == b"NATS/1.0\r\nDasf-Topic: t\r\n\r\n"
    assert pub_header("a", "", 3, block) == b"HPUB a 27 30\r\n" + block
    assert pub_header("a", "r", 3, block) == b"HPUB a r 27 30\r\n" + block
    assert parse_headers(block) == {"Dasf-Topic": "t"}
    assert sub_command("s", 7) == b"SUB s 7\r\n"
    assert sub_command("s", 7, "q") == b"SUB s q 7\r\n"
    assert unsub_command(7) == b"UNSUB 7\r\n"
    command = connect_command({"verbose": False, "user": "u"})
    assert command == b'CONNECT {"verbose":false,"user":"u"}\r\nPING\r\n'
    with pytest.raises(ProtocolError, match="line break"):
        headers_block({"A": "x\r\nB: y"})


def test_what_the_parser_reads_is_what_a_publisher_wrote():
    # a PUB as the data connection writes it, turned into the MSG the
    # server delivers, parses back to the same body
    block = headers_block({"K": "v"})
    body = [b"head\n", b"p" * 70000]
    size = sum(map(len, body))
    line = b"HMSG subj 5 %d %d\r\n" % (len(block), len(block) + size)
    (event,) = Parser().feed(line + block + b"".join(body) + b"\r\n")
    assert event.headers == {"K": "v"}
    assert bytes(event.data) == b"".join(body)


def test_a_front_reads_back_the_message_a_front_wrote():
    from dasf_geo.broker.cluster_names import (
        WireMessage,
        decode_message,
        encode_head,
        encode_message,
    )

    sent = WireMessage(
        b"QUJD" * 20000, b'{"a":"1"}', b'"ctx"', b'"k"', "2026-01-01T00:00:00Z", "id1"
    )
    head = encode_head(sent)
    assert encode_message(sent) == head + sent.payload
    size = len(head) + len(sent.payload)
    wire = b"MSG s 1 %d\r\n" % size + head + sent.payload + b"\r\n"
    (event,) = Parser().feed(wire)
    assert isinstance(event.data, bytearray)  # large: its own buffer
    got = decode_message(event.data)
    assert bytes(got.payload) == sent.payload
    # the header parts are bytes (a key is hashed, properties are joined)
    assert (got.properties, got.context, got.key) == (b'{"a":"1"}', b'"ctx"', b'"k"')
    assert all(type(p) is bytes for p in (got.properties, got.context, got.key))
    assert (got.publish_time, got.message_id) == (sent.publish_time, sent.message_id)


def test_a_front_sends_the_decoded_payload_and_the_next_one_encodes_it_again():
    import base64

    from dasf_geo.broker.cluster_names import (
        WireMessage,
        decode_message,
        encode_head,
        encode_message,
        payload_body,
    )

    data = bytes(range(256)) * 1500  # every byte value
    text = base64.b64encode(data)
    sent = WireMessage(
        text, b"{}", None, None, "2026-01-01T00:00:00Z", "id2", data=data
    )
    head = encode_head(sent)
    assert head.startswith(b"DG2\n")
    assert payload_body(sent) is data
    body = encode_message(sent)
    assert len(body) == len(head) + len(data)  # a quarter less than base64
    wire = b"MSG s 1 %d\r\n" % len(body) + body + b"\r\n"
    (event,) = Parser().feed(wire)
    got = decode_message(event.data)
    assert bytes(got.payload) == text
    assert got.data is None  # the body is not kept
    assert (got.context, got.key, got.message_id) == (None, None, "id2")


def test_a_front_still_reads_base64_bodies_of_earlier_fronts():
    from dasf_geo.broker.cluster_names import decode_message

    body = b'DG1\n{}\n"c"\n\n2026-01-01T00:00:00Z\nid3\naGk='
    got = decode_message(body)
    assert bytes(got.payload) == b"aGk="
    assert got.context == b'"c"'


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"DG7\n{}\n\n\nt\nid\nxx", "the format DG7, which this front does not read"),
        (b"DG12\n{}\n\n\nt\nid\nxx", "format DG12"),
        (b"hello world", "not written by a dasf-geo broker front"),
        (b"DG2\n{}\n\n", "truncated"),
    ],
)
def test_bodies_a_front_cannot_read_are_named(body, words):
    from dasf_geo.broker.cluster_names import decode_message
    from dasf_geo.exceptions import ProtocolError

    with pytest.raises(ProtocolError, match=words):
        decode_message(body)
