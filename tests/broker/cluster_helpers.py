"""Helpers for the cluster tests: the local NATS, fronts, a private nats-server."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from dasf_geo.testing.processes import remove_cluster
from tests.conftest import free_port, timeout

NATS_URL = "nats://127.0.0.1:4222"


def nats_answers(host: str = "127.0.0.1", port: int = 4222) -> bool:
    """True if something speaks the NATS protocol at host:port."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.settimeout(1.0)
            return sock.recv(5) == b"INFO "
    except OSError:
        return False


requires_nats = pytest.mark.skipif(
    not nats_answers(),
    reason="needs NATS with JetStream at 127.0.0.1:4222 (nats-server -js)",
)
requires_nats_server_binary = pytest.mark.skipif(
    shutil.which("nats-server") is None,
    reason="needs the nats-server program to start a private NATS",
)


def cluster_name() -> str:
    """A cluster name of its own for one test (streams do not mix)."""
    return "t" + uuid.uuid4().hex[:12]


async def delete_cluster(name: str, url: str = NATS_URL) -> None:
    """Remove a test cluster's stream and key-value buckets from NATS."""
    await remove_cluster(url, name)


@contextlib.asynccontextmanager
async def fronts(count: int = 2, **kwargs: Any) -> AsyncIterator[list[Any]]:
    """``count`` started cluster fronts in this loop, sharing one cluster."""
    from dasf_geo.broker.cluster import ClusterBroker

    name = kwargs.pop("cluster_name", None) or cluster_name()
    url = kwargs.pop("cluster", NATS_URL)
    started = []
    try:
        for _ in range(count):
            front = ClusterBroker(port=0, cluster=url, cluster_name=name, **kwargs)
            await front.start()
            started.append(front)
        yield started
    finally:
        for front in started:
            await front.stop()
        if url == NATS_URL:
            await delete_cluster(name)


@contextlib.contextmanager
def private_nats(
    port: int | None = None, store: str | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A nats-server with JetStream of its own on a free port (killed after).

    ``store`` reuses a JetStream directory (a restart); otherwise a new one
    is made and removed at the end.
    """
    port = port or free_port()
    owned = store is None
    store = store or tempfile.mkdtemp(prefix="dasf-geo-nats-")
    proc = subprocess.Popen(
        ["nats-server", "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", store],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout(10)
        while not nats_answers(port=port):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"nats-server did not start on port {port}")
            time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}", proc
    finally:
        proc.kill()
        proc.wait()
        if owned:
            shutil.rmtree(store, ignore_errors=True)
