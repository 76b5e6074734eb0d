"""``aftersale rules``: check rule files before they go live."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from aftersale.cli import pass_context
from aftersale.core import logs


@click.group("rules")
def rules_group():
    """Validate and try out rule files."""


@rules_group.command("check")
@click.argument("folder", required=False, type=click.Path(path_type=Path))
@pass_context
def check(ctx, folder):
    """Validate every rule file in FOLDER (default: RULES_DIR); exit 1 on any error."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from rich.console import Console
    from rich.table import Table

    from aftersale.rules import RulesInvalid
    from aftersale.runtime import Runtime
    from aftersale.workers.template_check import load_rules_checked

    source = "" if folder else " (RULES_DIR)"
    folder = folder or ctx.config.rules_dir
    runtime = Runtime(ctx.config.replace(rules_dir=folder))
    console = Console(width=None if sys.stdout.isatty() else 200)
    try:
        ruleset = load_rules_checked(folder, runtime.template_dirs)
    except RulesInvalid as exc:
        for error in exc.errors:
            click.echo(str(error), err=True)
        click.echo(f"{len(exc.errors)} error(s); nothing loaded from {folder}{source}", err=True)
        sys.exit(1)
    table = Table(title=f"{len(ruleset.rules)} rules in {folder}")
    for column in ("event", "rule", "category", "wait", "steps", "source"):
        table.add_column(column)
    from aftersale.rules.durations import format_duration

    for kind in sorted(ruleset.by_kind):
        for rule in ruleset.by_kind[kind]:
            steps = ", ".join(
                f"{s.type}:{s.params.get('template', '')}".rstrip(":") for s in rule.steps
            )
            when = format_duration(rule.wait)
            if rule.wait_fallback is not None:  # wait: {until: repurchase_due, ...}
                before = format_duration(-rule.wait)
                when = f"repurchase due - {before} (else {format_duration(rule.wait_fallback)})"
            if rule.digest:
                window = format_duration(rule.digest["window"])
                when += f"; digest {window} per {rule.digest['key']}"
            if rule.send_at:
                when += f"; send_at {rule.send_at.describe()}"
            table.add_row(kind, rule.name, rule.category, when, steps, rule.source)
    console.print(table)
    used = sorted(
        {s.params["template"] for r in ruleset.rules for s in r.steps if "template" in s.params}
    )
    console.print(f"templates used: {', '.join(used) or 'none'}")
    # deferred import: only ``check`` warns about fields a platform never fills
    from aftersale.rules.field_coverage import unfilled_field_warnings

    warnings = unfilled_field_warnings(folder)
    for warning in warnings:
        click.echo(str(warning), err=True)
    console.print(f"[green]OK[/green]{f' ({len(warnings)} warning(s))' if warnings else ''}")


