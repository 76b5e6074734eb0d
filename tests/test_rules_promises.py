"""Rules keep their promises (issue 22): the send-time re-check, recipients and the welcome
line, cross-order cancels and the rule lifecycle. Real webhooks, real workers, both databases.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from aftersale.cli import build
from aftersale.core.events import parse_time
from aftersale.store.tables import actions
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import fixture_bytes, load_fixture, post_shopify, rows
from tests.test_cli import env_for
from tests.test_woocommerce import body_of as woo_body
from tests.test_woocommerce import post as woo_post
from tests.test_woocommerce import woo_shop  # noqa: F401 - a fixture

ORDER = load_fixture("shopify", "orders__create")
ORDERED_AT = parse_time(ORDER["created_at"])

REVIEW = """
- name: review-invite
  on: order.created
  if:
    - not: {order.tags: {contains: no-review}}
  wait: 7d
  once_per: order
  category: transactional
  do:
    - email: {template: review_invite}
"""


def rules_folder(tmp_path, text: str, settings: str = ""):
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    (folder / "rules.yaml").write_text(text)
    if settings:
        (folder / "settings.yaml").write_text(settings)
    return folder


@pytest.fixture
def rules_dir(tmp_path, request):
    return rules_folder(tmp_path, getattr(request, "param", REVIEW))


def send(client, topic: str, body: dict | None = None, name: str | None = None):
    raw = json.dumps(body).encode() if body is not None else fixture_bytes("shopify", name)
    assert post_shopify(client, topic, raw, SHOPIFY_SECRET).status_code == 200


def order(**changes) -> dict:
    """The fixture order, in English (the texts asserted below are the English ones)."""
    return {**load_fixture("shopify", "orders__create"), "customer_locale": "en", **changes}


def only(runtime, rule: str | None = None):
    found = [a for a in rows(runtime.engine, actions) if rule is None or a.rule == rule]
    assert len(found) == 1, found
    return found[0]


def due_now(clock, scheduler, work, moment):
    clock.set(moment)
    scheduler.tick(clock.now())
    work()


# -- 1. the re-check at send time --------------------------------------------------------


def test_a_tag_added_after_planning_skips_the_send(
    client, work, runtime, clock, scheduler, smtp_server, cli_runner, config
):
    clock.set(ORDERED_AT)
    send(client, "orders/create", order())
    work()
    assert only(runtime).status == "scheduled"

    clock.set(ORDERED_AT + timedelta(hours=3))
    tagged = load_fixture("shopify", "orders__updated")
    tagged["tags"] = "gift, no-review"
    send(client, "orders/updated", tagged)
    work()
    due_now(clock, scheduler, work, ORDERED_AT + timedelta(days=7, minutes=1))

    invite = only(runtime)
    assert (invite.status, invite.skip_reason) == ("skipped", "condition_changed")
    assert "no-review" in invite.last_error and "order.tags: actual" in invite.last_error
    assert smtp_server.handler.messages == []

    shown = cli_runner.invoke(build(), ["actions", "show", str(invite.id)], env=env_for(config))
    assert shown.exit_code == 0, shown.output
    assert "condition_changed" in shown.output
    assert "actual ['gift', 'no-review']" in shown.output
    assert f"rule version {invite.rule_version} (the version loaded now)" in shown.output


@pytest.mark.parametrize(
    "rules_dir", [REVIEW.replace("  wait: 7d", "  wait: 7d\n  recheck: false")], indirect=True
)
def test_recheck_false_sends_as_planned(client, work, runtime, clock, scheduler, smtp_server):
    clock.set(ORDERED_AT)
    send(client, "orders/create", order())
    tagged = load_fixture("shopify", "orders__updated")
    tagged["tags"] = "no-review"
    send(client, "orders/updated", tagged)
    work()
    due_now(clock, scheduler, work, ORDERED_AT + timedelta(days=7, minutes=1))
    assert only(runtime).status == "sent"
    assert len(smtp_server.handler.messages) == 1


def test_an_unchanged_order_is_sent_after_the_recheck(
    client, work, runtime, clock, scheduler, smtp_server
):
    clock.set(ORDERED_AT)
    send(client, "orders/create", order())
    send(client, "orders/updated", name="orders__updated")  # tags gift, vip: still fine
    work()
    due_now(clock, scheduler, work, ORDERED_AT + timedelta(days=7, minutes=1))
    assert only(runtime).status == "sent"


# -- 2. recipients and the welcome line ----------------------------------------------------

RECIPIENTS = """
- name: thank-you
  on: order.created
  once_per: order
  category: transactional
  do:
    - email: {template: thank_you}

