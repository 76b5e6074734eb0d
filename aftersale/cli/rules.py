"""``aftersale rules``: check rule files before they go live."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from aftersale.cli import pass_context


@click.group("rules")
def rules_group():
    """Validate and try out rule files."""


@rules_group.command("check")
@click.argument("folder", required=False, type=click.Path(path_type=Path))
@pass_context
def check(ctx, folder):
    """Validate every rule file in FOLDER (default: RULES_DIR); exit 1 on any error."""
    from rich.console import Console
    from rich.table import Table

    from aftersale.runtime import Runtime
    from rules import RulesInvalid
    from workers.template_check import load_rules_checked

    folder = folder or ctx.config.rules_dir
    runtime = Runtime(ctx.config.replace(rules_dir=folder))
    console = Console(width=None if sys.stdout.isatty() else 200)
    try:
        ruleset = load_rules_checked(folder, runtime.template_dirs)
    except RulesInvalid as exc:
        for error in exc.errors:
            click.echo(str(error), err=True)
        click.echo(f"{len(exc.errors)} error(s); nothing loaded from {folder}", err=True)
        sys.exit(1)
    table = Table(title=f"{len(ruleset.rules)} rules in {folder}")
    for column in ("event", "rule", "category", "wait", "steps", "source"):
        table.add_column(column)
    from rules.durations import format_duration

    for kind in sorted(ruleset.by_kind):
        for rule in ruleset.by_kind[kind]:
            steps = ", ".join(
                f"{s.type}:{s.params.get('template', '')}".rstrip(":") for s in rule.steps
            )
            table.add_row(
                kind, rule.name, rule.category, format_duration(rule.wait), steps, rule.source
            )
    console.print(table)
    used = sorted(
        {s.params["template"] for r in ruleset.rules for s in r.steps if "template" in s.params}
    )
    console.print(f"templates used: {', '.join(used) or 'none'}")
    console.print("[green]OK[/green]")


def register(group: click.Group) -> None:
    group.add_command(rules_group)
