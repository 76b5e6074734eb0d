"""The WooCommerce REST API calls Aftersale makes: order notes, coupons, and its own webhooks.

Authentication is the store's consumer key and secret over HTTPS (HTTP basic),
as WooCommerce documents for ``/wp-json/wc/v3``. Errors come back as
``{"code": "...", "message": "...", "data": {"status": N}}``; the message is
what a store owner needs to read, so it is carried into every error. 429 and
5xx are transient, other 4xx permanent (a wrong key stays wrong).

Each call is safe to repeat: a note already on the order is not added again,
a coupon whose code exists (codes derive from the action id) is looked up,
and webhook registration matches existing webhooks by topic and delivery URL.

The client opens no connections of its own: the caller hands it the shop's
access (store URL and decrypted API key) and a pooled ``requests.Session``
(``aftersale.core.http.make_session()``), and decides how long that session
lives and which thread uses it.
"""

from __future__ import annotations

import secrets as secrets_lib
from decimal import Decimal
from typing import TYPE_CHECKING

from aftersale.core import http
from aftersale.core.errors import PermanentError, TransientError
from aftersale.core.platform import ShopAccess

if TYPE_CHECKING:  # annotations only: core/http.py loads requests when it makes a session
    import requests

TIMEOUT = 20.0
#: the topics Aftersale subscribes a store to
WEBHOOK_TOPICS = (
    "order.created",
    "order.updated",
    "order.deleted",
    "order.restored",
    "customer.created",
    "customer.updated",
)
#: registered as well when the rules use the product catalog (rules/catalog_facts.py)
CATALOG_TOPICS = ("product.created", "product.updated", "product.deleted", "product.restored")


def new_webhook_secret() -> str:
    return secrets_lib.token_urlsafe(32)


class WooCommerceAPI:
    """The REST API of one store, over the caller's session (see the module docstring)."""

    def __init__(self, shop: ShopAccess, session: requests.Session):
        key = shop.credentials.get("consumer_key")
        secret = shop.credentials.get("consumer_secret")
        if not key or not secret:
            raise PermanentError(f"no WooCommerce API key stored for {shop.domain}")
        base = (shop.api_url or shop.credentials.get("url") or f"https://{shop.domain}").rstrip("/")
        self.base = f"{base}/wp-json/wc/v3"
        self.auth = (key, secret)
        self.session = session

    # -- calls used by actions ------------------------------------------------------

    def add_order_note(self, order_ref: str, note: str) -> dict:
        """A private note on the order (not mailed to the customer); not added twice."""
        notes = self.call("GET", f"/orders/{order_ref}/notes", params={"type": "internal"})
        for existing in notes or []:
            if (existing.get("note") or "").strip() == note.strip():
                return {"id": existing.get("id"), "note": "already present"}
        created = self.call(
            "POST", f"/orders/{order_ref}/notes", json={"note": note, "customer_note": False}
        )
        return {"id": created.get("id")}

    def create_coupon(self, spec: dict) -> dict:
        """A single-use coupon, limited to the customer's email when known."""
        body = {
            "code": spec["code"],
            "discount_type": "percent" if spec["kind"] == "percentage" else "fixed_cart",
            "amount": str(Decimal(str(spec["value"]))),
            "individual_use": True,
            "usage_limit": 1,
            "usage_limit_per_user": 1,
            "description": spec.get("title") or f"Aftersale {spec['code']}",
        }
        if spec.get("customer_email"):
            body["email_restrictions"] = [spec["customer_email"]]
        if spec.get("expires_at"):
            body["date_expires_gmt"] = str(spec["expires_at"]).replace("Z", "")[:19]
        try:
            created = self.call("POST", "/coupons", json=body)
        except PermanentError as exc:
            if "already exists" not in str(exc) and "coupon_code_already_exists" not in str(exc):
                raise
            found = self.call("GET", "/coupons", params={"code": spec["code"]})
            if not found:
                raise
            return {"id": found[0].get("id"), "code": spec["code"], "existing": True}
        return {"id": created.get("id"), "code": spec["code"]}

    # -- webhooks -----------------------------------------------------------------

    def webhooks(self) -> list[dict]:
        """Every webhook of the store, all pages."""
        found, page = [], 1
        while True:
            batch = self.call("GET", "/webhooks", params={"per_page": 100, "page": page})
            found += batch or []
            if not batch or len(batch) < 100:
                return found
            page += 1

    def register_webhooks(self, delivery_url: str, secret: str, topics=WEBHOOK_TOPICS) -> dict:
        """Make sure one active webhook per topic posts to ``delivery_url`` with ``secret``.

        Existing ones (same topic and URL) are kept, and re-activated with the
        secret when WooCommerce disabled or paused them (the 7th failure in a
        row disables a webhook); missing ones are created. Returns what was
        done per topic: created, reactivated or unchanged.
        """
        existing: dict[str, dict] = {}
        for hook in self.webhooks():
            if hook.get("delivery_url") == delivery_url and hook.get("topic") in topics:
                current = existing.get(hook["topic"])
                if current is None or hook.get("status") == "active":
                    existing[hook["topic"]] = hook
        done = {}
        for topic in topics:
            hook = existing.get(topic)
            if hook is None:
                created = self.call(
                    "POST",
                    "/webhooks",
                    json={
                        "name": f"Aftersale {topic}",
                        "topic": topic,
                        "delivery_url": delivery_url,
                        "secret": secret,
                        "status": "active",
                    },
                )
                done[topic] = ("created", created.get("id"))
            elif hook.get("status") != "active":
                self.call(
                    "PUT", f"/webhooks/{hook['id']}", json={"status": "active", "secret": secret}
                )
                done[topic] = ("reactivated", hook["id"])
            else:
                done[topic] = ("unchanged", hook["id"])
        return done

    def remove_webhooks(self, delivery_url: str) -> list:
        """Delete every webhook posting to ``delivery_url`` (the shop is being removed here);
        the ids deleted. ``force=true``: WooCommerce does not trash webhooks and answers 501
        without it (WC_REST_Webhooks_V1_Controller::delete_item)."""
        removed = []
        for hook in self.webhooks():
            if hook.get("delivery_url") == delivery_url:
                self.call("DELETE", f"/webhooks/{hook['id']}", params={"force": "true"})
                removed.append(hook["id"])
        return removed

    # -- transport ------------------------------------------------------------------

    def call(self, method: str, path: str, **kwargs):
        response = http.request(
            self.session,
            method,
            self.base + path,
            "WooCommerce",
            timeout=TIMEOUT,
            auth=self.auth,
            headers={"Accept": "application/json"},
            **kwargs,
        )
        answer = http.json_or_none(response)
        http.check(response, "WooCommerce", _message(answer))
        if answer is None:
            raise TransientError(
                "WooCommerce: the answer is not JSON (is /wp-json reachable and pretty permalinks on?)",
                status_code=response.status_code,
                response=http.truncated(response.text),
            )
        return answer


def _message(answer) -> str | None:
    """WooCommerce's own error text: ``message (code)``."""
    if isinstance(answer, dict) and answer.get("message"):
        code = answer.get("code")
        return f"{answer['message']} ({code})" if code else str(answer["message"])
    return None
