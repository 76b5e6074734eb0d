"""``aftersale db``: schema migrations."""

from __future__ import annotations

import sys

import click

from aftersale.cli import pass_context
from aftersale.core.config import mask_url


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
        f"database at revision {migrate.current(ctx.config.database_url)}"
        f" ({mask_url(ctx.config.database_url)})"
    )


@db.command("downgrade")
@click.argument("revision")
@click.option("--yes", "-y", is_flag=True, help="do not ask for confirmation")
@pass_context
def downgrade(ctx, revision, yes):
    """Migrate the database back to REVISION ("base" removes every table).

    Asks first, on a terminal; elsewhere (a script, CI) pass --yes.
    """
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.store import migrate

    url = ctx.config.database_url
    if not yes:
        loses = (
            "removes every Aftersale table and all their data"
            if revision == "base"
            else "may drop tables and columns, and the data in them"
        )
        where = f"{mask_url(url)}, now at revision {migrate.current(url) or 'none'}"
        if not sys.stdin.isatty():
            raise click.ClickException(
                f"`aftersale db downgrade {revision}` {loses} ({where}).\n"
                "  No terminal to ask on: pass --yes to go ahead."
            )
        click.confirm(f"Downgrade {where} to {revision}? This {loses}", abort=True)
    migrate.downgrade(url, revision)
    click.echo(f"database at revision {migrate.current(url) or 'none (empty)'}")


@db.command("current")
@pass_context
def current(ctx):
    """Show the schema revision of the database."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.store import migrate

    click.echo(migrate.current(ctx.config.database_url) or "empty (run: aftersale db upgrade)")


def register(group: click.Group) -> None:
    group.add_command(db)
