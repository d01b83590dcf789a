"""Child processes for tests, benchmarks and interop checks, one way.

Used by ``tests/e2e``, ``tests/interop/peers.py`` and ``benchmarks/_procs.py``
(and the tests that borrow their fixtures), so that each of them:

- binds servers to a port that :func:`free_port` found free on 127.0.0.1;
- starts a process with its output (stdout and stderr together) in a log
  file (:class:`Process`) and waits for it to be ready by polling a check
  (:func:`wait_until`), never by a bare sleep, giving up early when the
  process exits;
- stops it with SIGTERM, then SIGKILL after a grace period, and reaps it
  (:meth:`Process.stop`), its whole process group when it was started in a
  session of its own;
- shows the command, the state and the tail of the output when waiting
  fails (:meth:`Process.describe`), so that a failing test says why.

The same holds for the groups of processes they start: the fronts of a
broker cluster over NATS (:func:`cluster_fronts`, each a
:class:`ClusterFront`) and a dask scheduler with its workers
(:func:`dask_cluster`).

Only the standard library is used to start and stop processes: the helpers
run in any environment that can start them. Removing a cluster's NATS
state (:func:`delete_cluster`) needs the ``nats`` client; waiting for dask
workers needs ``distributed``; both are imported when used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "TAIL_CHARS",
    "ClusterFront",
    "Process",
    "ProcessError",
    "broker_args",
    "broker_consumers",
    "child_env",
    "cluster_fronts",
    "dask_cluster",
    "delete_cluster",
    "free_port",
    "http_ok",
    "port_answers",
    "remove_cluster",
    "start_broker",
    "tail",
    "wait_until",
]

#: How much of a process's output error messages quote (characters).
TAIL_CHARS = 4000


class ProcessError(RuntimeError):
    """A child process exited early or did not get ready in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tail(text: str, chars: int = TAIL_CHARS) -> str:
    """The last ``chars`` characters of ``text`` (marked with ``[…]`` if cut)."""
    if len(text) <= chars:
        return text
    return "[…]" + text[-chars:]


def child_env(
    extra: Mapping[str, str] | None = None, *, pythonpath: Path | str | None = None
) -> dict[str, str]:
    """The environment of a child process: ours, unbuffered, plus ``extra``.

    Args:
        extra: variables to set (they win).
        pythonpath: put this directory first on ``PYTHONPATH`` (e.g. the
            checkout, so that children import the ``dasf_geo`` next to a
            script even where another copy is installed).
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if pythonpath is not None:
        path = os.environ.get("PYTHONPATH", "")
        env["PYTHONPATH"] = str(pythonpath) + (os.pathsep + path if path else "")
    env.update(extra or {})
    return env


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


class Process:
    """A child process with its output in a log file.

    Args:
        args: the command line.
        name: how to call the process in messages (default: the command).
        env: extra environment variables (see :func:`child_env`).
        cwd: the working directory.
        pythonpath: a directory to put first on ``PYTHONPATH``.
        new_session: start it in a session (and process group) of its own;
            :meth:`stop` then signals the whole group.
        start: start it now; with False call :meth:`start` later.

    The log file is removed by :meth:`cleanup`, on leaving a ``with``
    block, or when the object is garbage-collected.
    """

    def __init__(
        self,
        args: Sequence[str | os.PathLike[str]],
        *,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | str | None = None,
        pythonpath: Path | str | None = None,
        new_session: bool = False,
        start: bool = True,
    ) -> None:
        self.args = [str(arg) for arg in args]
        self.name = name or " ".join(self.args)
        self.env = dict(env or {})
        self.cwd = cwd
        self.pythonpath = pythonpath
        self.new_session = new_session
        self.popen: subprocess.Popen[bytes] | None = None
        self.log_path: str | None = None
        if start:
            self.start()

    def start(self) -> Process:
        """Start the process (once); return it."""
        if self.popen is not None:
            return self
        fd, self.log_path = tempfile.mkstemp(prefix="dasf-geo-proc-", suffix=".log")
        weakref.finalize(self, _remove, self.log_path)
        with os.fdopen(fd, "wb") as log:
            self.popen = subprocess.Popen(
                self.args,
                cwd=str(self.cwd) if self.cwd else None,
                env=child_env(self.env, pythonpath=self.pythonpath),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=self.new_session,
            )
        return self

    @property
    def pid(self) -> int:
        """The process id.

        Raises:
            ProcessError: the process was not started.
        """
        if self.popen is None:
            raise ProcessError(f"{self.name} was not started")
        return self.popen.pid

    @property
    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status, None while running (or not started)."""
        return None if self.popen is None else self.popen.poll()

    def output(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        if self.log_path is None:
            return ""
        try:
            return Path(self.log_path).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def describe(self) -> str:
        """The process's name, state, command and output tail, for messages."""
        if self.popen is None:
            state = "not started"
        elif self.running:
            state = "running"
        else:
            state = f"exited with {self.popen.returncode}"
        return (
            f"{self.name} ({state}; command: {' '.join(self.args)})\n"
            f"--- output ---\n{tail(self.output())}"
        )

    def _signal(self, sig: int) -> None:
        assert self.popen is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.new_session:
                os.killpg(self.popen.pid, sig)
            else:
                self.popen.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, grace: float = 15.0) -> int | None:
        """Send ``sig``, kill after ``grace`` seconds, reap; return the exit status.

        A process started with ``new_session`` is signalled as a group, and
        whatever is left of its group is killed at the end.
        """
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self._signal(sig)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.popen.wait(grace)
        if self.new_session:
            self._signal(signal.SIGKILL)  # children left in the group
        return self.popen.returncode

    def kill(self) -> int | None:
        """Stop the process with SIGKILL right away."""
        return self.stop(signal.SIGKILL)

    def cleanup(self) -> None:
        """Remove the log file (after :meth:`stop`)."""
        if self.log_path is not None:
            _remove(self.log_path)

    def __enter__(self) -> Process:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.cleanup()


