"""demessaging 0.6.4's own backend and generated client through ``dasf-geo broker``.

Both peers run unchanged from the reference venv and reach our embedded
broker with their Pulsar options ``-H 127.0.0.1 -p PORT`` (URL layout
``/ws/v2/{producer|consumer}/non-persistent/public/default/...``).
"""

from __future__ import annotations

import json
import math
import secrets
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import timeout
from tests.interop import peers

pytestmark = [pytest.mark.interop, pytest.mark.slow]


@dataclass
class Setup:
    """Our broker with a demessaging backend on ``topic`` and its client stub."""

    endpoint: peers.Endpoint
    topic: str
    stub: Path


@pytest.fixture(scope="module")
def ref(dm_python, tmp_path_factory):
    """One broker, backend and generated client for this module's tests.

    The tests only read from the backend, so sharing it is safe and saves
    starting a Python process with demessaging for each.
    """
    from dasf_geo.broker import EmbeddedBroker

    topic = f"interop-{secrets.token_hex(6)}"
    with EmbeddedBroker(host="127.0.0.1", port=0) as broker:
        endpoint = peers.Endpoint("pulsar", broker.url)
        with peers.start_dm_backend(dm_python, endpoint, topic, timeout(60)):
            stub = peers.generate_dm_stub(
                dm_python, endpoint, topic, tmp_path_factory.mktemp("stub"), timeout(60)
            )
            yield Setup(endpoint, topic, stub)


def results(lines: list[dict]) -> list[dict]:
    """The client's output without the timings."""
    return [{k: v for k, v in line.items() if k != "seconds"} for line in lines]


def test_demessaging_backend_and_client_talk_through_our_broker(ref, dm_python):
    stub = ref.stub
    hi = {"class": "HelloWorld", "init": {"message": "hi"}}
    lines = peers.run_dm_client(
        dm_python,
        stub,
        [
            {"function": "hello_world"},
            {**hi, "method": "repeat_message", "args": {"repeat": 3}},
            {**hi, "method": "greet", "args": {"repeat": 2, "greet_message": "moin"}},
            {"function": "big_string", "args": {"n": 1000}},
            {"function": "make_dataset", "args": {"nx": 3, "ny": 2, "nt": 1}},
            {
                "function": "scale_dataset",
                "args": {"factor": 2.0},
                "datasets": {"ds": {"nx": 2, "ny": 2, "nt": 1}},
            },
        ],
        timeout(60),
    )
    out = results(lines)
    assert out[0] == {"ok": True, "result": "HelloWorld"}
    assert out[1] == {"ok": True, "result": ["hi", "hi", "hi"]}
    assert out[2]["ok"] is True
    assert out[2]["result"]["message"] == "hi"
    assert out[2]["result"]["greetings"] == ["moin", "moin"]
    assert out[3] == {"ok": True, "result": "0123456789" * 100}
    made = out[4]["result"]["__dataset__"]
    assert made["dims"] == {"time": 1, "lat": 2, "lon": 3}
    assert made["data_vars"]["t2m"]["values"] == [[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]]
    assert made["data_vars"]["t2m"]["attrs"] == {"units": "K"}
    # The reference backend loses the global attributes, ``crs`` included:
    # its return validator rebuilds the reply with ``xr.Dataset(ds)``.
    assert made["attrs"] == {}
    scaled = out[5]["result"]["__dataset__"]
    assert scaled["data_vars"]["t2m"]["values"] == [[[0.0, 2.0], [4.0, 6.0]]]


def test_demessaging_client_rejects_bad_arguments_before_sending(ref, dm_python):
    stub = ref.stub
    [line] = peers.run_dm_client(
        dm_python,
        stub,
        [
            {
                "class": "HelloWorld",
                "init": {"message": "hi"},
                "method": "repeat_message",
                "args": {"repeat": -1},
            }
        ],
        timeout(60),
    )
    assert line["ok"] is False
    assert line["error_type"] == "ValidationError"
    assert "Input should be greater than or equal to 0" in line["error"]


def test_reference_backend_fragments_pass_our_broker_unchanged(ref):
    """A 600,000-character reply is > 512000 base64 characters: two fragments."""
    our_broker, topic = ref.endpoint, ref.topic
    n = 600_000
    replies, _ = peers.raw_request(
        our_broker, topic, {"func_name": "big_string", "n": n}, timeout(60)
    )
    b64_len = math.ceil((n + 2) / 3) * 4  # base64 of the JSON string '"…"'
    expected = math.ceil(b64_len / 512_000)
    assert len(replies) == expected == 2
    props = [m["properties"] for m in replies]
    # The reference sends fragment numbers as JSON integers; they arrive so.
    assert sorted(p["fragment"] for p in props) == [0, 1]
    assert {p["num_fragments"] for p in props} == {2}
    assert {p["status"] for p in props} == {"success"}
    assert {p["source_topic"] for p in props} == {topic}
    assert [len(m["payload"]) for m in replies] == [512_000, b64_len - 512_000]
    assert json.loads(peers.join_reply(replies)) == ("0123456789" * 60_000)


def test_reference_client_fails_on_a_fragmented_reply(ref, dm_python):
    """Documented weakness of the reference: its client never reassembles.

    It decodes the first fragment alone and fails to parse the cut JSON;
    the later fragments are ignored. (dasf_geo's client joins them, see
    test_cross.py.)
    """
    stub = ref.stub
    [line] = peers.run_dm_client(
        dm_python,
        stub,
        [{"function": "big_string", "args": {"n": 600_000}}],
        timeout(60),
    )
    assert line["ok"] is False
    assert line["error_type"] == "ValidationError"
    # 512000 base64 characters decode to 384000 bytes of the JSON text.
    assert (
        "Invalid JSON: EOF while parsing a string at line 1 column 384000"
        in (line["error"])
    )


def test_reference_backend_answers_bad_requests_with_an_error_reply(ref):
    our_broker, topic = ref.endpoint, ref.topic
    replies, _ = peers.raw_request(
        our_broker, topic, {"func_name": "no_such_function"}, timeout(60)
    )
    [reply] = replies
    assert reply["properties"]["status"] == "error"
    text = peers.join_reply(replies).decode()
    assert text.startswith("error validating request:")
    assert "Input should be 'hello_world'" in text
