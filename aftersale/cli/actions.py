"""``aftersale actions`` and ``aftersale deliveries``: see, retry, cancel and explain actions;
replay a stored webhook.

``actions show ID`` answers "why did this customer get this mail?": the
delivery that came in, the event it meant, the rule that matched, the action
it planned and every attempt to carry it out.
"""

from __future__ import annotations

import sys
from collections import Counter

import click
from sqlalchemy import func, select

from aftersale.cli import pass_context
from aftersale.store import action_queries, planning, why_not
from aftersale.store import actions as action_store
from aftersale.store import deliveries as delivery_store
from aftersale.store import events as event_store
from aftersale.store import messages as message_store
from aftersale.store.actions import ActionStatus
from aftersale.store.tables import actions, events

STATUSES = [s.value for s in ActionStatus]


def _console():
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else ""


@click.group("actions")
def actions_group():
    """List, explain, retry and cancel actions (messages and platform calls)."""


@actions_group.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="only actions in this state")
@click.option("--shop", help="shop domain, e.g. demo.myshopify.com")
@click.option("--order", "order_ref", help="platform order id")
@click.option("--rule", help="rule name")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@pass_context
def list_actions(ctx, status, shop, order_ref, rule, limit):
    """Newest actions first (``--status dead`` lists the dead letters)."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from rich.table import Table

    with ctx.runtime.engine.connect() as conn:
        found = action_queries.search(
            conn, status=status, shop=shop, order_ref=order_ref, rule=rule, limit=limit
        )
    table = Table(title=f"{len(found)} action(s)")
    for column in ("id", "shop", "order", "rule", "step", "status", "when", "tries", "to", "note"):
        table.add_column(column, overflow="fold")
    for a in found:
        status_text = a.status + (f" ({a.skip_reason})" if a.skip_reason else "")
        when = a.finished_at if a.status in [s.value for s in action_store.FINAL] else a.due_at
        note = a.last_error if a.status != "sent" else (a.subject or a.provider_id or "")
        _row(
            table,
            str(a.id),
            a.shop_domain,
            a.order_ref or "",
            a.rule,
            f"{a.step}:{a.action_type}",
            status_text,
            _when(when),
            f"{a.attempts}/{a.max_attempts}",
            a.recipient or "",
            (note or "")[:80],
        )
    _console().print(table)


def _row(table, *cells: str) -> None:
    """A table row shown as written: errors and params may hold [brackets] rich would eat."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from rich.markup import escape

    table.add_row(*(escape(c) for c in cells))


@actions_group.command("show")
@click.argument("action_id", type=int)
@pass_context
def show(ctx, action_id):
    """Why an action exists and what became of it: delivery -> event -> rule -> action -> attempts."""
    runtime = ctx.runtime
    with runtime.engine.connect() as conn:
        action = action_store.get(conn, action_id)
        if action is None:
            raise click.ClickException(f"no action {action_id}")
        event = event_store.get_event(conn, action.event_id) if action.event_id else None
        delivery = (
            delivery_store.get(conn, event.delivery_id) if event and event.delivery_id else None
        )
        attempts = message_store.for_action(conn, action.id)
        misses = why_not.for_event(conn, event.id) if event is not None else []
    console = _console()
    console.print(f"[bold]action {action.id}[/bold]: {action.action_type} {action.status}")
    for line in _chain(runtime, action, event, delivery):
        console.print(line, markup=False)  # rule text and errors may hold [brackets]
    for miss in misses:  # the rules of this event's kind that did not act, and why
        actual = f"; actual {miss.actual}" if miss.actual else ""
        console.print(f"  -x rule {miss.rule} did not match: {miss.check}{actual}", markup=False)
    console.print(_attempts_table(attempts))


