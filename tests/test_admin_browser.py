"""The admin page in a real browser: Debian's headless Chromium driven by selenium, with
JavaScript off and a 375 px wide window, against the web app served over HTTP.

An order comes in by webhook; Postmark (pytest-httpserver standing in for its API)
answers 503 until the thank-you mail's attempts run out and it is a dead letter.
In the browser the operator logs in, opens the order's timeline from the deliveries
list, sees the rule that did not match and why, then retries the dead letter from the
dead letters page; with Postmark answering again, the worker sends it and the
timeline shows it sent. Skipped, with the reason, only when chromium or chromedriver
is not installed (``.ci/run`` installs ``chromium chromium-driver``).
"""

from __future__ import annotations

import shutil
import threading
from datetime import timedelta

import pytest
from werkzeug.serving import make_server

from aftersale.runtime import Runtime, install
from aftersale.store.tables import actions
from aftersale.workers.runner import make_worker
from aftersale.workers.scheduler import Scheduler
from tests.admin_helpers import MISS_REASON, ORDER_REF, PASSWORD, write_rules
from tests.conftest import SHOPIFY_SECRET, free_port
from tests.helpers import fixture_bytes, post_shopify, rows

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)
PHONE_WIDTH = 375
POSTMARK_OK = {
    "To": "ana.petrovic@example.com",
    "SubmittedAt": "2026-11-24T10:00:00Z",
    "MessageID": "b7bc2f4a-e38e-4336-af7d-e6c392c2f817",
    "ErrorCode": 0,
    "Message": "OK",
}


class Served:
    """The whole web app on a real port, and what the worker and scheduler would do."""

    def __init__(self, runtime):
        # deferred import: the app shell is built per test, after the runtime
        from aftersale.web import create_app

        self.runtime = runtime
        self.app = create_app(runtime=runtime)
        self.port = int(runtime.config.public_url.rsplit(":", 1)[1])
        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def work(self):
        self.app.extensions["aftersale.receiver"].writer.drain()
        Scheduler(self.runtime).tick(self.runtime.clock.now())
        make_worker(self.runtime).work(burst=True, logging_level="WARNING", with_scheduler=False)

    def close(self):
        self.server.shutdown()
        self.thread.join(timeout=5)
        self.app.extensions["aftersale.receiver"].writer.stop()


@pytest.fixture
def served(config, clock, tmp_path, httpserver):
    port = free_port()
    runtime = Runtime(
        config.replace(
            public_url=f"http://127.0.0.1:{port}",
            admin_password=PASSWORD,
            rules_dir=write_rules(tmp_path / "rules"),
            mail_url=f"postmark+http://server-token@127.0.0.1:{httpserver.port}",
            reconcile_minutes=0,  # the placeholder shop has no API token to reconcile with
        ),
        clock,
    )
    install(runtime)
    found = Served(runtime)
    yield found
    found.close()
    runtime.close()
    install(None)


@pytest.fixture
def browser():
    # deferred import: selenium is a test extra, needed only when chromium is here
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    # a phone's viewport (a desktop window cannot be made narrower than 500 px headless)
    options.add_experimental_option(
        "mobileEmulation",
        {"deviceMetrics": {"width": PHONE_WIDTH, "height": 812, "pixelRatio": 2.0}},
    )
    # the admin works without JavaScript: the browser runs none
    options.add_experimental_option(
        "prefs", {"profile.managed_default_content_settings.javascript": 2}
    )
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def make_dead_letter(served, httpserver):
    """The order's thank-you mail: Postmark answers 503 until its attempts run out."""
    httpserver.expect_request("/email", method="POST").respond_with_json(
        {"ErrorCode": 100, "Message": "Maintenance"}, status=503
    )
    body = fixture_bytes("shopify", "orders__create")
    answer = post_shopify(served.app.test_client(), "orders/create", body, SHOPIFY_SECRET)
    assert answer.status_code == 200
    served.work()  # the delivery: event, rules, the action planned
    for _ in range(12):
        served.work()
        (action,) = rows(served.runtime.engine, actions)
        if action.status == "dead":
            return action
        served.runtime.clock.advance(timedelta(hours=7))  # past the longest backoff
    raise AssertionError(f"not dead after 12 rounds: {action.status}")


