"""Progress reports a backend function sends while it runs (sans-I/O).

The wire format is deprogressapi's tree report (the ``progress`` message
type of the DASF protocol), so DASF callers that understand deprogressapi (the
DASF web components, demessaging callers) read ours, and dasf_geo callers
read theirs::

    {"report_type": "tree", "report_id": "root", "status": "running",
     "step_message": "…", "steps": 3, "children": [...]}

A backend function asks for a reporter with a parameter annotated
:class:`ProgressReport`; the backend gives each request its own copy,
attached to a sender, and does not expose the parameter to callers::

    def compute(n: int, reporter: ProgressReport = ProgressReport(
            step_message="computing")) -> int:
        with reporter:                        # running … success / error
            for i in range(n):
                with reporter.create_subreport(step_message=f"step {i}"):
                    ...

Outside a backend (no sender attached), :meth:`ProgressReport.submit` does
nothing, so the same function runs locally unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

__all__ = ["ProgressReport", "ReportSender"]

#: Called with the report's JSON text and its status when it is submitted.
ReportSender = Callable[[str, str], None]


class ProgressReport(BaseModel):
    """A tree of progress steps, compatible with deprogressapi's ``tree`` report.

    Attributes:
        report_type: always ``"tree"`` (deprogressapi's selector).
        report_id: the report's id (children get ``PARENT.N``).
        status: ``running``, ``success`` or ``error``.
        step_message: what the step does.
        steps: how many sub-steps it has (0 if unknown).
        children: the sub-steps created with :meth:`create_subreport`.
    """

    model_config = ConfigDict(validate_assignment=True)

    report_type: Literal["tree"] = "tree"
    report_id: str = "root"
    status: Literal["running", "success", "error"] = "running"
    step_message: str = Field("", description="What this step does.")
    steps: int = Field(0, ge=0, description="How many sub-steps it has.")
    children: list[ProgressReport] = Field(default_factory=list)

    _sender: ReportSender | None = PrivateAttr(None)
    _parent: ProgressReport | None = PrivateAttr(None)

    def attach(self, sender: ReportSender | None) -> None:
        """Send future submissions with ``sender`` (the backend does this)."""
        self._sender = sender

    def root(self) -> ProgressReport:
        """The top report of the tree (the one that is sent)."""
        report = self
        while report._parent is not None:
            report = report._parent
        return report

    def submit(self) -> None:
        """Send the whole tree to the caller (nothing without a sender)."""
        root = self.root()
        if root._sender is not None:
            root._sender(root.model_dump_json(), root.status)

    def create_subreport(
        self, step_message: str = "", steps: int = 0, *, submit: bool = False
    ) -> ProgressReport:
        """Add a child step and return it.

        Args:
            step_message: what the step does.
            steps: how many sub-steps it has.
            submit: send the tree at once.
        """
        child = ProgressReport(
            report_id=f"{self.report_id}.{len(self.children)}",
            step_message=step_message,
            steps=steps,
        )
        child._parent = self
        self.children.append(child)
        if submit:
            self.submit()
        return child

    def complete(self, status: Literal["success", "error"] = "success") -> None:
        """Mark the step finished and send the tree."""
        self.status = status
        self.submit()

    def __enter__(self) -> ProgressReport:
        self.status = "running"
        self.submit()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.complete("success" if exc is None else "error")


ProgressReport.model_rebuild()
