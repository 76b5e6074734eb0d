"""``aftersale reconcile`` and ``aftersale backfill``: asking the platform for what webhooks missed.

Both walk a shop's orders through its platform's API (workers/reconcile.py)
and feed them through the same pipeline as webhooks. Long runs show a
progress bar on a terminal and progress log lines otherwise.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import click

from aftersale.cli import pass_context

HISTORY_DEFAULT = timedelta(days=730)


def _console():
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)


def _shop_id(runtime, domain: str) -> int:
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from sqlalchemy import func, select

    from aftersale.store.tables import shops

    with runtime.engine.connect() as conn:
        row = conn.execute(
            select(shops.c.id, shops.c.status).where(
                func.lower(shops.c.domain) == domain.strip().lower()
            )
        ).first()
    if row is None:
        raise click.ClickException(f"no shop {domain!r}; `aftersale shops list` shows the shops")
    if row.status != "active":
        raise click.ClickException(f"shop {domain} is {row.status}: nothing to ask its platform")
    return row.id


@contextmanager
def _progress(what: str):
    """A callback(orders so far, last change) drawing a bar on a terminal; log lines otherwise
    (the run itself logs ``reconcile.page`` after each page)."""
    if not sys.stderr.isatty():
        yield None
        return
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True
    ) as bar:
        task = bar.add_task(what, total=None)

        def update(orders: int, last) -> None:
            stamp = last.strftime("%Y-%m-%d %H:%M") if last else "-"
            bar.update(task, description=f"{what}: {orders} orders (changed up to {stamp})")

        yield update


def _parse_since(value: str | None, default: timedelta | None) -> datetime | None:
    if value is None:
        return datetime.now(UTC) - default if default else None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2026-10-01") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@click.command("reconcile")
@click.option("--shop", "domain", required=True, help="the shop's domain")
@click.option("--since", help="start here instead of the stored cursor (a date, UTC)")
@pass_context
def reconcile_command(ctx, domain, since):
    """Ask the platform for orders changed since the last run and process what was missed.

    The scheduler does this every RECONCILE_MINUTES for every shop; this runs it
    now, for one. Orders already received as webhooks produce nothing new.
    """
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.core.errors import DeliveryFailed
    from aftersale.workers.reconcile import Walk, reconcile_shop

    runtime = ctx.runtime
    shop_id = _shop_id(runtime, domain)
    with _progress(f"reconciling {domain}") as progress:
        walk = Walk(since=_parse_since(since, None), progress=progress)
        try:
            summary = reconcile_shop(runtime, shop_id, walk)
        except DeliveryFailed as exc:
            raise click.ClickException(f"{domain}: {exc}") from exc
    click.echo(
        f"{domain}: {summary.orders} orders in {summary.pages} pages; {summary.deliveries} "
        f"new deliveries, {summary.events} new events, {summary.actions} actions planned; "
        f"cursor {summary.cursor or '-'}"
    )


@click.command("backfill")
@click.option("--shop", "domain", required=True, help="the shop's domain")
@click.option("--since", help="orders changed since this date, e.g. 2026-10-01 (UTC)")
@click.option("--rule", "rule_name", help="judge by this rule only")
@click.option("--dry-run", is_flag=True, help="count what each rule would do; store nothing")
@click.option(
    "--history-only",
    is_flag=True,
    help="store past orders as history for customer facts; plan nothing (default: 2 years)",
)
@click.option(
    "--late",
    type=click.Choice(["skip", "send"]),
    default="skip",
    show_default=True,
    help="actions already overdue: skip past the rule's `late` (1h when it has none), or send",
)
@click.option(
    "--catalog/--no-catalog",
    default=True,
    show_default=True,
    help="sync the shop's products first (product types for the orders; recommendations)",
)
@pass_context
def backfill_command(ctx, domain, since, rule_name, dry_run, history_only, late, catalog):
    """Run a shop's past orders through the rules, or into history only.

    Start with --dry-run: it prints, per rule, how many actions the backfill
    would plan, how many of those are already too late to send, and a sample.
    """
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.core.errors import DeliveryFailed
    from aftersale.workers.backfill import run_backfill

    if since is None and not history_only:
        raise click.UsageError("--since is required (it defaults to 2 years with --history-only)")
    start = _parse_since(since, HISTORY_DEFAULT)
    runtime = ctx.runtime
    shop_id = _shop_id(runtime, domain)
    with _progress(f"backfilling {domain}") as progress:
        try:
            report = run_backfill(
                runtime,
                shop_id,
                start,
                rule=rule_name,
                history_only=history_only,
                late=late,
                dry_run=dry_run,
                progress=progress,
                catalog=catalog,
            )
        except DeliveryFailed as exc:
            raise click.ClickException(f"{domain}: {exc}") from exc
    _print_report(report, domain, history_only)


def _print_report(report, domain: str, history_only: bool) -> None:
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from rich.table import Table

    summary = report.summary
    mode = "dry run, nothing stored" if report.dry_run else "done"
    click.echo(
        f"{domain}: {summary.orders} orders since {summary.since} ({mode}); "
        f"{summary.events} new events"
    )
    if history_only:
        click.echo("history only: no rule was asked; customer facts now include these orders")
        return
    table = Table(title="Actions per rule")
    for column in ("rule", "planned", "too late (skipped)", "to send", "sample"):
        table.add_column(column, justify="right" if column in ("planned", "to send") else "left")
    for name, plan in sorted(report.rules.items()):
        sample = "; ".join(
            f"order {s['order']} due {s['due_at']}{' (late)' if s['late'] else ''}"
            for s in plan.sample
        )
        table.add_row(name, str(plan.planned), str(plan.late), str(plan.to_send), sample)
    if not report.rules:
        click.echo("no rule planned anything")
        return
    _console().print(table)


def register(group: click.Group) -> None:
    group.add_command(reconcile_command)
    group.add_command(backfill_command)
