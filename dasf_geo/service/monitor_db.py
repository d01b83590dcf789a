"""The monitoring store: timestamped values in a SQL database (SQLAlchemy Core).

Each service writes to one table, ``dasf_geo_monitor``, one row per stored
value::

    id | service | version | variable | timestamp | kind | number | text

``timestamp`` is UTC seconds since the epoch; ``kind`` says where the value
is: ``number`` (the ``number`` column), ``string`` or ``json`` (the ``text``
column). Numbers are stored as numbers and strings as strings; anything
else as JSON; xarray, pandas and numpy values as a *summary* (type, dims,
sizes, variables, checksum), never the whole payload.

The database is a SQLite file per service by default
(:func:`default_path`), or any SQLAlchemy URL (``DASF_GEO_STORE_URL``), so
that the services of several machines can share one PostgreSQL: the
``service`` and ``version`` columns keep them apart.

Retention follows daeploy: :meth:`MonitorStore.clean` keeps the newest N
rows per variable (``"10000 rows"``) or the rows of the last N
days/hours/minutes/seconds (``"90 days"``); the service calls it every
clean interval.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dasf_geo.service._values import (
    MAX_VALUE_BYTES,
    StoreError,
    decode_row,
    encode_value,
    iso,
    parse_time,
    summarize,
    to_csv,
)
from dasf_geo.service.utilities import (
    STORE_LIMIT_UNITS,
    limit_seconds,
    match_limit_and_unit,
)

__all__ = [
    "MAX_VALUE_BYTES",
    "MonitorStore",
    "StoreError",
    "decode_row",
    "default_path",
    "encode_value",
    "iso",
    "parse_time",
    "summarize",
    "to_csv",
]

logger = logging.getLogger(__name__)

#: longest variable name
MAX_NAME_LENGTH = 200
TABLE = "dasf_geo_monitor"

_metadata = sa.MetaData()
monitor_table = sa.Table(
    TABLE,
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("service", sa.String(200), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("variable", sa.String(MAX_NAME_LENGTH), nullable=False),
    sa.Column("timestamp", sa.Float, nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("number", sa.Float, nullable=True),
    sa.Column("text", sa.Text, nullable=True),
    sa.Index(f"{TABLE}_lookup", "service", "version", "variable", "timestamp"),
)


def default_path(service: str, version: str) -> Path:
    """The SQLite file of a service: ``<dir>/<service>_<version>.sqlite``.

    ``<dir>`` is ``DASF_GEO_STORE_DIR``, else ``$XDG_DATA_HOME/dasf-geo/store``
    (``~/.local/share/dasf-geo/store``).
    """
    base = os.environ.get("DASF_GEO_STORE_DIR")
    if not base:
        data = os.environ.get("XDG_DATA_HOME") or os.path.join(
            os.path.expanduser("~"), ".local", "share"
        )
        base = os.path.join(data, "dasf-geo", "store")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in service)
    return Path(base) / f"{safe}_{version}.sqlite"


# --- the store -----------------------------------------------------------------


def _sqlalchemy_url(url: str) -> str:
    """``url`` with the installed PostgreSQL driver when none is named."""
    if url.startswith(("postgresql://", "postgres://")):
        import importlib.util

        if importlib.util.find_spec("psycopg2") is None:
            rest = url.split("://", 1)[1]
            return f"postgresql+psycopg://{rest}"
    return url


def _describe(exc: BaseException) -> str:
    """The database's own words for an error (without SQLAlchemy's extras)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _sqlite_pragmas(dbapi_connection: Any, record: Any) -> None:
    """Write-ahead logging: a commit appends to the log instead of syncing the
    file twice, several times faster for one value per call; readers do not
    block the writer. (A read-only database keeps its journal mode.)"""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    except Exception:  # read-only or not a database: reported on first use
        pass
    finally:
        cursor.close()


