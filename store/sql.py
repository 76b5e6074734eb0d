"""The few statements whose syntax differs between SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection


def insert_ignore(conn: Connection, table: Table):
    """``INSERT ... ON CONFLICT DO NOTHING``: a row that hits any unique key is skipped."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def upsert(conn: Connection, table: Table, keys: list[str], update: list[str]):
    """``INSERT ... ON CONFLICT (keys) DO UPDATE SET`` the ``update`` columns from the new row."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    return stmt.on_conflict_do_update(
        index_elements=keys, set_={c: stmt.excluded[c] for c in update}
    )


def for_update(conn: Connection, select_stmt, *, skip_locked: bool = False):
    """Row locks on PostgreSQL; SQLite's BEGIN IMMEDIATE already serializes writers."""
    if conn.dialect.name == "postgresql":
        return select_stmt.with_for_update(skip_locked=skip_locked)
    return select_stmt


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
