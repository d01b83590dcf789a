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
