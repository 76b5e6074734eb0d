"""A shop with two rules on order.created, one of which never matches the fixture order,
for the admin page tests (tests/test_admin.py, tests/test_admin_browser.py)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

PASSWORD = "admin password for tests"
SETTINGS = """
sender: "Kafeterija <prodavnica@example.com>"
reply_to: podrska@example.com
default_locale: en
shop_name: Kafeterija
"""
#: the fixture order's total is 4590.00, so big-order-gift records a miss with its reason
RULES = """
- name: thank-you
  on: order.created
  once_per: order
  category: transactional
  do: [{email: {template: thank_you}}]

- name: big-order-gift
  description: A gift note for orders of 100000 and more.
  on: order.created
  if:
    - order.total_price: {gte: 100000}
  once_per: order
  category: transactional
  do: [{email: {template: thank_you}}]
"""
MISS_REASON = "order.total_price gte 100000"
ORDER_REF = "5678901234567"


def write_rules(folder: Path, rules: str = RULES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.yaml").write_text(textwrap.dedent(SETTINGS))
    (folder / "rules.yaml").write_text(textwrap.dedent(rules))
    return folder


def csrf_token(html: str) -> str:
    """The CSRF token a page's form carries."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def log_in(client, password: str = PASSWORD, next_path: str = ""):
    page = client.get("/admin/login").get_data(as_text=True)
    return client.post(
        "/admin/login",
        data={"csrf_token": csrf_token(page), "password": password, "next": next_path},
    )
