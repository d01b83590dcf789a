"""Shared helper for the ``(cls, value)`` validator signature."""

from __future__ import annotations

from typing import Any

_MISSING: Any = object()


def pick_value(cls_or_value: Any, value: Any) -> Any:
    """Return the value of a ``(cls, v)`` or ``(v)`` call."""
    return cls_or_value if value is _MISSING else value
