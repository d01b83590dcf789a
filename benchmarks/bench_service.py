"""The backend module the RPC benchmarks serve (small calls and large payloads)."""

from __future__ import annotations

from dasf_geo import main

__all__ = ["echo", "echo_text", "make_text"]


def echo(value: int) -> int:
    """Return ``value`` (a small call)."""
    return value


def echo_text(data: str) -> str:
    """Return ``data`` (a large request and a large reply)."""
    return data


def make_text(n: int) -> str:
    """Return ``n`` characters (a large reply)."""
    return "x" * n


if __name__ == "__main__":
    main(messaging_config=dict(topic="bench-topic"))
