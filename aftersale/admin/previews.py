"""Rendered previews for the admin page: an action's message, and a template in every locale.

Both go through the renderer workers send with (``Renderer.render``, the
message links of ``MessageLinks.sample``, signed for no real shop so a click in
a preview unsubscribes nobody). An action's preview is rendered from its
stored event, the customer as stored now and the shop's settings, as the
worker builds it; the message that went out is not stored, so the preview is
what the template makes of that data today. A template's preview uses the
sample event of the load-time template check (workers/template_check.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from aftersale.core.events import Event
from aftersale.rules import RulesInvalid, pipeline
from aftersale.rules.settings import shop_settings
from aftersale.store import action_queries
from aftersale.store import actions as action_store
from aftersale.store import events as event_store
from aftersale.store import state as state_store
from aftersale.store.actions import ActionStatus
from aftersale.store.shops import get_shop
from aftersale.workers.executors.email import customer_facing
from aftersale.workers.message_links import MessageLinks
from aftersale.workers.preparation import CUSTOMER_KEYS
from aftersale.workers.render import BASE_LOCALE, Rendered, TemplateProblem, message_locales
from aftersale.workers.template_check import sample_context


class NoPreview(Exception):
    """This action has no message to show; the text says why."""


@dataclass(frozen=True)
class LocalePreview:
    locale: str
    rendered: Rendered | None
    problem: str | None = None


def action_preview(runtime, action_id: int) -> tuple[object, Rendered]:
    """(the action row, its email rendered as the worker would render it now).

    Raises:
        NoPreview: no such action, not an email, its event or customer is gone, or the
            template does not render (the message says which).
    """
    with runtime.engine.connect() as conn:
        action = action_store.get(conn, action_id)
        if action is None:
            raise NoPreview(f"no action {action_id}")
        if action.action_type != "email" or not action.params.get("template"):
            raise NoPreview(f"a {action.action_type} step sends no email template to preview")
        stored = event_store.get_event(conn, action.event_id) if action.event_id else None
        if stored is None:
            raise NoPreview("the event that caused this action is gone (deleted or redacted)")
        shop = get_shop(conn, action.shop_id)
        event = Event.from_dict(stored.payload)
        customer = _customer(conn, action, event)
        steps = _sent_results(conn, action)
    settings = shop_settings(_rules(runtime), shop)
    context = pipeline.template_context(
        event,
        shop_domain=shop.domain,
        shop_name=settings.shop_name,
        shop_names=settings.shop_name_by_language,
        customer=customer,
        action_id=action.id,
        rule=action.rule,
        steps=steps,
        timezone=settings.timezone,
        to=action.params.get("to", "customer"),
    )
    context = customer_facing(context, action.params)
    links = MessageLinks.sample(
        runtime.link_signer,
        settings.storefront,
        platform=shop.platform,
        domain=shop.domain,
        category=action.category,
        reply_to=settings.reply_to,
    )
    locales = message_locales(context, settings.default_locale)
    try:
        rendered = runtime.renderer.render(action.params["template"], context, locales, links)
    except TemplateProblem as exc:
        raise NoPreview(str(exc)) from exc
    return action, rendered


def template_previews(runtime, name: str, kind: str, category: str) -> list[LocalePreview]:
    """Template ``name`` rendered for a sample ``kind`` event in English and each translation."""
    renderer = runtime.renderer
    if not renderer.exists(name):
        raise NoPreview(f"template {name!r} not found (it needs subject.txt)")
    settings = _rules(runtime).settings
    links = MessageLinks.sample(
        runtime.link_signer, settings.storefront, category=category, reply_to=settings.reply_to
    )
    found = []
    for locale in [BASE_LOCALE, *renderer.locales(name)]:
        try:
            rendered = renderer.render(name, sample_context(kind), [locale], links)
        except TemplateProblem as exc:
            found.append(LocalePreview(locale, None, str(exc)))
        else:
            found.append(LocalePreview(locale, rendered))
    return found


def _rules(runtime):
    """The loaded rules, whose settings (shop name, language, storefront) messages use."""
    try:
        return runtime.rules
    except RulesInvalid as exc:
        raise NoPreview(
            f"the rules folder does not load ({len(exc.errors)} error(s); see Rules)"
        ) from exc


def _customer(conn, action, event: Event) -> dict:
    """The event's customer updated from the customers table, as the worker reads it."""
    customer = dict(event.customer or {})
    ref = action.customer_ref or event.customer_ref
    row = state_store.get_customer(conn, action.shop_id, ref) if ref else None
    if row is not None and row.redacted_at:
        raise NoPreview("the customer's data was redacted")
    if row is not None:
        customer.update({k: getattr(row, k) for k in CUSTOMER_KEYS if getattr(row, k) is not None})
    return customer


def _sent_results(conn, action) -> dict[int, dict]:
    """What earlier steps of the rule produced (a discount code), for templates that show it."""
    return {
        row.step: {**(row.result or {}), "step_type": row.action_type}
        for row in action_queries.earlier_steps(conn, action)
        if row.status == ActionStatus.SENT.value and row.result
    }
