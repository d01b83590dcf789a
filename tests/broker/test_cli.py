"""``dasf-geo broker``: argument errors and a real process."""

from __future__ import annotations

import base64
import json
import re
import signal
import socket
import subprocess
import sys

import pytest
from websockets.sync.client import connect

from dasf_geo.cli.tool import main
from tests.conftest import REPO_ROOT, timeout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--port", "http"],
            "argument --port: expected a port number between 0 and 65535, got 'http'",
        ),
        (
            ["--port", "-1"],
            "argument --port: expected a port number between 0 and 65535, got -1",
        ),
        (
            ["--max-frame-size", "100"],
            "argument --max-frame-size: expected at least 1024 bytes",
        ),
        (
            ["--max-frame-size", "big"],
            "argument --max-frame-size: expected a number of bytes, got 'big'",
        ),
        (["--log-level", "LOUD"], "argument --log-level: invalid choice: 'LOUD'"),
        (
            ["--subscription-expiry", "0"],
            "argument --subscription-expiry: expected seconds > 0, got '0'",
        ),
        (
            ["--subscription-expiry", "soon"],
            "argument --subscription-expiry: expected a number of seconds, got 'soon'",
        ),
    ],
)
def test_argument_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        main(["broker", *argv])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--max-total-bytes", "lots"],
            "argument --max-total-bytes: expected a number of bytes, got 'lots' "
            "(write bytes, or a number with a unit: kB, MB, GB (powers of 1000) "
            "or KiB, MiB, GiB)",
        ),
        (
            ["--max-topic-bytes", "12 parsecs"],
            "argument --max-topic-bytes: expected a number of bytes, got '12 parsecs'",
        ),
        (
            ["--max-inflight-bytes", "0"],
            "argument --max-inflight-bytes: expected a positive number of bytes, got 0",
        ),
        (
            ["--max-client-bytes=-5MiB"],
            "argument --max-client-bytes: expected a number of bytes, got '-5MiB'",
        ),
        (
            ["--max-frame-size", "1KB"],
            "argument --max-frame-size: expected at least 1024 bytes (DASF "
            "fragments are 512000 characters), got '1KB' (1000 bytes)",
        ),
        (
            ["--stall-timeout", "0"],
            "argument --stall-timeout: expected a number of seconds > 0 or "
            "'never', got '0'",
        ),
        (
            ["--stall-timeout", "soon"],
            "argument --stall-timeout: expected a number of seconds > 0 or "
            "'never', got 'soon'",
        ),
    ],
)
def test_limit_argument_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        main(["broker", *argv])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            [],
            {
                "max_topic_bytes": 32 * 1024 * 1024,
                "max_total_bytes": 256 * 1024 * 1024,
                "max_inflight_bytes": 32 * 1024 * 1024,
                "max_client_bytes": 128 * 1024 * 1024,
                "stall_timeout": 60.0,
                "subscription_expiry": None,
            },
        ),
        (
            [
                "--max-topic-bytes",
                "1MiB",
                "--max-total-bytes",
                "1.5GB",
                "--max-inflight-bytes",
                "65536",
                "--max-client-bytes",
                "2 gib",
                "--stall-timeout",
                "never",
                "--subscription-expiry",
                "90",
            ],
            {
                "max_topic_bytes": 1024 * 1024,
                "max_total_bytes": 1_500_000_000,
                "max_inflight_bytes": 65536,
                "max_client_bytes": 2 * 1024**3,
                "stall_timeout": None,
                "subscription_expiry": 90.0,
            },
        ),
        (
            ["--stall-timeout", "2.5", "--max-frame-size", "16MiB"],
            {
                "max_topic_bytes": 32 * 1024 * 1024,
                "max_total_bytes": 256 * 1024 * 1024,
                "max_inflight_bytes": 32 * 1024 * 1024,
                "max_client_bytes": 128 * 1024 * 1024,
                "stall_timeout": 2.5,
                "subscription_expiry": None,
                "max_frame_size": 16 * 1024 * 1024,
            },
        ),
    ],
)
def test_limit_arguments_reach_the_broker(monkeypatch, capsys, argv, expected):
    from dasf_geo.broker.server import Broker
    from dasf_geo.exceptions import BrokerError

    seen: list[Broker] = []

    async def start(self: Broker) -> None:
        seen.append(self)
        raise BrokerError("not started in this test")

    monkeypatch.setattr(Broker, "start", start)
    assert main(["broker", "--port", "0", *argv]) == 1
    assert "not started in this test" in capsys.readouterr().err
    (broker,) = seen
    frame_size = expected.pop("max_frame_size", 8 * 1024 * 1024)
    assert broker.max_frame_size == frame_size
    assert broker.limits == expected


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"max_total_bytes": 0}, "max_total_bytes must be a positive integer"),
        ({"max_topic_bytes": "1MiB"}, "max_topic_bytes must be a positive integer"),
        ({"max_client_bytes": True}, "max_client_bytes must be a positive integer"),
        ({"max_inflight_bytes": 1.5}, "max_inflight_bytes must be a positive"),
        ({"stall_timeout": 0}, "stall_timeout must be a number of seconds > 0"),
        ({"stall_timeout": "60"}, "stall_timeout must be a number of seconds > 0"),
    ],
)
def test_broker_refuses_bad_limits(limits, message):
    from dasf_geo.broker.server import Broker
    from dasf_geo.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match=message):
        Broker(port=0, **limits)


