"""Hypothesis profiles for the data-layer tests.

``dasf-data`` (default) keeps example counts modest so the suite stays fast;
set ``HYPOTHESIS_PROFILE=dasf-data-thorough`` for a longer local run.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "dasf-data",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=False,
)
settings.register_profile(
    "dasf-data-thorough",
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dasf-data"))


def pytest_collection_modifyitems(session, config, items):
    """Build the demessaging venv for selected interop tests, before timeouts."""
    if any(
        item.get_closest_marker("interop") and "tests/data" in str(item.fspath)
        for item in items
    ):
        from tests.interop import peers

        peers.peer_python("demessaging")
