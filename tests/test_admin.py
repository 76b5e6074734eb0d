"""The admin page through Flask's test client: login, sessions, CSRF, the login rate limit,
and each page over a real order (webhook in, worker run, rule misses recorded).

The browser journey (log in, timeline, retry a dead letter) is tests/test_admin_browser.py.
"""

from __future__ import annotations

import json
import re
from html import unescape

import pytest

from aftersale.core.config import ConfigError
from aftersale.runtime import Runtime
from aftersale.store.tables import actions
from tests.admin_helpers import (
    MISS_REASON,
    ORDER_REF,
    PASSWORD,
    csrf_token,
    log_in,
    write_rules,
)
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import fixture_bytes, post_shopify, rows


@pytest.fixture
def rules_dir(tmp_path):
    return write_rules(tmp_path / "rules")


@pytest.fixture
def config(config):
    return config.replace(admin_password=PASSWORD)


@pytest.fixture
def ordered(client, work, runtime):
    """The fixture order came in by webhook and the worker sent its thank-you."""
    body = fixture_bytes("shopify", "orders__create")
    assert post_shopify(client, "orders/create", body, SHOPIFY_SECRET).status_code == 200
    work()
    (action,) = rows(runtime.engine, actions)
    assert action.status == "sent"
    return action


def shop_id(runtime) -> int:
    (action,) = rows(runtime.engine, actions)
    return action.shop_id


def test_logged_out_pages_redirect_to_login_and_back_after(client):
    answer = client.get("/admin/dead")
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/admin/login?next=/admin/dead"
    assert log_in(client, next_path="/admin/dead").headers["Location"] == "/admin/dead"
    assert client.get("/admin/dead").status_code == 200


def test_a_wrong_password_is_refused_and_gives_no_session(client):
    answer = log_in(client, password="not the password at all")
    assert answer.status_code == 401
    assert "Wrong password." in answer.get_data(as_text=True)
    assert client.get("/admin/shops").status_code == 302


def test_login_never_redirects_to_another_site(app):
    for target in ("//evil.example/admin/", "https://evil.example/admin/x", "/webhooks/x"):
        assert log_in(app.test_client(), next_path=target).headers["Location"] == "/admin/shops"


def test_forms_without_this_sessions_csrf_token_are_refused(app, client, runtime, ordered):
    refused = client.post("/admin/login", data={"password": PASSWORD})
    assert refused.status_code == 400 and "was refused" in refused.get_data(as_text=True)
    assert client.get("/admin/shops").status_code == 302  # not logged in by it

    log_in(client)
    with runtime.engine.begin() as conn:
        conn.execute(actions.update().values(status="dead"))
    assert client.post(f"/admin/actions/{ordered.id}/retry").status_code == 400
    # a token from another browser's session does not do either
    other = app.test_client()
    stolen = csrf_token(other.get("/admin/login").get_data(as_text=True))
    forged = client.post(f"/admin/actions/{ordered.id}/retry", data={"csrf_token": stolen})
    assert forged.status_code == 400
    assert rows(runtime.engine, actions)[0].status == "dead"

    token = csrf_token(client.get("/admin/dead").get_data(as_text=True))
    done = client.post(f"/admin/actions/{ordered.id}/retry", data={"csrf_token": token})
    assert done.status_code == 302 and rows(runtime.engine, actions)[0].status == "scheduled"


def test_login_is_limited_to_five_attempts_a_minute_per_address(app, client):
    for _ in range(5):
        assert log_in(client, password="guessing the password").status_code == 401
    limited = log_in(client)  # even the right password, until the minute is over
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert "Too many attempts" in limited.get_data(as_text=True)
    assert client.get("/admin/shops").status_code == 302
    # another address is counted on its own
    elsewhere = app.test_client()
    page = elsewhere.get("/admin/login").get_data(as_text=True)
    answer = elsewhere.post(
        "/admin/login",
        data={"csrf_token": csrf_token(page), "password": PASSWORD},
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    )
    assert answer.status_code == 302


def test_without_admin_password_the_admin_is_off_and_says_how_to_turn_it_on(config, clock):
    # deferred import: the app shell is built per test, after the runtime
    from aftersale.web import create_app

    runtime = Runtime(config.replace(admin_password=""), clock)
    app = create_app(runtime=runtime)
    try:
        client = app.test_client()
        for path in ("/admin/", "/admin/login", "/admin/shops"):
            answer = client.get(path)
            assert answer.status_code == 404
            assert "ADMIN_PASSWORD" in answer.get_data(as_text=True)
        assert client.post("/admin/login", data={"password": ""}).status_code == 404
    finally:
        app.extensions["aftersale.receiver"].writer.stop()
        runtime.close()


