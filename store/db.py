"""Engines for SQLite and PostgreSQL, tuned for a write-heavy inbox.

SQLite runs in WAL mode with ``BEGIN IMMEDIATE`` transactions: a transaction
takes the write lock when it starts, so two processes never deadlock while
upgrading a read lock (``database is locked`` despite a busy timeout), and
``synchronous=NORMAL`` keeps a commit durable against a process crash (not
against power loss: use PostgreSQL for that).

Writers of one SQLite file also queue on an ``flock`` of ``<database>.lock``
before they begin. SQLite's own busy handler polls with sleeps that grow to
100 ms, so two web workers contending for the file wasted most of their
time asleep (commits of a few ms took up to half a second under load); a
kernel lock hands over the moment the holder commits.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _json_serializer(value) -> str:
    return orjson.dumps(value, default=str).decode()


#: every engine: JSON through orjson, and statement parameters (customer emails, phones,
#: names) kept out of the text of every database error, so it can be logged and stored
JSON_OPTIONS = {
    "json_serializer": _json_serializer,
    "json_deserializer": orjson.loads,
    "hide_parameters": True,
}


def normalize_url(url: str) -> str:
    """Accept ``postgres://`` and ``postgresql://`` and use the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"connect_timeout": 5},
        **JSON_OPTIONS,
    )


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        poolclass=NullPool if not database or database == ":memory:" else None,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        **JSON_OPTIONS,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy's "begin" event below issue BEGIN, not pysqlite.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    lock_path = f"{database}.lock" if database and database != ":memory:" else None

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        if lock_path:
            _lock(connection, lock_path)
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            _unlock(connection)
            raise

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _on_end(connection):
        _unlock(connection)

    return engine


def _lock(connection, path: str) -> None:
    """Wait for this database's write lock (one file descriptor per pooled connection)."""
    info = connection.connection.info
    fd = info.get("aftersale_lock_fd")
    if fd is None:
        fd = info["aftersale_lock_fd"] = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    info["aftersale_locked"] = True


def _unlock(connection) -> None:
    info = connection.connection.info
    if info.pop("aftersale_locked", False):
        fcntl.flock(info["aftersale_lock_fd"], fcntl.LOCK_UN)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"
