"""``aftersale db``: schema migrations."""

from __future__ import annotations

import click

from aftersale.cli import pass_context


@click.group("db")
def db():
    """Create or migrate the database schema (Alembic)."""


@db.command("upgrade")
@click.argument("revision", default="head")
@pass_context
def upgrade(ctx, revision):
    """Migrate the database to REVISION (default: the newest)."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.store import migrate

    migrate.upgrade(ctx.config.database_url, revision)
    click.echo(
        f"database at revision {migrate.current(ctx.config.database_url)} ({_safe(ctx.config.database_url)})"
    )


@db.command("downgrade")
@click.argument("revision")
@pass_context
def downgrade(ctx, revision):
    """Migrate the database back to REVISION ("base" removes every table)."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.store import migrate

    migrate.downgrade(ctx.config.database_url, revision)
    click.echo(f"database at revision {migrate.current(ctx.config.database_url)}")


@db.command("current")
@pass_context
def current(ctx):
    """Show the schema revision of the database."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.store import migrate

    click.echo(migrate.current(ctx.config.database_url) or "empty (run: aftersale db upgrade)")


def _safe(url: str) -> str:
    """The URL without its password, for printing."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def register(group: click.Group) -> None:
    group.add_command(db)
