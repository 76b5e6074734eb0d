"""The preference centre: ``/p/<token>`` from the footer of every marketing mail.

GET shows the customer's marketing sub-categories (review requests, care
tips, offers and recommendations, reminders) with a tick for each one they
still get, and an "unsubscribe from all" button. POST saves the ticks, or
unsubscribes the address from all marketing exactly as the one-click
``/u/`` link does. The choices are kept per shop and customer
(``store/preferences.py``) and checked when each marketing action runs, so
they apply to what is already pending.

The signed token is the only authority, as for ``/u/``: it names the shop and
the mail's action, the action names the customer and address. No cookie or
session is involved, so there is nothing for another site to ride on (a
forged POST needs the token, which only the mail holds); the page forbids
framing and sends no referrer, so the token does not leak from it. A
tampered, revoked or expired token gets the same 400 pages as the other
links.
"""

from __future__ import annotations

from flask import Blueprint, current_app, request

from aftersale.core import logs
from aftersale.core.preferences import SUBCATEGORIES
from aftersale.store import actions as action_store
from aftersale.store import messages as message_store
from aftersale.store import preferences as preference_store
from aftersale.webhooks import preference_page
from aftersale.webhooks.link_pages import page
from aftersale.webhooks.links import (
    Refused,
    shop_display_name,
    unsubscribe_address,
    verified_link,
)

bp = Blueprint("preferences", __name__)
log = logs.get_logger("webhooks.preferences")

#: no script, no framing (a form must not be clickjacked), styles inline, posts to itself
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@bp.errorhandler(Refused)
def refused(exc: Refused):
    return page(exc.page_name, exc.locale), 400, SECURITY_HEADERS


@bp.get("/p/<token>")
def show(token: str):
    return _answer(token, saved=False)


@bp.post("/p/<token>")
def save(token: str):
    """Save the ticks (``form=preferences``) or unsubscribe from all (``form=unsubscribe_all``)."""
    claims, shop = verified_link("preferences", token)
    runtime = current_app.extensions["aftersale"]
    action = _action(claims)
    if action is None or not action.recipient:
        return (
            page("unknown_address", claims.locale, shop=shop_display_name(shop, claims.locale)),
            400,
            SECURITY_HEADERS,
        )
    form = request.form.get("form")
    if form == "unsubscribe_all":
        return _unsubscribe_all(runtime, claims, shop, action)
    if form != "preferences" or not action.customer_ref:
        return page("invalid", claims.locale), 400, SECURITY_HEADERS
    shown = [s for s in request.form.getlist("shown") if s in SUBCATEGORIES]
    kept = set(request.form.getlist("keep"))
    now = runtime.clock.now()
    with runtime.engine.begin() as conn:
        changed = preference_store.save(
            conn,
            shop.id,
            action.customer_ref,
            {sub: sub not in kept for sub in shown},
            f"page:action-{action.id}",
            now,
        )
        message_store.record_click(
            conn, shop_id=shop.id, action_id=action.id, kind="preferences", now=now
        )
    log.info(
        "preferences.saved",
        shop=shop.domain,
        action_id=action.id,
        muted=sorted(s for s, m in changed.items() if m),
        kept=sorted(s for s, m in changed.items() if not m),
    )
    return _answer(token, saved=True)


def _answer(token: str, *, saved: bool):
    claims, shop = verified_link("preferences", token)
    runtime = current_app.extensions["aftersale"]
    action = _action(claims)
    if action is None or not action.recipient:
        return (
            page("unknown_address", claims.locale, shop=shop_display_name(shop, claims.locale)),
            400,
            SECURITY_HEADERS,
        )
    with runtime.engine.connect() as conn:
        unsubscribed = (
            message_store.suppression(
                conn,
                shop.id,
                "email",
                action.recipient,
                "marketing",
                keys=runtime.config.secret_keys,
            )
            is not None
        )
        muted = preference_store.muted(conn, shop.id, action.customer_ref)
    html = preference_page.render(
        claims.locale,
        shop=shop_display_name(shop, claims.locale),
        email=logs.mask_email(action.recipient),
        action=request.path,
        shown=_shown(runtime, shop, muted) if action.customer_ref else [],
        muted=muted,
        unsubscribed=unsubscribed,
        saved=saved,
    )
    return html, 200, SECURITY_HEADERS


def _unsubscribe_all(runtime, claims, shop, action):
    """The same suppression as the one-click ``/u/`` link, with this page as its source."""
    unsubscribe_address(runtime, claims, shop, action.recipient, "preferences")
    masked = logs.mask_email(action.recipient)
    return (
        page("done", claims.locale, shop=shop_display_name(shop, claims.locale), email=masked),
        200,
        SECURITY_HEADERS,
    )


def _action(claims):
    """The action the mail was sent for, if it still exists and is the token's shop's."""
    if not claims.action_id:
        return None
    runtime = current_app.extensions["aftersale"]
    with runtime.engine.connect() as conn:
        action = action_store.get(conn, claims.action_id)
    return action if action is not None and action.shop_id == claims.shop_id else None


def _shown(runtime, shop, muted: frozenset[str]) -> list[str]:
    """The sub-categories this shop's marketing rules send, plus any the customer muted (so
    they can take it back); every one when no rule says (a rule pack still to come)."""
    used = {
        rule.subcategory
        for rule in runtime.rules.rules
        if rule.enabled and rule.subcategory and rule.applies_to_shop(shop.domain)
    }
    shown = used | muted
    return [s for s in SUBCATEGORIES if s in shown] if shown else list(SUBCATEGORIES)
