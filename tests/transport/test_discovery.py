"""Finding a service: a short discovery timeout, a notice, the topics there are."""

from __future__ import annotations

import io

import pytest

import dasf_geo
from dasf_geo import BackendModule
from dasf_geo.broker import EmbeddedBroker
from dasf_geo.exceptions import RequestTimeout, ServiceNotFound
from dasf_geo.transport import discovery
from dasf_geo.transport.backend import BackgroundListener
from dasf_geo.transport.client import Client
from dasf_geo.transport.dynamic import messaging_config
from tests.conftest import timeout


def answer() -> int:
    """The answer."""
    return 42


@pytest.fixture(scope="module")
def served():
    with EmbeddedBroker(host="127.0.0.1", port=0) as broker:
        module = BackendModule.create_model(
            members=[answer],
            messaging_config=dict(
                topic="geo-answers", host="127.0.0.1", port=broker.port
            ),
        )
        listener = BackgroundListener(module).start(timeout(30))
        try:
            yield broker
        finally:
            listener.stop()


def test_backend_topics_lists_served_topics_not_callers(served):
    config = messaging_config("geo-answers", served.url)
    with dasf_geo.connect("geo-answers", served.url, timeout=timeout(30)) as svc:
        assert svc.answer() == 42
        # the caller's own response topic is there too, but has no backend
        assert discovery.backend_topics(config) == ["geo-answers"]


def test_backend_topics_leaves_out_the_notifications_topic(served):
    """The gateway consumes the notifications topic; it carries no service."""
    from websockets.sync.client import connect as ws_connect

    from dasf_geo.protocol.constants import NOTIFICATIONS_TOPIC

    url = (
        f"{served.url}/ws/v2/consumer/non-persistent/public/default/"
        f"{NOTIFICATIONS_TOPIC}/gateway-notifications"
    )
    with ws_connect(url, open_timeout=timeout(10)):
        config = messaging_config("geo-answers", served.url)
        assert discovery.backend_topics(config) == ["geo-answers"]


def test_backend_topics_is_none_where_the_broker_cannot_tell():
    config = messaging_config("x", "ws://127.0.0.1:9")
    assert discovery.backend_topics(config, timeout=1) is None


def test_connect_fails_fast_naming_the_close_topic(served):
    with pytest.raises(ServiceNotFound) as info:
        dasf_geo.connect("geo-answer", served.url, discovery_timeout=1)
    assert str(info.value) == (
        f"no service answered on topic 'geo-answer' at {served.url} within 1 s; "
        "check the topic name and the broker address (--broker). Did you mean "
        "'geo-answers'? Topics with a service on this broker: geo-answers"
    )
    assert info.value.topics == ["geo-answers"]
    assert isinstance(info.value, RequestTimeout)  # old handlers still catch it


async def test_aconnect_fails_fast_too(served):
    with pytest.raises(ServiceNotFound, match="no service answered on topic 'nope'"):
        await dasf_geo.aconnect("nope", served.url, discovery_timeout=1)


def test_notice_on_a_terminal_after_a_moment(served, monkeypatch):
    monkeypatch.setattr(discovery, "WAIT_NOTICE_DELAY", 0.2)
    stream = io.StringIO()
    config = messaging_config("nobody-here", served.url)
    client = Client(config, "nobody-here")
    try:
        with pytest.raises(ServiceNotFound):
            discovery.discover(client, config, 1, notice=True, stream=stream)
    finally:
        client.close()
    assert stream.getvalue() == (
        f"waiting for a service on topic 'nobody-here' at {served.url} ...\n"
    )
    # not a terminal: no notice
    quiet = io.StringIO()
    client = Client(config, "nobody-here")
    try:
        with pytest.raises(ServiceNotFound):
            discovery.discover(client, config, 0.5, stream=quiet)
    finally:
        client.close()
    assert quiet.getvalue() == ""


@pytest.mark.parametrize(
    ("topics", "tail"),
    [
        (None, ""),
        ([], " No topic on this broker has a service."),
        (["zzz", "abc"], " Topics with a service on this broker: abc, zzz"),
        (
            ["other", "geo_servic"],
            " Did you mean 'geo_servic'? Topics with a service on this broker: "
            "geo_servic, other",
        ),
    ],
)
def test_not_found_messages(topics, tail):
    config = messaging_config("geo_service", "ws://127.0.0.1:8080")
    exc = discovery.not_found("geo_service", config, 10, topics)
    assert str(exc) == (
        "no service answered on topic 'geo_service' at ws://127.0.0.1:8080 within "
        "10 s; check the topic name and the broker address (--broker)." + tail
    )


def test_api_info_publishes_transfer_and_data_options():
    from dasf_geo import TransferOptions, configure

    @configure(
        transfer=TransferOptions(max_size=1_000_000, fragment_size=100_000),
        data_options={"crs": "required"},
    )
    def regrid(n: int) -> int:
        return n

    module = BackendModule.create_model(
        members=[regrid, answer],
        messaging_config={"topic": "opts"},
        data_options={"cf": "warn"},
    )
    functions = {f.name: f for f in module.get_api_info().functions}
    assert functions["regrid"].options == {
        "transfer": {"fragment_size": 100_000, "max_size": 1_000_000},
        "data": {"cf": "warn", "crs": "required"},
    }
    assert functions["answer"].options == {"data": {"cf": "warn"}}
