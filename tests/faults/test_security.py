"""Security properties: constant-time signatures, replay, sandboxed templates, safe YAML, public surface."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from aftersale.store.tables import actions, deliveries
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import count, fixture_bytes, post_shopify, rows

pytestmark = pytest.mark.fault
ROOT = Path(__file__).resolve().parents[2]
PUBLIC_ENDPOINTS = {
    "receiver.receive",
    "health.healthz",
    "health.readyz",
    "static",
    # WooCommerce's key exchange: the callback only accepts a user_id token signed with
    # SECRET_KEY (tests/test_woocommerce.py); the return page shows a fixed sentence
    "woocommerce_auth.auth_callback",
    "woocommerce_auth.connected",
    # Shopify's install: the install link only redirects to Shopify with a signed, single-use
    # state; the callback stores nothing unless Shopify's HMAC, the state, the timestamp
    # and the shop domain all check out (tests/test_shopify_install.py)
    "shopify_app.install",
    "shopify_app.callback",
    # Prometheus metrics: 404 unless METRICS_TOKEN is set, then only to that bearer token
    # (tests/test_metrics.py)
    "metrics.scrape",
    # the preference centre: every request carries a signed, shop-scoped token naming one
    # customer; a tampered or expired one gets the 400 page (tests/test_preferences.py)
    "preferences.show",
    "preferences.save",
    # the admin page's login form (CSRF token, 5 attempts a minute per address); every
    # other admin.* endpoint needs the admin's session (tests/test_admin.py checks each)
    "admin.login",
}


def test_signatures_are_never_compared_with_equality():
    """Every signature check goes through hmac.compare_digest; `==` on a digest leaks timing."""
    suspicious = []
    for path in (ROOT / "connectors").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and any(
                isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops
            ):
                names = {n.id.lower() for n in ast.walk(node) if isinstance(n, ast.Name)}
                names |= {n.attr.lower() for n in ast.walk(node) if isinstance(n, ast.Attribute)}
                if any(
                    word in name
                    for name in names
                    for word in ("signature", "digest", "hmac", "expected")
                ):
                    suspicious.append(f"{path.name}:{node.lineno}")
    assert suspicious == []
    source = (ROOT / "connectors" / "base.py").read_text()
    assert "hmac.compare_digest" in source


def test_a_replayed_delivery_is_a_no_op(client, work, runtime, smtp_server):
    body = fixture_bytes("shopify", "orders__create")
    post_shopify(client, "orders/create", body, SHOPIFY_SECRET, webhook_id="replay-me")
    work()
    again = post_shopify(client, "orders/create", body, SHOPIFY_SECRET, webhook_id="replay-me")
    work()
    assert again.status_code == 200 and again.json["status"] == "duplicate"
    assert count(runtime.engine, deliveries) == 1
    assert len(smtp_server.handler.messages) == 1


def _evil_rules(tmp_path, subject: str, body: str):
    rules = tmp_path / "evil-rules"
    (rules / "templates" / "evil").mkdir(parents=True, exist_ok=True)
    (rules / "templates" / "evil" / "subject.txt").write_text(subject)
    (rules / "templates" / "evil" / "body.txt").write_text(body)
    (rules / "evil.yaml").write_text(
        "- name: evil\n  on: order.created\n  category: transactional\n  do: [{email: evil}]\n"
    )
    return rules


EVIL_SUBJECT = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
EVIL_BODY = "{{ order.__init__.__globals__ }}"


def test_templates_reaching_python_internals_are_refused_when_rules_load(tmp_path, config):
    from aftersale.rules import RulesInvalid
    from aftersale.runtime import Runtime

    runtime = Runtime(config.replace(rules_dir=_evil_rules(tmp_path, EVIL_SUBJECT, EVIL_BODY)))
    with pytest.raises(RulesInvalid) as caught:
        runtime.load_rules()
    assert "unsafe" in str(caught.value) or "access to attribute" in str(caught.value)
    assert "rule 'evil'" in str(caught.value)


def test_templates_cannot_reach_python_internals(tmp_path, config, clock, smtp_server):
    """A template changed on disk after the rules were checked still runs in the sandbox."""
    from aftersale.runtime import Runtime, install
    from aftersale.web import create_app
    from aftersale.workers.runner import make_worker
    from aftersale.workers.scheduler import Scheduler

    rules = _evil_rules(tmp_path, "Hello", "Hello {{ order.name }}")
    runtime = Runtime(config.replace(rules_dir=rules), clock)
    install(runtime)
    try:
        runtime.load_rules_or_fail()
        _evil_rules(tmp_path, EVIL_SUBJECT, EVIL_BODY)
        app = create_app(runtime=runtime)
        post_shopify(
            app.test_client(),
            "orders/create",
            fixture_bytes("shopify", "orders__create"),
            SHOPIFY_SECRET,
        )
        app.extensions["aftersale.receiver"].writer.drain()
        Scheduler(runtime).relay()
        make_worker(runtime).work(burst=True, logging_level="WARNING", with_scheduler=False)
        (action,) = rows(runtime.engine, actions)
        assert action.status == "failed"
        assert "unsafe" in action.last_error or "access to attribute" in action.last_error
        assert smtp_server.handler.messages == []
    finally:
        runtime.close()
        install(None)


def test_only_receivers_links_and_health_are_public(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    exposed = endpoints - PUBLIC_ENDPOINTS - {e for e in endpoints if e.startswith("links.")}
    exposed -= {e for e in endpoints if e.startswith("admin.")}  # behind the admin login
    assert exposed == set(), f"endpoints reachable without authentication: {sorted(exposed)}"
