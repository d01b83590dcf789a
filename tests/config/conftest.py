"""Fixtures for configuration tests: a clean environment and logging state."""

from __future__ import annotations

import logging
import os

import pytest


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove DE_BACKEND_* and DE_LOGGING_* variables set outside the test."""
    for key in list(os.environ):
        if key.upper().startswith(("DE_BACKEND_", "DE_LOGGING_")):
            monkeypatch.delenv(key)


@pytest.fixture
def restore_logging():
    """Restore the loggers that configure_logging() changes."""
    names = ["dasf_geo", "websockets"]
    saved = {}
    for name in names:
        logger = logging.getLogger(name)
        saved[name] = (
            list(logger.handlers),
            logger.level,
            logger.propagate,
            logger.disabled,
        )
    yield
    for name, (handlers, level, propagate, disabled) in saved.items():
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
        logger.disabled = disabled
