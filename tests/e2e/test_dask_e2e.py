"""Backend functions computing on a dask.distributed cluster of real processes.

A scheduler and two workers run as separate processes; the backend reaches
them through ``DASF_GEO_DASK_SCHEDULER``. A dask-backed result comes back
chunk by chunk; a worker killed mid-computation is survived (dask runs its
tasks again) or, when the scheduler allows no failure, gives the caller a
clear error while the backend goes on serving.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import dasf_geo
from dasf_geo.exceptions import RemoteError
from dasf_geo.testing.processes import dask_cluster as shared_dask_cluster
from tests.conftest import timeout
from tests.e2e.conftest import (
    MODULES,
    Proc,
    start_backend,
    start_broker,
    wait_until,
)

pytest.importorskip("distributed")
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SERVICE = MODULES / "dask_service.py"


@contextlib.contextmanager
def dask_cluster(
    workers: int = 2, **scheduler_env: str
) -> Iterator[tuple[str, list[Proc]]]:
    """A ``dask scheduler`` and ``workers`` ``dask worker`` processes.

    The workers run without a nanny: a kill is the worker's death.
    """
    with shared_dask_cluster(
        workers,
        nanny=False,
        scheduler_env=scheduler_env,
        seconds=timeout(60),
        factory=Proc,
    ) as (address, procs):
        yield address, procs


@contextlib.contextmanager
def dask_backend(address: str, topic: str) -> Iterator[str]:
    broker = start_broker()
    backend = start_backend(
        SERVICE, topic, broker, env={"DASF_GEO_DASK_SCHEDULER": address}
    )
    try:
        yield broker.url
    finally:
        backend.stop()
        broker.proc.stop()


def expected(ny: int, nx: int) -> np.ndarray:
    return 2.0 * np.arange(ny * nx, dtype="float64").reshape(ny, nx)


def kill_when_busy(address: str, workers: list[Proc]) -> None:
    """Kill worker ``w0`` while it computes a task of the call."""
    from distributed import Client

    with Client(address, timeout=timeout(30)) as probe:

        def busy() -> bool:
            names = {
                addr: info["name"]
                for addr, info in probe.scheduler_info()["workers"].items()
            }
            return any(
                names.get(addr) == "w0" and keys
                for addr, keys in probe.processing().items()
            )

        wait_until(busy, "worker w0 computing", 60)
        workers[0].kill()


def service(topic: str, url: str):
    return dasf_geo.connect(topic, url, timeout=timeout(120), progress=False)


def slow_call(topic: str, url: str):
    """Start a call of about 4 s of work (20 chunks of 0.4 s on two workers)."""

    def run():
        with service(topic, url) as svc:
            return svc.doubled(ny=40, nx=10, rows_per_chunk=2, delay=0.4)

    pool = ThreadPoolExecutor(1)
    future = pool.submit(run)
    pool.shutdown(wait=False)
    return future


def test_a_dask_backed_result_is_computed_on_the_cluster_and_streamed_back():
    with (
        dask_cluster(2) as (address, _),
        dask_backend(address, "dask-e2e") as url,
        service("dask-e2e", url) as svc,
    ):
        ds = svc.doubled(ny=64, nx=50, rows_per_chunk=8)
        np.testing.assert_array_equal(ds["v"].values, expected(64, 50))
        assert ds["v"].attrs["units"] == "K"
        n = 1_000_000
        assert svc.total(n=n, chunk=100_000) == n * (n - 1) / 2


def test_a_worker_killed_mid_computation_is_survived():
    with (
        dask_cluster(2) as (address, workers),
        dask_backend(address, "dask-kill") as url,
        service("dask-kill", url) as svc,
    ):
        backend_pid = svc.where()
        call = slow_call("dask-kill", url)
        kill_when_busy(address, workers)  # mid-computation: dask moves its tasks
        assert not call.done()
        ds = call.result(timeout(120))
        np.testing.assert_array_equal(ds["v"].values, expected(40, 10))
        assert svc.where() == backend_pid


def test_a_lost_worker_without_retries_is_a_clear_error_and_the_backend_serves_on():
    with (
        dask_cluster(2, DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="0") as (
            address,
            workers,
        ),
        dask_backend(address, "dask-fail") as url,
        service("dask-fail", url) as svc,
    ):
        backend_pid = svc.where()
        call = slow_call("dask-fail", url)
        kill_when_busy(address, workers)
        with pytest.raises(RemoteError) as info:
            call.result(timeout(120))
        text = str(info.value)
        assert (
            f"the dask cluster at {address} lost the workers computing variable "
            "'v' (chunk (" in text
        ), text
        assert "call again" in text, text
        assert svc.where() == backend_pid
        # the remaining worker still computes
        ds = svc.doubled(ny=8, nx=4, rows_per_chunk=4)
        np.testing.assert_array_equal(ds["v"].values, expected(8, 4))