def test_a_short_admin_password_is_a_config_error(config):
    with pytest.raises(ConfigError, match="ADMIN_PASSWORD: at least 12 characters"):
        config.replace(admin_password="short")
    assert PASSWORD not in repr(config)


def test_only_admin_requests_carry_a_session_cookie(client):
    log_in(client)
    cookie = client.get_cookie("aftersale_admin", path="/admin")
    assert cookie is not None and cookie.http_only and cookie.path == "/admin"
    answer = client.get("/healthz")
    assert "Set-Cookie" not in answer.headers


def test_changing_the_password_ends_the_sessions_made_with_the_old_one(app, client, runtime):
    log_in(client)
    assert client.get("/admin/shops").status_code == 200
    runtime.config = runtime.config.replace(admin_password="a new admin password")
    assert client.get("/admin/shops").status_code == 302


def test_shops_deliveries_and_the_order_timeline(client, runtime, ordered):
    log_in(client)
    shops = client.get("/admin/shops").get_data(as_text=True)
    assert "aftersale-demo.myshopify.com" in shops and "Last webhook" in shops

    listed = client.get("/admin/deliveries").get_data(as_text=True)
    assert "orders/create" in listed and "processed" in listed
    link = f"/admin/shops/{ordered.shop_id}/orders/{ORDER_REF}"
    assert f'href="{link}"' in listed
    other_topic = client.get("/admin/deliveries?topic=orders/paid").get_data(as_text=True)
    assert 'id="delivery-' not in other_topic and "No delivery matches." in other_topic
    found = client.get(f"/admin/orders?shop=aftersale-demo.myshopify.com&order={ORDER_REF}")
    assert found.headers["Location"] == link

    page = client.get(link).get_data(as_text=True)
    assert "order.created" in page and "Webhook orders/create" in page
    assert "thank-you" in page and ordered.subject in page and "sent" in page
    miss = re.search(r'<li class="rule-miss"[^>]*>(.*?)</li>', page, re.S).group(1)
    assert "big-order-gift" in miss and MISS_REASON in miss and "4590" in miss
    assert page.index("order.created") < page.index("big-order-gift")
    assert client.get(f"/admin/shops/{ordered.shop_id}/orders/nope").status_code == 200


def test_lists_page_back_by_id_keeping_their_filters(client, runtime, work, monkeypatch):
    """Five deliveries, two a page: newest first, Older follows the last id shown with the
    filter kept, the last page has no Older and links back to the newest. Dead letters
    page the same way."""
    from aftersale.admin import pages

    monkeypatch.setattr(pages, "PAGE", 2)
    order = json.loads(fixture_bytes("shopify", "orders__create"))
    for n in range(5):
        body = json.dumps({**order, "id": 5678901234567 + n, "name": f"#{1042 + n}"}).encode()
        assert post_shopify(client, "orders/create", body, SHOPIFY_SECRET).status_code == 200
    work()
    log_in(client)

    def page(path):
        html = client.get(path).get_data(as_text=True)
        shown = [int(n) for n in re.findall(r'id="(?:delivery|dead)-(\d+)"', html)]
        older = re.search(r'href="([^"]+)" id="page-older"', html)
        newest = re.search(r'href="([^"]+)" id="page-newest"', html)
        return shown, older and unescape(older.group(1)), newest and unescape(newest.group(1))

    first, older, newest = page("/admin/deliveries?topic=orders/create")
    assert first == [5, 4] and newest is None
    assert older == "/admin/deliveries?topic=orders/create&before=4"
    second, older, newest = page(older)
    assert second == [3, 2] and newest == "/admin/deliveries?topic=orders/create"
    last, older, _ = page(older)
    assert last == [1] and older is None
    assert page("/admin/deliveries?before=nope")[0] == [5, 4]  # a bad value: the newest

    with runtime.engine.begin() as conn:
        conn.execute(actions.update().values(status="dead"))
    dead_ids = sorted((a.id for a in rows(runtime.engine, actions)), reverse=True)
    shown, older, _ = page("/admin/dead")
    assert shown == dead_ids[:2] and older == f"/admin/dead?before={dead_ids[1]}"
    assert page(older)[0] == dead_ids[2:4]


def test_an_actions_message_preview_renders_its_template(client, runtime, ordered):
    log_in(client)
    page = client.get(f"/admin/actions/{ordered.id}/preview").get_data(as_text=True)
    assert ordered.subject in page
    html = client.get(f"/admin/actions/{ordered.id}/preview.html")
    assert html.status_code == 200 and "sandbox" in html.headers["Content-Security-Policy"]
    assert "<html" in html.get_data(as_text=True).lower()
    assert client.get("/admin/actions/999/preview").status_code == 404


