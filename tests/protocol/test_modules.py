"""The protocol's modules by job: frames, JSON text, the DASF envelope.

``dasf_geo.protocol.messages`` was one module for all three; its names stay
importable from there and are the very objects of the modules that now
hold them.
"""

from __future__ import annotations

import pytest

from dasf_geo.protocol import frames, jsontext, messages


@pytest.mark.parametrize("module", [frames, jsontext])
def test_every_name_is_still_importable_from_messages(module) -> None:
    for name in module.__all__:
        assert getattr(messages, name) is getattr(module, name), name


def test_frames_round_trip_through_the_envelope() -> None:
    props = messages.request_properties("reply", "7", "ping")
    frame = frames.build_producer_frame(frames.b64encode(b"hi"), props, "c1")
    consumer = frame[:-1] + b',"messageId":"m1"}'
    msg = frames.parse_consumer_message(consumer)
    header = messages.parse_request_header(msg.properties)
    assert (header.response_topic, header.request_context) == ("reply", "7")
    assert frames.b64decode(msg.payload) == b"hi"


def test_json_text_is_bounded_in_depth() -> None:
    deep = b"[" * (jsontext.MAX_JSON_DEPTH + 1) + b"]" * (jsontext.MAX_JSON_DEPTH + 1)
    with pytest.raises(ValueError, match="levels deep"):
        jsontext.loads_json(deep)
    assert jsontext.parse_json_object(b'{"a": [1]}') == {"a": [1]}
