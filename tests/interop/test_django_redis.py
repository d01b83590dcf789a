"""dasf-broker-django scaled out: two daphne processes sharing a Redis layer.

One dasf-broker-django site (one database) is served by two daphne
processes whose channels share ``channels_redis`` on the local Redis: a
dasf_geo backend connects to the first, dasf_geo and demessaging callers
to the second, so every request and reply crosses Redis.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dasf_geo.transport.client import Client
from dasf_geo.validators.xarray import validate_dataset
from tests.conftest import timeout
from tests.interop import peers
from tests.interop.test_cross import _check_dm_results, _dm_calls_against_geo_backend

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(7).startswith(b"+PONG")
    except OSError:
        return False


pytestmark = [
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.skipif(
        not _redis_answers(), reason="needs Redis at 127.0.0.1:6379 (redis-server)"
    ),
]


@pytest.fixture(scope="module")
def django_pair(
    django_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[peers.DjangoSite, peers.DjangoSite]]:
    """One site, two daphne processes, one Redis channel layer."""
    directory = tmp_path_factory.mktemp("django_redis_site")
    redis = (REDIS_URL, f"dasf-geo-interop-{secrets.token_hex(4)}")
    first = peers.DjangoSite(django_python, directory, redis=redis)
    first.setup(timeout=timeout(120))
    second = peers.DjangoSite(django_python, directory, redis=redis)
    first.start(timeout=timeout(60))
    try:
        second.start(timeout=timeout(60))
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


@contextlib.contextmanager
def _daphne_output_on_failure(*sites: peers.DjangoSite) -> Iterator[None]:
    try:
        yield
    except BaseException:
        for site in sites:
            if site.process is not None:
                print(site.process.describe())
        raise


def test_dasf_geo_backend_on_one_daphne_answers_a_caller_on_the_other(
    django_pair, topic, start_peer
):
    first, second = django_pair
    assert first.port != second.port
    first.create_topic(topic, anonymous=True)
    start_peer("geo", first.endpoint(), topic)
    with (
        _daphne_output_on_failure(first, second),
        Client(second.endpoint().config(topic), timeout=timeout(60)) as client,
    ):
        assert client.call({"func_name": "hello_world"}) == "HelloWorld"
        # a reply of several fragments, and a Dataset of several fragments
        assert client.call({"func_name": "big_string", "n": 1_500_000}) == (
            "0123456789" * 150_000
        )
        ds = validate_dataset(
            None,
            client.call({"func_name": "make_dataset", "nx": 60, "ny": 50, "nt": 40}),
        )
        expected = np.arange(40 * 50 * 60, dtype="float32").reshape(40, 50, 60)
        np.testing.assert_array_equal(ds["t2m"].values, expected)
        assert ds.attrs["crs"] == "EPSG:4326"


def test_demessaging_caller_on_one_daphne_reaches_dasf_geo_on_the_other(
    django_pair, dm_python, topic, start_peer, tmp_path
):
    first, second = django_pair
    first.create_topic(topic, anonymous=True)
    start_peer("geo", first.endpoint(), topic)
    _check_dm_results(
        _dm_calls_against_geo_backend(dm_python, second.endpoint(), topic, tmp_path)
    )
