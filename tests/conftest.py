"""Shared test helpers.

Every timeout in the tests is a multiple of ``TIMEOUT_UNIT`` seconds, which the
environment variable ``DASF_GEO_TEST_TIMEOUT_UNIT`` can scale on slow machines.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dasf_geo.testing import processes

TIMEOUT_UNIT = float(os.environ.get("DASF_GEO_TEST_TIMEOUT_UNIT", "1.0"))
REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA = REPO_ROOT / "sample_data"
EXAMPLES = REPO_ROOT / "examples"


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