def test_non_loopback_without_auth_is_refused(capsys):
    assert main(["broker", "--host", "0.0.0.0", "--port", "0"]) == 1
    assert capsys.readouterr().err.strip() == (
        "dasf-geo broker: error: refusing to serve on the non-loopback address "
        "'0.0.0.0' without authentication: give an auth file (--auth FILE), bind "
        "127.0.0.1, or pass --insecure if the network is trusted"
    )


def test_bad_auth_file_is_refused(tmp_path, capsys):
    auth = tmp_path / "auth.yaml"
    auth.write_text("tokens: [{token: abc}]\n")
    assert main(["broker", "--port", "0", "--auth", str(auth)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"dasf-geo broker: error: 'token' of tokens[0] in {auth} must be a string "
        "of at least 8 characters"
    )


def test_port_taken_is_refused(capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert main(["broker", "--port", str(port)]) == 1
    assert f"port {port} on 127.0.0.1 is already in use" in capsys.readouterr().err


def test_broker_process_serves_and_stops_on_sigterm(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dasf_geo.cli.tool",
            "broker",
            "--port",
            "0",
            "--store",
            str(tmp_path / "b.sqlite"),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"listening on (ws://127\.0\.0\.1:\d+)", line)
        assert match, line
        url = match.group(1)
        base = "/ws/v2/{}/persistent/public/default/t"
        with (
            connect(url + base.format("consumer") + "/s") as consumer,
            connect(url + base.format("producer")) as producer,
        ):
            producer.send(json.dumps({"payload": base64.b64encode(b"x").decode()}))
            assert json.loads(producer.recv(timeout(5)))["result"] == "ok"
            msg = json.loads(consumer.recv(timeout(5)))
            assert base64.b64decode(msg["payload"]) == b"x"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout(20)) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_broker_process_says_where_it_listens_once(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "dasf_geo.cli.tool", "broker", "--port", "0"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.search(r"ws://127\.0\.0\.1:(\d+)", first)
        assert match, first
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=timeout(20))
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    port = match.group(1)
    url = f"ws://127.0.0.1:{port}"
    assert first + out == (
        f"dasf-geo broker listening on {url} (Pulsar layout: {url}/ws/v2/…, "
        f"websocket_url: {url}/ws, health: http://127.0.0.1:{port}/health)\n"
        "dasf-geo broker stopping\n"
    )
    assert "listening" not in err, err