- name: account-note
  on: order.created
  once_per: order
  category: transactional
  do:
    - email: {template: thank_you, to: customer}
"""


@pytest.mark.parametrize("rules_dir", [RECIPIENTS], indirect=True)
def test_order_mail_goes_to_the_orders_contact_email(client, work, runtime, clock, smtp_server):
    clock.set(ORDERED_AT)
    customer = {**ORDER["customer"], "email": "ana.account@example.com"}
    send(
        client,
        "orders/create",
        order(
            email="ana.orders@example.com",
            contact_email="ana.orders@example.com",
            customer=customer,
        ),
    )
    work()
    by_rule = {a.rule: a for a in rows(runtime.engine, actions)}
    assert by_rule["thank-you"].recipient == "ana.orders@example.com"
    assert by_rule["account-note"].recipient == "ana.account@example.com"
    assert {m["To"] for m in smtp_server.handler.messages} == {
        "ana.orders@example.com",
        "ana.account@example.com",
    }


@pytest.mark.parametrize("rules_dir", [RECIPIENTS], indirect=True)
def test_the_welcome_line_renders_for_a_first_order_only(client, work, runtime, clock, smtp_server):
    clock.set(ORDERED_AT)
    send(client, "orders/create", order())
    work()
    first = smtp_server.handler.messages[0].get_body(("plain",)).get_content()
    assert "and welcome" in first

    second = order(id=ORDER["id"] + 1, name="#1043", order_number=1043)
    send(client, "orders/create", second)
    work()
    again = smtp_server.handler.messages[-1].get_body(("plain",)).get_content()
    assert "#1043" in again and "and welcome" not in again


# -- 4. cancels across orders ----------------------------------------------------------------

WINBACK = """
- name: winback
  on: order.created
  wait: 90d
  cancel_on: [order.refunded, {event: order.created, scope: customer}]
  once_per: order
  category: transactional
  do:
    - email: {template: winback, to: customer}
