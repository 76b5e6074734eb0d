"""The preference centre without a browser: rule sub-categories, the stored choices, the page's
forms, and what a choice does to marketing actions when they run (on SQLite and PostgreSQL).

The browser half (JavaScript off, a 375 px window) is tests/test_preferences_browser.py.
"""

from __future__ import annotations

import json
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, update

from aftersale.core.preferences import parse_category
from aftersale.rules.errors import RulesInvalid
from aftersale.rules.loader import load_rules
from aftersale.rules.simulate import simulate
from aftersale.store import migrate
from aftersale.store import preferences as preference_store
from aftersale.store import shops as shop_store
from aftersale.store.db import make_engine
from aftersale.store.messages import address_hash
from aftersale.store.tables import actions, customers, link_clicks, preferences, suppressions
from tests.helpers import fixture_path, load_fixture, rows
from tests.preference_helpers import (  # noqa: F401 - shop is a fixture
    ORDER,
    action,
    by_rule,
    path_of,
    preferences_url,
    shop,
)

REPO_EXAMPLES = "examples"
#: the shipped packs with marketing rules, each naming its sub-category
PACKS = ("care-and-cross-sell", "replenishment", "returns-info", "review-invites", "starter")


# -- rule files ------------------------------------------------------------------------


def test_category_takes_a_marketing_sub_category_and_plain_marketing_means_offers():
    assert parse_category("marketing/review_requests") == ("marketing", "review_requests")
    assert parse_category("marketing") == ("marketing", "offers")
    assert parse_category("transactional") == ("transactional", None)


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("marketing/reviews", "unknown marketing sub-category 'reviews'; one of"),
        ("transactional/shipping", "transactional rules have no sub-category"),
        ("promo", "unknown category 'promo'"),
    ],
)
def test_a_wrong_category_is_refused_with_file_and_line(tmp_path, written, message):
    (tmp_path / "rules.yaml").write_text(
        textwrap.dedent(
            f"""
            - name: first
              on: order.created
              category: transactional
              do: [{{email: thank_you}}]

            - name: review-invite
              on: shipment.delivered
              category: {written}
              do: [{{email: review_invite}}]
            """
        )
    )
    with pytest.raises(RulesInvalid) as caught:
        load_rules(tmp_path)
    text = str(caught.value)
    assert "rules.yaml:9:" in text  # the line of `category:` in the file
    assert "rule 'review-invite', category" in text
    assert message in text


def test_example_packs_name_a_sub_category_for_every_marketing_rule():
    root = Path(__file__).resolve().parent.parent / REPO_EXAMPLES
    seen = {}
    for pack in PACKS:
        for rule in load_rules(root / pack).rules:
            seen[rule.name] = rule.category_label
    assert seen["review-invite"] == "marketing/review_requests"
    assert seen["care-tips"] == "marketing/care_tips"
    assert seen["replenish-coffee"] == "marketing/reminders"
    assert seen["cross-sell"] == "marketing/offers"
    assert seen["winback"] == "marketing/offers"
    assert seen["return-survey"] == "marketing/review_requests"
    assert seen["returns-info"] == "transactional"
    written = [
        line.strip()
        for pack in PACKS
        for path in (root / pack).glob("*.yaml")
        for line in path.read_text().splitlines()
        if line.strip().startswith("category: marketing")
    ]
    assert written and all(line.startswith("category: marketing/") for line in written)


# -- stored choices ----------------------------------------------------------------------


def test_choices_are_stored_with_time_and_source_and_only_changes_are_written(runtime, clock):
    first = clock.now()
    with runtime.engine.begin() as conn:
        shop_id = shop_store.ensure_shop(conn, "shopify", "a.myshopify.com", first)
        changed = preference_store.save(
            conn,
            shop_id,
            "42",
            {"review_requests": True, "care_tips": False},
            "page:action-7",
            first,
        )
    assert changed == {"review_requests": True}  # keeping what is kept already is no change
    clock.advance(timedelta(days=1))
    with runtime.engine.begin() as conn:
        again = preference_store.save(
            conn, shop_id, "42", {"review_requests": True}, "page:action-9", clock.now()
        )
        assert again == {}
        assert preference_store.muted(conn, shop_id, "42") == {"review_requests"}
        assert preference_store.muted(conn, shop_id, "43") == frozenset()
    (row,) = rows(runtime.engine, preferences)
    assert (row.customer_ref, row.subcategory, row.muted) == ("42", "review_requests", True)
    assert (row.source, row.updated_at) == ("page:action-7", first)

    with runtime.engine.begin() as conn:
        kept = preference_store.save(
            conn, shop_id, "42", {"review_requests": False}, "page:action-9", clock.now()
        )
    assert kept == {"review_requests": False}
    (row,) = rows(runtime.engine, preferences)
    assert (row.muted, row.source, row.created_at) == (False, "page:action-9", first)
    assert row.updated_at == clock.now()


