"""``dasf-geo broker --cluster``: errors at start, without a NATS server."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import free_port, timeout


def run_broker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dasf_geo.cli.tool", "broker", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=timeout(60),
    )


def test_nats_down_at_start_exits_with_the_url():
    url = f"nats://127.0.0.1:{free_port()}"
    result = run_broker("--cluster", url)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"dasf-geo broker: error: cannot reach NATS at {url}: nats: no servers "
        "available for connection; start nats-server with JetStream "
        "(nats-server -js) or give the right --cluster URL"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--cluster", "http://h:1"],
            "invalid NATS URL 'http://h:1': use nats://HOST:PORT (or "
            "tls://HOST:PORT), e.g. nats://127.0.0.1:4222",
        ),
        (
            ["--cluster", "nats://h:1", "--cluster-name", "a b"],
            "invalid cluster name 'a b': use 1 to 32 letters, digits, '_' or '-'",
        ),
        (
            ["--cluster", "nats://h:1", "--store", "x.sqlite"],
            "a cluster front keeps no store: persistent topics live in NATS "
            "JetStream; drop --store or --cluster",
        ),
    ],
)
def test_bad_cluster_options_exit_with_a_message(args, message):
    result = run_broker(*args)
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()[-1] == f"dasf-geo broker: error: {message}"
    )


def test_bad_seconds_are_refused_by_the_parser():
    result = run_broker("--cluster", "nats://h:1", "--ack-wait", "soon")
    assert result.returncode == 2
    assert "argument --ack-wait: expected a number of seconds, got 'soon'" in (
        result.stderr
    )
