"""``aftersale status``: is it running, and is anything stuck? One screen, per shop.

Read from what the processes leave behind (heartbeats and RQ queues in
Redis, deliveries and actions in the database), so it works from any
machine that has the settings, whether or not anything runs there.
"""

from __future__ import annotations

import sys

import click
from redis.exceptions import RedisError

from aftersale.cli import pass_context
from aftersale.cli.actions import _console, _row, _when


@click.command("status")
@pass_context
def status(ctx):
    """Queues, workers and scheduler alive, and per shop: last webhook, actions due, failed
    and dead in the last hour, the last reconcile run and what it repaired. Exits 1 when no
    worker or no scheduler is alive."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from rich.table import Table

    from aftersale.store import heartbeats, monitoring

    runtime = ctx.runtime
    now = runtime.clock.now()
    console = _console()
    try:
        depths = monitoring.queue_depths(runtime)
        beats = heartbeats.alive(runtime)
    except RedisError as exc:
        depths, beats = {}, {}
        console.print(f"Redis: unreachable ({type(exc).__name__})", markup=False)
    with runtime.engine.connect() as conn:
        shops = monitoring.shop_statuses(conn, now)
        oldest = monitoring.oldest_pending_age(conn, now)
        late = monitoring.due_not_dispatched(conn, now)
    processes = Table(title="processes and queues", show_header=False)
    processes.add_column("what", style="bold")
    processes.add_column("state", overflow="fold")
    for role in heartbeats.ROLES:
        found = beats.get(role, [])
        names = ", ".join(f"{b.name} ({b.host}, pid {b.pid})" for b in found)
        _row(processes, f"{role}s alive", f"{len(found)}" + (f": {names}" if names else ""))
    for purpose, depth in depths.items():
        _row(processes, f"queue {purpose}", f"{depth} job(s) waiting")
    _row(processes, "oldest pending delivery", f"{int(oldest)} s" if oldest else "none waiting")
    _row(processes, "actions due, not dispatched", str(late))
    console.print(processes)
    table = Table(title=f"{len(shops)} shop(s)")
    for column in (
        "shop",
        "platform",
        "state",
        "last webhook",
        "deliveries pending",
        "actions due",
        "failed 1h",
        "dead 1h",
        "last reconcile",
    ):
        table.add_column(column, overflow="fold")
    for shop in shops:
        _row(
            table,
            shop.domain,
            shop.platform,
            shop.status,
            _when(shop.last_webhook) or "never",
            str(shop.pending_deliveries),
            str(shop.actions_due),
            str(shop.failed_last_hour),
            str(shop.dead_last_hour),
            _reconcile(shop),
        )
    console.print(table)
    if not all(beats.get(role) for role in heartbeats.ROLES):
        sys.exit(1)


def _reconcile(shop) -> str:
    """The last reconcile run: when, and what it found or repaired (docs/reconcile.md)."""
    if shop.reconcile_status is None:
        return "never"
    summary = shop.reconcile_summary or {}
    if shop.reconcile_status == "running" or shop.reconciled_at is None:
        return "running"
    text = f"{_when(shop.reconciled_at)} {shop.reconcile_status}"
    if summary.get("error"):
        return f"{text}: {summary['error']}"
    text += f": {summary.get('orders', 0)} orders, {summary.get('events', 0)} missed events"
    if summary.get("repaired"):
        text += f"; webhooks repaired: {', '.join(summary['repaired'])}"
    return text


def register(group: click.Group) -> None:
    group.add_command(status)