@rules_group.command("test")
@click.option(
    "--event",
    "event_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="a webhook payload file (repeat, or use --sequence)",
)
@click.option(
    "--sequence",
    "as_sequence",
    is_flag=True,
    help="FILES are one story, in the order they arrive (always the case; for readability)",
)
@click.argument("sequence", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--platform", type=click.Choice(["shopify", "woocommerce"]), help="default: guessed")
@click.option("--topic", help="e.g. orders/create or order.updated (default: from the file)")
@click.option("--at", "at_text", help="evaluate as if now were this time (ISO 8601, UTC)")
@click.option(
    "--history",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="folder of earlier payloads, replayed first (state only, not shown)",
)
@click.option("--rules", "folder", type=click.Path(path_type=Path), help="default: RULES_DIR")
@click.option(
    "--database",
    "use_database",
    is_flag=True,
    help="read history, consent and earlier actions from DATABASE_URL (rolled back, never written)",
)
@click.option("--shop", help="the shop whose stored history --database reads (its domain)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@pass_context
def test(
    ctx,
    event_files,
    as_sequence,
    sequence,
    platform,
    topic,
    at_text,
    history,
    folder,
    use_database,
    shop,
    as_json,
):
    """Run real payloads (--event FILE, or FILES in order) through the production pipeline.

    The same code a worker runs on a delivery, on a transaction rolled back at
    the end: an in-memory database by default, or the configured one with
    --database (then history facts, consent, once-per keys and pending actions
    of --shop are production's). Nothing is sent, committed or enqueued.

    Prints, for every event, each rule listening to it: matched, or WHY not (the
    first failing condition and the value it saw); the actions that would be
    planned with due times and rendered subjects; and what later events cancel.
    """
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    import json as json_module

    from aftersale.core.events import parse_time
    from aftersale.rules import RulesInvalid
    from aftersale.rules.simulate import SimulationError, simulate
    from aftersale.runtime import Runtime
    from aftersale.workers.template_check import load_rules_checked

    # The pipeline logs what it plans, as in a worker; here the report says it instead.
    logs.configure("WARNING", "console", stream=sys.stderr)
    files = [*event_files, *sequence]
    if not files:
        raise click.UsageError("give at least one --event FILE (or --sequence F1 F2 ...)")
    folder = folder or ctx.config.rules_dir
    runtime = Runtime(ctx.config.replace(rules_dir=folder))
    try:
        ruleset = load_rules_checked(folder, runtime.template_dirs)
    except RulesInvalid as exc:
        for error in exc.errors:
            click.echo(str(error), err=True)
        raise click.ClickException(f"{len(exc.errors)} error(s) in {folder}") from exc
    try:
        at = parse_time(at_text) if at_text else None
    except ValueError as exc:
        raise click.BadParameter(f"not a time: {at_text!r}", param_hint="--at") from exc
    past = (
        sorted(p for p in history.glob("*.json") if not p.name.endswith(".headers.json"))
        if history
        else []
    )
    try:
        outcomes, seen = simulate(
            ruleset,
            files,
            at=at,
            history=past,
            platform=platform,
            topic=topic,
            render=_subject_renderer(runtime, ruleset),
            database_url=ctx.config.database_url if use_database else None,
            shop=shop,
            secret_keys=ctx.config.secret_keys,
        )
    except SimulationError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(
            json_module.dumps(
                {
                    "rules": str(folder),
                    "history_events": seen,
                    "files": [
                        {
                            "file": o.file,
                            "topic": o.topic,
                            "outcome": o.outcome,
                            "events": [e.as_dict() for e in o.events],
                        }
                        for o in outcomes
                    ],
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    _print_simulation(outcomes, seen, folder)


def _subject_renderer(runtime, ruleset):
    """(subject, recipient) of an email step, rendered as the worker would (sample links)."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.workers.message_links import MessageLinks
    from aftersale.workers.previews import template_context
    from aftersale.workers.render import Renderer, message_locales

    renderer = Renderer(runtime.template_dirs)
    settings = ruleset.settings

    def render(planned, event):
        context = template_context(
            event,
            settings.shop_name or event.shop,
            planned.rule.name,
            settings.timezone,
            shop_names=settings.shop_name_by_language,
        )
        links = MessageLinks.sample(
            runtime.link_signer,
            settings.storefront,
            platform=(event.source or {}).get("platform") or "shopify",
            domain=event.shop,
            category=planned.rule.category,
            reply_to=settings.reply_to,
        )
        locales = message_locales(context, settings.default_locale)
        rendered = renderer.render(planned.step.params["template"], context, locales, links)
        recipient = (event.customer or {}).get("email") or (event.order or {}).get("email")
        return rendered.subject, recipient

    return render


def _print_simulation(outcomes, seen: int, folder) -> None:
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 200, highlight=False)
    console.print(f"rules: {folder}" + (f"; history: {seen} earlier event(s)" if seen else ""))
    number = 0
    for outcome in outcomes:
        if not outcome.events:
            console.print(f"\n{outcome.file} ({outcome.topic}): no event - {outcome.outcome}")
            continue
        for sim in outcome.events:
            number += 1
            console.print(
                f"\n[bold]{number}. {sim.event.kind}[/bold] (key {sim.event.key})"
                f" at {sim.event.occurred_at:%Y-%m-%d %H:%M} UTC"
                f"  [dim]{outcome.file} {outcome.topic}[/dim]"
            )
            if sim.repeated:
                console.print("   repeated: this event was already handled; nothing new planned")
            for step in sim.cancelled:
                console.print(f"   [yellow]cancels[/yellow] {step.rule}: {step.step}")
            for step in sim.released:
                console.print(
                    f"   [green]ends the wait of[/green] {step.rule}: {step.step},"
                    f" now due {step.due_at:%Y-%m-%d %H:%M} UTC"
                )
            for step in sim.joined:
                console.print(
                    f"   [green]joins the digest of[/green] {step.rule}: {step.step},"
                    f" now {step.digest_events} event(s), due {step.due_at:%Y-%m-%d %H:%M} UTC"
                )
            if not sim.verdicts:
                console.print("   no rule listens to this event")
            for name, matched, reason in sim.verdicts:
                mark = "[green]matched[/green]" if matched else "[red]no[/red]"
                console.print(
                    f"   {mark:<24} {name}" + ("" if matched else f": {reason}"), markup=True
                )
            for step in sim.planned:
                line = f"     -> {step.step} due {step.due_at:%Y-%m-%d %H:%M} UTC"
                if step.waits_for:
                    line = (
                        f"     -> {step.step} waits for {', '.join(sorted(step.waits_for))},"
                        f" at the latest until {step.timeout_at:%Y-%m-%d %H:%M} UTC"
                    )
                if step.subject:
                    line += f' "{step.subject}" to {step.recipient or "(no address)"}'
                if step.skip:
                    line += f" [yellow]would be skipped at send time: {step.skip}[/yellow]"
                if step.problem:
                    line += f" [red]{step.problem}[/red]"
                console.print(line + _promises_text(step), markup=True)
                if step.recheck:
                    colour = "green" if step.recheck == "passes" else "yellow"
                    console.print(
                        f"        re-check of 'if' before sending: [{colour}]{step.recheck}"
                        f"[/{colour}]",
                        markup=True,
                    )


def _promises_text(step) -> str:
    """The slot chosen (local time in the recipient's zone) and whether it is a digest."""
    text = ""
    if step.zone and not step.waits_for:
        # deferred import: only ``rules test`` prints local times
        from zoneinfo import ZoneInfo

        local = step.due_at.astimezone(ZoneInfo(step.zone))
        text += f" [dim](local {local:%a %H:%M} {step.zone})[/dim]"
    if step.digest_events:
        text += f" [dim]digest of {step.digest_events} event(s)[/dim]"
    return text


def register(group: click.Group) -> None:
    group.add_command(rules_group)
