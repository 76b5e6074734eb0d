"""The preference centre in a real browser: Debian's headless Chromium driven by selenium,
with JavaScript switched off and a 375 px wide window, against the web app served over HTTP.

The link is taken from a review invite that really went out over SMTP; the customer
unticks review requests and saves; a week later the pending review invite is skipped
``preference`` and the care tips are sent. A tampered link shows the error page.
Skipped, with the reason, only when chromium or chromedriver is not installed
(``.ci/run`` installs ``chromium chromium-driver``).
"""

from __future__ import annotations

import shutil
import threading
from datetime import timedelta

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from tests.conftest import free_port
from tests.preference_helpers import Shop, action, by_rule, make_runtime, preferences_url

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)
PHONE_WIDTH = 375


@pytest.fixture
def served(config, clock, tmp_path):
    """The shop's web app on a real port, with PUBLIC_URL pointing at it."""
    port = free_port()
    runtime = make_runtime(config.replace(public_url=f"http://127.0.0.1:{port}"), clock, tmp_path)
    shop = Shop(runtime)
    server = make_server("127.0.0.1", port, shop.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield shop
    server.shutdown()
    thread.join(timeout=5)
    shop.close()
    runtime.close()


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
    ):
        options.add_argument(argument)
    # the page must work without JavaScript: the browser runs none
    options.add_experimental_option(
        "prefs", {"profile.managed_default_content_settings.javascript": 2}
    )
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    # a phone's screen: a headless window cannot be narrower than 500 px, and chromedriver's
    # mobileEmulation (touch events) hangs form clicks while JavaScript is off
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": PHONE_WIDTH, "height": 812, "deviceScaleFactor": 2, "mobile": True},
    )
    yield driver
    driver.quit()


def test_mute_review_requests_in_chromium_then_the_invite_is_skipped_and_care_tips_sent(
    served, browser, smtp_server
):
    served.send("orders/create")
    served.send("fulfillments/update", "fulfillments__update__delivered")
    url = preferences_url(by_rule(smtp_server, "review-invite"))
    assert action(served.runtime, "review-invite-again").status == "scheduled"

    browser.get(url)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Podešavanja mejlova"
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "sr"
    # fits a phone: nothing wider than the window, the buttons are there to tap
    assert browser.execute_script("return window.innerWidth") == PHONE_WIDTH
    assert browser.execute_script("return document.documentElement.scrollWidth") <= PHONE_WIDTH
    save = browser.find_element(By.ID, "save")
    assert save.is_displayed() and save.size["height"] >= 40
    review = browser.find_element(By.ID, "keep-review_requests")
    care = browser.find_element(By.ID, "keep-care_tips")
    assert review.is_selected() and care.is_selected()

    review.click()  # untick: stop review requests
    save.click()  # a plain form POST, no script
    saved = WebDriverWait(browser, 15).until(
        expected_conditions.presence_of_element_located((By.ID, "saved"))
    )
    assert saved.text == "Vaš izbor je sačuvan."
    assert not browser.find_element(By.ID, "keep-review_requests").is_selected()
    assert browser.find_element(By.ID, "keep-care_tips").is_selected()

    served.runtime.clock.advance(timedelta(days=8))
    served.work()
    again = action(served.runtime, "review-invite-again")
    assert (again.status, again.skip_reason) == ("skipped", "preference")
    assert action(served.runtime, "care-tips").status == "sent"
    assert by_rule(smtp_server, "care-tips") is not None

    tampered = url[:-4] + ("abcd" if not url.endswith("abcd") else "wxyz")
    browser.get(tampered)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Ovaj link ne radi"
    assert not browser.find_elements(By.ID, "save")
