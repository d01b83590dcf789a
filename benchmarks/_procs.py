"""Start and stop the processes a benchmark measures (broker, backends, callers)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
PYTHON = sys.executable


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process: this checkout's ``dasf_geo`` first.

    The repository root comes first on ``PYTHONPATH``, so that the broker,
    backends and callers import the ``dasf_geo`` next to this script even
    where another checkout is installed (e.g. editable) in the environment.
    """
    path = os.environ.get("PYTHONPATH", "")
    return {
        **os.environ,
        "PYTHONPATH": str(REPO) + (os.pathsep + path if path else ""),
        "PYTHONUNBUFFERED": "1",
        **(extra or {}),
    }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """A child process with its output in a temporary file."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None):
        self.log = tempfile.TemporaryFile()  # noqa: SIM115  # closed in stop()
        self.popen = subprocess.Popen(
            list(args),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=child_env(env),
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self.log.close()


def wait_until(check: Callable[[], Any], what: str, seconds: float = 60) -> None:
    """Poll ``check`` until it is true; raise naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}: {last!r}")


def start_broker(port: int | None = None) -> tuple[Process, str]:
    """Start ``dasf-geo broker``; return the process and its ws:// URL."""
    port = port or free_port()
    proc = Process([PYTHON, "-m", "dasf_geo.cli.tool", "broker", "--port", str(port)])

    def healthy() -> bool:
        url = f"http://127.0.0.1:{port}/health"
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200

    wait_until(healthy, f"the broker on port {port}")
    return proc, f"ws://127.0.0.1:{port}"


def start_backend(
    url: str, topic: str, *extra: str, script: str = "bench_service.py"
) -> Process:
    """Serve ``benchmarks/<script>`` on ``topic``; wait until it answers."""
    from dasf_geo.transport.client import Client
    from dasf_geo.transport.dynamic import messaging_config

    host_port = url.removeprefix("ws://")
    host, port = host_port.rsplit(":", 1)
    proc = Process(
        [
            PYTHON,
            str(BENCH / script),
            "-t",
            topic,
            "-H",
            host,
            "-p",
            port,
            *extra,
            "listen",
        ]
    )

    def ping() -> bool:
        with Client(messaging_config(topic, url), timeout=2) as client:
            client.ping(timeout=2)
        return True

    wait_until(ping, f"the dasf_geo backend on {topic!r}")
    return proc


def run_callers(args_list: list[list[str]]) -> list[dict[str, Any]]:
    """Run caller processes at once; return the JSON each printed last."""
    procs = [
        subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO,
            env=child_env(),
        )
        for args in args_list
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"caller failed: {err.decode()[-2000:]}")
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return results


def rss_peak_kib(pid: int) -> int:
    """The peak resident set size (VmHWM) of a running process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for pid {pid}")


def rss_kib(pid: int) -> int:
    """The current resident set size (VmRSS) of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")
