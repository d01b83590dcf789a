"""A backend module for the end-to-end tests (run as a script with ``listen``)."""

from __future__ import annotations

import os
import time

from pydantic import BaseModel

from dasf_geo import configure, main, registry
from dasf_geo.protocol.progress import ProgressReport

__all__ = [
    "HelloWorld",
    "blob",
    "echo",
    "hello_world",
    "record",
    "size",
    "sleep",
    "steps",
    "whoami",
]


def hello_world() -> str:
    """Say hello."""
    return "HelloWorld"


def echo(value: int, tag: str = "") -> dict:
    """Return the value and tag, to check that replies are not mixed up.

    Args:
        value: any integer.
        tag: any text.
    """
    return {"value": value, "tag": tag}


def blob(n: int) -> str:
    """Return a string of ``n`` characters (for large replies)."""
    return "x" * n


def size(data: str) -> int:
    """Return the length of ``data`` (for large requests)."""
    return len(data)


def sleep(seconds: float) -> float:
    """Sleep, then return the seconds slept."""
    time.sleep(seconds)
    return seconds


def steps(
    n: int, reporter: ProgressReport = ProgressReport(step_message="counting")
) -> int:
    """Count to ``n``, reporting each step."""
    with reporter:
        for i in range(n):
            reporter.create_subreport(f"step {i}", submit=True).complete()
    return n


def whoami() -> int:
    """The process id of the backend that ran the request."""
    return os.getpid()


def record(token: str) -> int:
    """Append ``token`` and this process id to the file named by $E2E_RECORD."""
    with open(os.environ["E2E_RECORD"], "a", encoding="utf-8") as fh:
        fh.write(f"{token} {os.getpid()}\n")
    return os.getpid()


@registry.register_type
class GreetResponse(BaseModel):
    """What :meth:`HelloWorld.greet` returns."""

    message: str
    greetings: list[str]


@configure(methods=["repeat_message", "greet"])
class HelloWorld:
    """Greets with a message."""

    def __init__(self, message: str):
        self.message = message

    @configure(field_params={"repeat": {"ge": 0}})
    def repeat_message(self, repeat: int) -> list[str]:
        """Repeat the message."""
        return [self.message] * repeat

    @configure(field_params={"repeat": {"ge": 0}})
    def greet(self, repeat: int, greet_message: str) -> GreetResponse:
        """Greet ``repeat`` times."""
        return GreetResponse(message=self.message, greetings=[greet_message] * repeat)

    def unexposed_method(self) -> str:
        return self.message


if __name__ == "__main__":
    main(messaging_config=dict(topic="e2e-topic"))