def wait_until(
    check: Callable[[], Any],
    what: str,
    seconds: float,
    process: Process | None = None,
    interval: float = 0.05,
) -> Any:
    """Poll ``check()`` until it returns a true value; return that value.

    Exceptions of ``check`` count as "not yet" (the last one is reported).

    Raises:
        ProcessError: ``process`` exited before ``check`` succeeded, or
            ``seconds`` passed; the message names ``what`` and quotes the
            process's output.
    """
    deadline = time.monotonic() + seconds
    last: BaseException | None = None
    while True:
        if process is not None and process.popen is not None and not process.running:
            raise ProcessError(
                f"{what}: the process exited early\n{process.describe()}"
            )
        try:
            value = check()
        except Exception as exc:
            last = exc
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    detail = f"\n{process.describe()}" if process is not None else ""
    raise ProcessError(
        f"timed out after {seconds:g} s waiting for {what} (last error: {last!r})"
        f"{detail}"
    )


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether a GET of ``url`` answers 200 within ``timeout`` seconds."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def broker_args(
    port: int, *extra: str, store: Path | str | None = None, python: str | None = None
) -> list[str]:
    """The command line of ``dasf-geo broker`` on 127.0.0.1:``port``."""
    args = [python or sys.executable, "-m", "dasf_geo.cli.tool", "broker"]
    args += ["--port", str(port)]
    if store is not None:
        args += ["--store", str(store)]
    return [*args, *extra]


def start_broker(
    port: int | None = None,
    *extra: str,
    store: Path | str | None = None,
    seconds: float = 20.0,
    factory: Callable[[list[str]], Process] | None = None,
) -> tuple[Process, int]:
    """Start ``dasf-geo broker`` and wait until it answers ``/health``.

    Args:
        port: the port (default: a free one).
        *extra: further options of ``dasf-geo broker``.
        store: the SQLite store of persistent topics.
        seconds: how long to wait for ``/health``.
        factory: builds the (started or not) process from the command line;
            default :class:`Process`.

    Returns:
        The process and its port.

    Raises:
        ProcessError: the broker exited or did not answer in time (it is
            stopped then).
    """
    port = port or free_port()
    args = broker_args(port, *extra, store=store)
    proc = (factory or Process)(args).start()
    try:
        wait_until(
            lambda: http_ok(f"http://127.0.0.1:{port}/health"),
            f"the broker on port {port}",
            seconds,
            proc,
        )
    except BaseException:
        proc.stop()
        raise
    return proc, port


def broker_consumers(port: int, topic: str) -> int:
    """How many consumers the broker on ``port`` has on the subscriptions of ``topic``.

    ``topic`` is the full name (``non-persistent://public/default/t``), as
    the broker's ``/topics`` lists it.
    """
    url = f"http://127.0.0.1:{port}/topics"
    with urllib.request.urlopen(url, timeout=2) as response:
        listing = json.load(response)
    return sum(
        sub["consumers"]
        for entry in listing["topics"]
        if entry["name"] == topic
        for sub in entry["subscriptions"]
    )


class ClusterFront:
    """One ``dasf-geo broker --cluster NATS --cluster-name NAME`` front.

    Args:
        nats: the NATS URL of the cluster.
        name: the cluster's name; fronts of one name form one broker.
        *extra: further options of ``dasf-geo broker``.
        seconds: how long :meth:`start` waits for ``/health``.
        factory: builds the process from the command line (see
            :func:`start_broker`).

    The port is a free one found at the first :meth:`start`; a front
    started again after :meth:`kill` keeps it, so that callers find it
    where they left it.
    """

    def __init__(
        self,
        nats: str,
        name: str,
        *extra: str,
        seconds: float = 60.0,
        factory: Callable[[list[str]], Process] | None = None,
    ) -> None:
        self.extra = ("--cluster", nats, "--cluster-name", name, *extra)
        self.seconds = seconds
        self.factory = factory
        self.port: int | None = None
        self.proc: Process | None = None

    @property
    def url(self) -> str:
        """The front's ``ws://`` URL.

        Raises:
            ProcessError: the front was never started.
        """
        if self.port is None:
            raise ProcessError("the cluster front was not started")
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> ClusterFront:
        """Start the front (again) and wait until it answers ``/health``.

        Raises:
            ProcessError: the front exited or did not answer in time.
        """
        self.proc, self.port = start_broker(
            self.port,
            *self.extra,
            seconds=self.seconds,
            factory=self.factory,
        )
        return self

    def kill(self) -> None:
        """Stop the front with SIGKILL at once (:meth:`start` brings it back)."""
        if self.proc is not None:
            self.proc.kill()

    def stop(self) -> None:
        """Stop the front (SIGTERM, then SIGKILL after a grace period)."""
        if self.proc is not None:
            self.proc.stop()


