"""A demessaging 0.6.4 backend and its generated client through our broker.

Uses the reference venv and peer scripts of tests/interop (built on first
use, cached afterwards). Covers both URL layouts, the Pulsar one with a
persistent topic and token auth in a header, as demessaging users pass them.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from dasf_geo.broker import EmbeddedBroker
from tests.conftest import timeout
from tests.interop import peers

pytestmark = [pytest.mark.interop, pytest.mark.slow]


@pytest.fixture(scope="module")
def dm_python() -> Path:
    return peers.peer_python("demessaging")


def _round_trip(dm_python: Path, endpoint: peers.Endpoint, tmp_path: Path) -> None:
    topic = f"broker-interop-{secrets.token_hex(4)}"
    backend = peers.start_dm_backend(dm_python, endpoint, topic, timeout(60))
    try:
        stub = peers.generate_dm_stub(
            dm_python, endpoint, topic, tmp_path / "stub", timeout(60)
        )
        results = peers.run_dm_client(
            dm_python,
            stub,
            [
                {"function": "hello_world", "args": {}},
                {
                    "class": "HelloWorld",
                    "init": {"message": "hi"},
                    "method": "repeat_message",
                    "args": {"repeat": 3},
                },
            ],
            timeout(60),
            header=endpoint.header,
        )
        assert [r["ok"] for r in results] == [True, True], results
        assert "hello" in str(results[0]["result"]).lower()
        assert results[1]["result"] == ["hi", "hi", "hi"]
        backend.check_alive()
    finally:
        backend.stop()
        backend.cleanup()


def test_demessaging_pulsar_layout(dm_python, tmp_path):
    with EmbeddedBroker(port=0) as broker:
        _round_trip(dm_python, peers.Endpoint("pulsar", broker.url), tmp_path)


def test_demessaging_plain_layout(dm_python, tmp_path):
    with EmbeddedBroker(port=0) as broker:
        _round_trip(dm_python, peers.Endpoint("plain", broker.websocket_url), tmp_path)


def test_demessaging_persistent_topics_with_a_token(dm_python, tmp_path):
    auth = tmp_path / "auth.yaml"
    auth.write_text(
        "tokens:\n  - {name: dm, token: dm-secret-token, produce: ['*'], "
        "consume: ['*']}\n"
    )
    with EmbeddedBroker(port=0, auth=auth, store=tmp_path / "b.sqlite") as broker:
        endpoint = peers.Endpoint(
            "pulsar",
            broker.url,
            header={"Authorization": "Bearer dm-secret-token"},
            persistent=True,
        )
        _round_trip(dm_python, endpoint, tmp_path)
