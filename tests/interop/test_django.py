"""The harness itself: demessaging's backend and client through dasf-broker-django.

This proves the fixtures (venvs, the Django site, daphne, topics, tokens)
with the reference peers only, before dasf_geo is put in the middle.
"""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import timeout
from tests.interop import peers

pytestmark = [pytest.mark.interop, pytest.mark.slow]


def test_demessaging_peers_talk_through_django_anonymous_topic(
    django_site, dm_python, topic, start_peer, tmp_path
):
    django_site.create_topic(topic, anonymous=True)
    endpoint = django_site.endpoint()
    start_peer("dm", endpoint, topic, python=dm_python)
    stub = peers.generate_dm_stub(dm_python, endpoint, topic, tmp_path, timeout(60))
    lines = peers.run_dm_client(
        dm_python,
        stub,
        [
            {"function": "hello_world"},
            {
                "class": "HelloWorld",
                "init": {"message": "hi"},
                "method": "repeat_message",
                "args": {"repeat": 2},
            },
            {"function": "make_dataset", "args": {"nx": 2, "ny": 2, "nt": 1}},
        ],
        timeout(60),
    )
    assert [line["ok"] for line in lines] == [True, True, True]
    assert lines[0]["result"] == "HelloWorld"
    assert lines[1]["result"] == ["hi", "hi"]
    t2m = lines[2]["result"]["__dataset__"]["data_vars"]["t2m"]
    assert t2m["values"] == [[[0.0, 1.0], [2.0, 3.0]]]


def test_demessaging_peers_talk_through_django_with_a_token(
    django_site, dm_python, topic, start_peer, tmp_path
):
    token = django_site.create_token("interop_user", [topic])
    endpoint = django_site.endpoint(token)
    assert endpoint.header == {"authorization": f"Token {token}"}
    start_peer("dm", endpoint, topic, python=dm_python)
    stub = peers.generate_dm_stub(dm_python, endpoint, topic, tmp_path, timeout(60))
    # The generated stub leaves the header out; the client passes it.
    [line] = peers.run_dm_client(
        dm_python,
        stub,
        [{"function": "hello_world"}],
        timeout(60),
        header=endpoint.header,
    )
    assert line["ok"] is True
    assert line["result"] == "HelloWorld"


def _produce(url: str, header: dict, message: dict) -> dict:
    from websockets.sync.client import connect

    with connect(url, additional_headers=header, open_timeout=timeout(10)) as ws:
        ws.send(json.dumps(message))
        return json.loads(ws.recv(timeout=timeout(10)))


def test_django_refuses_anonymous_producers_on_token_topics(django_site, topic):
    django_site.create_token("interop_owner", [topic])
    ack = _produce(
        django_site.endpoint().topic_url(topic),
        {},
        {"payload": "", "properties": {}, "context": "c1"},
    )
    assert ack["result"] == "User is not allowed to publish to this topic"
    assert ack["context"] == "c1"


def test_django_refuses_anonymous_producers_on_unknown_topics(django_site, topic):
    ack = _produce(
        django_site.endpoint().topic_url(topic),
        {},
        {"payload": "", "properties": {}, "context": "c2"},
    )
    assert ack["result"] == "User is not allowed to create topics."


def test_django_fails_the_connection_on_a_non_integer_request_context(
    django_site, topic
):
    """dasf-broker-django stores requestContext in an IntegerField.

    A hex or UUID context makes the consumer raise and daphne close the
    connection with 1011: DASF callers must send integer contexts.
    """
    django_site.create_topic(topic, anonymous=True)
    with pytest.raises(ConnectionClosed) as info:
        _produce(
            django_site.endpoint().topic_url(topic),
            {},
            {
                "payload": "",
                "properties": {
                    "messageType": "ping",
                    "requestContext": "8f9c71cc55edaf4a",
                    "response_topic": f"{topic}_x",
                },
                "context": "c3",
            },
        )
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1011


def test_daphne_drops_messages_above_its_limit(django_site, topic):
    """daphne's default limit is 1 MiB; the test site is served with 16 MiB."""
    django_site.create_topic(topic, anonymous=True)
    big = {"payload": "A" * (17 << 20), "properties": {}, "context": "big"}
    # autobahn (under daphne) fails the connection; whether the 1009 close
    # frame reaches a client still busy sending is a race, so only the
    # closing is asserted.
    with pytest.raises(ConnectionClosed):
        _produce(django_site.endpoint().topic_url(topic), {}, big)
    # A message under the limit is accepted.
    ack = _produce(
        django_site.endpoint().topic_url(topic),
        {},
        {"payload": "A" * (2 << 20), "properties": {}, "context": "ok"},
    )
    assert ack["result"] == "ok"


def test_reading_the_api_of_an_unknown_topic_names_it(django_site, topic):
    with pytest.raises(peers.PeerError) as info:
        django_site.topic_api_info(topic)
    assert str(info.value) == f"topic {topic!r} does not exist on the Django site"
    django_site.create_topic(topic)
    assert django_site.topic_api_info(topic) == {}