def test_dead_letters_retry_and_cancel(client, runtime, work, ordered):
    log_in(client)
    with runtime.engine.begin() as conn:
        conn.execute(actions.update().values(status="dead", last_error="HTTP 503 Maintenance"))
    page = client.get("/admin/dead").get_data(as_text=True)
    assert f'id="dead-{ordered.id}"' in page and "HTTP 503 Maintenance" in page
    token = csrf_token(page)

    cancelled = client.post(f"/admin/actions/{ordered.id}/cancel", data={"csrf_token": token})
    assert cancelled.headers["Location"] == "/admin/dead"
    (row,) = rows(runtime.engine, actions)
    assert (row.status, row.skip_reason) == ("skipped", "cancelled")
    after = client.get("/admin/dead").get_data(as_text=True)
    assert "No dead letters." in after and f"Action {ordered.id} cancelled." in after
    again = client.post(f"/admin/actions/{ordered.id}/retry", data={"csrf_token": token})
    assert again.status_code == 302
    assert "was not retried" in client.get("/admin/dead").get_data(as_text=True)


def test_rules_page_shows_the_rules_and_the_last_load_errors(client, runtime, rules_dir):
    log_in(client)
    page = client.get("/admin/rules").get_data(as_text=True)
    assert 'id="rule-thank-you"' in page and 'id="rule-big-order-gift"' in page
    assert "load-errors" not in page

    (rules_dir / "broken.yaml").write_text("- name: broken\n  on: order.creatd\n  do: []\n")
    token = csrf_token(page)
    assert client.post("/admin/rules/reload", data={"csrf_token": token}).status_code == 302
    page = client.get("/admin/rules").get_data(as_text=True)
    assert 'id="load-errors"' in page and "broken.yaml:2" in page
    assert 'id="rule-thank-you"' in page  # the rules in force are kept

    (rules_dir / "broken.yaml").unlink()
    client.post("/admin/rules/reload", data={"csrf_token": token})
    page = client.get("/admin/rules").get_data(as_text=True)
    assert "load-errors" not in page and "Reloaded: 2 rule(s)." in page


def test_template_preview_in_every_locale(client, runtime):
    # deferred import: the renderer is what the page must agree with
    from aftersale.workers.render import Renderer

    log_in(client)
    listed = client.get("/admin/templates").get_data(as_text=True)
    assert "thank_you" in listed and "thank-you, big-order-gift" in listed
    locales = ["en", *Renderer(runtime.template_dirs).locales("thank_you")]
    assert len(locales) > 1
    page = client.get("/admin/templates/thank_you").get_data(as_text=True)
    for locale in locales:
        assert f'id="locale-{locale}"' in page
    assert page.count("<strong>Subject:</strong>") == len(locales)
    html = client.get(f"/admin/templates/thank_you/{locales[1]}.html?kind=order.created")
    assert html.status_code == 200 and "sandbox" in html.headers["Content-Security-Policy"]
    assert client.get("/admin/templates/nope").status_code == 404
    assert client.get("/admin/templates/thank_you?kind=nope").status_code == 404


def test_a_rules_folder_that_never_loaded_shows_its_errors(config, clock, tmp_path):
    # deferred import: the app shell is built per test, after the runtime
    from aftersale.web import create_app

    broken = write_rules(tmp_path / "broken", "- name: broken\n  on: order.creatd\n  do: []\n")
    runtime = Runtime(config.replace(rules_dir=broken), clock)
    app = create_app(runtime=runtime)
    try:
        client = app.test_client()
        log_in(client)
        page = client.get("/admin/rules").get_data(as_text=True)
        assert 'id="load-errors"' in page and "rules.yaml:2" in page
        assert "no rules are loaded" in page and 'id="rules"' not in page
        preview = client.get("/admin/templates/thank_you")
        assert preview.status_code == 404
        assert "the rules folder does not load" in preview.get_data(as_text=True)
    finally:
        app.extensions["aftersale.receiver"].writer.stop()
        runtime.close()


def test_every_admin_page_but_login_needs_the_admins_session(app, client):
    """Each admin endpoint, logged out: a page redirects to the login form, and a form sent
    with a valid CSRF token (the login page's) is not obeyed either."""
    token = csrf_token(client.get("/admin/login").get_data(as_text=True))
    values = {"shop_id": 1, "order_ref": "1", "action_id": 1, "name": "thank_you", "locale": "en"}
    checked = 0
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("admin.") or rule.endpoint == "admin.login":
            continue
        path = rule.build({k: v for k, v in values.items() if k in rule.arguments})[1]
        if "GET" in rule.methods:
            answer = client.get(path)
        else:
            answer = client.post(path, data={"csrf_token": token})
        assert answer.status_code == 302, rule.endpoint
        assert answer.headers["Location"].startswith("/admin/login?next="), rule.endpoint
        checked += 1
    assert checked >= 15
