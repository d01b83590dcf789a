"""Shared test helpers.

Every timeout in the tests is a multiple of ``TIMEOUT_UNIT`` seconds, which the
environment variable ``DASF_GEO_TEST_TIMEOUT_UNIT`` can scale on slow machines.

Each pytest run has a temporary directory of its own (``TMPDIR``, exported
to the child processes, removed at the end), so that the tests that look
for leftover temporary files see only their own run's files, never those
of another run on the machine.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dasf_geo.testing import processes

_RUN_TEMP = pytest.StashKey[tuple[str, dict[str, "str | None"]]]()
TIMEOUT_UNIT = float(os.environ.get("DASF_GEO_TEST_TIMEOUT_UNIT", "1.0"))
REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA = REPO_ROOT / "sample_data"
EXAMPLES = REPO_ROOT / "examples"


#: the environment variables the run's own temporary directory replaces
_TEMP_VARIABLES = ("TMPDIR", "PYTEST_DEBUG_TEMPROOT")


def pytest_configure(config: pytest.Config) -> None:
    """Give this run a temporary directory of its own, before any test runs.

    ``TMPDIR`` points into it (for this process, through ``tempfile``, and
    for every child process); pytest's own ``tmp_path`` folders stay where
    they were (``PYTEST_DEBUG_TEMPROOT``), kept for a look after a failure.
    """
    outer = tempfile.gettempdir()
    run_dir = tempfile.mkdtemp(prefix="dasf-geo-tests-", dir=outer)
    config.stash[_RUN_TEMP] = (run_dir, {k: os.environ.get(k) for k in _TEMP_VARIABLES})
    os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", outer)
    os.environ["TMPDIR"] = run_dir
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the run's temporary directory; restore the environment."""
    saved = config.stash.get(_RUN_TEMP, None)
    if saved is None:
        return
    run_dir, variables = saved
    for name, value in variables.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    tempfile.tempdir = None
    shutil.rmtree(run_dir, ignore_errors=True)


def timeout(n: float = 1.0) -> float:
    """Return ``n`` timeout units in seconds."""
    return n * TIMEOUT_UNIT


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    return processes.free_port()


@pytest.fixture
def unused_port() -> int:
    """A free TCP port on 127.0.0.1."""
    return free_port()


@pytest.fixture(autouse=True, scope="module")
def _close_shared_clients() -> Iterator[None]:
    """Close the process-wide blocking clients a test module left open.

    ``send_request`` and ``dasf-geo call`` keep one client per broker and
    topic for the life of the process; once a module's broker is gone such
    a client would keep reconnecting (and logging) through every later test.
    """
    yield
    from dasf_geo.transport.blocking import close_clients

    close_clients()
