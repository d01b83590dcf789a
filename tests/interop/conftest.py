"""Fixtures for the interop tests: reference peers in cached venvs, brokers.

The peer venvs are built (or found in the cache) while pytest collects the
tests, before any test's own timeout starts: a cold cache downloads from
PyPI, which may take a minute or two; a warm one takes well under a second.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import timeout
from tests.interop import peers

#: fixture name -> peer venv it needs
_VENV_FIXTURES = {
    "dm_python": "demessaging",
    "django_python": "dasf-broker-django",
    "django_site": "dasf-broker-django",
}


#: the IOOS compliance checker, in a venv of its own like the reference peers
CC_REQUIREMENTS = ("compliance-checker==6.1.0",)


@pytest.hookimpl(trylast=True)  # after ``-m``/``-k`` deselected what is not run
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Build the peer venvs the selected tests need, outside any test timeout."""
    needed = {
        _VENV_FIXTURES[name]
        for item in items
        for name in getattr(item, "fixturenames", ())
        if name in _VENV_FIXTURES
    }
    for name in sorted(needed):
        peers.peer_python(name)
    if any("cc_python" in getattr(item, "fixturenames", ()) for item in items):
        peers.peer_python("compliance-checker", CC_REQUIREMENTS)


@pytest.fixture(scope="session")
def dm_python() -> Path:
    """The interpreter of the demessaging 0.6.4 venv."""
    return peers.peer_python("demessaging")


@pytest.fixture(scope="session")
def cc_python() -> Path:
    """The interpreter of the compliance-checker 6.1.0 venv (its CF suite and
    test corpus are what tests/interop/test_cf_corpus.py compares with)."""
    return peers.peer_python("compliance-checker", CC_REQUIREMENTS)


@pytest.fixture(scope="session")
def django_python() -> Path:
    """The interpreter of the dasf-broker-django venv."""
    return peers.peer_python("dasf-broker-django")


@pytest.fixture(scope="session")
def django_site(
    django_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[peers.DjangoSite]:
    """A migrated dasf-broker-django site served by daphne on 127.0.0.1.

    One site per test session (migrating takes seconds); tests use unique
    topic names. daphne accepts WebSocket messages up to 16 MiB here (its
    default is 1 MiB).
    """
    site = peers.DjangoSite(django_python, tmp_path_factory.mktemp("django_site"))
    site.setup(timeout=timeout(120))
    site.start(timeout=timeout(60))
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture
def topic() -> str:
    """A fresh topic name (valid for both brokers)."""
    return f"interop-{secrets.token_hex(6)}"


@pytest.fixture
def our_broker() -> Iterator[peers.Endpoint]:
    """``dasf-geo broker`` in process on 127.0.0.1, as a Pulsar-layout endpoint."""
    from dasf_geo.broker import EmbeddedBroker

    with EmbeddedBroker(host="127.0.0.1", port=0) as broker:
        yield peers.Endpoint("pulsar", broker.url)


@pytest.fixture
def start_peer() -> Iterator[Callable[..., peers.PeerProcess]]:
    """Start a backend peer; every peer started is stopped at teardown.

    Call ``start_peer(kind, endpoint, topic, python=None)`` with ``kind``
    ``"dm"`` (demessaging, needs ``python``) or ``"geo"`` (dasf_geo).
    """
    started: list[peers.PeerProcess] = []

    def start(
        kind: str,
        endpoint: peers.Endpoint,
        topic: str,
        python: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> peers.PeerProcess:
        if kind == "dm":
            if python is None:
                raise ValueError("a demessaging peer needs python=<dm venv python>")
            peer = peers.start_dm_backend(
                python, endpoint, topic, timeout(60), extra_args=extra_args
            )
        elif kind == "geo":
            peer = peers.start_geo_backend(
                endpoint, topic, timeout(60), extra_args=extra_args
            )
        else:
            raise ValueError(f"unknown peer kind {kind!r}: use 'dm' or 'geo'")
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.stop()
        peer.cleanup()
