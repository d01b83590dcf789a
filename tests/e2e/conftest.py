"""Fixtures for end-to-end tests: real broker and backend processes.

Every process is started on 127.0.0.1 with a free port, waited for by polling
(never a bare sleep), and killed and reaped at teardown; its output is kept
so that a failing test can show it.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dasf_geo.testing.processes import Process, ProcessError, broker_consumers
from dasf_geo.testing.processes import start_broker as start_broker_process
from dasf_geo.testing.processes import wait_until as shared_wait_until
from tests.conftest import REPO_ROOT, free_port, timeout

MODULES = Path(__file__).parent / "modules"


class Proc(Process):
    """A child process whose output goes to a log file, started by :meth:`start`.

    The shared :class:`dasf_geo.testing.processes.Process`, run from the
    checkout, with its waits in timeout units (``tests.conftest.timeout``)
    and its old spelling: ``Proc(args, env).start()``, ``alive()``.
    """

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        super().__init__(args, env=env, cwd=REPO_ROOT, start=False)

    def alive(self) -> bool:
        """Whether the process is running."""
        return self.running

    def stop(self, sig: int = signal.SIGTERM, wait: float = 15.0) -> int | None:
        """Send ``sig`` and reap the process (kill it if it does not exit)."""
        return super().stop(sig, timeout(wait))


def wait_until(check: Any, what: str, seconds: float, proc: Proc | None = None) -> Any:
    """Poll ``check()`` until it returns a true value; fail naming ``what``.

    ``seconds`` is in timeout units; the test fails with the process's
    output when it exits early or time runs out.
    """
    try:
        return shared_wait_until(check, what, timeout(seconds), proc)
    except ProcessError as exc:
        pytest.fail(str(exc))


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
    return broker_consumers(broker.port, topic)


def start_broker(
    port: int | None = None, store: Path | None = None, extra: tuple[str, ...] = ()
) -> BrokerProc:
    """Start ``dasf-geo broker`` and wait until it answers ``/health``."""
    try:
        proc, port = start_broker_process(
            port, *extra, store=store, seconds=timeout(20), factory=Proc
        )
    except ProcessError as exc:
        pytest.fail(str(exc))
    assert isinstance(proc, Proc)
    return BrokerProc(proc, port, store)


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
