"""SQLite persistence of ``persistent`` topics.

One file holds the durable subscriptions and, for each message not yet
acked by every subscription, the message and the subscriptions that still
owe an ack. The database runs in WAL mode with ``synchronous=NORMAL``: a
commit survives a crash of the broker process; a power loss may lose the
last commits (the SQLite documentation, "WAL mode"). Each produced message
is committed before the producer gets its ``ok`` ack.

SQLite errors never leave this module raw: they become
:class:`~dasf_geo.exceptions.BrokerError` naming the file.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from dasf_geo.broker.model import Message
from dasf_geo.exceptions import BrokerError

__all__ = ["MessageStore"]

_SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dasf_geo_broker (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS subscriptions (
    topic TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,
    PRIMARY KEY (topic, name)
);
CREATE TABLE IF NOT EXISTS messages (
    topic TEXT NOT NULL, seq INTEGER NOT NULL, message_id TEXT NOT NULL,
    payload BLOB NOT NULL, properties BLOB NOT NULL, publish_time TEXT NOT NULL,
    context BLOB, key BLOB,
    PRIMARY KEY (topic, seq)
);
CREATE TABLE IF NOT EXISTS pending (
    topic TEXT NOT NULL, subscription TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (topic, subscription, seq)
);
"""


class MessageStore:
    """Messages of persistent topics in an SQLite file.

    Args:
        path: the database file; created (with its directory) if missing.

    Raises:
        BrokerError: the file cannot be opened or is not a broker store.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            if self.path.is_dir():
                raise BrokerError(
                    f"the message store {self.path} is a directory: give a file "
                    "path such as broker.sqlite"
                )
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # the broker's event loop thread is the only user, but it may not
            # be the thread that opened the store
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute(
                "SELECT value FROM dasf_geo_broker WHERE key='schema'"
            ).fetchone()
            if row is None:
                self._db.execute(
                    "INSERT INTO dasf_geo_broker VALUES ('schema', ?)",
                    (str(_SCHEMA_VERSION),),
                )
            elif row[0] != str(_SCHEMA_VERSION):
                raise BrokerError(
                    f"the message store {self.path} has schema version {row[0]}; "
                    f"this broker reads version {_SCHEMA_VERSION}: use another "
                    "--store file"
                )
        except sqlite3.Error as exc:
            raise BrokerError(
                f"cannot open the message store {self.path}: {exc} (is it an "
                "SQLite file written by dasf-geo broker? give another --store path)"
            ) from exc
        except OSError as exc:
            raise BrokerError(
                f"cannot open the message store {self.path}: {exc}"
            ) from exc

    def _write(
        self, what: str, statements: list[tuple[str, tuple[object, ...]]]
    ) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    self._db.execute(sql, args)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise BrokerError(
                f"the message store {self.path} failed to {what}: {exc}"
            ) from exc

    def add_subscription(self, topic: str, name: str, sub_type: str) -> None:
        """Record a durable subscription (idempotent).

        Raises:
            BrokerError: the write failed.
        """
        self._write(
            "record a subscription",
            [
                (
                    "INSERT OR REPLACE INTO subscriptions VALUES (?, ?, ?)",
                    (topic, name, sub_type),
                )
            ],
        )

    def delete_subscription(self, topic: str, name: str) -> None:
        """Forget a subscription and the acks it owes.

        Raises:
            BrokerError: the write failed.
        """
        self._write(
            "delete a subscription",
            [
                ("DELETE FROM subscriptions WHERE topic=? AND name=?", (topic, name)),
                (
                    "DELETE FROM pending WHERE topic=? AND subscription=?",
                    (topic, name),
                ),
                (
                    "DELETE FROM messages WHERE topic=? AND seq NOT IN "
                    "(SELECT seq FROM pending WHERE topic=?)",
                    (topic, topic),
                ),
            ],
        )

    def add_message(
        self, topic: str, message: Message, subscriptions: list[str]
    ) -> None:
        """Store ``message`` as owed to ``subscriptions`` (nothing if empty).

        Raises:
            BrokerError: the write failed; the message must not be acked.
        """
        if not subscriptions:
            return
        statements: list[tuple[str, tuple[object, ...]]] = [
            (
                "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    topic,
                    message.seq,
                    message.message_id,
                    message.payload,
                    message.properties,
                    message.publish_time,
                    message.context,
                    message.key,
                ),
            )
        ]
        statements += [
            ("INSERT INTO pending VALUES (?, ?, ?)", (topic, name, message.seq))
            for name in subscriptions
        ]
        self._write("store a message", statements)

    def ack(self, topic: str, subscription: str, seq: int) -> None:
        """Record that ``subscription`` acked message ``seq`` of ``topic``.

        The message is deleted once no subscription owes an ack.

        Raises:
            BrokerError: the write failed.
        """
        self._write(
            "record an ack",
            [
                (
                    "DELETE FROM pending WHERE topic=? AND subscription=? AND seq=?",
                    (topic, subscription, seq),
                ),
                (
                    "DELETE FROM messages WHERE topic=? AND seq=? AND NOT EXISTS "
                    "(SELECT 1 FROM pending WHERE topic=? AND seq=?)",
                    (topic, seq, topic, seq),
                ),
            ],
        )

    def subscriptions(self) -> list[tuple[str, str, str]]:
        """All durable subscriptions as ``(topic, name, type)``.

        Raises:
            BrokerError: the read failed.
        """
        try:
            return [
                (str(t), str(n), str(k))
                for t, n, k in self._db.execute(
                    "SELECT topic, name, type FROM subscriptions ORDER BY topic, name"
                )
            ]
        except sqlite3.Error as exc:
            raise BrokerError(
                f"the message store {self.path} cannot be read: {exc}"
            ) from exc

    def messages(self) -> Iterator[tuple[str, Message, list[str]]]:
        """Stored messages in order, each with the subscriptions owing an ack.

        Raises:
            BrokerError: the read failed.
        """
        try:
            rows = self._db.execute(
                "SELECT m.topic, m.seq, m.message_id, m.payload, m.properties, "
                "m.publish_time, m.context, m.key, group_concat(p.subscription, "
                "char(10)) FROM messages m JOIN pending p "
                "ON p.topic = m.topic AND p.seq = m.seq "
                "GROUP BY m.topic, m.seq ORDER BY m.topic, m.seq"
            ).fetchall()
        except sqlite3.Error as exc:
            raise BrokerError(
                f"the message store {self.path} cannot be read: {exc}"
            ) from exc
        for topic, seq, mid, payload, props, ptime, context, key, subs in rows:
            message = Message(
                seq=int(seq),
                message_id=str(mid),
                payload=bytes(payload),
                properties=bytes(props),
                publish_time=str(ptime),
                context=None if context is None else bytes(context),
                key=None if key is None else bytes(key),
            )
            yield str(topic), message, str(subs).split("\n")

    def close(self) -> None:
        """Close the database (idempotent)."""
        db = getattr(self, "_db", None)
        if db is not None:
            self._db = None  # type: ignore[assignment]
            db.close()
