"""``aftersale deliveries list`` and ``deliveries show``: find a webhook without SQL.

``list`` answers "which webhooks failed since yesterday?"; ``show`` follows
one delivery to the events it meant, the rules that did and did not match
them, and the actions they planned. Bodies are never shown (customer data);
``deliveries replay`` (aftersale/cli/actions.py) runs one again.
"""

from __future__ import annotations

from datetime import datetime

import click

from aftersale.cli import pass_context
from aftersale.cli.actions import _console, _row, _when, deliveries_group
from aftersale.store import delivery_queries, why_not
from aftersale.store.deliveries import FINAL, UNPROCESSED

OUTCOMES = [*UNPROCESSED, *FINAL]


def parse_since(value: str | None, now: datetime) -> datetime | None:
    """``--since``: a duration back from now (``2h``, ``7d``) or an ISO date or time (UTC)."""
    if not value:
        return None
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.core.events import parse_time
    from aftersale.rules.durations import parse_duration

    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        moment = parse_time(value)
    except ValueError:
        moment = None
    if moment is None:
        raise click.BadParameter(
            f"{value!r}: give a duration back from now (30m, 2h, 7d) or a date (2026-11-30)",
            param_hint="--since",
        )
    return moment


@deliveries_group.command("list")
@click.option("--shop", help="shop domain, e.g. demo.myshopify.com")
@click.option("--topic", help="platform topic, e.g. orders/paid")
@click.option("--outcome", type=click.Choice(OUTCOMES), help="only deliveries in this state")
@click.option("--since", help="received since: 2h, 7d, or a date (2026-11-30)")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@pass_context
def list_deliveries(ctx, shop, topic, outcome, since, limit):
    """Newest deliveries first (``--outcome failed`` lists the ones processing gave up on)."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from rich.table import Table

    runtime = ctx.runtime
    after = parse_since(since, runtime.clock.now())
    with runtime.engine.connect() as conn:
        found = delivery_queries.search(
            conn, shop=shop, topic=topic, status=outcome, since=after, limit=limit
        )
    table = Table(title=f"{len(found)} delivery(ies)")
    for column in ("id", "shop", "topic", "received", "outcome", "tries", "bytes", "note"):
        table.add_column(column, overflow="fold")
    for d in found:
        _row(
            table,
            str(d.id),
            d.shop_domain,
            d.topic,
            _when(d.received_at),
            d.status,
            str(d.attempts),
            str(d.body_bytes or 0),
            (d.error or "")[:80],
        )
    _console().print(table)


@deliveries_group.command("show")
@click.argument("delivery_id", type=int)
@pass_context
def show_delivery(ctx, delivery_id):
    """One delivery: what came in, the events it meant, rules matched or not, actions planned."""
    runtime = ctx.runtime
    with runtime.engine.connect() as conn:
        found = delivery_queries.summary(conn, delivery_id)
        if found is None:
            raise click.ClickException(f"no delivery {delivery_id}")
        stored = delivery_queries.events_of(conn, delivery_id)
        planned = delivery_queries.actions_of(conn, [e.id for e in stored])
        misses = {e.id: why_not.for_event(conn, e.id) for e in stored}
    console = _console()
    console.print(_delivery_table(found))
    console.print(_events_table(stored, planned, misses))


def _delivery_table(d):
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from rich.table import Table

    table = Table(title=f"delivery {d.id}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    fields = [
        ("shop", f"{d.shop_domain} ({d.platform})"),
        ("topic", d.topic),
        ("webhook id", d.delivery_id or "-"),
        ("platform event id", d.event_id or "-"),
        ("api version", d.api_version or "-"),
        ("triggered", _when(d.triggered_at)),
        ("received", _when(d.received_at)),
        ("outcome", d.status),
        ("attempts", str(d.attempts)),
        ("processed", _when(d.processed_at)),
        ("body", f"{d.body_bytes or 0} bytes" + ("" if d.body_bytes else " (emptied)")),
        ("note", d.error or ""),
    ]
    for name, value in fields:
        _row(table, name, value)
    return table


def _events_table(stored, planned, misses):
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from rich.table import Table

    table = Table(title=f"{len(stored)} event(s)")
    for column in ("event", "kind", "order", "customer", "what followed"):
        table.add_column(column, overflow="fold")
    for event in stored:
        lines = [
            f"action {a.id}: {a.rule} step {a.step} {a.action_type}, {a.status}"
            + (f" ({a.skip_reason})" if a.skip_reason else "")
            for a in planned
            if a.event_id == event.id
        ]
        lines += [
            f"not matched: {m.rule}: {m.check}" + (f"; actual {m.actual}" if m.actual else "")
            for m in misses.get(event.id, [])
        ]
        _row(
            table,
            str(event.id),
            event.kind,
            event.order_ref or "",
            event.customer_ref or "",
            "\n".join(lines) or "nothing followed",
        )
    return table


def register(group: click.Group) -> None:
    """The commands join the ``deliveries`` group that ``actions`` registers (with ``replay``)."""
    group.add_command(deliveries_group)
