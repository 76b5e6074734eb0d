"""Every built-in message, in every language, scores <= 0 in SpamAssassin.

Each template is sent through the real path (a planted action, a real RQ worker,
composition, SMTP to the in-process server) and the bytes the server received
are scored by SpamAssassin with Debian's rules, local tests only (``-L``: no
network, so no DNS blocklists), as a receiving server would start. Skipped with
a reason where SpamAssassin is not installed (CI installs it).
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from sqlalchemy import update

from aftersale.core.config import BUILTIN_TEMPLATES_DIR
from aftersale.store import events as event_store
from aftersale.store import shops as shop_store
from aftersale.store.tables import shops
from aftersale.workers import spam_check
from aftersale.workers.render import BASE_LOCALE, Renderer
from tests.action_helpers import SHOP, hand_off, plant
from tests.test_templates import SHOPIFY_EVENTS, shopify_event

pytestmark = pytest.mark.skipif(not spam_check.installed(), reason="spamassassin is not installed")
#: every language a built-in template is shipped in (the catalogs say which)
LANGUAGES = sorted(
    {BASE_LOCALE}.union(*(Renderer([BUILTIN_TEMPLATES_DIR]).locales(n) for n in SHOPIFY_EVENTS))
)
MARKETING = {
    "review_invite",
    "review_reminder",
    "care_tips",
    "cross_sell",
    "replenishment",
    "winback",
    "satisfaction_survey",
}
RULE = re.compile(rb"^X-Aftersale-Rule: (\S+)", re.MULTILINE)


@dataclass(frozen=True)
class Store:
    """Whose data a message carries: the sample pack's shop (Latin-script names, every
    language), or a store that sells in Russian, with its name and catalogue in Cyrillic."""

    label: str
    domain: str
    name: str | None = None  # None: the pack's shop_name (examples/starter/settings.yaml)
    words: tuple[tuple[str, str], ...] = ()  # the catalogue's words as this store writes them


SAMPLE = Store("sample", SHOP)
RUSSIAN = Store(
    "russian-store",
    "uyutny-dom.myshopify.com",
    "Уютный дом",
    (
        ("Leather shoe care kit", "Набор для ухода за кожаной обувью"),
        ("Merino wool socks", "Носки из шерсти мериноса"),
        ("39-42 / Grey", "39-42 / серые"),
        (SHOP, "uyutny-dom.myshopify.com"),  # its order-status links
    ),
)


def _in_store(value, store: Store):
    """``value`` (an event's subject, nested) with the catalogue's words as ``store`` has them."""
    if isinstance(value, str):
        for sample, own in store.words:
            value = value.replace(sample, own)
        return value
    if isinstance(value, dict):
        return {key: _in_store(item, store) for key, item in value.items()}
    if isinstance(value, list):
        return [_in_store(item, store) for item in value]
    return value


def _stored(runtime, template: str, locale: str, store: Store = SAMPLE):
    """The event a template is written for (real fixtures through the Shopify connector),
    stored with the customer writing ``locale`` and consenting to marketing."""
    event = shopify_event(template)
    customer = {**(event.customer or {}), "locale": locale, "accepts_email_marketing": True}
    order = {**(event.order or {}), "customer_locale": locale}
    event = replace(
        event,
        shop=store.domain,
        customer=_in_store(customer, store),
        order=_in_store(order, store),
        fulfillment=_in_store(event.fulfillment, store),
        key=f"{event.key}:{template}:{locale}:{store.label}",
    )
    now = runtime.clock.now()
    with runtime.engine.begin() as conn:
        shop_id = shop_store.ensure_shop(conn, "shopify", store.domain, now)
        if store.name:
            conn.execute(update(shops).where(shops.c.id == shop_id).values(name=store.name))
        event_id = event_store.insert_event(conn, shop_id, None, event, now)
    return shop_id, event_id, event


def test_every_built_in_message_scores_zero_or_below(db_backend, runtime, work, smtp_server):
    if db_backend != "sqlite":
        pytest.skip("the score does not depend on the database: scored once, on SQLite")
    cases = [(SAMPLE, locale) for locale in LANGUAGES] + [(RUSSIAN, "ru")]
    planted = []
    for store, locale in cases:
        for name in sorted(SHOPIFY_EVENTS):
            shop_id, event_id, event = _stored(runtime, name, locale, store)
            category = "marketing" if name in MARKETING else "transactional"
            (action_id,) = plant(
                runtime,
                shop_id,
                event_id,
                event,
                [("email", {"template": name})],
                rule=f"{name}-{locale}-{store.label}",
                category=category,
            )
            planted.append(action_id)
    hand_off(runtime, planted)
    work()
    received = [e.original_content or e.content for e in smtp_server.handler.envelopes]
    assert len(received) == len(planted), "every message was sent"
    with ThreadPoolExecutor(max_workers=4) as pool:
        reports = list(pool.map(spam_check.score, received))
    labels = [RULE.search(m).group(1).decode() for m in received]
    if os.environ.get("SPAM_DUMP"):  # keep the scored bytes, to try changes by hand
        folder = Path(os.environ["SPAM_DUMP"])
        folder.mkdir(parents=True, exist_ok=True)
        for label, raw in zip(labels, received, strict=True):
            (folder / f"{label}.eml").write_bytes(raw)
    ranked = sorted(zip(labels, reports, strict=True), key=lambda item: (-item[1].score, item[0]))
    print("\nSpamAssassin (local tests):")
    for label, report in ranked:
        print(f"  {report.score:5.1f}  {label}  {','.join(report.rules)}")
    over = [(label, report) for label, report in ranked if report.score > 0]
    # Known and measured (issue 21, docs/deliverability.md): MIXED_ES (+1.0) counts, over the
    # subject, the text part and the HTML part's text together, Latin "e" and e-like letters
    # (Latin "e" plus Cyrillic "е"/"ё", accented "e"s), and fires above 20 Latin "e" when the
    # e-like ones are 1.4 to 10 times as many: Russian prose beside Latin-script merchant
    # data (the sample shop's name, its English product names, its order-status URLs). The
    # templates' own share is small: the same messages for a store with a Cyrillic name and
    # catalogue score 0 and must stay there. Anything else above 0, in any language, fails.
    tolerated = [
        (label, report)
        for label, report in over
        if label.endswith("-ru-sample") and [h.rule for h in report.scoring] == ["MIXED_ES"]
    ]
    unexplained = [
        f"{label} {report.score} {report.rules}"
        for label, report in over
        if (label, report) not in tolerated
    ]
    assert not unexplained, f"{len(unexplained)} message(s) score above 0: {unexplained}"
    if tolerated:
        print(
            f"  {len(tolerated)} Russian message(s) with the sample shop's Latin-script data "
            "score +1.0 for MIXED_ES (mixed scripts; docs/deliverability.md)"
        )
