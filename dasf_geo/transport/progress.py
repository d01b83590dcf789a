"""Progress of long calls on the caller's side: bars on a terminal, callbacks.

Every call of :class:`~dasf_geo.transport.client.AsyncClient` takes a
``progress`` callback; it is called with dicts:

- ``{"kind": "upload", "sent": BYTES, "total": BYTES, "done": bool}``
  while the fragments of a large request (e.g. a Dataset argument) are
  acknowledged by the broker;
- ``{"kind": "transfer", "received": BYTES, "total": BYTES | None,
  "done": bool}`` while the fragments of a large reply arrive (``total`` is
  known when the sender announced it, as dasf_geo backends do);
- ``{"kind": "report", "report": {...}}`` for each progress report the
  backend sends (the DASF ``progress`` message type, deprogressapi's
  format: ``report_id``, ``status``, ``step_message``, ``steps``,
  ``children``…).

:class:`ProgressBar` is such a callback that draws a tqdm bar (bytes, rate,
ETA) on standard error for the upload and for the reply, and prints backend
reports above it.
"""

from __future__ import annotations

import sys
from typing import IO, Any

__all__ = ["ProgressBar", "terminal_progress"]


class ProgressBar:
    """A progress callback drawing a transfer bar with tqdm.

    Args:
        what: how to name the transfer (e.g. ``get_data()``).
        file: where to draw (default: standard error).
        min_bytes: transfers smaller than this draw no bar.
    """

    def __init__(
        self, what: str = "reply", file: IO[str] | None = None, min_bytes: int = 1 << 20
    ) -> None:
        self.what = what
        self.file = file or sys.stderr
        self.min_bytes = min_bytes
        self._bar: Any = None
        self._bar_kind: str | None = None

    def __call__(self, event: dict[str, Any]) -> None:
        """Take one progress event (see the module docstring)."""
        kind = event.get("kind")
        if kind == "transfer":
            self._transfer("transfer", event.get("received"), event)
        elif kind == "upload":
            self._transfer("upload", event.get("sent"), event)
        elif kind == "report":
            self._report(event.get("report") or {})

    def _transfer(self, kind: str, count: Any, event: dict[str, Any]) -> None:
        total = event.get("total")
        done = int(count or 0)
        if self._bar is not None and self._bar_kind != kind:
            self.close()  # the upload is over: the reply's bar follows
        if self._bar is None:
            if total is not None and total < self.min_bytes:
                return
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                desc=f"{self.what} (sending)" if kind == "upload" else self.what,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=self.file,
                leave=False,
                dynamic_ncols=True,
            )
            self._bar_kind = kind
        self._bar.update(max(0, done - self._bar.n))
        if event.get("done"):
            self.close()

    def _report(self, report: dict[str, Any]) -> None:
        message = report.get("step_message") or report.get("report_id") or "progress"
        status = report.get("status", "")
        line = f"{self.what}: {message}" + (f" [{status}]" if status else "")
        if self._bar is not None:
            self._bar.write(line, file=self.file)
        else:
            print(line, file=self.file, flush=True)

    def close(self) -> None:
        """Remove the bar (idempotent)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            self._bar_kind = None


def terminal_progress(what: str, file: IO[str] | None = None) -> ProgressBar | None:
    """A :class:`ProgressBar` if ``file`` (default stderr) is a terminal, else None."""
    stream = file or sys.stderr
    isatty = getattr(stream, "isatty", None)
    if isatty is None or not isatty():
        return None
    return ProgressBar(what, stream)
