"""The signed links in messages: ``/r/`` review, ``/h/`` help, ``/u/`` unsubscribe.

A review or help click is recorded (``link_clicks``) and becomes a canonical
event (``link.review_clicked``, ``link.help_clicked``) about the mail's
order, stored and run through the rules like any other: a pending reminder
whose rule says ``cancel_on: [link.review_clicked]`` is cancelled, so "remind
once, if no click" stays a declarative rule. Then the browser goes to the
product's review page, or to the shop's support with the order filled in.

Unsubscribe follows RFC 8058: GET only shows a confirmation page (mail
scanners follow links; they must not unsubscribe anyone), POST unsubscribes
at once, whether it comes from the page's button or from a mail client's
one-click ``List-Unsubscribe=One-Click``. The address is suppressed for every
later marketing message of the shop; transactional mail still goes out.

A tampered, revoked, expired or malformed token gets a 400 page saying so,
in the customer's language when the token names it; the claims are checked
for type and range by ``aftersale.links`` before anything here queries with
them, so no token, however built, reaches a 500.
"""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, request

from aftersale.core import logs
from aftersale.core.catalogs import for_language
from aftersale.core.events import Event
from aftersale.core.links import LinkClaims, LinkInvalid, key_version
from aftersale.rules import pipeline
from aftersale.store import actions as action_store
from aftersale.store import events as event_store
from aftersale.store import messages as message_store
from aftersale.store import shops as shop_store
from aftersale.store.queues import hand_off_actions
from aftersale.webhooks.link_pages import page, page_locale

bp = Blueprint("links", __name__)
log = logs.get_logger("webhooks.links")


class Refused(Exception):
    """A link that cannot be honoured; answered with a 400 page in ``locale``."""

    def __init__(self, page_name: str, locale: str):
        super().__init__(page_name)
        self.page_name = page_name
        self.locale = locale


@bp.errorhandler(Refused)
def refused(exc: Refused):
    return page(exc.page_name, exc.locale), 400


@bp.get("/r/<token>")
def review(token: str):
    return _click("review", token)


@bp.get("/g/<token>")
def product(token: str):
    """A recommended product (templates' ``recommendations(n)``): recorded, then its page."""
    return _click("product", token)


@bp.get("/h/<token>")
def help_(token: str):
    return _click("help", token)


@bp.get("/u/<token>")
def unsubscribe_page(token: str):
    claims, shop = verified_link("unsubscribe", token)
    address = _recipient(claims)
    if address is None:
        return page(
            "unknown_address", claims.locale, shop=shop_display_name(shop, claims.locale)
        ), 400
    return page(
        "confirm",
        claims.locale,
        shop=shop_display_name(shop, claims.locale),
        email=logs.mask_email(address),
        action=request.path,
    )


@bp.post("/u/<token>")
def unsubscribe(token: str):
    """RFC 8058 one-click: no cookie, no second step; the signed token is the authority."""
    claims, shop = verified_link("unsubscribe", token)
    address = _recipient(claims)
    if address is None:
        return page(
            "unknown_address", claims.locale, shop=shop_display_name(shop, claims.locale)
        ), 400
    unsubscribe_address(current_app.extensions["aftersale"], claims, shop, address, "link")
    return page(
        "done",
        claims.locale,
        shop=shop_display_name(shop, claims.locale),
        email=logs.mask_email(address),
    )


def unsubscribe_address(runtime, claims: LinkClaims, shop, address: str, via: str) -> bool:
    """Suppress ``address`` from the shop's marketing, count the click and run the rules on
    ``link.unsubscribed``; True when the address was not suppressed before. The one-click
    link and the preference centre's "unsubscribe from all" both come here; ``via`` names
    which, in the suppression's source and the log line."""
    now = runtime.clock.now()
    with runtime.engine.begin() as conn:
        new = message_store.suppress(
            conn,
            shop_id=shop.id,
            channel="email",
            address=address,
            reason="unsubscribed",
            source=f"{via}:action-{claims.action_id}",
            now=now,
            keys=runtime.config.secret_keys,
        )
        message_store.record_click(
            conn, shop_id=shop.id, action_id=claims.action_id, kind="unsubscribe", now=now
        )
        queued = _record_event(conn, runtime, shop, claims, "link.unsubscribed", now)
    _hand_off(runtime, queued)
    log.info(
        "link.unsubscribed",
        shop=shop.domain,
        action_id=claims.action_id,
        to=logs.mask_email(address),
        new=new,
        via=via,
    )
    return new


