"""Tests of the messaging configs: URLs, environment, validation messages."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, ValidationError

from dasf_geo.config.messaging import (
    MAX_HEADER_SIZE,
    BaseMessagingConfig,
    PulsarConfig,
    WebsocketURLConfig,
    format_validation_error,
)
from dasf_geo.exceptions import ConfigurationError, DasfGeoError
from dasf_geo.protocol.constants import DEFAULT_MAX_PAYLOAD_SIZE


def error_of(cls, **kwargs) -> str:
    with pytest.raises(ConfigurationError) as info:
        cls(**kwargs)
    assert isinstance(info.value, DasfGeoError)
    assert isinstance(info.value.__cause__, ValidationError)
    return str(info.value)


# --------------------------------------------------------------------- defaults


def test_defaults_match_the_reference():
    config = PulsarConfig(topic="t")
    assert config.host == "localhost"
    assert config.port == 8080
    assert config.persistent is False
    assert config.tenant == "public"
    assert config.namespace == "default"
    assert config.header == {}
    assert config.max_workers is None
    assert config.queue_size is None
    assert config.max_payload_size == DEFAULT_MAX_PAYLOAD_SIZE == 512000
    assert config.producer_keep_alive == 120
    assert config.producer_connection_timeout == 30
    assert config.subscription_name is None
    assert config.subscription_type == "Shared"
    assert config.max_request_size == 1 << 30
    assert config.fragment_timeout == 60.0


def test_pulsar_urls():
    config = PulsarConfig(topic="t", host="broker.example.org", port=6650)
    assert config.get_topic_url("my-topic") == (
        "ws://broker.example.org:6650/ws/v2/producer/non-persistent/"
        "public/default/my-topic"
    )
    assert config.get_topic_url("my-topic", "sub-1") == (
        "ws://broker.example.org:6650/ws/v2/consumer/non-persistent/"
        "public/default/my-topic/sub-1"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "persistent"),
        (False, "non-persistent"),
        ("persistent", "persistent"),
        ("non-persistent", "non-persistent"),
        ("Persistent", "persistent"),
        ("true", "persistent"),
        ("false", "non-persistent"),
    ],
)
def test_persistent_accepts_bool_and_pulsar_words(value, expected):
    config = PulsarConfig(topic="t", persistent=value, tenant="geo", namespace="n1")
    assert config.get_topic_url("x") == (
        f"ws://localhost:8080/ws/v2/producer/{expected}/geo/n1/x"
    )


def test_ipv6_host_is_bracketed():
    assert PulsarConfig(topic="t", host="::1", port=1).get_topic_url("x") == (
        "ws://[::1]:1/ws/v2/producer/non-persistent/public/default/x"
    )


def test_websocket_url_config():
    config = WebsocketURLConfig(topic="t", websocket_url="wss://h.example.org/ws/")
    assert config.get_topic_url("t") == "wss://h.example.org/ws/t"
    assert config.get_topic_url("t", "s") == "wss://h.example.org/ws/t/s"


def test_separate_producer_and_consumer_urls():
    config = WebsocketURLConfig(
        topic="t", producer_url="ws://p:1/in", consumer_url="ws://c:2/out"
    )
    assert config.get_topic_url("t") == "ws://p:1/in/t"
    assert config.get_topic_url("t", "s") == "ws://c:2/out/t/s"
    # one of them alone falls back to websocket_url
    config = WebsocketURLConfig(
        topic="t", websocket_url="ws://w/x", consumer_url="ws://c/y"
    )
    assert config.get_topic_url("t") == "ws://w/x/t"
    assert config.get_topic_url("t", "s") == "ws://c/y/t/s"


def test_base_class_has_no_urls():
    config = BaseMessagingConfig(topic="t")
    with pytest.raises(NotImplementedError) as info:
        config.get_topic_url("t")
    assert str(info.value) == (
        "BaseMessagingConfig does not build URLs; use PulsarConfig or "
        "WebsocketURLConfig"
    )


# ---------------------------------------------------------------- environment


def test_environment_is_read(monkeypatch):
    monkeypatch.setenv("DE_BACKEND_TOPIC", "env-topic")
    monkeypatch.setenv("DE_BACKEND_HOST", "example.org")
    monkeypatch.setenv("DE_BACKEND_PORT", "9999")
    monkeypatch.setenv("DE_BACKEND_PERSISTENT", "persistent")
    monkeypatch.setenv("DE_BACKEND_HEADER", '{"authorization": "Token abc"}')
    monkeypatch.setenv("DE_BACKEND_MAX_WORKERS", "3")
    monkeypatch.setenv("DE_BACKEND_QUEUE_SIZE", "6")
    config = PulsarConfig()
    assert (config.topic, config.host, config.port) == (
        "env-topic",
        "example.org",
        9999,
    )
    assert config.persistent is True
    assert config.header == {"authorization": "Token abc"}
    assert (config.max_workers, config.queue_size) == (3, 6)


def test_lowercase_environment_names_work(monkeypatch):
    monkeypatch.setenv("de_backend_topic", "lower")
    assert PulsarConfig().topic == "lower"


def test_keyword_arguments_win_over_environment(monkeypatch):
    monkeypatch.setenv("DE_BACKEND_TOPIC", "env-topic")
    monkeypatch.setenv("DE_BACKEND_PORT", "1111")
    config = PulsarConfig(topic="kw-topic", port=2222)
    assert (config.topic, config.port) == ("kw-topic", 2222)


def test_websocket_url_from_environment(monkeypatch):
    monkeypatch.setenv("DE_BACKEND_WEBSOCKET_URL", "ws://env:1/ws")
    config = WebsocketURLConfig(topic="t")
    assert config.get_topic_url("t") == "ws://env:1/ws/t"


def test_malformed_header_in_environment(monkeypatch):
    monkeypatch.setenv("DE_BACKEND_HEADER", "{not json")
    assert error_of(PulsarConfig, topic="t") == (
        "invalid PulsarConfig: header (--header, environment variable "
        "DE_BACKEND_HEADER): the header must be a JSON object such as "
        '\'{"authorization": "Token ..."}\', but it is not valid JSON '
        "(Expecting property name enclosed in double quotes: line 1 column 2 "
        "(char 1))"
    )


# ------------------------------------------------------------------ bad input


def test_missing_topic():
    assert error_of(PulsarConfig) == (
        "invalid PulsarConfig: no topic given: set it with -t/--topic, "
        "main(messaging_config=dict(topic=...)), the DE_BACKEND_TOPIC "
        "environment variable or PulsarConfig(topic=...)"
    )
    assert error_of(WebsocketURLConfig, topic="", websocket_url="ws://h").startswith(
        "invalid WebsocketURLConfig: no topic given"
    )


@pytest.mark.parametrize(
    ("topic", "problem"),
    [
        # the broker's rule (dasf_geo.protocol.names), shared by the configs
        (
            "a b",
            "invalid topic name 'a b': use letters, digits and '_', '-', '=', "
            "'.', starting with a letter, digit or '_'",
        ),
        (
            "a/b",
            "invalid topic name 'a/b': use letters, digits and '_', '-', '=', "
            "'.', starting with a letter, digit or '_'",
        ),
        (
            "a:b",
            "invalid topic name 'a:b': use letters, digits and '_', '-', '=', "
            "'.', starting with a letter, digit or '_'",
        ),
        ("x" * 201, "the topic name is 201 characters long; the limit is 200"),
    ],
)
def test_bad_topic(topic, problem):
    assert error_of(PulsarConfig, topic=topic) == (
        "invalid PulsarConfig: topic (-t/--topic, environment variable "
        f"DE_BACKEND_TOPIC): {problem}"
    )


def test_wrong_typed_topic():
    assert error_of(PulsarConfig, topic=12) == (
        "invalid PulsarConfig: topic (-t/--topic, environment variable "
        "DE_BACKEND_TOPIC): Input should be a valid string (got 12)"
    )


@pytest.mark.parametrize(
    ("port", "problem"),
    [
        (0, "Input should be greater than or equal to 1 (got 0)"),
        (70000, "Input should be less than or equal to 65535 (got 70000)"),
        ("http", "the port must be a whole number between 1 and 65535, got 'http'"),
        (True, "the port must be a number, got True"),
        (
            8080.5,
            "Input should be a valid integer, got a number with a "
            "fractional part (got 8080.5)",
        ),
    ],
)
def test_bad_port(port, problem):
    assert error_of(PulsarConfig, topic="t", port=port) == (
        "invalid PulsarConfig: port (-p/--port, environment variable "
        f"DE_BACKEND_PORT): {problem}"
    )


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        (
            "ws://localhost",
            "the host 'ws://localhost' must be a host name or IP "
            "address without scheme, port or path (e.g. 'localhost'); to give a "
            "full URL use --websocket-url instead",
        ),
        (
            "bad host",
            "the host 'bad host' is not a valid host name or IP "
            "address (use e.g. 'localhost', 'broker.example.org' or '127.0.0.1'; "
            "give the port with -p/--port)",
        ),
        ("", "the host must not be empty; use e.g. 'localhost'"),
    ],
)
def test_bad_host(host, problem):
    assert error_of(PulsarConfig, topic="t", host=host) == (
        "invalid PulsarConfig: host (-H/--host, environment variable "
        f"DE_BACKEND_HOST): {problem}"
    )


def test_hostile_host_is_shortened_in_the_message():
    message = error_of(PulsarConfig, topic="t", host="a b" * 1000)
    assert len(message) < 400
    assert "..." in message


def test_queue_size_smaller_than_max_workers():
    assert error_of(PulsarConfig, topic="t", max_workers=4, queue_size=2) == (
        "invalid PulsarConfig: queue_size (2) must be at least max_workers (4): "
        "raise --queue-size or lower --max-workers"
    )
    config = PulsarConfig(topic="t", max_workers=4, queue_size=4)
    assert config.queue_size == 4


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("max_workers", 0, "Input should be greater than or equal to 1 (got 0)"),
        ("queue_size", -1, "Input should be greater than or equal to 1 (got -1)"),
        ("max_payload_size", 3, "Input should be greater than or equal to 4 (got 3)"),
        (
            "max_payload_size",
            10**12,
            "Input should be less than or equal to 67108864 (got 1000000000000)",
        ),
        (
            "producer_keep_alive",
            -1,
            "Input should be greater than or equal to 0 (got -1)",
        ),
        (
            "producer_connection_timeout",
            0,
            "Input should be greater than or equal to 1 (got 0)",
        ),
    ],
)
def test_out_of_range_numbers(field, value, problem):
    option = "--" + field.replace("_", "-")
    env = "DE_BACKEND_" + field.upper()
    assert error_of(PulsarConfig, topic="t", **{field: value}) == (
        f"invalid PulsarConfig: {field} ({option}, environment variable {env}): "
        f"{problem}"
    )


def test_bad_subscription_type():
    message = error_of(PulsarConfig, topic="t", subscription_type="Round")
    assert message == (
        "invalid PulsarConfig: subscription_type (environment variable "
        "DE_BACKEND_SUBSCRIPTION_TYPE): Input should be 'Shared', 'Exclusive', "
        "'Failover' or 'Key_Shared' (got 'Round')"
    )


def test_bad_persistent():
    assert error_of(PulsarConfig, topic="t", persistent="maybe") == (
        "invalid PulsarConfig: persistent (--persistent, environment variable "
        "DE_BACKEND_PERSISTENT): persistent must be 'persistent', "
        "'non-persistent', true or false, got 'maybe'"
    )


def test_unknown_option_lists_the_valid_ones():
    message = error_of(PulsarConfig, topic="t", websocket_url="ws://h")
    assert message.startswith(
        "invalid PulsarConfig: unknown option 'websocket_url'; valid options are "
        "fragment_timeout, header, host, max_payload_size,"
    )


def test_several_problems_are_listed():
    assert error_of(PulsarConfig, topic="t", port=0, host="") == (
        "invalid PulsarConfig:\n"
        "- host (-H/--host, environment variable DE_BACKEND_HOST): the host must "
        "not be empty; use e.g. 'localhost'\n"
        "- port (-p/--port, environment variable DE_BACKEND_PORT): Input should "
        "be greater than or equal to 1 (got 0)"
    )


# --------------------------------------------------------------------- header


def test_header_accepts_json_text_and_numbers():
    config = PulsarConfig(topic="t", header='{"authorization": "Token x", "n": 1}')
    assert config.header == {"authorization": "Token x", "n": "1"}
    assert PulsarConfig(topic="t", header="").header == {}


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (
            '["a"]',
            "the header must be a JSON object mapping names to strings, got list ['a']",
        ),
        (
            '{"a": {"b": 1}}',
            "the header value of 'a' must be a string, got dict {'b': 1}",
        ),
        (
            '{"a b": "x"}',
            "the header name 'a b' is not a valid HTTP header "
            "name; use letters, digits and - _ only",
        ),
        (
            '{"x": "a\\r\\nInjected: 1"}',
            "the header value of 'x' contains a line "
            "break or NUL character, which HTTP headers do not allow",
        ),
        (42, "the header must be a JSON object mapping names to strings, got int 42"),
    ],
)
def test_bad_header(header, problem):
    assert error_of(PulsarConfig, topic="t", header=header) == (
        "invalid PulsarConfig: header (--header, environment variable "
        f"DE_BACKEND_HEADER): {problem}"
    )


def test_oversized_header():
    big = json.dumps({"a": "x" * MAX_HEADER_SIZE})
    assert error_of(PulsarConfig, topic="t", header=big) == (
        "invalid PulsarConfig: header (--header, environment variable "
        f"DE_BACKEND_HEADER): the header is {len(big)} characters long; use at "
        f"most {MAX_HEADER_SIZE}"
    )


# ------------------------------------------------------------------- URLs


EXPECTED = (
    "; expected a URL such as "
    "'ws://localhost:8080/ws/v2/consumer/non-persistent/public/default'"
)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (
            "http://h/ws",
            "the websocket url 'http://h/ws' uses the scheme 'http'; "
            "only ws:// and wss:// work",
        ),
        ("localhost:8080", "the websocket url 'localhost:8080' is not a URL"),
        ("ws://", "the websocket url 'ws://' has no host"),
        ("ws://h:99999/x", "the websocket url 'ws://h:99999/x' has an invalid port"),
        (
            "ws://user:pw@h/x",
            "the websocket url 'ws://user:pw@h/x' contains "
            "credentials; pass them with --header instead",
        ),
        (
            "ws://h/x?token=1",
            "the websocket url 'ws://h/x?token=1' has a query or "
            "fragment; the topic is appended to the URL's path, so pass tokens "
            "with --header instead",
        ),
        (
            "ws://h/a b",
            "the websocket url 'ws://h/a b' contains white space or control characters",
        ),
        (
            "ws://bad_host!/x",
            "the websocket url 'ws://bad_host!/x' has an invalid host 'bad_host!'",
        ),
    ],
)
def test_bad_websocket_url(url, problem):
    assert error_of(WebsocketURLConfig, topic="t", websocket_url=url) == (
        "invalid WebsocketURLConfig: websocket_url (--websocket-url, environment "
        f"variable DE_BACKEND_WEBSOCKET_URL): {problem}{EXPECTED}"
    )


def test_websocket_config_needs_urls():
    assert error_of(WebsocketURLConfig, topic="t") == (
        "invalid WebsocketURLConfig: no broker URL for producers and consumers: "
        "set --websocket-url (DE_BACKEND_WEBSOCKET_URL), or both --producer-url "
        "and --consumer-url"
    )
    assert error_of(WebsocketURLConfig, topic="t", producer_url="ws://p") == (
        "invalid WebsocketURLConfig: no broker URL for consumers: set "
        "--websocket-url (DE_BACKEND_WEBSOCKET_URL), or both --producer-url and "
        "--consumer-url"
    )


@pytest.mark.parametrize("cls_kwargs", [{}, {"websocket_url": "ws://h"}])
def test_get_topic_url_rejects_bad_names(cls_kwargs):
    cls = WebsocketURLConfig if cls_kwargs else PulsarConfig
    config = cls(topic="t", **cls_kwargs)
    with pytest.raises(ConfigurationError) as info:
        config.get_topic_url("../admin")
    # the broker's rule and messages (dasf_geo.protocol.names)
    assert str(info.value) == (
        "invalid topic name '../admin': use letters, digits and '_', '-', '=', "
        "'.', starting with a letter, digit or '_'"
    )
    with pytest.raises(ConfigurationError) as info:
        config.get_topic_url("t", "")
    assert str(info.value) == "the subscription name is empty"


# ---------------------------------------------------------------- nesting


def test_nested_validation_reports_in_a_validation_error():
    class Outer(BaseModel):
        messaging: PulsarConfig

    with pytest.raises(ValidationError) as info:
        Outer.model_validate({"messaging": {"topic": "t", "port": 0}})
    message = format_validation_error(info.value, "Outer")
    # BaseSettings has its own __init__, which pydantic also calls for nested
    # values: the environment is read and the message is the same.
    assert message == (
        "invalid Outer: messaging: invalid PulsarConfig: port (-p/--port, "
        "environment variable DE_BACKEND_PORT): Input should be greater than or "
        "equal to 1 (got 0)"
    )


def test_nested_validation_reads_the_environment(monkeypatch):
    class Outer(BaseModel):
        messaging: PulsarConfig

    monkeypatch.setenv("DE_BACKEND_PORT", "4321")
    outer = Outer.model_validate({"messaging": {"topic": "t"}})
    assert outer.messaging.port == 4321


def test_round_trip_through_model_dump():
    config = PulsarConfig(topic="t", header={"a": "b"}, max_workers=2, queue_size=5)
    assert PulsarConfig(**config.model_dump()) == config


def test_empty_environment_variables_count_as_unset(monkeypatch):
    monkeypatch.setenv("DE_BACKEND_TOPIC", "t")
    monkeypatch.setenv("DE_BACKEND_MAX_WORKERS", "")
    monkeypatch.setenv("DE_BACKEND_PORT", "")
    config = PulsarConfig()
    assert (config.max_workers, config.port) == (None, 8080)


@pytest.mark.parametrize("topic", ["a:b", "..", "-x", "a%2Fb", "x" * 201])
def test_config_and_broker_share_one_topic_rule(topic):
    """A topic the config refuses is one the broker refuses, and vice versa."""
    from dasf_geo.broker.names import parse_path
    from dasf_geo.exceptions import ProtocolError

    with pytest.raises(ConfigurationError):
        PulsarConfig(topic=topic)
    with pytest.raises(ProtocolError):
        parse_path(f"/ws/{topic}")
    for good in ("a-b", "a.b=c_d", "x" * 200):
        assert PulsarConfig(topic=good).topic == good
        assert parse_path(f"/ws/{good}") is not None


def test_subscription_names_follow_the_broker_rule():
    from dasf_geo.broker.names import validate_subscription

    name = "backend-module-2026-11-23T21:34:15"
    assert PulsarConfig(topic="t", subscription_name=name).subscription_name == name
    assert validate_subscription(name) == name
    with pytest.raises(ConfigurationError):
        PulsarConfig(topic="t", subscription_name="a b")