@contextlib.contextmanager
def cluster_fronts(
    nats: str,
    count: int = 2,
    *extra: str,
    name: str | None = None,
    seconds: float = 60.0,
    factory: Callable[[list[str]], Process] | None = None,
) -> Iterator[list[ClusterFront]]:
    """``count`` started fronts of one broker cluster over NATS.

    Each front is waited for (``/health``) before the next one starts.
    Afterwards the fronts are stopped and the cluster's state in NATS is
    removed (:func:`delete_cluster`).

    Args:
        nats: the NATS URL.
        count: how many fronts.
        *extra: further options of ``dasf-geo broker`` for every front.
        name: the cluster's name (default: a new random one, so that
            streams of different runs never mix).
        seconds, factory: see :class:`ClusterFront`.

    Raises:
        ProcessError: a front exited or did not answer in time (those
            started are stopped).
    """
    name = name or "fronts" + secrets.token_hex(4)
    started: list[ClusterFront] = []
    try:
        for _ in range(count):
            front = ClusterFront(nats, name, *extra, seconds=seconds, factory=factory)
            started.append(front)
            front.start()
        yield started
    finally:
        for front in started:
            front.stop()
        delete_cluster(nats, name)


async def remove_cluster(nats: str, name: str) -> None:
    """Remove cluster ``name``'s stream and key-value buckets from NATS.

    Best effort: what does not exist, or a NATS that does not answer, is
    passed over.
    """
    import nats as nats_py

    from dasf_geo.broker.cluster_names import ClusterNames

    names = ClusterNames(name)
    with contextlib.suppress(Exception):
        nc = await nats_py.connect(nats, max_reconnect_attempts=1)
        js = nc.jetstream()
        with contextlib.suppress(Exception):
            await js.delete_stream(names.stream)
        for bucket in (names.lease_bucket, f"DASF_GEO_{name}_KEYS"):
            with contextlib.suppress(Exception):
                await js.delete_key_value(bucket)
        await nc.close()


def delete_cluster(nats: str, name: str) -> None:
    """:func:`remove_cluster`, from code that runs no event loop."""
    asyncio.run(remove_cluster(nats, name))


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a TCP connection to ``host``:``port`` is accepted now."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), 1):
        return True
    return False


@contextlib.contextmanager
def dask_cluster(
    workers: int = 2,
    *,
    nanny: bool = True,
    scheduler_env: Mapping[str, str] | None = None,
    seconds: float = 60.0,
    factory: Callable[[list[str], dict[str, str] | None], Process] | None = None,
) -> Iterator[tuple[str, list[Process]]]:
    """A ``dask scheduler`` and ``workers`` ``dask worker`` processes.

    Yields the scheduler's address and the worker processes (named ``w0``,
    ``w1``, … in dask) once all workers joined; afterwards every process
    is killed.

    Args:
        workers: how many worker processes (one thread each).
        nanny: False starts the workers without a nanny, so that killing
            one is its death (a nanny would start it again).
        scheduler_env: extra environment variables of the scheduler
            (e.g. ``DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES``).
        seconds: how long to wait for the scheduler, and for the workers.
        factory: builds a process from its command line and extra
            environment (started or not); default :class:`Process`.

    Raises:
        ProcessError: the scheduler exited or did not listen in time.
    """
    from distributed import Client

    make = factory or _unstarted
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    python = sys.executable
    scheduler = make(
        [
            python,
            "-m",
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-dashboard",
        ],
        dict(scheduler_env or {}),
    )
    procs: list[Process] = []
    try:
        scheduler.start()
        wait_until(lambda: port_answers(port), "the dask scheduler", seconds, scheduler)
        for number in range(workers):
            args = [python, "-m", "distributed.cli.dask_worker", address]
            args += ["--nthreads", "1", "--no-dashboard"]
            if not nanny:
                args.append("--no-nanny")  # a kill is the worker's death
            args += ["--name", f"w{number}", "--host", "127.0.0.1"]
            worker = make(args, None)
            procs.append(worker)
            worker.start()
        with Client(address, timeout=seconds / 2) as probe:
            probe.wait_for_workers(workers, timeout=seconds)
        yield address, procs
    finally:
        for proc in procs:
            proc.kill()
        scheduler.kill()


def _unstarted(args: list[str], env: dict[str, str] | None) -> Process:
    return Process(args, env=env, start=False)
