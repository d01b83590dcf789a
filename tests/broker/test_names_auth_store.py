"""URL layouts and names, the auth file, the SQLite store."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from dasf_geo.broker.auth import AuthConfig, token_from_request
from dasf_geo.broker.names import TopicName, parse_path
from dasf_geo.broker.store import MessageStore
from dasf_geo.exceptions import BrokerError, ConfigurationError, ProtocolError

# --- paths --------------------------------------------------------------------


def test_pulsar_layout_paths():
    route = parse_path("/ws/v2/producer/persistent/my-tenant/ns/topic-1")
    assert route is not None and route.kind == "producer"
    assert route.topic == TopicName(True, "my-tenant", "ns", "topic-1")
    route = parse_path(
        "/ws/v2/consumer/non-persistent/public/default/t/"
        "python-backend-2026-11-23T21:34:15.123456?subscriptionType=Shared&x="
    )
    assert route is not None and route.kind == "consumer"
    assert route.subscription == "python-backend-2026-11-23T21:34:15.123456"
    assert route.params == {"subscriptionType": "Shared", "x": ""}
    assert route.topic is not None
    assert route.topic.full == "non-persistent://public/default/t"


def test_plain_layout_maps_to_public_default():
    route = parse_path("/ws/my_topic")
    assert route is not None and route.kind == "producer"
    assert route.topic == TopicName(False, "public", "default", "my_topic")
    route = parse_path("/ws/my_topic/sub/")
    assert (
        route is not None and route.kind == "consumer" and route.subscription == "sub"
    )
    route = parse_path("/ws/status-ping")
    assert route is not None and route.kind == "status-ping"


@pytest.mark.parametrize("path", ["/", "/other", "/ws", "/ws/a/b/c", "/health"])
def test_unknown_paths(path):
    assert parse_path(path) is None


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/ws/..", "invalid topic name '..': use letters, digits and"),
        ("/ws/.hidden", "invalid topic name '.hidden'"),
        ("/ws/a%2e%2e", "invalid topic name 'a%2e%2e'"),
        ("/ws/t/..", "invalid subscription name '..'"),
        ("/ws/t/a b", "invalid subscription name 'a b'"),
        ("/ws/" + "x" * 201, "the topic name is 201 characters long; the limit is 200"),
        (
            "/ws/v2/producer/durable/public/default/t",
            "invalid topic domain 'durable': use 'persistent' or 'non-persistent'",
        ),
        (
            "/ws/v2/producer/persistent/public/default",
            "invalid producer path '/ws/v2/producer/persistent/public/default': use "
            "/ws/v2/producer/{persistent|non-persistent}/TENANT/NAMESPACE/TOPIC",
        ),
        (
            "/ws/v2/consumer/persistent/public/default/t",
            "invalid consumer path",
        ),
        ("/ws/v2/producer/persistent/../default/t", "invalid tenant name '..'"),
        ("/ws/v2/producer/persistent/public/a:b/t", "invalid namespace name 'a:b'"),
        ("/ws/v2/producer/persistent/public//t", "the namespace name is empty"),
    ],
)
def test_invalid_names_are_refused(path, message):
    with pytest.raises(ProtocolError) as info:
        parse_path(path)
    assert str(info.value).startswith(message)


# --- auth -----------------------------------------------------------------------


def write(tmp_path, text: str):
    path = tmp_path / "auth.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_auth_file_grants(tmp_path):
    digest = hashlib.sha256(b"caller-secret").hexdigest()
    path = write(
        tmp_path,
        f"""
tokens:
  - name: backend
    token: backend-secret
    produce: ["svc_*"]
    consume: "svc"
  - name: caller
    sha256: "{digest.upper()}"
    produce: ["public/default/svc"]
    consume: ["svc_*"]
anonymous:
  consume: ["news"]
