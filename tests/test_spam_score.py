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
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from aftersale.core.config import BUILTIN_TEMPLATES_DIR
from aftersale.store import events as event_store
from aftersale.store import shops as shop_store
from aftersale.workers.render import BASE_LOCALE, Renderer
from tests.action_helpers import SHOP, hand_off, plant
from tests.test_templates import SHOPIFY_EVENTS, shopify_event

pytestmark = pytest.mark.skipif(
    shutil.which("spamassassin") is None, reason="spamassassin is not installed"
)
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
SCORE = re.compile(rb"^X-Spam-Status: \w+, score=(-?[\d.]+)", re.MULTILINE)
RULE = re.compile(rb"^X-Aftersale-Rule: (\S+)", re.MULTILINE)
TESTS = re.compile(rb"tests=([\s\S]*?)(?:autolearn|version)=")


def score(raw: bytes) -> tuple[float, str]:
    checked = subprocess.run(
        ["spamassassin", "-L", "-t"], input=raw, capture_output=True, timeout=120, check=True
    ).stdout
    head = checked.split(b"\n\n", 1)[0].replace(b"\n\t", b" ")
    found = SCORE.search(head)
    assert found, head[:500]
    tests = TESTS.search(head)
    return float(found.group(1)), (tests.group(1) if tests else b"").decode().strip()


def _stored(runtime, template: str, locale: str):
    """The event a template is written for (real fixtures through the Shopify connector),
    stored with the customer writing ``locale`` and consenting to marketing."""
    event = shopify_event(template)
    customer = {**(event.customer or {}), "locale": locale, "accepts_email_marketing": True}
    order = {**(event.order or {}), "customer_locale": locale}
    event = replace(event, customer=customer, order=order, key=f"{event.key}:{template}:{locale}")
    now = runtime.clock.now()
    with runtime.engine.begin() as conn:
        shop_id = shop_store.ensure_shop(conn, "shopify", SHOP, now)
        event_id = event_store.insert_event(conn, shop_id, None, event, now)
    return shop_id, event_id, event


def test_every_built_in_message_scores_zero_or_below(db_backend, runtime, work, smtp_server):
    if db_backend != "sqlite":
        pytest.skip("the score does not depend on the database: scored once, on SQLite")
    planted = []
    for locale in LANGUAGES:
        for name in sorted(SHOPIFY_EVENTS):
            shop_id, event_id, event = _stored(runtime, name, locale)
            category = "marketing" if name in MARKETING else "transactional"
            (action_id,) = plant(
                runtime,
                shop_id,
                event_id,
                event,
                [("email", {"template": name})],
                rule=f"{name}-{locale}",
                category=category,
            )
            planted.append((action_id, name, locale))
    hand_off(runtime, [a for a, _, _ in planted])
    work()
    received = [e.original_content or e.content for e in smtp_server.handler.envelopes]
    assert len(received) == len(planted), "every message was sent"
    with ThreadPoolExecutor(max_workers=4) as pool:
        scores = list(pool.map(score, received))
    labels = [RULE.search(m).group(1).decode() for m in received]
    if os.environ.get("SPAM_DUMP"):  # keep the scored bytes, to try changes by hand
        folder = Path(os.environ["SPAM_DUMP"])
        folder.mkdir(parents=True, exist_ok=True)
        for label, raw in zip(labels, received, strict=True):
            (folder / f"{label}.eml").write_bytes(raw)
    report = sorted(zip(labels, scores, strict=True), key=lambda item: -item[1][0])
    print("\nSpamAssassin (local tests):")
    for label, (value, tests) in report:
        print(f"  {value:5.1f}  {label}  {tests}")
    over = [(label, value, tests) for label, (value, tests) in report if value > 0]
    # Known and measured (issue 21, docs/deliverability.md): MIXED_ES (+1.0) counts, over the
    # subject, the text part and the HTML part's text together, Latin "e" and e-like letters
    # (Latin "e" plus Cyrillic "е"/"ё", accented "e"s), and fires above 20 Latin "e" when the
    # e-like ones are 1.4 to 10 times as many. Russian text around Latin-script merchant data
    # (the shop's name six times, product names, the order status URL) does; another charset
    # does not change the count (SpamAssassin 4 normalizes to UTF-8), and dropping a part
    # only halves it. Anything else above 0, in any language, fails.
    unexplained = [
        item
        for item in over
        if not (item[0].endswith("-ru") and item[1] <= 1.0 and "MIXED_ES" in item[2])
    ]
    assert not unexplained, f"{len(unexplained)} message(s) score above 0: {unexplained}"
    if over:
        pytest.xfail(f"{len(over)} Russian message(s) still score +1.0 for MIXED_ES (issue 21)")
