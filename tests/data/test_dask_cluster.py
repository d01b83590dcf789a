"""dasf_geo.dask: the client helper and its errors (no cluster needed)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import dasf_geo.dask
from dasf_geo.dask import ClusterComputeError, client, on_cluster
from dasf_geo.exceptions import ConfigurationError
from tests.conftest import free_port

pytest.importorskip("distributed")


@pytest.fixture(autouse=True)
def no_client(monkeypatch):
    monkeypatch.delenv(dasf_geo.dask.ENV_SCHEDULER, raising=False)
    dasf_geo.dask.close()
    yield
    dasf_geo.dask.close()


def test_no_scheduler_configured_says_how_to_configure_one():
    with pytest.raises(ConfigurationError) as info:
        client()
    assert str(info.value) == (
        "no dask scheduler: set DASF_GEO_DASK_SCHEDULER=tcp://HOST:8786 (or "
        "DASF_GEO_DASK_SCHEDULER=local for a LocalCluster started with the "
        "service), or pass the address to dasf_geo.dask.client()"
    )


@pytest.mark.parametrize(
    ("address", "text"),
    [
        ("http://x:1", "invalid dask scheduler address 'http://x:1': use tcp://HOST"),
        ("tcp://", "invalid dask scheduler address 'tcp://': use tcp://HOST"),
        ("tcp://h:99999", "invalid dask scheduler address 'tcp://h:99999': Port"),
        ("8786", "invalid dask scheduler address '8786': use"),
    ],
)
def test_bad_addresses_are_refused(address, text):
    with pytest.raises(ConfigurationError) as info:
        client(address)
    assert str(info.value).startswith(text)


def test_a_scheduler_that_does_not_answer_is_named():
    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(ClusterComputeError) as info:
        client(address, timeout=1)
    assert str(info.value).startswith(f"cannot reach the dask scheduler at {address}: ")
    assert str(info.value).endswith(
        "start it (dask scheduler) or fix DASF_GEO_DASK_SCHEDULER"
    )


def test_without_a_cluster_results_are_left_to_the_backend():
    ds = xr.Dataset({"v": ("x", da.arange(10, chunks=5))})
    assert on_cluster(ds) is ds
    eager = xr.Dataset({"v": ("x", np.arange(3))})
    assert on_cluster(eager) is eager


def test_a_bad_timeout_is_refused(monkeypatch):
    monkeypatch.setenv(dasf_geo.dask.ENV_TIMEOUT, "soon")
    with pytest.raises(ConfigurationError) as info:
        dasf_geo.dask._timeout()
    assert str(info.value) == (
        "DASF_GEO_DASK_TIMEOUT must be a number of seconds > 0, got 'soon'"
    )


def test_chunks_are_computed_by_an_in_process_cluster_and_errors_are_named():
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        dasf_geo.dask.client(cluster.scheduler_address)
        data = da.arange(100, chunks=10, dtype="float64") * 3
        ds = xr.Dataset({"v": ("x", data)}, coords={"x": np.arange(100)})
        routed = on_cluster(ds)
        assert routed is not ds
        np.testing.assert_array_equal(routed["v"].values, np.arange(100) * 3.0)

        def fail(block):
            raise ValueError("bad block")

        broken = xr.Dataset({"w": ("x", data.map_blocks(fail, dtype="float64"))})
        with pytest.raises(ClusterComputeError) as info:
            on_cluster(broken)["w"].values  # noqa: B018
        assert str(info.value).startswith("computing chunk (")
        assert str(info.value).endswith(
            f"of variable 'w' on the dask cluster at {cluster.scheduler_address} "
            "failed: ValueError: bad block"
        )
