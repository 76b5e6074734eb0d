"""The admin's rule pages: the rules this web process has loaded with its last load errors,
a reload, and every template previewed in every language it has."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from flask import abort, current_app, flash, redirect, render_template, request, url_for

from aftersale.admin.blueprint import bp, log, runtime, sandboxed
from aftersale.core.events import EVENT_KINDS
from aftersale.rules import RuleError, RulesInvalid

DEFAULT_KIND = "order.created"


@dataclass
class LoadState:
    """This process's last failed load of the rules folder; cleared by a good one."""

    errors: list[RuleError] = field(default_factory=list)
    failed_at: datetime | None = None


def load_state() -> LoadState:
    return current_app.extensions.setdefault("aftersale.admin.rules", LoadState())


def loaded_rules():
    """The rules in force here, or None when the folder has never loaded (errors recorded)."""
    rt = runtime()
    try:
        return rt.rules
    except RulesInvalid as exc:
        _failed(exc)
        return None


def _failed(exc: RulesInvalid) -> None:
    state = load_state()
    state.errors = list(exc.errors)
    state.failed_at = runtime().clock.now()


@bp.get("/rules")
def rules():
    ruleset = loaded_rules()
    return render_template(
        "admin/rules.html",
        ruleset=ruleset,
        state=load_state(),
        folder=runtime().config.rules_dir,
    )


@bp.post("/rules/reload")
def reload_rules():
    """Load RULES_DIR again in this web process, all or nothing (workers reload on SIGHUP)."""
    rt = runtime()
    try:
        fresh = rt.reload_rules()
    except RulesInvalid as exc:
        _failed(exc)
        log.warning("admin.rules_reload_failed", errors=len(exc.errors))
        flash(f"{len(exc.errors)} error(s) in the rules folder; the rules in force are kept.")
    else:
        current_app.extensions["aftersale.admin.rules"] = LoadState()
        log.info("admin.rules_reloaded", rules=len(fresh.rules))
        flash(f"Reloaded: {len(fresh.rules)} rule(s).")
    return redirect(url_for("admin.rules"))


@bp.get("/templates")
def templates():
    # deferred import: template listing lives with the rule loader, only this page needs it
    from aftersale.rules.loader import template_names_in

    rt = runtime()
    renderer = rt.renderer
    names = sorted(template_names_in(rt.template_dirs))
    return render_template(
        "admin/templates.html",
        templates=[(name, ["en", *renderer.locales(name)], _users(name)) for name in names],
    )


@bp.get("/templates/<name>")
def template(name: str):
    # deferred import: rendering loads the workers' renderer, which only this page needs
    from aftersale.admin.previews import NoPreview, template_previews

    users = _users(name)
    kind, category = _kind_and_category(users)
    try:
        previews = template_previews(runtime(), name, kind, category)
    except NoPreview as exc:
        return render_template("admin/template.html", name=name, problem=str(exc)), 404
    return render_template(
        "admin/template.html",
        name=name,
        kind=kind,
        kinds=sorted(EVENT_KINDS),
        users=users,
        previews=previews,
    )


def _kind_and_category(users: list) -> tuple[str, str]:
    """The sample event asked for (else the first its rules listen to) and their category
    (marketing adds the unsubscribe footer)."""
    kinds = sorted({kind for rule in users for kind in rule.on}) or [DEFAULT_KIND]
    kind = request.args.get("kind") or kinds[0]
    if kind not in EVENT_KINDS:
        abort(404)
    return kind, users[0].category if users else "transactional"


def _users(name: str) -> list:
    """The loaded rules with a step that sends template ``name``."""
    ruleset = loaded_rules()
    if ruleset is None:
        return []
    return [r for r in ruleset.rules if any(s.params.get("template") == name for s in r.steps)]


@bp.get("/templates/<name>/<locale>.html")
def template_html(name: str, locale: str):
    """One language's HTML part alone, sandboxed like an action's preview."""
    # deferred import: rendering loads the workers' renderer, which only this page needs
    from aftersale.admin.previews import NoPreview, template_previews
    from aftersale.workers.compose import inline_css

    kind, category = _kind_and_category(_users(name))
    try:
        previews = template_previews(runtime(), name, kind, category)
    except NoPreview:
        abort(404)
    found = next((p for p in previews if p.locale == locale and p.rendered), None)
    if found is None or not found.rendered.html:
        abort(404)
    return sandboxed(inline_css(found.rendered.html))
