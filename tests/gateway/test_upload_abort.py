"""An HTTP client that hangs up mid-upload: the backend frees the request at once.

The gateway streams a raw NetCDF body into DASF request fragments while it
arrives. When the client goes away half-way, the gateway ends the
fragments with the ``dasfGeoAbort`` marker (docs/protocol.md, "Abandoned
uploads"), so the backend drops its partial request and temporary file
within a second or two instead of after its fragment timeout (set to 10
minutes here, so that only the marker can free it). The backend runs in
this process (a Listener on a thread of its own) so that its partial
state can be read; the gateway is a real uvicorn server.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import xarray as xr

from tests.conftest import timeout
from tests.gateway.conftest import settings
from tests.transport.conftest import Config

pytestmark = pytest.mark.timeout(120)

TOPIC = "gw_upload_abort"


def total(ds: xr.Dataset) -> float:
    """The sum of variable ``t``.

    Args:
        ds: any Dataset with a variable ``t``.
    """
    return float(ds["t"].sum())


class ThreadBackend:
    """A ModuleHandler Listener on an event loop of its own thread."""

    def __init__(self, broker: Any) -> None:
        from dasf_geo import BackendModule
        from dasf_geo.transport.backend import Listener, ModuleHandler

        config = Config(
            base=broker.url,
            topic=TOPIC,
            spool_threshold=1000,  # the partial request goes into a file
            fragment_timeout=600.0,
        )
        module = BackendModule.create_model(
            members=[total],
            messaging_config=dict(topic=TOPIC, host="127.0.0.1", port=broker.port),
        )
        self.listener = Listener(ModuleHandler(module), config)
        self.loop = asyncio.new_event_loop()
        self.stop_event = asyncio.Event()
        self.thread = threading.Thread(
            target=self.loop.run_until_complete,
            args=(self.listener.run(self.stop_event),),
            daemon=True,
        )

    def start(self) -> ThreadBackend:
        self.thread.start()
        deadline = time.monotonic() + timeout(30)
        while not self.listener.connected.is_set():
            assert time.monotonic() < deadline, "the backend did not connect"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout(30))

    def partial_files(self) -> list[str]:
        return [
            t.buffer.file.name
            for t in list(self.listener._reassembler._transfers.values())
            if t.buffer is not None and hasattr(t.buffer, "file")
        ]

    def holds_nothing(self, paths: list[str]) -> bool:
        listener = self.listener
        return (
            not listener._incoming
            and listener._reassembler.pending == 0
            and listener.incomplete_bytes == 0
            and not any(os.path.exists(p) for p in paths)
        )


@pytest.fixture
def backend(broker: Any) -> Iterator[ThreadBackend]:
    b = ThreadBackend(broker).start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def live(broker: Any, backend: ThreadBackend) -> Iterator[Any]:
    from dasf_geo.gateway import GatewayServer

    server = GatewayServer(settings(broker), "127.0.0.1", 0).start()
    try:
        yield server
    finally:
        server.stop()


def poll(check: Any, what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds:g} s: {what}")
        time.sleep(0.02)


def test_a_client_that_hangs_up_mid_upload_frees_the_backend_at_once(
    live: Any, backend: ThreadBackend
) -> None:
    ds = xr.Dataset({"t": ("x", np.arange(500_000, dtype="float64"))})
    data = bytes(ds.to_netcdf())
    url = f"{live.url}/services/{TOPIC}/total"
    # the gateway knows the backend takes raw parts (so it streams uploads)
    assert httpx.get(f"{live.url}/services/{TOPIC}").status_code == 200
    paths: list[str] = []

    def holding() -> bool:
        paths[:] = backend.partial_files() or paths
        return bool(paths) and backend.listener._reassembler.pending_bytes() > 0

    with socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.sendall(
            (
                f"POST /services/{TOPIC}/total HTTP/1.1\r\nHost: x\r\n"
                "Content-Type: application/x-netcdf\r\n"
                f"Content-Length: {len(data)}\r\n\r\n"
            ).encode()
        )
        sock.sendall(data[: len(data) // 2])  # 50 %, then hang up
        poll(holding, "the backend holds the first half", timeout(30))
    poll(lambda: backend.holds_nothing(paths), "the partial request freed", 3)
    # the backend keeps serving: the whole upload succeeds
    response = httpx.post(
        url,
        content=data,
        headers={"Content-Type": "application/x-netcdf"},
        timeout=timeout(60),
    )
    assert response.status_code == 200, response.text
    assert response.json() == float(ds["t"].sum())
    assert backend.holds_nothing(paths)
