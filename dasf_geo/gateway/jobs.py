"""The OGC API jobs: a SQLite table of jobs and a folder of their results.

One row per job (status, progress, times, where its result is, its error);
results are files in a folder beside the database (``<db>-results/``), so
that a large NetCDF result is never a blob in memory. Finished jobs beyond
the retention limit are removed oldest first, with their files. Jobs that
were still running when the gateway stopped are marked failed when it
starts again: their calls are gone.

The store is used from the gateway's event loop only; each statement is a
short local SQLite operation.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["FINISHED", "Job", "JobStore", "now_iso"]

#: Job states that do not change any more.
FINISHED = frozenset({"successful", "failed", "dismissed"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    process_id TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    progress INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL,
    started TEXT,
    finished TEXT,
    updated TEXT NOT NULL,
    response TEXT NOT NULL DEFAULT 'raw',
    result_file TEXT,
    result_type TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created);
"""

_FIELDS = (
    "job_id",
    "process_id",
    "status",
    "message",
    "progress",
    "created",
    "started",
    "finished",
    "updated",
    "response",
    "result_file",
    "result_type",
    "error",
)


def now_iso() -> str:
    """The current UTC time, ISO 8601 with ``Z``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Job:
    """One row of the jobs table."""

    job_id: str
    process_id: str
    status: str
    message: str
    progress: int
    created: str
    started: str | None
    finished: str | None
    updated: str
    response: str
    result_file: str | None
    result_type: str | None
    error: str | None

    @property
    def error_info(self) -> dict[str, Any]:
        """The stored error: ``{"status": int, "detail": str, "errors"?: list}``."""
        if not self.error:
            return {}
        try:
            value = json.loads(self.error)
        except ValueError:
            return {"status": 502, "detail": self.error}
        return value if isinstance(value, dict) else {}


class JobStore:
    """Jobs in a SQLite file, results in files beside it.

    Args:
        path: the SQLite file (created with its folder if missing); None:
            a file in the system's temporary directory.
        retention: the most finished jobs kept.
    """

    def __init__(self, path: Path | None, retention: int = 1000) -> None:
        if path is None:
            folder = Path(tempfile.gettempdir()) / f"dasf-geo-gateway-{os.getpid()}"
            path = folder / "jobs.db"
        self.path = Path(path)
        self.retention = max(1, int(retention))
        self.results_dir = self.path.with_name(self.path.stem + "-results")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        stamp = now_iso()
        self._db.execute(
            "UPDATE jobs SET status='failed', finished=?, updated=?, "
            "message='the gateway stopped while the job ran', error=? "
            "WHERE status IN ('accepted', 'running')",
            (
                stamp,
                stamp,
                json.dumps(
                    {"status": 502, "detail": "the gateway stopped while the job ran"}
                ),
            ),
        )
        self._db.commit()

    def close(self) -> None:
        """Close the database."""
        with contextlib.suppress(Exception):
            self._db.close()

    def create(self, job_id: str, process_id: str, response: str) -> Job:
        """Add an ``accepted`` job."""
        stamp = now_iso()
        self._db.execute(
            "INSERT INTO jobs (job_id, process_id, status, created, updated, response) "
            "VALUES (?, ?, 'accepted', ?, ?, ?)",
            (job_id, process_id, stamp, stamp, response),
        )
        self._db.commit()
        job = self.get(job_id)
        assert job is not None
        return job

    def update(self, job_id: str, **fields: Any) -> None:
        """Change fields of a job (``updated`` is set too)."""
        unknown = set(fields) - set(_FIELDS)
        if unknown:
            raise ValueError(f"unknown job fields: {sorted(unknown)}")
        fields["updated"] = now_iso()
        names = ", ".join(f"{k}=?" for k in fields)
        self._db.execute(
            f"UPDATE jobs SET {names} WHERE job_id=?", (*fields.values(), job_id)
        )
        self._db.commit()

    def get(self, job_id: str) -> Job | None:
        """The job, or None."""
        row = self._db.execute(
            f"SELECT {', '.join(_FIELDS)} FROM jobs WHERE job_id=?", (job_id,)
        ).fetchone()
        return None if row is None else Job(*row)

    def list(
        self,
        limit: int = 100,
        offset: int = 0,
        process_id: str | None = None,
        status: list[str] | None = None,
    ) -> list[Job]:
        """Jobs, newest first."""
        where = []
        params: list[Any] = []
        if process_id is not None:
            where.append("process_id=?")
            params.append(process_id)
        if status:
            where.append(f"status IN ({', '.join('?' for _ in status)})")
            params.extend(status)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._db.execute(
            f"SELECT {', '.join(_FIELDS)} FROM jobs {clause} "
            "ORDER BY created DESC, rowid DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        ).fetchall()
        return [Job(*row) for row in rows]

    def result_path(self, job_id: str, suffix: str) -> Path:
        """Where the result of ``job_id`` is written."""
        return self.results_dir / f"{job_id}{suffix}"

    def delete(self, job_id: str) -> None:
        """Remove a job and its result file."""
        job = self.get(job_id)
        if job is not None and job.result_file:
            with contextlib.suppress(OSError):
                os.unlink(job.result_file)
        self._db.execute("DELETE FROM jobs WHERE job_id=?", (job_id,))
        self._db.commit()

    def prune(self) -> int:
        """Remove the oldest finished jobs beyond the retention; how many."""
        rows = self._db.execute(
            "SELECT job_id FROM jobs WHERE status IN ('successful', 'failed', "
            "'dismissed') ORDER BY created DESC, rowid DESC LIMIT -1 OFFSET ?",
            (self.retention,),
        ).fetchall()
        for (job_id,) in rows:
            self.delete(job_id)
        return len(rows)
