"""The few statements whose syntax differs between SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect


def insert_ignore(conn: Connection, table: Table):
    """``INSERT ... ON CONFLICT DO NOTHING``: a row that hits any unique key is skipped.

    Built once per dialect and table (statements are immutable: ``.values()`` makes a
    copy); building one cost a delivery's processing more than sending it.
    """
    return _insert_ignore(conn.dialect.name == "postgresql", table)


@lru_cache(maxsize=64)
def _insert_ignore(on_postgresql: bool, table: Table):
    dialect = postgresql if on_postgresql else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def insert_returning_id(conn: Connection, table: Table):
    """``insert_ignore(...).returning(id)`` without values: run it with the row as parameters.

    Built once per dialect and table. ``.values(**row)`` made a new statement per
    row, and SQLAlchemy then computed a cache key over every value in it: a
    tenth of a delivery's processing for its three inserts.
    """
    return _insert_returning_id(conn.dialect.name == "postgresql", table)


@lru_cache(maxsize=64)
def _insert_returning_id(on_postgresql: bool, table: Table):
    return _insert_ignore(on_postgresql, table).returning(table.c.id)


def upsert(conn: Connection, table: Table, keys: list[str], update: list[str]):
    """``INSERT ... ON CONFLICT (keys) DO UPDATE SET`` the ``update`` columns from the new row
    (built once per dialect, table and columns, like :func:`insert_ignore`)."""
    return _upsert(conn.dialect.name == "postgresql", table, tuple(keys), tuple(update))


@lru_cache(maxsize=64)
def _upsert(on_postgresql: bool, table: Table, keys: tuple[str, ...], update: tuple[str, ...]):
    dialect = postgresql if on_postgresql else sqlite
    stmt = dialect.insert(table)
    return stmt.on_conflict_do_update(
        index_elements=list(keys), set_={c: stmt.excluded[c] for c in update}
    )


def for_update(conn: Connection, select_stmt, *, skip_locked: bool = False):
    """Row locks on PostgreSQL; SQLite's BEGIN IMMEDIATE already serializes writers."""
    if conn.dialect.name == "postgresql":
        return select_stmt.with_for_update(skip_locked=skip_locked)
    return select_stmt


def pairs_in(first, second, pairs) -> tuple:
    """WHERE clauses for rows whose (``first``, ``second``) is one of ``pairs``: two IN lists
    the (shop, ref) indexes serve, because a row-value IN makes SQLite scan the table. They
    also match crossed pairs (one shop's id with another's ref), so callers keep only the
    pairs they asked for."""
    return (
        first.in_(sorted({a for a, _ in pairs})),
        second.in_(sorted({b for _, b in pairs})),
    )


@contextmanager
def autocommit(conn: Connection) -> Iterator[Connection]:
    """PostgreSQL: each statement in the block is its own transaction (autocommit), with no
    BEGIN and COMMIT round trips around it; afterwards the connection is as it was.

    For a block of reads (under READ COMMITTED each statement has its own snapshot anyway)
    or of one atomic statement. SQLAlchemy still opens a transaction in its bookkeeping;
    it is ended on the way out (a rollback, which in autocommit undoes nothing, since each
    statement committed as it ran) and the connection's isolation level is put back, the
    next user's transactions as before. Use only on PostgreSQL: SQLite's reads and writes
    go through BEGIN IMMEDIATE (store/db.py).
    """
    conn.execution_options(isolation_level="AUTOCOMMIT")
    try:
        yield conn
    finally:
        if conn.in_transaction():
            conn.rollback()
        conn.execution_options(isolation_level=conn.default_isolation_level)


class Locking:
    """A prebuilt SELECT (bind parameters) and its ``FOR UPDATE`` twin, both built once:
    :func:`for_update` for the statements every delivery runs, which build nothing per
    call."""

    def __init__(self, select_stmt):
        self.plain = select_stmt
        self.locking = select_stmt.with_for_update()

    def on(self, conn: Connection):
        """The statement to run on ``conn``: locking on PostgreSQL, as :func:`for_update`."""
        return self.locking if conn.dialect.name == "postgresql" else self.plain


def commit_without_flush_wait(conn: Connection) -> None:
    """PostgreSQL: this transaction's commit does not wait for its WAL to reach the disk.

    Other sessions see it at once and a crash of our process loses nothing;
    only a crash of the database server itself within a fraction of a second
    (``wal_writer_delay``, 200 ms by default) can lose it. Used where losing
    a record costs at most a repeated step, never a lost or invented one.
    SQLite's ``synchronous=NORMAL`` already behaves like this.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


class CompiledInsert:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING key``, compiled once, run on the DBAPI cursor.

    For the hottest statement only (the webhook inbox): SQLAlchemy's work per
    execution (cache key, parameter processing, result set-up, "insertmanyvalues")
    cost three times SQLite's own insert there. Values still go through each
    column type's own bind processor (UTC datetimes, JSON), taken from the
    dialect, so rows are stored exactly as ``conn.execute(insert(...))`` would.
    Runs inside the caller's SQLAlchemy transaction, on its connection.
    """

    def __init__(self, table: Table, columns: Sequence[str], returning: str, dialect: Dialect):
        module = postgresql if dialect.name == "postgresql" else sqlite
        stmt = module.insert(table).on_conflict_do_nothing().returning(table.c[returning])
        compiled = stmt.compile(dialect=dialect, column_keys=list(columns))
        self.sql = compiled.string
        self.names = list(compiled.positiontup) if compiled.positional else None
        self.processors: dict[str, Callable[[Any], Any]] = {}
        for name in columns:
            column_type = table.c[name].type.dialect_impl(dialect)
            processor = column_type.bind_processor(dialect)
            if processor is not None:
                self.processors[name] = processor

    def params(self, row: dict):
        values = {
            name: (proc(row[name]) if (proc := self.processors.get(name)) else row[name])
            for name in row
        }
        return [values[name] for name in self.names] if self.names is not None else values

    def run(self, conn: Connection, rows: Sequence[dict]) -> list:
        """The returned key of each row, None where it hit a unique key (a duplicate)."""
        cursor = conn.connection.driver_connection.cursor()
        try:
            if conn.dialect.name == "postgresql":
                return self._run_pipelined(cursor, rows)
            results = []
            for row in rows:
                cursor.execute(self.sql, self.params(row))
                found = cursor.fetchone()
                results.append(found[0] if found else None)
            return results
        finally:
            cursor.close()

    def _run_pipelined(self, cursor, rows: Sequence[dict]) -> list:
        """psycopg sends every row's statement before reading any answer: one round trip."""
        cursor.executemany(self.sql, [self.params(row) for row in rows], returning=True)
        results = []
        while True:
            found = cursor.fetchone()
            results.append(found[0] if found else None)
            if not cursor.nextset():
                return results
