"""``aftersale templates``: list message templates, check their translations, preview one
against a real payload."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from aftersale.cli import pass_context


@click.group("templates")
def templates_group():
    """List and preview message templates."""


@templates_group.command("list")
@pass_context
def list_templates(ctx):
    """Every template on the search path, with its languages."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from rich.console import Console
    from rich.table import Table

    from aftersale.rules.loader import template_names_in
    from aftersale.workers.render import BASE_LOCALE, Renderer

    dirs = ctx.runtime.template_dirs
    renderer = Renderer(dirs)
    table = Table(title="templates (" + ", ".join(str(d) for d in dirs) + ")")
    table.add_column("template")
    table.add_column("languages")
    for name in sorted(template_names_in(dirs)):
        table.add_row(name, ", ".join([BASE_LOCALE, *renderer.locales(name)]))
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@templates_group.command("check")
@click.option(
    "--dir",
    "folders",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="a template folder to check (repeatable; default: the whole search path)",
)
@pass_context
def check(ctx, folders):
    """Translations complete: .pot up to date, every .po translated (no fuzzy, missing or
    untranslated entry), no template text outside _() or {% trans %}. Exits 1 on a problem."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.workers.catalog_check import folder_problems
    from aftersale.workers.catalogs import CatalogProblem

    problems = []
    for folder in folders or ctx.runtime.template_dirs:
        try:
            problems += folder_problems(folder)
        except (CatalogProblem, OSError, ValueError) as exc:
            problems.append(f"{folder}: {exc}")
    for problem in problems:
        click.echo(problem)
    if problems:
        raise click.ClickException(f"{len(problems)} translation problem(s)")
    click.echo("OK: every catalog is complete")


@templates_group.command("preview")
@click.argument("name")
@click.option(
    "--event",
    "event_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="a webhook payload (topic from the file name, e.g. orders__create.json) "
    "or a canonical event JSON",
)
@click.option("--locale", default=None, help="language to render in (default: the customer's)")
@click.option("--topic", default=None, help="the payload's topic, when the file name does not say")
@click.option("--platform", default=None, help="shopify (default) or another connector's name")
@click.option(
    "--order",
    "order_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="an orders/create payload to play the stored order (for fulfillment and refund payloads)",
)
@click.option("--kind", default=None, help="which event, when the payload makes several")
@click.option(
    "--category",
    type=click.Choice(["transactional", "marketing"]),
    default="transactional",
    show_default=True,
    help="marketing adds the unsubscribe footer and headers",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="folder for the .html file (default: INSTANCE_PATH/previews)",
)
@click.option(
    "--score",
    "spam_score",
    is_flag=True,
    help="score the message as it would be sent with SpamAssassin (stock rules, local tests "
    "only) and say what fired; needs spamassassin installed",
)
@pass_context
def preview(
    ctx, name, event_file, locale, topic, platform, order_file, kind, category, out, spam_score
):
    """Render template NAME for the event in FILE: subject, text, and an .html file to open.
    With --score, the message as it would be sent is scored by SpamAssassin."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from rich.console import Console

    from aftersale.workers.compose import inline_css
    from aftersale.workers.message_links import MessageLinks
    from aftersale.workers.previews import PreviewError, events_from_file, template_context
    from aftersale.workers.render import Renderer, TemplateProblem, message_locales

    runtime = ctx.runtime
    settings = _settings(runtime)
    try:
        events = events_from_file(event_file, platform=platform, topic=topic, order_file=order_file)
    except PreviewError as exc:
        raise click.ClickException(str(exc)) from exc
    event = _pick(events, kind)
    context = template_context(
        event,
        settings.shop_name or event.shop,
        timezone=settings.timezone,
        shop_names=settings.shop_name_by_language,
    )
    locales = [locale] if locale else message_locales(context, settings.default_locale)
    links = MessageLinks.sample(
        runtime.link_signer,
        settings.storefront,
        platform=(event.source or {}).get("platform") or "shopify",
        domain=event.shop,
        category=category,
        reply_to=settings.reply_to,
    )
    try:
        rendered = Renderer(runtime.template_dirs).render(name, context, locales, links)
    except TemplateProblem as exc:
        message = str(exc)
        if kind is None and len(events) > 1:
            made = ", ".join(e.kind for e in events)
            message += f" (rendered for {event.kind}; this payload makes {made}: pick with --kind)"
        raise click.ClickException(message) from exc
    console = Console(width=None if sys.stdout.isatty() else 200, highlight=False)
    console.print(f"[bold]{name}[/bold] for {event.kind} in [bold]{rendered.locale}[/bold]")
    console.print(f"Subject: {rendered.subject}\n")
    console.print(rendered.text, markup=False)
    if rendered.html:
        folder = out or Path(runtime.config.instance_path) / "previews"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.{rendered.locale}.html"
        path.write_text(inline_css(rendered.html))
        console.print(f"HTML: {path}")
    if spam_score:
        recipient = context["recipient"]["email"] or "customer@example.com"
        _print_score(console, runtime, settings, rendered, links, recipient, name, category)


def _print_score(console, runtime, settings, rendered, links, recipient, name, category):
    """The preview composed as the worker composes it, scored, with the rules that fired."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.workers import spam_check
    from aftersale.workers.compose import build_email

    email = build_email(
        runtime,
        settings,
        rendered,
        recipient,
        links,
        rule="preview",
        category=category,
        message_key=f"preview-{name}.{rendered.locale}",
    )
    try:
        report = spam_check.score(email.as_bytes())
    except spam_check.SpamCheckFailed as exc:
        raise click.ClickException(str(exc)) from exc
    verdict = "goal met" if report.score <= 0 else "above the goal of 0; 5.0 is spam"
    console.print(
        f"\nSpamAssassin {report.version} (stock rules, local tests): "
        f"[bold]{report.score or 0.0:.1f}[/bold] ({verdict})"
    )
    for hit in report.scoring:
        console.print(f"  {hit.points:5.1f}  {hit.rule}  {hit.description}", markup=False)
    for hint in spam_check.hints(report, rendered.subject, rendered.text, rendered.html):
        console.print(hint, markup=False)


def _settings(runtime):
    """The rule pack's settings (shop name, locale); a folder that does not load is the
    RULES_DIR message of cli.errors."""
    return runtime.rules.settings


def _pick(events, kind):
    if kind is None:
        return events[0]
    for event in events:
        if event.kind == kind:
            return event
    found = ", ".join(e.kind for e in events)
    raise click.ClickException(f"no {kind} event in this payload (it makes: {found})")


def register(group: click.Group) -> None:
    group.add_command(templates_group)
