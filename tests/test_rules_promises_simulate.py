"""``aftersale rules test`` shows what issue 22 decides, the way production decides it:
the send-time re-check at ``--at``, the slot chosen, digest grouping, the cross-order cancel.
"""

from __future__ import annotations

import json
from datetime import timedelta

from aftersale.core.events import parse_time
from tests.helpers import load_fixture
from tests.test_rules_test_cli import run

RULES = """
- name: review-invite
  on: order.created
  if:
    - not: {order.tags: {contains: no-review}}
  wait: 7d
  once_per: order
  category: transactional
  do:
    - email: {template: review_invite}

- name: weekday-note
  on: order.created
  wait: 1d
  send_at: {local: "10:00-12:00", days: [mon, tue, wed, thu, fri]}
  once_per: order
  category: transactional
  do:
    - email: {template: thank_you}

- name: winback
  on: order.created
  wait: 90d
  cancel_on: [{event: order.created, scope: customer}]
  once_per: order
  category: transactional
  do:
    - email: {template: winback, to: customer}

- name: shipping-update
  on: fulfillment.created
  digest: {window: 2h, key: order}
  once_per: fulfillment
  category: transactional
  do:
    - email: {template: shipping_update}
"""
SETTINGS = "timezone: Europe/Belgrade\n"


def story(tmp_path):
    """Order, two parcels within the window, a no-review tag, then a second order."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(RULES)
    (rules / "settings.yaml").write_text(SETTINGS)
    first = {**load_fixture("shopify", "orders__create"), "customer_locale": "en"}
    created = parse_time(first["created_at"])
    parcel = load_fixture("shopify", "fulfillments__create")
    shipped = parse_time(parcel["created_at"])
    later = (shipped + timedelta(minutes=45)).isoformat()
    second_parcel = {**parcel, "id": parcel["id"] + 1, "created_at": later, "updated_at": later}
    tagged = {**load_fixture("shopify", "orders__updated"), "tags": "no-review"}
    again = (created + timedelta(days=20)).isoformat()
    second = {**first, "id": first["id"] + 9, "name": "#1051", "created_at": again}
    second["updated_at"] = again
    files = []
    for name, body in [
        ("orders__create__first", first),
        ("fulfillments__create__a", parcel),
        ("fulfillments__create__b", second_parcel),
        ("orders__updated__tagged", tagged),
        ("orders__create__second", second),
    ]:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(body))
        files.append(path)
    return rules, files


def test_rules_test_shows_the_recheck_the_slot_the_digest_and_the_cross_order_cancel(
    cli_runner, tmp_path
):
    rules, files = story(tmp_path)
    result = run(cli_runner, tmp_path, "--rules", rules, "--sequence", *files)
    assert result.exit_code == 0, result.output
    out = result.output
    # Friday 16:15 + 1 day is Saturday: the next weekday slot is Monday 10:00 in Belgrade
    assert "-> email thank_you due 2026-11-23 09:00 UTC" in out
    assert "(local Mon 10:00 Europe/Belgrade)" in out
    assert "joins the digest of shipping-update: email shipping_update, now 2 event(s)" in out
    assert "cancels winback: email winback" in out
    assert "re-check of 'if' before sending: condition_changed: not (" in out
    assert "order.tags: actual ['no-review']" in out


def test_the_json_carries_the_same_decisions(cli_runner, tmp_path):
    rules, files = story(tmp_path)
    result = run(
        cli_runner,
        tmp_path,
        "--rules",
        rules,
        "--json",
        "--at",
        "2026-11-21T15:00:00Z",
        "--sequence",
        *files,
    )
    assert result.exit_code == 0, result.output
    events = [e for f in json.loads(result.output)["files"] for e in f["events"]]
    planned = {a["rule"]: a for e in reversed(events) for a in e["actions"]}  # first order's
    assert planned["review-invite"]["recheck"].startswith("condition_changed")
    assert planned["weekday-note"]["zone"] == "Europe/Belgrade"
    assert planned["shipping-update"]["digest_events"] == 2
    assert any(j["rule"] == "shipping-update" for e in events for j in e["joins"])
    assert any(c["rule"] == "winback" for e in events for c in e["cancels"])