# -- the page and the send-time check ------------------------------------------------------


def test_marketing_mail_links_the_preference_centre_and_keeps_one_click_unsubscribe(
    shop, smtp_server
):
    shop.send("orders/create")
    shop.send("fulfillments/update", "fulfillments__update__delivered")
    invite = by_rule(smtp_server, "review-invite")
    url = preferences_url(invite)
    assert url.startswith(shop.runtime.config.public_url + "/p/")
    assert invite["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/u/" in invite["List-Unsubscribe"]
    assert "/p/" not in by_rule(smtp_server, "thank-you").get_body(("html",)).get_content()

    page = shop.web.get(path_of(url))
    assert page.status_code == 200
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert '<html lang="sr">' in page.text  # the mail was in Serbian
    assert "Podešavanja mejlova" in page.text and "a***@example.com" in page.text
    # the shop's rules use these two sub-categories, plus offers (plain `marketing`)
    assert 'value="review_requests"' in page.text and 'value="care_tips"' in page.text
    assert 'value="offers"' in page.text and 'value="reminders"' not in page.text
    assert "<script" not in page.text


def test_muting_review_requests_skips_pending_invites_and_care_tips_still_go(shop, smtp_server):
    shop.send("orders/create")
    shop.send("fulfillments/update", "fulfillments__update__delivered")
    path = path_of(preferences_url(by_rule(smtp_server, "review-invite")))
    assert action(shop.runtime, "review-invite-again").status == "scheduled"

    # the page's form: every listed sub-category is `shown`, the ticked ones are `keep`
    answer = shop.web.post(
        path,
        data={
            "form": "preferences",
            "shown": ["review_requests", "care_tips", "offers"],
            "keep": ["care_tips", "offers"],
        },
    )
    assert answer.status_code == 200 and "Vaš izbor je sačuvan." in answer.text
    assert 'id="keep-review_requests">' in answer.text  # shown unticked now
    assert 'id="keep-care_tips" checked>' in answer.text
    (choice,) = rows(shop.runtime.engine, preferences)
    invite = action(shop.runtime, "review-invite")
    assert (choice.subcategory, choice.muted) == ("review_requests", True)
    assert choice.customer_ref == str(ORDER["customer"]["id"])
    assert choice.source == f"page:action-{invite.id}"
    assert choice.updated_at == shop.runtime.clock.now()
    assert [c.kind for c in rows(shop.runtime.engine, link_clicks)] == ["preferences"]

    shop.runtime.clock.advance(timedelta(days=8))
    shop.work()
    again = action(shop.runtime, "review-invite-again")
    assert (again.status, again.skip_reason) == ("skipped", "preference")
    assert again.last_error == "the customer muted marketing/review_requests"
    assert action(shop.runtime, "care-tips").status == "sent"
    assert by_rule(smtp_server, "care-tips")["To"] == ORDER["email"]
    assert rows(shop.runtime.engine, suppressions) == []  # one category muted, not all


def test_an_action_planned_before_sub_categories_were_stored_takes_its_rules(shop, smtp_server):
    shop.send("orders/create")
    shop.send("fulfillments/update", "fulfillments__update__delivered")
    path = path_of(preferences_url(by_rule(smtp_server, "review-invite")))
    with shop.runtime.engine.begin() as conn:  # as 0009_preferences leaves older rows
        conn.execute(update(actions).values(subcategory=None))
    shop.web.post(
        path, data={"form": "preferences", "shown": ["review_requests", "care_tips"], "keep": []}
    )
    shop.runtime.clock.advance(timedelta(days=8))
    shop.work()
    assert action(shop.runtime, "review-invite-again").skip_reason == "preference"
    assert action(shop.runtime, "care-tips").skip_reason == "preference"


def test_plain_marketing_counts_as_offers_and_transactional_mail_is_never_muted(shop, smtp_server):
    shop.send("orders/create")
    shop.send("fulfillments/update", "fulfillments__update__delivered")
    path = path_of(preferences_url(by_rule(smtp_server, "review-invite")))
    shown = ["review_requests", "care_tips", "offers"]
    assert shop.web.post(path, data={"form": "preferences", "shown": shown}).status_code == 200

    shop.send("orders/paid")
    offer = action(shop.runtime, "paid-offer")
    assert (offer.subcategory, offer.status, offer.skip_reason) == (
        "offers",
        "skipped",
        "preference",
    )
    shop.send("fulfillments/create")
    assert action(shop.runtime, "shipping-update").status == "sent"


def test_rules_test_reports_what_a_muted_sub_category_will_do(shop, smtp_server):
    shop.send("orders/create")
    shop.send("fulfillments/update", "fulfillments__update__delivered")
    path = path_of(preferences_url(by_rule(smtp_server, "review-invite")))
    shop.web.post(path, data={"form": "preferences", "shown": ["offers"], "keep": []})

    outcomes, _ = simulate(
        shop.runtime.rules,
        [fixture_path("shopify", "orders__paid")],
        database_url=shop.runtime.config.database_url,
        shop="aftersale-demo.myshopify.com",
        secret_keys=shop.runtime.config.secret_keys,
    )
    (step,) = [s for o in outcomes for e in o.events for s in e.planned if s.rule == "paid-offer"]
    assert step.skip == "preference: the customer muted marketing/offers"
    assert rows(shop.runtime.engine, actions, actions.c.rule == "paid-offer") == []  # a dry run


def test_unsubscribe_from_all_on_the_page_suppresses_like_one_click(shop, smtp_server):
    shop.send("orders/create")
    shop.send("fulfillments/update", "fulfillments__update__delivered")
    path = path_of(preferences_url(by_rule(smtp_server, "review-invite")))

    answer = shop.web.post(path, data={"form": "unsubscribe_all"})
    assert answer.status_code == 200 and "Odjavljeni ste" in answer.text
    (suppression,) = rows(shop.runtime.engine, suppressions)
    assert suppression.address == address_hash(shop.runtime.config.secret_key, ORDER["email"])
    invite = action(shop.runtime, "review-invite")
    assert (suppression.reason, suppression.source) == (
        "unsubscribed",
        f"preferences:action-{invite.id}",
    )
    again = shop.web.get(path)  # the page now says so and offers no choices
    assert again.status_code == 200 and 'id="unsubscribed"' in again.text
    assert 'name="keep"' not in again.text

    shop.runtime.clock.advance(timedelta(days=8))
    shop.work()
    assert action(shop.runtime, "care-tips").skip_reason == "suppressed"
    shop.send("fulfillments/create")
    assert action(shop.runtime, "shipping-update").status == "sent"


def test_tampered_expired_and_malformed_requests_are_refused(shop, smtp_server):
    shop.send("orders/create")
    shop.send("fulfillments/update", "fulfillments__update__delivered")
    path = path_of(preferences_url(by_rule(smtp_server, "review-invite")))
    tampered = path[:-3] + ("xyz" if not path.endswith("xyz") else "abc")
    for method in (shop.web.get, shop.web.post):
        answer = method(tampered, data={"form": "unsubscribe_all"})
        assert answer.status_code == 400
        assert "Ovaj link ne radi" in answer.text
    # an unsubscribe token is not a preferences token (each kind has its own salt)
    one_click = by_rule(smtp_server, "review-invite")["List-Unsubscribe"].split(",")[0]
    assert shop.web.get("/p/" + one_click.strip(" <>").rsplit("/", 1)[-1]).status_code == 400
    assert shop.web.post(path, data={"form": "something-else"}).status_code == 400

    shop.runtime.clock.advance(timedelta(days=800))
    expired = shop.web.post(path, data={"form": "unsubscribe_all"})
    assert expired.status_code == 400 and "istekao" in expired.text
    assert rows(shop.runtime.engine, suppressions) == []
    assert rows(shop.runtime.engine, preferences) == []


def test_redact_erases_the_choices_and_data_request_exports_them(shop, smtp_server):
    shop.send("orders/create")
    shop.send("fulfillments/update", "fulfillments__update__delivered")
    path = path_of(preferences_url(by_rule(smtp_server, "review-invite")))
    shop.web.post(path, data={"form": "preferences", "shown": ["care_tips"], "keep": []})

    request = load_fixture("shopify", "customers__data_request")
    shop.send("customers/data_request")
    export_path = (
        shop.runtime.config.instance_path
        / "exports"
        / "aftersale-demo.myshopify.com"
        / f"{request['data_request']['id']}.json"
    )
    exported = json.loads(export_path.read_text())["stored"]["preferences"]
    assert [(p["subcategory"], p["muted"]) for p in exported] == [("care_tips", True)]

    shop.send("customers/redact")
    assert rows(shop.runtime.engine, preferences) == []
    assert rows(shop.runtime.engine, customers)[0].redacted_at is not None


# -- the migration -------------------------------------------------------------------------


def test_migration_0009_adds_and_removes_the_preferences_table(database_url):

    def schema():
        engine = make_engine(database_url)
        try:
            found = inspect(engine)
            columns = {c["name"] for c in found.get_columns("actions")}
            tables = set(found.get_table_names())
            keys = found.get_pk_constraint("preferences") if "preferences" in tables else None
            return "subcategory" in columns, "preferences" in tables, keys
        finally:
            engine.dispose()

    has_column, has_table, key = schema()
    assert has_column and has_table
    assert key["constrained_columns"] == ["shop_id", "customer_ref", "subcategory"]
    migrate.downgrade(database_url, "0008_shipment_tracking")
    try:
        assert schema() == (False, False, None)
    finally:
        migrate.upgrade(database_url)
    assert schema()[:2] == (True, True)
