"""A backend for the multi-host test: records every execution."""

from __future__ import annotations

import os
import time

from dasf_geo import main

__all__ = ["slow_record"]


def slow_record(token: str, seconds: float = 0.1) -> int:
    """Wait, append ``token`` and this process id to $E2E_RECORD, return the pid."""
    time.sleep(seconds)
    with open(os.environ["E2E_RECORD"], "a", encoding="utf-8") as fh:
        fh.write(f"{token} {os.getpid()}\n")
    return os.getpid()


if __name__ == "__main__":
    main(messaging_config=dict(topic="netns"))
