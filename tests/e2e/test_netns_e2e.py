"""Three hosts in network namespaces: NATS, two broker fronts, backends, callers.

- host 1: NATS (JetStream), broker front A, backend 1;
- host 2: broker front B, backend 2;
- host 3: the callers, through front A, on a persistent topic.

The hosts are joined by veth pairs on a bridge. While the callers run,
host 2 is cut off (its link goes down): the requests front B had taken for
backend 2 are redelivered by JetStream to backend 1 after ``--ack-wait``,
and every call is answered exactly once. Needs root (as CI runs) and the
``nats-server`` program; skipped with the reason otherwise.
"""

from __future__ import annotations

import collections
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, timeout
from tests.e2e.conftest import MODULES, Proc, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.netns]

SERVICE = MODULES / "netns_service.py"
CALLER = MODULES / "netns_caller.py"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _netns_usable() -> str | None:
    """Why the test cannot run here, or None."""
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    if shutil.which("ip") is None:
        return "needs the ip program (iproute2)"
    if shutil.which("nats-server") is None:
        return "needs the nats-server program to run NATS on a namespaced host"
    name = f"dgchk{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", name)
        _ip("netns", "del", name)
    except (subprocess.CalledProcessError, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        return f"'ip netns' does not work here: {detail.decode().strip() or exc}"
    return None


class Hosts:
    """Namespaces ``<id>h1..h3`` on a bridge, 10.231.X.1..3, the root at .254."""

    def __init__(self) -> None:
        self.id = secrets.token_hex(2)
        self.subnet = f"10.231.{int(self.id, 16) % 250}"
        self.bridge = f"dgbr{self.id}"
        self.names = [f"dg{self.id}h{i}" for i in (1, 2, 3)]
        self.procs: list[Proc] = []

    def address(self, host: int) -> str:
        return f"{self.subnet}.{host}"

    def link(self, host: int) -> str:
        return f"dg{self.id}e{host}"

    def up(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.subnet}.254/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i, ns in enumerate(self.names, start=1):
            _ip("netns", "add", ns)
            inside, outside = self.link(i), f"dg{self.id}b{i}"
            _ip("link", "add", inside, "type", "veth", "peer", "name", outside)
            _ip("link", "set", inside, "netns", ns)
            _ip("link", "set", outside, "master", self.bridge)
            _ip("link", "set", outside, "up")
            _ip("-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", inside)
            _ip("-n", ns, "link", "set", inside, "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def run(
        self, host: int, args: list[str], env: dict[str, str] | None = None
    ) -> Proc:
        proc = Proc(
            ["ip", "netns", "exec", self.names[host - 1], *args], env=env or {}
        ).start()
        self.procs.append(proc)
        return proc

    def cut(self, host: int) -> None:
        _ip("-n", self.names[host - 1], "link", "set", self.link(host), "down")

    def down(self) -> None:
        for proc in reversed(self.procs):
            proc.kill()
        for ns in self.names:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        subprocess.run(
            ["ip", "link", "del", self.bridge], capture_output=True, timeout=30
        )


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    reason = _netns_usable()
    if reason is not None:
        pytest.skip(reason)
    net = Hosts()
    try:
        net.up()
        yield net
    finally:
        net.down()


def _health(address: str, port: int) -> bool:
    import urllib.request

    with urllib.request.urlopen(f"http://{address}:{port}/health", timeout=2) as r:
        return r.status == 200


def _nats(address: str) -> bool:
    import socket

    with socket.create_connection((address, 4222), timeout=1) as sock:
        return sock.recv(5) == b"INFO "


def test_a_host_cut_off_mid_run_loses_no_persistent_call(hosts, tmp_path):
    record = tmp_path / "record.txt"
    store = tempfile.mkdtemp(prefix="dasf-geo-netns-nats-")
    try:
        h1, h2 = hosts.address(1), hosts.address(2)
        nats_proc = hosts.run(
            1, ["nats-server", "-a", h1, "-p", "4222", "-js", "-sd", store]
        )
        wait_until(lambda: _nats(h1), "NATS on host 1", 20, nats_proc)
        python = [sys.executable, "-m", "dasf_geo.cli.tool", "broker"]
        cluster = ["--cluster", f"nats://{h1}:4222", "--ack-wait", "3", "--insecure"]
        front_a = hosts.run(1, [*python, "--host", h1, "--port", "8080", *cluster])
        front_b = hosts.run(2, [*python, "--host", h2, "--port", "8080", *cluster])
        wait_until(lambda: _health(h1, 8080), "front A on host 1", 30, front_a)
        wait_until(lambda: _health(h2, 8080), "front B on host 2", 30, front_b)
        env = {"E2E_RECORD": str(record), "PYTHONPATH": str(REPO_ROOT)}
        backend = [sys.executable, str(SERVICE), "-t", "netns", "-p", "8080"]
        backend += ["--persistent", "persistent"]
        for host, address in ((1, h1), (2, h2)):
            hosts.run(host, [*backend, "-H", address, "listen"], env=env)
        # both backends consume (each front sees its own consumer)
        for address in (h1, h2):
            wait_until(
                lambda a=address: _consumers(a) == 1, f"a backend on {address}", 60
            )
        callers = hosts.run(
            3,
            [sys.executable, str(CALLER), f"ws://{h1}:8080", "netns", "120", "8"],
            env={"PYTHONPATH": str(REPO_ROOT)},
        )
        # cut host 2 off once both backends have answered some calls
        wait_until(
            lambda: (
                len(set(_executions(record).values())) >= 1 and len(_pids(record)) == 2
            ),
            "both backends at work",
            60,
            callers,
        )
        hosts.cut(2)
        cut_at = time.monotonic()
        assert callers.popen is not None
        callers.popen.wait(timeout(180))
        finished = time.monotonic() - cut_at
        result = json.loads(callers.output().strip().splitlines()[-1])
    finally:
        shutil.rmtree(store, ignore_errors=True)
    tokens = {f"n{i}" for i in range(120)}
    assert result["failures"] == {}, result["failures"]
    assert set(result["answers"]) == tokens  # each call answered, once
    executed = _executions(record)
    assert set(executed) == tokens
    twice = sum(1 for n in executed.values() if n > 1)
    print(
        f"120 persistent calls, host 2 cut off mid-run: all answered once; "
        f"{twice} executed twice (redelivered after the cut); "
        f"{result['seconds']:.1f} s in all, {finished:.1f} s after the cut, "
        f"slowest call {result['max_latency']:.1f} s"
    )


def _consumers(address: str) -> int:
    import urllib.request

    with urllib.request.urlopen(f"http://{address}:8080/topics", timeout=2) as r:
        listing = json.load(r)
    return sum(
        sub["consumers"]
        for entry in listing["topics"]
        if entry["name"] == "netns"
        for sub in entry["subscriptions"]
    )


def _lines(record: Path) -> list[list[str]]:
    if not record.exists():
        return []
    return [line.split() for line in record.read_text().splitlines() if line]


def _executions(record: Path) -> dict[str, int]:
    return dict(collections.Counter(parts[0] for parts in _lines(record)))


def _pids(record: Path) -> set[str]:
    return {parts[1] for parts in _lines(record)}