def _click(kind: str, token: str):
    claims, shop = verified_link(kind, token)
    runtime = current_app.extensions["aftersale"]
    now = runtime.clock.now()
    with runtime.engine.begin() as conn:
        # a validly signed link may outlive its action (or be a preview's, action 0): the
        # customer still gets where they wanted, the click is kept without an action
        action = _action_of(conn, shop, claims)
        message_store.record_click(
            conn, shop_id=shop.id, action_id=action.id if action else None, kind=kind, now=now
        )
        queued = _record_event(conn, runtime, shop, claims, f"link.{kind}_clicked", now)
    _hand_off(runtime, queued)
    log.info(f"link.{kind}_clicked", shop=shop.domain, action_id=claims.action_id)
    return redirect(_target(runtime, shop, claims), code=302)


def _target(runtime, shop, claims: LinkClaims) -> str:
    settings = runtime.rules.settings_for(shop.domain)
    site = settings.storefront.for_shop(shop.platform, shop.domain, settings.reply_to)
    if claims.kind == "review":
        item = {"product_id": claims.product_id, "sku": claims.sku, "handle": claims.handle}
        return site.review_url(item)
    if claims.kind == "product":
        item = {"product_id": claims.product_id, "sku": claims.sku, "handle": claims.handle}
        return site.product_url(item)
    order = {"id": claims.order_ref, "name": claims.order_name}
    wants_email = "{email}" in (site.patterns.get("help_url") or "")
    email = _recipient(claims) if wants_email else None
    return site.help_url(order, email=email, locale=claims.locale or "")


def verified_link(kind: str, token: str):
    """(claims, shop row) of a valid token; raises Refused (a 400 page) for any other.
    Every link endpoint, the preference centre's included, starts here."""
    runtime = current_app.extensions["aftersale"]
    signer = runtime.link_signer
    locale = page_locale(_unverified_locale(signer, kind, token), request.accept_languages)
    try:
        shop_id = signer.shop_of(kind, token)
        with runtime.engine.connect() as conn:
            shop = shop_store.get_shop(conn, shop_id)
        if shop is None:
            raise LinkInvalid("no such shop")
        claims = signer.verify(kind, token, key_version(shop))
    except LinkInvalid as exc:
        log.info("link.refused", kind=kind, reason=str(exc))
        raise Refused("expired" if exc.expired else "invalid", locale) from exc
    return claims, shop


def _unverified_locale(signer, kind: str, token: str) -> str | None:
    """The language the token asks for, for an error page only: nothing else is trusted."""
    try:
        payload = signer.unverified_payload(kind, token)
    except LinkInvalid:
        return None
    locale = payload.get("l") if isinstance(payload, dict) else None
    return locale if isinstance(locale, str) else None


def _recipient(claims: LinkClaims) -> str | None:
    """The address the mail was sent to, from its action (tokens carry no addresses)."""
    if not claims.action_id:
        return None
    runtime = current_app.extensions["aftersale"]
    with runtime.engine.connect() as conn:
        action = action_store.get(conn, claims.action_id)
    if action is None or action.shop_id != claims.shop_id or not action.recipient:
        return None
    return action.recipient


def _record_event(conn, runtime, shop, claims: LinkClaims, kind: str, now) -> list[int]:
    """Store the click as an event about the mail's order and run the rules on it.

    One event per action and kind (the event key), so a second click changes
    nothing; pending actions of the order whose rule cancels on it are skipped.
    """
    action = _action_of(conn, shop, claims)
    if action is None:
        return []
    order, customer = _subjects_of(conn, action)
    product = {"id": claims.product_id, "sku": claims.sku} if claims.product_id else None
    event = Event(
        kind=kind,
        shop=shop.domain,
        key=f"action:{action.id}",
        occurred_at=now,
        order=order or ({"id": claims.order_ref} if claims.order_ref else None),
        customer=customer,
        product={k: v for k, v in (product or {}).items() if v} or None,
        source={"platform": "aftersale", "topic": kind, "action_id": action.id},
    )
    return pipeline.handle_event(conn, runtime.rules, shop, None, event, now).due


def _action_of(conn, shop, claims: LinkClaims):
    """The action the link was sent for, if it still exists and is this shop's."""
    action = action_store.get(conn, claims.action_id) if claims.action_id else None
    return action if action is not None and action.shop_id == shop.id else None


def _subjects_of(conn, action) -> tuple[dict | None, dict | None]:
    stored = event_store.get_event(conn, action.event_id) if action.event_id else None
    if stored is None:
        return None, None
    payload = stored.payload or {}
    return payload.get("order"), payload.get("customer")


def _hand_off(runtime, queued: list[int]) -> None:
    hand_off_actions(runtime, queued)


def shop_display_name(shop, locale: str | None = None) -> str:
    """The name a customer's page shows, as the mail it came from wrote it: the rules'
    shop_name_by_language for the page's language, else the platform's name, the rules'
    shop_name, the domain (the preference centre uses it too)."""
    settings = current_app.extensions["aftersale"].rules.settings_for(shop.domain)
    named = for_language(settings.shop_name_by_language, locale)
    return named or shop.name or settings.shop_name or shop.domain