"""


@pytest.mark.parametrize("rules_dir", [WINBACK], indirect=True)
def test_a_new_order_on_another_order_cancels_the_winback(
    client, work, runtime, clock, scheduler, smtp_server
):
    clock.set(ORDERED_AT)
    send(client, "orders/create", order())
    work()
    first = only(runtime)
    assert first.status == "scheduled" and first.cancel_on_customer == ["order.created"]

    clock.set(ORDERED_AT + timedelta(days=30))
    second = order(
        id=ORDER["id"] + 7,
        name="#1050",
        order_number=1050,
        created_at=(ORDERED_AT + timedelta(days=30)).isoformat(),
        updated_at=(ORDERED_AT + timedelta(days=30)).isoformat(),
    )
    send(client, "orders/create", second)
    work()
    by_order = {a.order_ref: a for a in rows(runtime.engine, actions)}
    cancelled = by_order[str(ORDER["id"])]
    assert (cancelled.status, cancelled.skip_reason) == ("skipped", "cancelled")
    assert "scope: customer" in cancelled.last_error
    assert by_order[str(ORDER["id"] + 7)].status == "scheduled"

    due_now(clock, scheduler, work, ORDERED_AT + timedelta(days=121))
    sent = [a for a in rows(runtime.engine, actions) if a.status == "sent"]
    assert [a.order_ref for a in sent] == [str(ORDER["id"] + 7)]
    assert len(smtp_server.handler.messages) == 1


# -- 5. the rule lifecycle ---------------------------------------------------------------------


def plan_invite(client, work, runtime, clock):
    clock.set(ORDERED_AT)
    send(client, "orders/create", order())
    work()
    return only(runtime)


def switch_off(runtime, rules_dir, on_disable: str | None):
    text = REVIEW.replace("  wait: 7d", "  wait: 7d\n  enabled: false")
    if on_disable:
        text = text.replace("  enabled: false", f"  enabled: false\n  on_disable: {on_disable}")
    (rules_dir / "rules.yaml").write_text(text)
    runtime.reload_rules()


def test_a_disabled_rule_with_cancel_skips_what_it_planned(
    client, work, runtime, clock, scheduler, smtp_server, rules_dir
):
    planned = plan_invite(client, work, runtime, clock)
    switch_off(runtime, rules_dir, "cancel")
    due_now(clock, scheduler, work, ORDERED_AT + timedelta(days=7, minutes=1))
    after = only(runtime)
    assert (after.id, after.status, after.skip_reason) == (planned.id, "skipped", "rule_disabled")
    assert smtp_server.handler.messages == []


def test_a_disabled_rule_drains_by_default(
    client, work, runtime, clock, scheduler, smtp_server, rules_dir
):
    plan_invite(client, work, runtime, clock)
    switch_off(runtime, rules_dir, None)
    send(client, "orders/create", order(id=ORDER["id"] + 1, name="#1043", order_number=1043))
    work()
    due_now(clock, scheduler, work, ORDERED_AT + timedelta(days=7, minutes=1))
    assert only(runtime).status == "sent"  # planned before; nothing new planned after
    assert len(smtp_server.handler.messages) == 1


def test_a_removed_rule_follows_the_on_disable_it_planned_with(
    client, work, runtime, clock, scheduler, smtp_server, rules_dir
):
    (rules_dir / "rules.yaml").write_text(
        REVIEW.replace("  wait: 7d", "  wait: 7d\n  on_disable: cancel")
    )
    runtime.reload_rules()
    plan_invite(client, work, runtime, clock)
    (rules_dir / "rules.yaml").write_text(REVIEW.replace("review-invite", "something-else"))
    runtime.reload_rules()
    due_now(clock, scheduler, work, ORDERED_AT + timedelta(days=7, minutes=1))
    assert (only(runtime, "review-invite").status, only(runtime).skip_reason) == (
        "skipped",
        "rule_removed",
    )


def test_bulk_cancel_by_rule_counts_first(client, work, runtime, clock, cli_runner, config):
    clock.set(ORDERED_AT)
    for n in range(3):
        send(client, "orders/create", order(id=ORDER["id"] + n, name=f"#{1042 + n}"))
    work()

    def invoke(*args):
        return cli_runner.invoke(build(), ["actions", "cancel", *args], env=env_for(config))

    dry = invoke("--rule", "review-invite", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "3 pending action(s) of rule review-invite" in dry.output
    assert "dry run: nothing cancelled" in dry.output
    assert {a.status for a in rows(runtime.engine, actions)} == {"scheduled"}

    other = invoke("--rule", "review-invite", "--shop", "elsewhere.myshopify.com")
    assert "0 pending action(s)" in other.output

    done = invoke("--rule", "review-invite")
    assert done.exit_code == 0, done.output
    assert "3 action(s) cancelled" in done.output
    assert {(a.status, a.skip_reason) for a in rows(runtime.engine, actions)} == {
        ("skipped", "cancelled")
    }
    assert invoke("--rule", "review-invite", "--dry-run").output.startswith("0 pending")
    assert invoke().exit_code == 2  # neither an id nor --rule


WOO_RECIPIENTS = RECIPIENTS.replace(
    "template: thank_you, to: customer", "template: winback, to: customer"
)


@pytest.mark.parametrize("rules_dir", [WOO_RECIPIENTS], indirect=True)
def test_woocommerce_order_mail_goes_to_the_billing_email(
    client, work, runtime, woo_shop, smtp_server
):
    """WooCommerce mails order notifications to ``billing.email``; so does Aftersale, even
    when the customer account (customer.created) has another address."""
    assert woo_post(client, "customer.created").status_code == 200
    work()
    body = json.loads(woo_body("order.created__pending"))
    body["billing"]["email"] = "milica.orders@example.com"
    raw = json.dumps(body).encode()
    assert woo_post(client, "order.created__pending", body=raw).status_code == 200
    work()
    by_rule = {a.rule: a for a in rows(runtime.engine, actions)}
    assert by_rule["thank-you"].recipient == "milica.orders@example.com"
    assert "milica.orders@example.com" in {m["To"] for m in smtp_server.handler.messages}