def _chain(runtime, action, event, delivery) -> list[str]:
    lines = []
    if delivery is not None:
        lines.append(
            f"delivery {delivery.id}: {delivery.topic}, webhook {delivery.delivery_id or '-'},"
            f" received {_when(delivery.received_at)}, {delivery.status}"
        )
    if event is not None:
        lines.append(
            f"  -> event {event.id}: {event.kind} (key {event.event_key}),"
            f" occurred {_when(event.occurred_at)}, order {event.order_ref or '-'},"
            f" customer {event.customer_ref or '-'}"
        )
        if ((event.payload or {}).get("source") or {}).get("estimated"):
            lines.append(
                "     estimated: no delivery signal came; the shop's estimated_delivery setting"
                " took the parcel as delivered"
            )
    else:
        lines.append("  -> event: gone (deleted or redacted)")
    lines.append(f"  -> rule {action.rule}: {_rule_text(runtime, action.rule)}")
    lines.append(f"     {_version_text(runtime, action)}")
    lines.append(
        f"  -> action {action.id}: step {action.step} {action.action_type} {action.params},"
        f" {action.category}, once key {action.once_key}"
    )
    status = action.status + (f" ({action.skip_reason})" if action.skip_reason else "")
    times = [
        ("due", action.due_at),
        ("started", action.started_at),
        ("finished", action.finished_at),
    ]
    when = ", ".join(f"{name} {_when(moment)}" for name, moment in times if moment)
    lines.append(f"     status {status}; {when}; attempts {action.attempts}/{action.max_attempts}")
    if action.recipient or action.subject:
        lines.append(f"     to {action.recipient or '-'}: {action.subject or ''}")
    if action.provider_id:
        lines.append(f"     provider id {action.provider_id}")
    if action.result:
        lines.append(f"     result {action.result}")
    if action.last_error:
        lines.append(f"     last error: {action.last_error}")
    return lines


def _version_text(runtime, action) -> str:
    """Which version of the rule planned the action, and whether it is the one loaded now."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.rules import RulesInvalid

    planned = action.rule_version or "unknown"
    try:
        rule = runtime.rules.get(action.rule)
    except RulesInvalid:
        rule = None
    if rule is None:
        now = f"rule removed; on_disable {action.on_disable or 'drain'}"
    elif rule.version == action.rule_version:
        now = "the version loaded now" + ("" if rule.enabled else f", disabled ({rule.on_disable})")
    else:
        now = f"changed since: version {rule.version} is loaded now"
    extra = ""
    if action.digest:
        extra = f"; digest of {len(action.digest.get('events') or ())} event(s)"
    return f"planned by rule version {planned} ({now}){extra}"


def _rule_text(runtime, name: str) -> str:
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.rules import RulesInvalid

    try:
        rule = runtime.rules.get(name)
    except RulesInvalid:
        return "(the rules folder has errors; run `aftersale rules check`)"
    if rule is None:
        return "(no longer in the rules folder)"
    wait = f", wait {rule.wait}" if rule.wait else ""
    return (
        f"{rule.description or ''} [{rule.source}, {rule.category}, once per {rule.once_per}{wait}]"
    )


def _attempts_table(attempts):
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from rich.table import Table

    table = Table(title=f"{len(attempts)} attempt(s)")
    for column in ("#", "at", "channel", "status", "code", "ms", "provider id", "error / answer"):
        table.add_column(column, overflow="fold")
    for m in attempts:
        _row(
            table,
            str(m.attempt),
            _when(m.created_at),
            m.channel,
            m.status,
            str(m.status_code or ""),
            str(m.duration_ms if m.duration_ms is not None else ""),
            m.provider_id or m.message_id or "",
            (m.error or m.response or "")[:200],
        )
    return table


@actions_group.command("retry")
@click.argument("action_ids", nargs=-1, type=int)
@click.option("--all-dead", is_flag=True, help="retry every dead letter")
@pass_context
def retry(ctx, action_ids, all_dead):
    """Run failed or dead actions again now, with a fresh round of attempts."""
    if bool(action_ids) == all_dead:
        raise click.UsageError("give action ids or --all-dead (not both)")
    runtime = ctx.runtime
    with runtime.engine.begin() as conn:
        retried = action_store.retry(conn, None if all_dead else action_ids, runtime.clock.now())
    missing = sorted(set(action_ids) - set(retried))
    if retried:
        click.echo(
            f"{len(retried)} action(s) due again now: {', '.join(map(str, retried[:20]))}"
            + (" ..." if len(retried) > 20 else "")
            + "; the scheduler hands them to a worker"
        )
    if missing:
        click.echo(
            f"not retried (unknown, or not failed/dead): {', '.join(map(str, missing))}", err=True
        )
        sys.exit(1)
    if not retried:
        click.echo("nothing to retry")


@actions_group.command("cancel")
@click.argument("action_id", type=int, required=False)
@click.option("--reason", default="cancelled by an operator", show_default=True)
@click.option("--rule", "rule_name", help="cancel every pending action of this rule")
@click.option("--shop", help="with --rule: only this shop's (its domain)")
@click.option("--dry-run", is_flag=True, help="with --rule: only count what would be cancelled")
@pass_context
def cancel(ctx, action_id, reason, rule_name, shop, dry_run):
    """Cancel a pending action (scheduled, waiting or queued), or with ``--rule NAME`` all of
    a rule's; they are skipped as ``cancelled``."""
    if (action_id is None) == (rule_name is None):
        raise click.UsageError("give an action id or --rule NAME (not both)")
    if rule_name is None and (shop or dry_run):
        raise click.UsageError("--shop and --dry-run go with --rule")
    if rule_name is not None:
        _cancel_rule(ctx.runtime, rule_name, shop, dry_run, reason)
        return
    runtime = ctx.runtime
    with runtime.engine.begin() as conn:
        done = action_store.cancel(conn, action_id, runtime.clock.now(), reason)
        action = action_store.get(conn, action_id)
    if action is None:
        raise click.ClickException(f"no action {action_id}")
    if not done:
        raise click.ClickException(
            f"action {action_id} is {action.status}: only scheduled, waiting or queued actions"
            " can be cancelled"
        )
    click.echo(f"action {action_id} cancelled")