def press(button) -> None:
    """Activate a button or link from the keyboard (Enter), as a user tabbing to it does.

    On these pages chromedriver's click() (a synthetic tap under mobile emulation, with
    scripts off) hung without sending the form; Enter sends it as a keyboard user does.
    """
    # deferred import: selenium is a test extra, needed only when chromium is here
    from selenium.webdriver.common.keys import Keys

    button.send_keys(Keys.ENTER)


def shown(browser, by, value):
    """The element once the page that has it is loaded (a keyboard press does not wait)."""
    # deferred import: selenium is a test extra, needed only when chromium is here
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, 15).until(
        expected_conditions.presence_of_element_located((by, value))
    )


def fits_a_phone(browser) -> None:
    assert browser.execute_script("return window.innerWidth") == PHONE_WIDTH
    assert browser.execute_script("return document.documentElement.scrollWidth") <= PHONE_WIDTH


def test_log_in_see_why_a_rule_did_not_match_and_retry_a_dead_letter(served, browser, httpserver):
    # deferred import: selenium is a test extra, needed only when chromium is here
    from selenium.webdriver.common.by import By

    dead = make_dead_letter(served, httpserver)
    assert dead.attempts == dead.max_attempts

    browser.get(served.url("/admin/deliveries"))
    assert "/admin/login" in browser.current_url  # not logged in yet
    fits_a_phone(browser)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    login = browser.find_element(By.ID, "login")
    assert login.size["height"] >= 40
    press(login)
    assert shown(browser, By.ID, "deliveries")
    assert browser.current_url == served.url("/admin/deliveries")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Recent deliveries"

    press(browser.find_element(By.LINK_TEXT, ORDER_REF))  # the order's timeline
    assert shown(browser, By.ID, f"action-{dead.id}")
    assert browser.find_element(By.TAG_NAME, "h1").text == f"Order {ORDER_REF}"
    fits_a_phone(browser)
    (miss,) = browser.find_elements(By.CSS_SELECTOR, "li.rule-miss")
    assert "big-order-gift" in miss.text and MISS_REASON in miss.text and "4590" in miss.text
    action = browser.find_element(By.ID, f"action-{dead.id}")
    assert "thank-you" in action.text and "dead" in action.text
    assert "503" in action.text  # the attempts, each with Postmark's answer

    press(browser.find_element(By.LINK_TEXT, "Dead letters"))
    retry = shown(browser, By.ID, f"retry-{dead.id}")
    fits_a_phone(browser)
    assert retry.size["height"] >= 40
    httpserver.clear()
    httpserver.expect_request("/email", method="POST").respond_with_json(POSTMARK_OK)
    press(retry)  # a plain form POST with its CSRF token, no script
    assert f"Action {dead.id} is due again now" in shown(browser, By.CLASS_NAME, "flash").text
    assert browser.find_elements(By.ID, "no-dead")

    served.work()  # the scheduler hands it to a worker, which sends it
    browser.get(served.url(f"/admin/shops/{dead.shop_id}/orders/{ORDER_REF}"))
    action = browser.find_element(By.ID, f"action-{dead.id}")
    assert "sent" in action.text.split("\n")[0]
    assert len(httpserver.log) >= 1 and httpserver.log[-1][1].status_code == 200
    (row,) = rows(served.runtime.engine, actions)
    assert (row.status, row.provider_id) == ("sent", POSTMARK_OK["MessageID"])

    press(browser.find_element(By.ID, f"preview-{dead.id}"))  # the mail, rendered
    assert shown(browser, By.ID, "preview-subject").text == row.subject
    assert browser.find_element(By.ID, "preview-text").text.strip()
    fits_a_phone(browser)
