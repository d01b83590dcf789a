"""Several broker fronts: URL lists, the reconnect order, moving fronts.

The parsing and the rotation are tested without sockets; the last tests
run a backend and a caller on two embedded brokers in this process (two
separate brokers, not a cluster: what is checked is that both move to
the second when the first stops, and what calls in flight get).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass, field

import pytest

from dasf_geo.broker import EmbeddedBroker
from dasf_geo.config import WebsocketURLConfig
from dasf_geo.config.messaging import split_broker_urls
from dasf_geo.exceptions import ConfigurationError, ConnectionFailed, ReplyLost
from dasf_geo.transport.client import AsyncClient
from dasf_geo.transport.dynamic import messaging_config
from dasf_geo.transport.failover import (
    Fronts,
    connect_first,
    front_name,
    front_urls,
    reconnect_schedule,
)
from tests.conftest import free_port, timeout
from tests.transport.conftest import Config, Handler, running_listener

# --- parsing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "ws://a:8080,ws://b:8080",
        " ws://a:8080 , ws://b:8080/ ",
        ["ws://a:8080", "ws://b:8080"],
        ("ws://a:8080/", "ws://b:8080"),
    ],
)
def test_a_list_or_comma_separated_urls_give_the_fronts_in_order(value):
    assert split_broker_urls(value) == ["ws://a:8080", "ws://b:8080"]


def test_one_url_is_a_list_of_one():
    assert split_broker_urls("wss://broker.example.org/ws") == [
        "wss://broker.example.org/ws"
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "ws://a:8080,,ws://b:8080",
            "--broker entry 2 is empty (in 'ws://a:8080,,ws://b:8080'); separate "
            "the URLs with single commas",
        ),
        (
            "ws://a:8080,",
            "--broker entry 2 is empty (in 'ws://a:8080,'); separate the URLs "
            "with single commas",
        ),
        ("", "--broker names no broker URL"),
        (
            "ws://a:8080,http://b:8080",
            "the --broker entry 2 'http://b:8080' uses the scheme 'http'; only "
            "ws:// and wss:// work;",
        ),
        (
            "nats://a:4222",
            "the --broker 'nats://a:4222' uses the scheme 'nats'; only ws:// and "
            "wss:// work;",
        ),
        (
            "ws://a:8080,ws://b:8080,ws://A:8080/",
            "--broker entry 3 'ws://A:8080/' is the same broker as entry 1; give "
            "each front once",
        ),
        (
            "ws://a,ws://a:80",
            "--broker entry 2 'ws://a:80' is the same broker as entry 1; give "
            "each front once",
        ),
        (42, "--broker must be a URL, a comma-separated list of URLs or a list"),
    ],
)
def test_bad_url_lists_name_the_entry(value, message):
    with pytest.raises(ValueError) as info:
        split_broker_urls(value)
    assert str(info.value).startswith(message)


def test_the_websocket_url_setting_takes_a_list_from_the_environment(monkeypatch):
    monkeypatch.setenv("DE_BACKEND_WEBSOCKET_URL", "ws://a:1/ws,ws://b:2/ws")
    config = WebsocketURLConfig(topic="t")
    assert config.get_topic_urls("t", "s") == ["ws://a:1/ws/t/s", "ws://b:2/ws/t/s"]
    assert config.get_topic_urls("t") == ["ws://a:1/ws/t", "ws://b:2/ws/t"]
    # one URL per front, the first as before
    assert config.get_topic_url("t") == "ws://a:1/ws/t"
    assert config.websocket_url == "ws://a:1/ws,ws://b:2/ws"


def test_the_websocket_url_setting_refuses_a_bad_entry_by_its_name(monkeypatch):
    monkeypatch.setenv("DE_BACKEND_WEBSOCKET_URL", "ws://a:1/ws,ftp://b:2/ws")
    with pytest.raises(ConfigurationError) as info:
        WebsocketURLConfig(topic="t")
    text = str(info.value)
    assert "environment variable DE_BACKEND_WEBSOCKET_URL" in text
    assert "entry 2 'ftp://b:2/ws' uses the scheme 'ftp'" in text


def test_producer_and_consumer_lists_must_pair_up():
    with pytest.raises(ConfigurationError) as info:
        WebsocketURLConfig(
            topic="t", producer_url=["ws://a/p", "ws://b/p"], consumer_url="ws://a/c"
        )
    assert str(info.value) == (
        "invalid WebsocketURLConfig: 2 producer URL(s) but 1 consumer URL(s): "
        "give one of each per broker front, in the same order"
    )


@pytest.mark.parametrize("persistent", [False, True])
def test_a_broker_list_gives_the_pulsar_layout_on_each_front(persistent):
    config = messaging_config(
        "topic", "ws://a:8080,wss://b:8443", persistent=persistent, tenant="tn"
    )
    kind = "persistent" if persistent else "non-persistent"
    assert config.get_topic_urls("topic") == [
        f"ws://a:8080/ws/v2/producer/{kind}/tn/default/topic",
        f"wss://b:8443/ws/v2/producer/{kind}/tn/default/topic",
    ]
    assert config.get_topic_urls("reply", "sub") == [
        f"ws://a:8080/ws/v2/consumer/{kind}/tn/default/reply/sub",
        f"wss://b:8443/ws/v2/consumer/{kind}/tn/default/reply/sub",
    ]


def test_a_broker_list_with_one_entry_in_a_list_is_the_plain_config():
    config = messaging_config("topic", ["ws://a:9000"])
    assert config.get_topic_url("topic") == (
        "ws://a:9000/ws/v2/producer/non-persistent/public/default/topic"
    )
    assert type(config).__name__ == "PulsarConfig"


@pytest.mark.parametrize(
    ("broker", "message"),
    [
        ("ws://a:8080,", "broker entry 2 is empty"),
        ("ws://a:8080,ws://a:8080", "broker entry 2 'ws://a:8080' is the same"),
        ("ws://a:8080,tcp://b:1", "the broker entry 2 'tcp://b:1' uses the scheme"),
        ("ws://a:8080,ws://b:1/ws", "broker entry 2 'ws://b:1/ws' has a path"),
    ],
)
def test_a_bad_broker_list_is_a_configuration_error(broker, message):
    with pytest.raises(ConfigurationError) as info:
        messaging_config("topic", broker)
    assert str(info.value).startswith(message)


def test_the_command_line_broker_option_takes_a_list():
    import argparse

    from dasf_geo.cli._common import broker_fields, config_from_args

    args = argparse.Namespace(
        broker="ws://a:1,ws://b:2", websocket_url=None, persistent="persistent"
    )
    fields = broker_fields(args)
    assert fields["producer_url"] == (
        "ws://a:1/ws/v2/producer/persistent/public/default,"
        "ws://b:2/ws/v2/producer/persistent/public/default"
    )
    config = config_from_args(args, "t")
    assert [front_name(u) for u in config.get_topic_urls("t")] == [
        "ws://a:1",
        "ws://b:2",
    ]


def test_the_gateway_names_the_first_front_for_its_http_calls():
    from dasf_geo.gateway import GatewaySettings

    settings = GatewaySettings(broker="ws://a:1,ws://b:2")
    assert settings.broker_http_url == "http://a:1"
    assert settings.broker_ws_root == "ws://a:1"
    assert len(settings.messaging_config("t").get_topic_urls("t")) == 2


# --- the order of reconnect attempts ----------------------------------------------


def _take(schedule, n):
    return list(itertools.islice(schedule, n))


def test_one_front_is_the_plain_backoff():
    steps = reconnect_schedule(1, 0, iter([0.1, 0.2, 0.4]))
    assert _take(steps, 4) == [(0, 0.0), (0, 0.1), (0, 0.2), (0, 0.4)]


def test_two_fronts_try_the_other_first_then_back_off_per_round():
    steps = reconnect_schedule(2, 0, iter([0.1, 0.2]))
    assert _take(steps, 6) == [
        (1, 0.0),
        (0, 0.0),
        (1, 0.1),
        (0, 0.0),
        (1, 0.2),
        (0, 0.0),
    ]


def test_the_round_starts_after_the_front_that_was_lost():
    steps = reconnect_schedule(3, 1, iter([5.0]))
    assert _take(steps, 4) == [(2, 0.0), (0, 0.0), (1, 0.0), (2, 5.0)]


def test_no_front_is_an_error():
    with pytest.raises(ValueError):
        next(reconnect_schedule(0, 0, iter([])))
    with pytest.raises(ValueError):
        Fronts(0)


def test_moving_logs_one_line_naming_the_front(caplog):
    fronts = Fronts(3, "the caller of topic 't'")
    with caplog.at_level(logging.INFO, logger="dasf_geo.transport.failover"):
        assert not fronts.move_to(0, "ws://a:1/ws/v2/consumer/x")
        assert fronts.move_to(2, "ws://c:3/ws/v2/consumer/non-persistent/p/d/t/s")
    assert [
        r.getMessage()
        for r in caplog.records
        if r.name == "dasf_geo.transport.failover"
    ] == ["the caller of topic 't' moved to the broker front ws://c:3 (3 of 3)"]
    assert fronts.order() == [2, 0, 1]
    assert fronts.pick(["a", "b", "c"]) == "c"


@dataclass
class FakeLink:
    """Records the URLs it was asked to connect to; refuses ``dead`` ones."""

    dead: set[str]
    url: str = ""
    tried: list[str] = field(default_factory=list)

    async def connect(self) -> None:
        self.tried.append(self.url)
        if self.url in self.dead:
            raise ConnectionFailed(
                f"cannot connect to {self.url}: refused", url=self.url
            )


async def test_the_first_connection_tries_every_front_from_the_one_in_use():
    urls = ["ws://a:1/x", "ws://b:2/x", "ws://c:3/x"]
    fronts = Fronts(3)
    fronts.index = 1
    link = FakeLink(dead={"ws://b:2/x", "ws://c:3/x"})
    await connect_first(link, urls, fronts)
    assert link.tried == ["ws://b:2/x", "ws://c:3/x", "ws://a:1/x"]
    assert (fronts.index, link.url) == (0, "ws://a:1/x")


async def test_no_front_answering_names_every_front():
    urls = ["ws://a:1/x", "ws://b:2/x"]
    link = FakeLink(dead=set(urls))
    with pytest.raises(ConnectionFailed) as info:
        await connect_first(link, urls, Fronts(2))
    assert str(info.value) == (
        "none of the 2 broker fronts answered: cannot connect to ws://a:1/x: "
        "refused; cannot connect to ws://b:2/x: refused"
    )


async def test_one_front_not_answering_is_its_own_error():
    link = FakeLink(dead={"ws://a:1/x"})
    with pytest.raises(ConnectionFailed) as info:
        await connect_first(link, ["ws://a:1/x"], Fronts(1))
    assert str(info.value) == "cannot connect to ws://a:1/x: refused"


def test_front_urls_add_the_query_to_each_front():
    config = WebsocketURLConfig(topic="t", websocket_url="ws://a/ws,ws://b/ws")
    assert front_urls(config, "t", "s", {"subscriptionType": "Shared"}) == [
        "ws://a/ws/t/s?subscriptionType=Shared",
        "ws://b/ws/t/s?subscriptionType=Shared",
    ]
    # a config with only get_topic_url has one front
    plain = Config(base="ws://c:3", topic="t")
    assert front_urls(plain, "t") == [plain.get_topic_url("t")]


# --- a backend and a caller move to the second broker ------------------------------


@dataclass
class FrontsConfig(Config):
    """The test config with one base URL per front."""

    bases: list[str] = field(default_factory=list)

    def get_topic_urls(self, topic: str, subscription: str | None = None) -> list[str]:
        return [
            Config(
                base=base, topic=self.topic, persistent=self.persistent
            ).get_topic_url(topic, subscription)
            for base in self.bases
        ]


async def eventually(check, what: str, seconds: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout(seconds)
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_backend_and_caller_move_to_the_next_broker_when_theirs_stops(caplog):
    first = EmbeddedBroker(host="127.0.0.1", port=free_port()).start()
    second = EmbeddedBroker(host="127.0.0.1", port=free_port()).start()
    bases = [first.url, second.url]
    config = FrontsConfig(base=first.url, topic="fo-move", bases=bases)
    handler = Handler(config.topic)
    handler.release.clear()
    try:
        with caplog.at_level(logging.WARNING, logger="dasf_geo.transport.failover"):
            async with (
                running_listener(handler, config) as listener,
                AsyncClient(config, timeout=timeout(60)) as client,
            ):
                assert await client.call({"op": "echo", "value": 1}) == 1
                # a call in flight on a non-persistent topic when the broker goes
                waiting = asyncio.create_task(client.call({"op": "wait", "id": "w"}))
                await eventually(lambda: "w" in handler.executed, "the call to run")
                await asyncio.to_thread(first.stop)
                with pytest.raises(ReplyLost) as info:
                    await waiting
                assert "call again if that is safe" in str(info.value)
                handler.release.set()
                await eventually(
                    lambda: listener.consumer_url.startswith(second.url),
                    "the backend to move",
                )
                await asyncio.wait_for(listener.connected.wait(), timeout(30))
                # later calls are answered through the second broker
                for value in range(5):
                    assert await client.call({"op": "echo", "value": value}) == value
                assert client._consumer.url.startswith(second.url)
                assert client._producer.url.startswith(second.url)
        moved = sorted(
            r.getMessage()
            for r in caplog.records
            if r.name == "dasf_geo.transport.failover"
        )
        port = second.url.rpartition(":")[2]
        assert moved == [
            "the backend of topic 'fo-move' moved to the broker front "
            f"ws://127.0.0.1:{port} (2 of 2)",
            "the caller of topic 'fo-move' moved to the broker front "
            f"ws://127.0.0.1:{port} (2 of 2)",
        ]
    finally:
        handler.release.set()
        await asyncio.to_thread(first.stop)
        await asyncio.to_thread(second.stop)


async def test_a_dead_first_front_at_start_is_skipped():
    live = EmbeddedBroker(host="127.0.0.1", port=free_port()).start()
    dead = f"ws://127.0.0.1:{free_port()}"
    config = FrontsConfig(base=dead, topic="fo-start", bases=[dead, live.url])
    handler = Handler(config.topic)
    try:
        async with (
            running_listener(handler, config),
            AsyncClient(config, timeout=timeout(30)) as client,
        ):
            assert await client.call({"op": "echo", "value": 5}) == 5
            assert client._fronts.index == 1
    finally:
        await asyncio.to_thread(live.stop)


async def test_connect_takes_a_broker_list_and_skips_a_dead_front():
    import dasf_geo

    live = EmbeddedBroker(host="127.0.0.1", port=free_port()).start()
    dead = f"ws://127.0.0.1:{free_port()}"
    config = Config(base=live.url, topic="fo-connect")
    handler = Handler(config.topic)
    try:
        async with running_listener(handler, config):
            service = await asyncio.to_thread(
                dasf_geo.connect,
                "fo-connect",
                f"{dead},{live.url}",
                discovery_timeout=timeout(20),
            )
            try:
                client = service._client
                assert client._async._fronts.index == 1
                assert await asyncio.to_thread(client.ping, timeout(10)) >= 0
            finally:
                await asyncio.to_thread(service.close)
    finally:
        await asyncio.to_thread(live.stop)


def test_a_service_not_found_names_every_front():
    from dasf_geo.transport.discovery import broker_address, not_found

    config = messaging_config("t", "ws://a:1,ws://b:2")
    assert broker_address(config) == "ws://a:1,ws://b:2"
    error = not_found("t", config, 10, None)
    assert str(error).startswith(
        "no service answered on topic 't' at ws://a:1,ws://b:2 within 10 s"
    )


# --- several hosts of the Pulsar layout (-H a,b / DE_BACKEND_HOST=a,b) ---------


def test_a_host_list_gives_the_fronts_on_one_port(monkeypatch):
    from dasf_geo.config import PulsarConfig

    config = PulsarConfig(topic="t", host="a.example.org, 10.0.0.2,::1", port=9000)
    assert config.host == "a.example.org,10.0.0.2,::1"
    assert config.broker_urls() == [
        "ws://a.example.org:9000",
        "ws://10.0.0.2:9000",
        "ws://[::1]:9000",
    ]
    assert config.get_topic_urls("t", "s") == [
        f"{base}/ws/v2/consumer/non-persistent/public/default/t/s"
        for base in config.broker_urls()
    ]
    assert config.get_topic_url("t") == (
        "ws://a.example.org:9000/ws/v2/producer/non-persistent/public/default/t"
    )
    monkeypatch.setenv("DE_BACKEND_HOST", "a,b")
    assert PulsarConfig(topic="t").broker_urls() == ["ws://a:8080", "ws://b:8080"]


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("a,,b", "host entry 2 of 'a,,b' is empty"),
        ("a,b,a", "host entry 3 'a' is the same as entry 1"),
        (
            "a,ws://b",
            "host entry 2: the host 'ws://b' must be a host name or IP address "
            "without scheme, port or path (e.g. 'localhost'); to give a full URL "
            "use --websocket-url instead",
        ),
        (
            "a,b_c!",
            "host entry 2: the host 'b_c!' is not a valid host name or IP address "
            "(use e.g. 'localhost', 'broker.example.org' or '127.0.0.1'; give the "
            "port with -p/--port)",
        ),
    ],
)
def test_a_bad_host_list_names_the_entry(host, message):
    from dasf_geo.config import PulsarConfig

    with pytest.raises(ConfigurationError) as info:
        PulsarConfig(topic="t", host=host)
    assert str(info.value) == (
        "invalid PulsarConfig: host (-H/--host, environment variable "
        "DE_BACKEND_HOST): " + message
    )


def test_the_host_option_takes_a_list_on_the_command_line(tmp_path):
    import subprocess
    import sys

    module = tmp_path / "hosts_module.py"
    module.write_text(
        "from dasf_geo import main\n\n\n"
        "def echo(value: int) -> int:\n"
        '    """Give value back."""\n'
        "    return value\n\n\n"
        'if __name__ == "__main__":\n'
        "    main()\n"
    )
    port = free_port()
    hosts = "127.0.0.1,127.0.0.2"
    run = subprocess.run(
        [
            sys.executable,
            module,
            "-t",
            "t",
            "-H",
            hosts,
            "-p",
            f"{port}",
            "test-connect",
        ],
        capture_output=True,
        text=True,
        timeout=timeout(60),
        check=False,
    )
    # nothing listens there: each front is tried and named
    assert run.returncode == 1, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith(
        f"front 1 of 2: failed: cannot connect to ws://127.0.0.1:{port}/"
    )
    assert lines[1].startswith(
        f"front 2 of 2: failed: cannot connect to ws://127.0.0.2:{port}/"
    )
    assert lines[2] == (
        "connection test failed: all 2 broker fronts refused the consumer and "
        "producer of topic 't'"
    )
    bad = subprocess.run(
        [sys.executable, str(module), "-t", "t", "-H", "a,,b", "test-connect"],
        capture_output=True,
        text=True,
        timeout=timeout(60),
        check=False,
    )
    assert bad.returncode != 0
    assert "host entry 2 of 'a,,b' is empty" in bad.stderr


async def test_backend_and_caller_given_two_hosts_move_when_the_first_goes():
    """Two brokers on one port, at 127.0.0.1 and 127.0.0.2, as ``-H`` names
    them: the backend and the caller move to the second when the first stops."""
    from dasf_geo.config import PulsarConfig

    port = free_port()
    try:
        second = EmbeddedBroker(host="127.0.0.2", port=port).start()
    except Exception as exc:  # pragma: no cover - a loopback without 127.0.0.2
        pytest.skip(f"cannot bind 127.0.0.2:{port}: {exc}")
    first = EmbeddedBroker(host="127.0.0.1", port=port).start()
    config = PulsarConfig(topic="fo-hosts", host="127.0.0.1,127.0.0.2", port=port)
    handler = Handler(config.topic)
    try:
        async with (
            running_listener(handler, config) as listener,
            AsyncClient(config, timeout=timeout(60)) as client,
        ):
            assert await client.call({"op": "echo", "value": 1}) == 1
            assert listener.consumer_url.startswith(first.url)
            await asyncio.to_thread(first.stop)
            await eventually(
                lambda: listener.consumer_url.startswith(second.url),
                "the backend to move to 127.0.0.2",
            )
            await asyncio.wait_for(listener.connected.wait(), timeout(30))
            for value in range(3):
                assert await client.call({"op": "echo", "value": value}) == value
            assert client._producer.url.startswith(second.url)
    finally:
        await asyncio.to_thread(first.stop)
        await asyncio.to_thread(second.stop)
