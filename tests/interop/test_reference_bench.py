"""The benchmark helpers of ``benchmarks/_reference.py``, on small inputs."""

from __future__ import annotations

import pytest

from benchmarks import _reference as ref
from dasf_geo.broker import EmbeddedBroker
from tests.conftest import timeout

pytestmark = [pytest.mark.interop, pytest.mark.slow]


@pytest.fixture
def small_frame_broker():
    """Our broker with a 1 MiB frame limit (so a 1 MB request is refused)."""
    with EmbeddedBroker(host="127.0.0.1", port=0, max_frame_size=1 << 20) as broker:
        yield broker.url


@pytest.fixture
def backend(small_frame_broker, dm_python, topic):
    with ref.ReferenceBackend(
        small_frame_broker, topic, max_workers=2, timeout=timeout(60)
    ) as b:
        yield b


def test_small_call_latencies_are_measured_per_call(backend):
    run = ref.small_call_latencies(backend, calls=5, callers=2, warmup=1)
    assert len(run.latencies) == 10
    assert all(x > 0 for x in run.latencies)
    assert 0 < run.p50 <= run.p95
    assert run.calls_per_s == pytest.approx(10 / run.seconds)


def test_a_fragmented_reply_is_timed_and_checked(backend):
    assert ref.large_reply_seconds(backend, 600_000, timeout=timeout(60)) > 0


def test_payload_round_trips_within_the_frame_limit(backend):
    assert ref.payload_roundtrip_seconds(backend, 100_000, timeout=timeout(60)) > 0


def test_an_unfragmentable_request_is_a_reference_limit(backend):
    with pytest.raises(ref.ReferenceLimit) as info:
        ref.payload_roundtrip_seconds(backend, 1_000_000, timeout=timeout(60))
    assert str(info.value).startswith(
        "the request cannot be sent: the reference never fragments requests "
        "and the broker refused its 1.3 MB frame"
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda b: ref.small_call_latencies(b, calls=0),
            "calls and callers must be >= 1, got calls=0, callers=1",
        ),
        (
            lambda b: ref.small_call_latencies(b, calls=1, callers=-2),
            "calls and callers must be >= 1, got calls=1, callers=-2",
        ),
        (lambda b: ref.large_reply_seconds(b, 0), "nbytes must be >= 1, got 0"),
        (
            lambda b: ref.payload_roundtrip_seconds(b, -5),
            "nbytes must be >= 1, got -5",
        ),
    ],
)
def test_bad_sizes_are_refused(call, message):
    # Checked before the backend is used, so none is needed.
    with pytest.raises(ValueError) as info:
        call(None)
    assert str(info.value) == message


def test_bad_broker_urls_are_refused():
    with pytest.raises(ref.peers.PeerError) as info:
        ref.endpoint_for("http://127.0.0.1:1")
    assert str(info.value) == (
        "broker URL 'http://127.0.0.1:1' must start with ws:// or wss://"
    )