""",
    )
    auth = AuthConfig.load(path)
    svc = TopicName(False, "public", "default", "svc")
    reply = TopicName(False, "public", "default", "svc_abc")
    other_ns = TopicName(False, "public", "other", "svc")
    backend = auth.identify("backend-secret")
    caller = auth.identify("caller-secret")
    assert backend is not None and caller is not None
    assert backend.allows("consume", svc) and backend.allows("produce", reply)
    assert not backend.allows("produce", svc)
    assert caller.allows("produce", svc) and not caller.allows("produce", other_ns)
    assert caller.allows("consume", reply)
    assert auth.identify("wrong-token") is None
    anon = auth.identify(None)
    assert anon is not None and anon.allows(
        "consume", TopicName(False, "p", "d", "news")
    )
    assert not anon.allows("produce", TopicName(False, "p", "d", "news"))
    assert "secret" not in repr(auth)


def test_json_auth_file(tmp_path):
    path = write(tmp_path, '{"tokens": [{"token": "12345678", "produce": ["*"]}]}')
    grant = AuthConfig.load(path).identify("12345678")
    assert grant is not None and grant.name == "token 0"
    assert AuthConfig.load(path).identify(None) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tokens: [unclosed", "is not valid YAML or JSON:"),
        ("- a\n- b\n", "must be a mapping with a 'tokens' list, got list"),
        ("tokens: 5\n", "'tokens' in {path} must be a list, got int"),
        ("users: []\n", "has unknown keys ['users']: use 'tokens' and 'anonymous'"),
        ("tokens: [5]\n", "tokens[0] in {path} must be a mapping with 'token'"),
        (
            "tokens: [{produce: ['*']}]\n",
            "tokens[0] in {path} needs exactly one of 'token' or 'sha256'",
        ),
        (
            "tokens: [{token: short}]\n",
            "'token' of tokens[0] in {path} must be a string of at least 8 characters",
        ),
        (
            "tokens: [{token: 12345678}]\n",
            "'token' of tokens[0] in {path} must be a string of at least 8 characters",
        ),
        (
            "tokens: [{sha256: abc}]\n",
            "'sha256' of tokens[0] in {path} must be the 64 hex digits",
        ),
        (
            "tokens: [{token: abcdefgh, produce: [1]}]\n",
            "'produce' of tokens[0] in {path} must be a list of topic patterns",
        ),
        (
            "tokens: [{token: abcdefgh, consume: {a: 1}}]\n",
            "'consume' of tokens[0] in {path} must be a list of topic patterns",
        ),
        (
            "tokens: [{token: abcdefgh, admin: true}]\n",
            "tokens[0] in {path} has unknown keys ['admin']",
        ),
        (
            "tokens: [{token: abcdefgh}, {token: abcdefgh}]\n",
            "tokens[1] in {path} repeats a token of an earlier entry",
        ),
        ("anonymous: yes\n", "'anonymous' in {path} must be a mapping"),
    ],
)
def test_auth_file_errors_name_the_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.load(path)
    assert message.format(path=path) in str(info.value)
    assert str(path) in str(info.value)


def test_missing_auth_file(tmp_path):
    with pytest.raises(ConfigurationError, match=r"cannot read the auth file .*nope"):
        AuthConfig.load(tmp_path / "nope.yaml")


def test_binary_auth_file(tmp_path):
    path = tmp_path / "auth.yaml"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigurationError, match="cannot read the auth file"):
        AuthConfig.load(path)


@pytest.mark.parametrize(
    ("headers", "params", "token"),
    [
        ({}, {"token": "q"}, "q"),
        ({"Authorization": "Bearer h"}, {}, "h"),
        ({"Authorization": "Token h"}, {}, "h"),
        ({"authorization": "bearer  h "}, {}, "h"),
        ({"Authorization": "Basic abc"}, {}, None),
        ({"Authorization": "Bearer"}, {}, None),
        ({"Authorization": "Bearer h"}, {"token": "q"}, "q"),
        ({}, {}, None),
    ],
)
def test_token_from_request(headers, params, token):
    assert token_from_request(headers, params) == token


# --- store ----------------------------------------------------------------------


def test_store_refuses_a_directory(tmp_path):
    with pytest.raises(BrokerError) as info:
        MessageStore(tmp_path)
    assert str(info.value) == (
        f"the message store {tmp_path} is a directory: give a file path such as "
        "broker.sqlite"
    )


def test_store_refuses_a_non_sqlite_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("just text, " * 100)
    with pytest.raises(BrokerError) as info:
        MessageStore(path)
    assert str(info.value).startswith(f"cannot open the message store {path}:")
    assert "give another --store path" in str(info.value)


def test_store_refuses_another_schema_version(tmp_path):
    path = tmp_path / "b.sqlite"
    MessageStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE dasf_geo_broker SET value='99' WHERE key='schema'")
    with pytest.raises(BrokerError, match="has schema version 99; this broker reads"):
        MessageStore(path)


def test_store_creates_parent_directories(tmp_path):
    store = MessageStore(tmp_path / "a" / "b" / "broker.sqlite")
    assert store.subscriptions() == []
    assert list(store.messages()) == []
    store.close()
    store.close()
