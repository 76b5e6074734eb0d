"""Run Alembic migrations programmatically (``aftersale db upgrade``)."""

from __future__ import annotations

import logging
from pathlib import Path

# Alembic announces at INFO each plugin it sets up on import: noise at every worker start.
# Set before the import below, which is when it happens.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

from alembic import command  # noqa: E402
from alembic.config import Config as AlembicConfig  # noqa: E402

from aftersale.store.db import make_engine, normalize_url  # noqa: E402

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalize_url(database_url).replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


class SchemaNotCurrent(Exception):
    """The database has no Aftersale schema, or an older one than this code needs."""

    def __init__(self, current: str | None, head: str):
        self.current, self.head = current, head
        if current is None:
            message = "the database has no Aftersale tables"
        else:
            message = f"the database schema is at revision {current}, this version needs {head}"
        super().__init__(message)


def require_current(engine) -> None:
    """At process start: the schema exists and is not older than this code.

    A database at a revision this code does not know (newer code migrated it, e.g. during a
    rollback) is let through: its tables are a superset of what this code uses.

    Raises:
        SchemaNotCurrent: run ``aftersale db upgrade``.
        sqlalchemy.exc.OperationalError: the database cannot be reached.
    """
    # deferred import: Alembic is needed only by the db commands and start-up checks
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    with engine.connect() as conn:
        found = MigrationContext.configure(conn).get_current_revision()
    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    if found == head:
        return
    if found is None:
        raise SchemaNotCurrent(None, head)
    try:
        known = script.get_revision(found) is not None
    except CommandError:
        known = False
    if known:
        raise SchemaNotCurrent(found, head)


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def current(database_url: str) -> str | None:
    # deferred import: Alembic is needed only by the db commands
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
