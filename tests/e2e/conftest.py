"""Fixtures for end-to-end tests: real broker and backend processes.

Every process is started on 127.0.0.1 with a free port, waited for by polling
(never a bare sleep), and killed and reaped at teardown; its output is kept
so that a failing test can show it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, free_port, timeout

MODULES = Path(__file__).parent / "modules"


@dataclass
class Proc:
    """A child process whose output goes to a temporary file."""

    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None
    log: Any = None

    def start(self) -> Proc:
        # closed (and so removed) when the Proc is garbage-collected
        self.log = tempfile.TemporaryFile()  # noqa: SIM115
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.popen = subprocess.Popen(
            self.args,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            env=env,
        )
        return self

    def output(self) -> str:
        """Everything the process printed so far."""
        if self.log is None:
            return ""
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, wait: float = 15.0) -> int | None:
        """Send ``sig`` and reap the process (kill it if it does not exit)."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout(wait))
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout(5))
        return self.popen.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def wait_until(check: Any, what: str, seconds: float, proc: Proc | None = None) -> Any:
    """Poll ``check()`` until it returns a true value; fail naming ``what``."""
    deadline = time.monotonic() + timeout(seconds)
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            pytest.fail(f"{what}: the process exited early:\n{proc.output()[-3000:]}")
        try:
            value = check()
        except Exception as exc:
            last = exc
        else:
            if value:
                return value
        time.sleep(0.05)
    output = proc.output()[-3000:] if proc is not None else ""
    pytest.fail(f"timed out waiting for {what} (last error: {last!r})\n{output}")


@dataclass
class BrokerProc:
    proc: Proc
    port: int
    store: Path | None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def health(self) -> bool:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.port}/health", timeout=2
        ) as response:
            return response.status == 200


def consumers_on(broker: BrokerProc, topic: str) -> int:
    """How many consumers the broker has on the subscriptions of ``topic``."""
    url = f"http://127.0.0.1:{broker.port}/topics"
    with urllib.request.urlopen(url, timeout=2) as response:
        listing = json.load(response)
    return sum(
        sub["consumers"]
        for entry in listing["topics"]
        if entry["name"] == topic
        for sub in entry["subscriptions"]
    )


def start_broker(port: int | None = None, store: Path | None = None) -> BrokerProc:
    """Start ``dasf-geo broker`` and wait until it answers ``/health``."""
    port = port or free_port()
    args = [sys.executable, "-m", "dasf_geo.cli.tool", "broker", "--port", str(port)]
    if store is not None:
        args += ["--store", str(store)]
    broker = BrokerProc(Proc(args).start(), port, store)
    try:
        wait_until(broker.health, f"the broker on port {port}", 20, broker.proc)
    except BaseException:
        broker.proc.stop()
        raise
    return broker


@pytest.fixture
def broker_process() -> Iterator[BrokerProc]:
    """A ``dasf-geo broker`` process on a free port."""
    broker = start_broker()
    try:
        yield broker
    finally:
        broker.proc.stop()


def pulsar_config(topic: str, broker_url: str, **kws: Any) -> Any:
    """A messaging config for ``topic`` on the broker at ``broker_url``."""
    from dasf_geo.transport.dynamic import messaging_config

    return messaging_config(topic, broker_url, **kws)


def start_backend(
    module: Path,
    topic: str,
    broker: BrokerProc,
    *extra: str,
    wait: bool = True,
    env: dict[str, str] | None = None,
    persistent: bool = False,
) -> Proc:
    """Run ``python MODULE -t TOPIC -H 127.0.0.1 -p PORT [extra] listen``."""
    proc = Proc(
        [
            sys.executable,
            str(module),
            "-t",
            topic,
            "-H",
            "127.0.0.1",
            "-p",
            str(broker.port),
            *extra,
            *(["--persistent", "persistent"] if persistent else []),
            "listen",
        ],
        env=dict(env or {}),
    ).start()
    if wait:
        try:
            wait_for_backend(topic, broker, proc, persistent=persistent)
        except BaseException:
            proc.stop()  # never leave a process behind a failed test
            raise
    return proc


def wait_for_backend(
    topic: str, broker: BrokerProc, proc: Proc | None = None, persistent: bool = False
) -> None:
    """Wait until a backend on ``topic`` answers a ping."""
    from dasf_geo.transport.client import Client

    config = pulsar_config(topic, broker.url, persistent=persistent)

    def ping() -> bool:
        with Client(config, timeout=2) as client:
            client.ping(timeout=2)
        return True

    wait_until(ping, f"a backend on topic {topic!r}", 30, proc)


@contextlib.contextmanager
def backend(
    module: Path, topic: str, broker: BrokerProc, *extra: str
) -> Iterator[Proc]:
    """A backend process for the duration of the block."""
    proc = start_backend(module, topic, broker, *extra)
    try:
        yield proc
    finally:
        proc.stop()


@contextlib.contextmanager
def dasf_geo_serve(
    module: Path, topic: str | None = None
) -> Iterator[tuple[str, Proc]]:
    """``dasf-geo serve MODULE`` with its embedded broker on a free port.

    Yields the broker URL and the process once it printed how to call the
    service; stops it at the end and checks that it exited cleanly.
    """
    port = free_port()
    args = [sys.executable, "-m", "dasf_geo.cli.tool", "serve", str(module)]
    args += ["--port", str(port)] + (["--topic", topic] if topic else [])
    proc = Proc(args).start()
    try:
        wait_until(
            lambda: "call it with" in proc.output(), f"serving {module.name}", 30, proc
        )
        yield f"ws://127.0.0.1:{port}", proc
    finally:
        assert proc.stop() == 0, proc.output()