class MonitorStore:
    """One service's monitoring store.

    Args:
        service: the service name (the ``service`` column).
        version: the service version.
        url: a SQLAlchemy URL; default a SQLite file at ``path``.
        path: the SQLite file (default :func:`default_path`).
        limit: retention, e.g. ``"90 days"`` or ``"10000 rows"``.

    Raises:
        ValueError: ``limit`` is not a valid retention setting.
    """

    def __init__(
        self,
        service: str,
        version: str,
        *,
        url: str | None = None,
        path: str | os.PathLike[str] | None = None,
        limit: str = "90 days",
    ) -> None:
        number, unit = match_limit_and_unit(limit, STORE_LIMIT_UNITS)
        self.limit: tuple[int, str] = (int(number), unit)
        self.service = service
        self.version = version
        if url:
            self.path: Path | None = None
            self.url = _sqlalchemy_url(url)
        else:
            self.path = Path(path) if path else default_path(service, version)
            self.url = f"sqlite:///{self.path}"
        self._engine: sa.Engine | None = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"<MonitorStore {self.where}>"

    @property
    def where(self) -> str:
        """The database, for messages (a path, or the URL without password)."""
        if self.path is not None:
            return str(self.path)
        return sa.make_url(self.url).render_as_string(hide_password=True)

    # --- connection ----------------------------------------------------

    def _connect(self) -> sa.Engine:
        """The engine, with the table created (reopened if the file went away)."""
        with self._lock:
            if self._engine is not None and (self.path is None or self.path.exists()):
                return self._engine
            if self._engine is not None:
                logger.warning(
                    "the monitoring store %s was deleted; starting a new one", self.path
                )
                self._engine.dispose()
                self._engine = None
            kwargs: dict[str, Any] = {}
            if self.path is not None:
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(
                        f"cannot create the folder of the monitoring store "
                        f"{self.path}: {exc.strerror or exc}"
                    ) from exc
                kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
            else:
                kwargs["pool_pre_ping"] = True
            try:
                engine = sa.create_engine(self.url, **kwargs)
            except (sa.exc.ArgumentError, ImportError) as exc:
                raise StoreError(
                    f"invalid monitoring store URL {self.where!r}: {exc}"
                ) from exc
            if self.path is not None:
                sa.event.listen(engine, "connect", _sqlite_pragmas)
            try:
                _metadata.create_all(engine)
            except sa.exc.SQLAlchemyError as exc:
                engine.dispose()
                raise StoreError(
                    f"cannot open the monitoring store {self.where}: {_describe(exc)}"
                ) from exc
            self._engine = engine
            return engine

    def open(self) -> MonitorStore:
        """Open the database and create the table now (instead of on first use).

        Raises:
            StoreError: the database cannot be opened (a corrupt or
                unreadable file, a server that does not answer…).
        """
        self._connect()
        return self

    def close(self) -> None:
        """Close the database connections (the store reopens on next use)."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    # --- writing ---------------------------------------------------------

    def record(
        self, variables: Mapping[str, Any], timestamp: float | None = None
    ) -> None:
        """Store each of ``variables`` with one UTC timestamp (now by default).

        Raises:
            StoreError: a variable name is invalid, a value is too large,
                or the database cannot be written (read-only, corrupt,
                unreachable); nothing is stored then.
        """
        stamp = time.time() if timestamp is None else float(timestamp)
        rows = []
        for name, value in variables.items():
            if not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH:
                raise StoreError(
                    f"invalid variable name {name!r:.80}: use a non-empty text of "
                    f"at most {MAX_NAME_LENGTH} characters"
                )
            kind, number, text = encode_value(name, value)
            rows.append(
                {
                    "service": self.service,
                    "version": self.version,
                    "variable": name,
                    "timestamp": stamp,
                    "kind": kind,
                    "number": number,
                    "text": text,
                }
            )
        if not rows:
            return
        try:
            with self._lock, self._connect().begin() as conn:
                conn.execute(monitor_table.insert(), rows)
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(
                f"cannot write to the monitoring store {self.where}: {_describe(exc)}"
            ) from exc

    # --- reading ----------------------------------------------------------

    def query(
        self,
        variables: Iterable[str] | None = None,
        start: Any = None,
        end: Any = None,
        *,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """The stored values, oldest first.

        Args:
            variables: only these variable names (default: all).
            start: only values at or after this ISO 8601 time (naive = UTC).
            end: only values at or before this time.
            limit: at most this many (the newest of them).

        Returns:
            ``[{"variable", "value", "timestamp"}, ...]`` with ISO 8601 UTC
            timestamps.

        Raises:
            ValueError: ``start``/``end`` are not ISO 8601 times.
            StoreError: the database cannot be read.
        """
        t0, t1 = parse_time(start, "start"), parse_time(end, "end")
        table = monitor_table
        stmt = sa.select(
            table.c.variable,
            table.c.timestamp,
            table.c.kind,
            table.c.number,
            table.c.text,
        ).where(table.c.service == self.service, table.c.version == self.version)
        if variables is not None:
            stmt = stmt.where(table.c.variable.in_(list(variables)))
        if t0 is not None:
            stmt = stmt.where(table.c.timestamp >= t0)
        if t1 is not None:
            stmt = stmt.where(table.c.timestamp <= t1)
        stmt = stmt.order_by(table.c.timestamp.desc(), table.c.id.desc())
        if limit is not None:
            stmt = stmt.limit(limit)
        try:
            with self._lock, self._connect().connect() as conn:
                rows = conn.execute(stmt).all()
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(
                f"cannot read the monitoring store {self.where}: {_describe(exc)}"
            ) from exc
        return [
            {
                "variable": row.variable,
                "value": decode_row(row.kind, row.number, row.text),
                "timestamp": iso(row.timestamp),
            }
            for row in reversed(rows)
        ]

    def sqlite_bytes(self) -> bytes:
        """A consistent copy of the SQLite file (for download).

        Raises:
            StoreError: the store is not a SQLite file, or cannot be read.
        """
        if self.path is None:
            raise StoreError(
                f"the monitoring store {self.where} is not a SQLite file; read it "
                "as JSON or CSV"
            )
        import sqlite3
        import tempfile

        with tempfile.TemporaryDirectory(prefix="dasf-geo-store-") as tmp:
            copy = os.path.join(tmp, "store.sqlite")
            try:
                with self._lock:
                    self._connect()
                    source = sqlite3.connect(str(self.path), timeout=30)
                    try:
                        target = sqlite3.connect(copy)
                        with target:
                            source.backup(target)
                        target.close()
                    finally:
                        source.close()
            except sqlite3.Error as exc:
                raise StoreError(
                    f"cannot read the monitoring store {self.where}: {exc}"
                ) from exc
            return Path(copy).read_bytes()

    # --- retention ---------------------------------------------------------

    def clean(self, now: float | None = None) -> int:
        """Apply the retention limit; return how many rows were removed.

        Raises:
            StoreError: the database cannot be written.
        """
        number, unit = self.limit
        table = monitor_table
        mine = sa.and_(table.c.service == self.service, table.c.version == self.version)
        removed = 0
        try:
            with self._lock, self._connect().begin() as conn:
                if unit != "rows":
                    cutoff = (time.time() if now is None else now) - limit_seconds(
                        number, unit
                    )
                    result = conn.execute(
                        table.delete().where(mine, table.c.timestamp < cutoff)
                    )
                    return int(result.rowcount or 0)
                names = conn.execute(
                    sa.select(table.c.variable).where(mine).distinct()
                ).scalars()
                for name in list(names):
                    same = sa.and_(mine, table.c.variable == name)
                    # the id of the newest row beyond the limit, if any
                    edge = conn.execute(
                        sa.select(table.c.id)
                        .where(same)
                        .order_by(table.c.id.desc())
                        .offset(number)
                        .limit(1)
                    ).scalar()
                    if edge is not None:
                        result = conn.execute(
                            table.delete().where(same, table.c.id <= edge)
                        )
                        removed += int(result.rowcount or 0)
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(
                f"cannot clean the monitoring store {self.where}: {_describe(exc)}"
            ) from exc
        return removed
