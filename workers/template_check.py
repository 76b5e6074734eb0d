"""Template problems found when the rules load, not when a customer's mail is due.

Every template a rule's step names is rendered, in every language it is
translated into (and again for each shop with its own overrides in
``_shops/<domain>/``), against sample contexts of each event kind the rule listens
to: one where every canonical field has a plausible value, and one where
only ids are known (as when a platform withholds customer data). A name the
event model does not have (``order.totl_price``, or ``fulfillment`` in a rule
on ``order.created``) raises under StrictUndefined; a template that breaks on
an empty list or a missing name breaks here too. Each problem becomes a
:class:`~rules.errors.RuleError` naming the rule and the template file, so
``aftersale rules check`` and worker start-up refuse the folder.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from aftersale.core.events import FIELDS, subjects_of
from aftersale.core.links import LinkSigner
from aftersale.rules import RuleError, RuleSet, RulesInvalid, load_rules
from aftersale.rules.loader import template_names_in
from aftersale.workers.catalogs import CatalogProblem
from aftersale.workers.message_links import MessageLinks
from aftersale.workers.render import BASE_LOCALE, LIST_FIELDS, Renderer, TemplateProblem

SAMPLE_TIME = "2026-11-20T09:15:03Z"
SAMPLE_SHOP = "example.myshopify.com"
#: a signer for sample links only; its tokens are never served
CHECK_SIGNER = LinkSigner(("template-check",), "https://aftersale.invalid")


def load_rules_checked(
    folder: Path | str, template_dirs: Iterable[Path], signer: LinkSigner | None = None
) -> RuleSet:
    """Load rules, then render their templates against sample events; all problems at once.

    Raises:
        RulesInvalid: a rule or a template it uses is wrong.
    """
    template_dirs = list(template_dirs)
    ruleset = load_rules(folder, templates=template_names_in(template_dirs))
    errors = check_templates(ruleset, Renderer(template_dirs), signer or CHECK_SIGNER)
    if errors:
        raise RulesInvalid(errors)
    return ruleset


def check_templates(ruleset: RuleSet, renderer: Renderer, signer: LinkSigner) -> list[RuleError]:
    errors: list[RuleError] = []
    seen: dict[tuple, str | None] = {}
    for rule in ruleset.rules:
        for step in rule.steps:
            name = step.params.get("template")
            if not name:
                continue
            for kind in rule.on:
                key = (name, subjects_of(kind), rule.category)
                if key not in seen:
                    seen[key] = first_problem(renderer, signer, ruleset, name, kind, rule.category)
                if seen[key]:
                    errors.append(_error(rule, step, kind, seen[key]))
    return errors


def first_problem(renderer, signer, ruleset, name: str, kind: str, category: str) -> str | None:
    """The first rendering problem of template ``name`` for events of ``kind``, or None."""
    links = MessageLinks.sample(
        signer,
        ruleset.settings.storefront,
        category=category,
        reply_to=ruleset.settings.reply_to,
    )
    # each shop with its own files or strings (``_shops/<domain>/``) renders its own way
    for shop in [None, *renderer.shops()]:
        try:
            locales = renderer.locales(name, shop)
        except CatalogProblem as exc:
            return str(exc)
        for locale in [BASE_LOCALE, *locales]:
            for context in (sample_context(kind, shop), sparse_context(kind, shop)):
                try:
                    renderer.render(name, context, [locale], links)
                except TemplateProblem as exc:
                    for_shop = f", shop {shop}" if shop else ""
                    return f"{exc} (rendering for {kind}, {locale}{for_shop})"
    return None


def sample_context(kind: str, shop: str | None = None) -> dict:
    """What templates see for an event of ``kind`` where every field has a value."""
    ctx = {subject: _sample(FIELDS[subject], subject) for subject in subjects_of(kind)}
    return _with_envelope(ctx, kind, shop)


def sparse_context(kind: str, shop: str | None = None) -> dict:
    """The same event when the platform told only ids (protected customer data, late orders)."""
    ctx = {subject: {"id": "1"} for subject in subjects_of(kind)}
    return _with_envelope(ctx, kind, shop)


def _with_envelope(ctx: dict, kind: str, shop: str | None) -> dict:
    ctx["event"] = {"kind": kind, "occurred_at": SAMPLE_TIME, "key": "1"}
    ctx["shop"] = {"domain": shop or SAMPLE_SHOP, "name": "Example Shop"}
    ctx["action"] = {"id": 0, "rule": "sample"}
    ctx["steps"] = {}
    ctx["digest"] = []  # the events a digest folded (rules/pipeline.py template_context)
    return ctx


def _sample(fields: dict, subject: str) -> dict:
    values = {}
    for key, nested in fields.items():
        if key in LIST_FIELDS:
            values[key] = (
                [_sample(nested, key), _sample(nested, key)] if nested else [f"sample-{key}"]
            )
        elif nested:
            values[key] = _sample(nested, key)
        else:
            values[key] = _sample_value(key, subject)
    return values


def _sample_value(key: str, subject: str):
    if key == "name":
        return "#1042"
    if key == "id" or key.endswith("_id") or key == "number":
        return "1042"
    if key.endswith("_at"):
        return SAMPLE_TIME
    if key in ("quantity", "orders_count"):
        return 2
    if key.startswith("accepts_") or key == "full":
        return True
    if "price" in key or key in ("amount", "subtotal", "total_tax", "total_discounts"):
        return "1234.50"
    if key.endswith("url"):
        return "https://example.com/sample"
    special = {
        "email": "ana@example.com",
        "phone": "+381641234567",
        "currency": "RSD",
        "locale": "en",
        "country_code": "RS",
        "sku": "SAMPLE-1",
    }
    return special.get(key, f"sample {subject} {key}")


def _error(rule, step, kind: str, message: str) -> RuleError:
    file, _, line = rule.source.rpartition(":")
    return RuleError(
        file or rule.source,
        int(line) if line.isdigit() else None,
        None,
        f"rule {rule.name!r}, do[{step.index}].{step.type}.template",
        message,
    )