def _cancel_rule(runtime, rule_name: str, shop: str | None, dry_run: bool, reason: str) -> None:
    """Bulk cancel: the count first (per shop), then cancel unless it is a dry run."""
    now = runtime.clock.now()
    with runtime.engine.begin() as conn:
        pending = action_queries.pending_for_rule(conn, rule_name, shop)
        per_shop = Counter(row.domain for row in pending)
        where = f" in {shop}" if shop else ""
        click.echo(f"{len(pending)} pending action(s) of rule {rule_name}{where}")
        for domain, number in sorted(per_shop.items()):
            click.echo(f"  {domain}: {number}")
        if dry_run or not pending:
            click.echo("dry run: nothing cancelled" if dry_run else "nothing to cancel")
            return
        done = planning.skip_pending(
            conn, [row.id for row in pending], now, "cancelled", f"{reason} (rule {rule_name})"
        )
    click.echo(f"{len(done)} action(s) cancelled")
    if len(done) < len(pending):
        click.echo(f"{len(pending) - len(done)} started or finished meanwhile; left as they are")


@click.group("deliveries")
def deliveries_group():
    """Stored webhook deliveries."""


@deliveries_group.command("replay")
@click.argument("delivery_id", type=int)
@pass_context
def replay(ctx, delivery_id):
    """Run a stored webhook through normalization and rules again (idempotent).

    Events already stored and actions already planned are not repeated, so a
    replay only adds what an earlier failed or changed run missed.
    """
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.workers.processing import process_delivery

    runtime = ctx.runtime
    with runtime.engine.begin() as conn:
        found = delivery_store.reopen(conn, delivery_id, runtime.clock.now())
        before = _counts(conn, found.shop_id) if found else None
    if found is None:
        raise click.ClickException(f"no delivery {delivery_id}")
    try:
        status = process_delivery(runtime, delivery_id)
    except Exception as exc:  # recorded on the delivery by process_delivery; say so and fail
        raise click.ClickException(f"delivery {delivery_id} failed again: {exc}") from exc
    with runtime.engine.connect() as conn:
        after = _counts(conn, found.shop_id)
    click.echo(
        f"delivery {delivery_id} ({found.topic}): {status};"
        f" {after[0] - before[0]} new event(s), {after[1] - before[1]} new action(s)"
    )


def _counts(conn, shop_id: int) -> tuple[int, int]:
    return (
        conn.execute(select(func.count()).where(events.c.shop_id == shop_id)).scalar_one(),
        conn.execute(select(func.count()).where(actions.c.shop_id == shop_id)).scalar_one(),
    )


def register(group: click.Group) -> None:
    group.add_command(actions_group)
    group.add_command(deliveries_group)
