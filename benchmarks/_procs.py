"""Start and stop the processes a benchmark measures (broker, backends, callers)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dasf_geo.testing import processes
from dasf_geo.testing.processes import free_port

__all__ = [
    "BENCH",
    "PYTHON",
    "REPO",
    "Process",
    "child_env",
    "free_port",
    "rss_kib",
    "rss_peak_kib",
    "run_callers",
    "start_backend",
    "start_broker",
    "wait_until",
]

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
PYTHON = sys.executable


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process: this checkout's ``dasf_geo`` first.

    The repository root comes first on ``PYTHONPATH``, so that the broker,
    backends and callers import the ``dasf_geo`` next to this script even
    where another checkout is installed (e.g. editable) in the environment.
    """
    return processes.child_env(extra, pythonpath=REPO)


class Process(processes.Process):
    """A benchmark's child process, run from the checkout (see :func:`child_env`).

    The shared :class:`dasf_geo.testing.processes.Process`; :meth:`stop`
    also removes its log file.
    """

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None):
        super().__init__(args, env=env, cwd=REPO, pythonpath=REPO)

    def stop(self, sig: int = signal.SIGTERM, grace: float = 15.0) -> int | None:
        """Terminate (SIGKILL after ``grace`` s), reap, remove the log file."""
        status = super().stop(sig, grace)
        self.cleanup()
        return status


def wait_until(check: Callable[[], Any], what: str, seconds: float = 60) -> None:
    """Poll ``check`` until it is true; raise naming ``what`` after ``seconds``.

    Raises:
        RuntimeError: (:class:`~dasf_geo.testing.processes.ProcessError`)
            time ran out.
    """
    processes.wait_until(check, what, seconds, interval=0.1)


def start_broker(port: int | None = None) -> tuple[Process, str]:
    """Start ``dasf-geo broker``; return the process and its ws:// URL."""
    proc, port = processes.start_broker(port, seconds=60, factory=Process)
    assert isinstance(proc, Process)
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
