"""Computing on a dask.distributed cluster from a backend function.

A backend function that works on large, chunked data gets a
``distributed.Client`` with :func:`client`::

    import dasf_geo.dask

    def anomaly(ds: xr.Dataset) -> xr.Dataset:
        dasf_geo.dask.client()             # connect (once per process)
        return ds - ds.mean("time")        # lazy: nothing computed yet

Where the cluster is comes from ``DASF_GEO_DASK_SCHEDULER``:

- ``tcp://HOST:8786`` (or ``tls://…``): a running ``dask scheduler``;
- ``local``: a ``LocalCluster`` of ``DASF_GEO_DASK_WORKERS`` (default 2)
  worker processes, started with the service on first use and stopped
  with it.

A dask-backed Dataset or DataArray that a function returns is then written
into its reply **chunk by chunk**: each chunk is computed on the cluster
when the NetCDF writer reaches it and written as soon as it arrives, so
the backend holds a few chunks at a time, never the whole result. When no
scheduler is configured (and :func:`client` was not called), dask-backed
results are computed in the backend process, as before.

Faults: a worker that dies is replaced by dask (its tasks run again on
the others, up to the scheduler's ``allowed-failures``); when dask gives
up, or the scheduler goes away, or a chunk takes longer than
``DASF_GEO_DASK_TIMEOUT`` seconds (default 600), the call fails with
:class:`ClusterComputeError`, whose message names the scheduler and the
variable, and the backend goes on serving.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from concurrent.futures import CancelledError
from typing import Any

from dasf_geo.exceptions import ConfigurationError, DasfGeoError

__all__ = [
    "ENV_SCHEDULER",
    "ENV_TIMEOUT",
    "ENV_WORKERS",
    "ClusterComputeError",
    "client",
    "close",
    "configured",
    "on_cluster",
]

#: where the scheduler is: ``tcp://HOST:PORT`` or ``local``
ENV_SCHEDULER = "DASF_GEO_DASK_SCHEDULER"
#: worker processes of a ``local`` cluster
ENV_WORKERS = "DASF_GEO_DASK_WORKERS"
#: seconds one chunk may take on the cluster
ENV_TIMEOUT = "DASF_GEO_DASK_TIMEOUT"

_lock = threading.Lock()
_client: Any = None
_address: str | None = None


class ClusterComputeError(DasfGeoError):
    """The dask cluster could not compute a result (workers lost, no scheduler)."""


def _timeout() -> float:
    raw = os.environ.get(ENV_TIMEOUT, "600")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigurationError(
            f"{ENV_TIMEOUT} must be a number of seconds > 0, got {raw[:40]!r}"
        )
    return value


def configured() -> bool:
    """True if a client exists or ``DASF_GEO_DASK_SCHEDULER`` is set."""
    return _client is not None or bool(os.environ.get(ENV_SCHEDULER, "").strip())


def _check_address(address: str) -> str:
    if address == "local":
        return address
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(address)
        parts.port  # noqa: B018 - raises for a bad port
    except ValueError as exc:
        raise ConfigurationError(
            f"invalid dask scheduler address {address[:100]!r}: {exc}"
        ) from None
    if parts.scheme not in ("tcp", "tls", "inproc", "ucx") or not (
        parts.hostname or parts.scheme == "inproc"
    ):
        raise ConfigurationError(
            f"invalid dask scheduler address {address[:100]!r}: use "
            f"tcp://HOST:8786, or 'local' for a LocalCluster ({ENV_SCHEDULER})"
        )
    return address


def client(address: str | None = None, *, timeout: float = 30.0) -> Any:
    """The process's ``distributed.Client``, connected on first use.

    Args:
        address: the scheduler (``tcp://HOST:PORT``) or ``local``; default
            ``$DASF_GEO_DASK_SCHEDULER``. A different address than the
            current client's replaces it.
        timeout: seconds to wait for the scheduler.

    Returns:
        A client that is *not* dask's default scheduler: dask-backed results
        are computed on it chunk by chunk when dasf_geo writes them
        (:func:`on_cluster`); ``client.compute``/``submit`` work as usual.

    Raises:
        ConfigurationError: no address given or configured, or a bad one.
        ClusterComputeError: the scheduler does not answer at the address.
    """
    global _client, _address
    wanted = address or os.environ.get(ENV_SCHEDULER, "").strip()
    with _lock:
        if (
            _client is not None
            and (not wanted or wanted == _address)
            and _client.status in ("running", "connecting")
        ):
            return _client
        if not wanted:
            raise ConfigurationError(
                f"no dask scheduler: set {ENV_SCHEDULER}=tcp://HOST:8786 (or "
                f"{ENV_SCHEDULER}=local for a LocalCluster started with the "
                "service), or pass the address to dasf_geo.dask.client()"
            )
        wanted = _check_address(wanted)
        try:
            from distributed import Client, LocalCluster
        except ImportError:  # pragma: no cover - part of the [dask] extra
            raise ConfigurationError(
                "dask.distributed is not installed: pip install 'dasf_geo[dask]'"
            ) from None
        _close_locked()
        try:
            if wanted == "local":
                workers = int(os.environ.get(ENV_WORKERS, "2"))
                cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                )
                new = Client(cluster, set_as_default=False)
            else:
                new = Client(wanted, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ClusterComputeError(
                f"cannot reach the dask scheduler at {wanted}: {exc}; start it "
                f"(dask scheduler) or fix {ENV_SCHEDULER}"
            ) from None
        _client, _address = new, wanted
        return new


def _close_locked() -> None:
    global _client, _address
    old, _client, _address = _client, None, None
    if old is not None:
        cluster = getattr(old, "cluster", None)
        try:
            old.close()
            if cluster is not None:
                cluster.close()
        except Exception:  # closing is best effort
            pass


def close() -> None:
    """Close the client (and a ``local`` cluster); called at exit."""
    with _lock:
        _close_locked()


atexit.register(close)


def on_cluster(ds: Any) -> Any:
    """``ds`` with each dask-backed chunk computed on the cluster when read.

    Returns ``ds`` itself when it has no dask-backed variable or when no
    cluster is configured. Otherwise each dask variable is replaced by a
    dask array of the same chunks whose every chunk, when the (local,
    threaded) scheduler of the writer asks for it, is computed on the
    cluster and fetched: the writer stores chunks as they arrive and the
    backend holds only the chunks being written.

    Raises:
        ConfigurationError, ClusterComputeError: see :func:`client`.
    """
    variables = getattr(ds, "variables", {})
    lazy = [name for name, var in variables.items() if var.chunks is not None]
    if not lazy or not configured():
        return ds
    remote = client()
    address = _address or "?"
    limit = _timeout()
    replaced = {
        name: variables[name].copy(
            data=_fetching(variables[name].data, remote, address, str(name), limit)
        )
        for name in lazy
    }
    return ds.assign(
        {n: v for n, v in replaced.items() if n in ds.data_vars}
    ).assign_coords({n: v for n, v in replaced.items() if n not in ds.data_vars})


class _Prefetcher:
    """Computes the chunks of one array on the cluster, a window ahead.

    The writer asks for chunks one by one, mostly in order; the chunks after
    the one asked for are already being computed (up to ``window`` of them,
    four times the cluster's threads), so that every worker is busy while the
    backend holds only the chunks it is writing.
    """

    def __init__(
        self, array: Any, remote: Any, address: str, name: str, limit: float
    ) -> None:
        import numpy as np

        self.array = array
        self.remote = remote
        self.address = address
        self.name = name
        self.limit = limit
        self.order = list(np.ndindex(*array.numblocks))
        self.position = {index: i for i, index in enumerate(self.order)}
        self.futures: dict[tuple[int, ...], Any] = {}
        #: position in ``order`` of the first chunk not yet submitted
        self.next = 0
        self.lock = threading.Lock()
        try:
            threads = sum(remote.nthreads().values())
        except Exception:  # the scheduler is gone: the fetch will say so
            threads = 1
        self.window = max(4, min(4 * threads, 64))

    def _submit_batch(self, start: int) -> None:
        # one graph per batch: submitting costs more than computing a chunk
        room = max(1, self.window - len(self.futures))
        batch = [b for b in self.order[start : start + room] if b not in self.futures]
        self.next = max(self.next, start + room)
        if batch:
            blocks = [self.array.blocks[b] for b in batch]
            futures = self.remote.compute(blocks)
            self.futures.update(zip(batch, futures, strict=True))

    def _submit_from(self, index: tuple[int, ...]) -> Any:
        with self.lock:
            future = self.futures.pop(index, None)
            if future is None and self.position[index] >= self.next:
                self._submit_batch(self.position[index])
                future = self.futures.pop(index)
            elif future is None:  # asked for again: on its own
                future = self.remote.compute(self.array.blocks[index])
            if len(self.futures) <= self.window // 2 and self.next < len(self.order):
                self._submit_batch(self.next)
            return future

    def cancel(self) -> None:
        with self.lock:
            futures, self.futures = self.futures, {}
        for future in futures.values():
            future.release()

    def fetch(self, index: tuple[int, ...]) -> Any:
        from distributed import KilledWorker

        name, address, limit = self.name, self.address, self.limit
        future = None
        try:
            future = self._submit_from(index)
            return future.result(timeout=limit)
        except KilledWorker as exc:
            self.cancel()
            raise ClusterComputeError(
                f"the dask cluster at {address} lost the workers computing "
                f"variable {name!r} (chunk {index}): {exc}; call again"
            ) from None
        except TimeoutError:
            self.cancel()
            raise ClusterComputeError(
                f"the dask cluster at {address} did not compute chunk {index} of "
                f"variable {name!r} within {limit:g} s ({ENV_TIMEOUT})"
            ) from None
        except (OSError, CancelledError, asyncio.CancelledError) as exc:
            self.cancel()
            raise ClusterComputeError(
                f"lost the dask scheduler at {address} while computing variable "
                f"{name!r}: {exc}"
            ) from None
        except Exception as exc:  # the function's own error, raised on a worker
            self.cancel()
            raise ClusterComputeError(
                f"computing chunk {index} of variable {name!r} on the dask cluster "
                f"at {address} failed: {type(exc).__name__}: {exc}"
            ) from None
        finally:
            if future is not None:
                future.release()


def _fetching(array: Any, remote: Any, address: str, name: str, limit: float) -> Any:
    """A dask array whose chunks are ``array``'s, computed by ``remote``."""
    import dask.array as da
    from dask.base import tokenize

    key = f"dasf-geo-fetch-{tokenize(array)}"
    prefetcher = _Prefetcher(array, remote, address, name, limit)
    graph = {(key, *index): (prefetcher.fetch, index) for index in prefetcher.order}
    return da.Array(graph, key, chunks=array.chunks, dtype=array.dtype)
