"""Property tests: valid messaging configs survive dump -> validate unchanged."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from hypothesis import given
from hypothesis import strategies as st

from dasf_geo.config.messaging import PulsarConfig, WebsocketURLConfig

# the broker's name rules (dasf_geo.protocol.names), which the configs share
names = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_\-=.]{0,39}", fullmatch=True)
subscriptions = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_\-=.:]{0,39}", fullmatch=True)
header_names = st.from_regex(r"[A-Za-z0-9\-_]{1,20}", fullmatch=True)
header_values = st.text(
    alphabet=st.characters(blacklist_characters="\r\n\x00", codec="utf-8"),
    max_size=40,
)
headers = st.dictionaries(header_names, header_values, max_size=4)
hosts = st.one_of(
    st.sampled_from(["localhost", "127.0.0.1", "::1", "broker.example.org"]),
    st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9](\.[a-z]{2,6})?", fullmatch=True),
)
workers = st.integers(1, 64)


@given(
    topic=names,
    subscription=subscriptions,
    host=hosts,
    port=st.integers(1, 65535),
    persistent=st.booleans(),
    tenant=names,
    namespace=names,
    header=headers,
    max_workers=workers,
    extra_queue=st.integers(0, 64),
)
def test_pulsar_config_round_trip(
    topic, subscription, host, port, persistent, tenant, namespace, header,
    max_workers, extra_queue,
):  # fmt: skip
    config = PulsarConfig(
        topic=topic,
        host=host,
        port=port,
        persistent=persistent,
        tenant=tenant,
        namespace=namespace,
        header=json.dumps(header),
        max_workers=max_workers,
        queue_size=max_workers + extra_queue,
    )
    assert config.header == header
    assert PulsarConfig(**config.model_dump()) == config
    assert PulsarConfig(**json.loads(config.model_dump_json())) == config

    producer = urlsplit(config.get_topic_url(topic))
    consumer = urlsplit(config.get_topic_url(topic, subscription))
    assert producer.port == consumer.port == port
    assert producer.hostname == consumer.hostname == host.lower()
    kind = "persistent" if persistent else "non-persistent"
    assert producer.path == f"/ws/v2/producer/{kind}/{tenant}/{namespace}/{topic}"
    assert consumer.path == (
        f"/ws/v2/consumer/{kind}/{tenant}/{namespace}/{topic}/{subscription}"
    )


@given(
    topic=names,
    subscription=subscriptions,
    host=hosts,
    path=st.from_regex(r"(/[a-z0-9]{1,8}){0,3}/?", fullmatch=True),
    secure=st.booleans(),
)
def test_websocket_url_config_round_trip(topic, subscription, host, path, secure):
    netloc = f"[{host}]" if ":" in host else host
    url = f"{'wss' if secure else 'ws'}://{netloc}{path}"
    config = WebsocketURLConfig(topic=topic, websocket_url=url)
    assert WebsocketURLConfig(**config.model_dump()) == config
    base = url.rstrip("/")
    assert config.get_topic_url(topic) == f"{base}/{topic}"
    assert config.get_topic_url(topic, subscription) == f"{base}/{topic}/{subscription}"
