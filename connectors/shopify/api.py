"""The few Shopify GraphQL Admin API calls Aftersale makes: tag, note, discount code, and
the webhook subscriptions an install sets up.

Shopify's GraphQL rate limit is a leaky bucket of query cost: a throttled
request is answered 200 with ``errors[].extensions.code == "THROTTLED"`` and
the bucket's state in ``extensions.cost.throttleStatus`` (no Retry-After), so
the wait is computed from it: (requested cost - currently available) /
restore rate. HTTP 429 (with Retry-After) and 5xx are transient too; 401,
402 (shop frozen), 403, 404 and 423 (shop locked) are permanent, as are
``userErrors`` (the input is wrong and stays wrong).

Each call is safe to repeat after a crash: tags are a set, a note already
present is not added again, and a discount code that already exists (the
code is derived from the action id) is looked up instead of created.

The client opens no connections of its own: the caller hands it the shop's
access (address and decrypted token) and a pooled ``requests.Session``
(``aftersale.core.http.make_session()``), and decides how long that session
lives and which thread uses it. A connector stays pure translation, with no
process-wide state to reset between tests or to share unsafely across threads.
"""

from __future__ import annotations

import math
import time
from decimal import Decimal
from typing import TYPE_CHECKING

from aftersale.core import http
from aftersale.core.errors import PermanentError, TransientError
from aftersale.core.platform import ShopAccess

if TYPE_CHECKING:  # annotations only: core/http.py loads requests when it makes a session
    import requests

API_VERSION = "2025-10"
TIMEOUT = 15.0

TAGS_ADD = """
mutation tagsAdd($id: ID!, $tags: [String!]!) {
  tagsAdd(id: $id, tags: $tags) { node { id } userErrors { field message } }
}"""
ORDER_NOTE = """
query orderNote($id: ID!) { order(id: $id) { id note } }"""
ORDER_UPDATE = """
mutation orderUpdate($input: OrderInput!) {
  orderUpdate(input: $input) { order { id } userErrors { field message } }
}"""
DISCOUNT_CREATE = """
mutation discountCodeBasicCreate($input: DiscountCodeBasicInput!) {
  discountCodeBasicCreate(basicCodeDiscount: $input) {
    codeDiscountNode { id }
    userErrors { field code message }
  }
}"""
DISCOUNT_BY_CODE = """
query discountByCode($code: String!) { codeDiscountNodeByCode(code: $code) { id } }"""
WEBHOOKS_LIST = """
query webhookSubscriptions($after: String) {
  webhookSubscriptions(first: 100, after: $after) {
    nodes { id topic uri }
    pageInfo { hasNextPage endCursor }
  }
}"""
WEBHOOK_CREATE = """
mutation webhookSubscriptionCreate(
  $topic: WebhookSubscriptionTopic!, $webhookSubscription: WebhookSubscriptionInput!
) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $webhookSubscription) {
    webhookSubscription { id topic uri }
    userErrors { field message }
  }
}"""
WEBHOOK_UPDATE = """
mutation webhookSubscriptionUpdate($id: ID!, $webhookSubscription: WebhookSubscriptionInput!) {
  webhookSubscriptionUpdate(id: $id, webhookSubscription: $webhookSubscription) {
    webhookSubscription { id topic uri }
    userErrors { field message }
  }
}"""
WEBHOOK_DELETE = """
mutation webhookSubscriptionDelete($id: ID!) {
  webhookSubscriptionDelete(id: $id) { deletedWebhookSubscriptionId userErrors { field message } }
}"""
#: attempts of one operation during webhook registration, which runs while a merchant
#: waits on the install page (actions instead retry through their worker)
PATIENT_ATTEMPTS = 4
MAX_WAIT = 30.0


def gid(kind: str, ref: str) -> str:
    """``gid://shopify/Order/123`` from a plain id (an id that already is a gid is kept)."""
    ref = str(ref)
    return ref if ref.startswith("gid://") else f"gid://shopify/{kind}/{ref}"


def discount_input(spec: dict) -> dict:
    """``DiscountCodeBasicInput`` for a single-use code, limited to the customer when known."""
    value = Decimal(str(spec["value"]))
    if spec["kind"] == "percentage":
        gets_value = {"percentage": float(value / 100)}
    else:
        gets_value = {"discountAmount": {"amount": str(value), "appliesOnEachItem": False}}
    customer = spec.get("customer_id")
    context = (
        {"customers": {"add": [gid("Customer", customer)]}}
        if customer and not str(customer).startswith("guest:")
        else {"all": "ALL"}
    )
    discount = {
        "title": spec.get("title") or f"Aftersale {spec['code']}",
        "code": spec["code"],
        "startsAt": spec["starts_at"],
        "usageLimit": 1,
        "appliesOncePerCustomer": True,
        "context": context,
        "customerGets": {"value": gets_value, "items": {"all": True}},
    }
    if spec.get("expires_at"):
        discount["endsAt"] = spec["expires_at"]
    return discount


class ShopifyAdminAPI:
    """The Admin API of one shop, over the caller's session (see the module docstring)."""

    def __init__(self, shop: ShopAccess, session: requests.Session, *, sleep=time.sleep):
        token = shop.credentials.get("access_token")
        if not token:
            raise PermanentError(f"no Shopify access token stored for {shop.domain}")
        base = (shop.api_url or f"https://{shop.domain}").rstrip("/")
        self.endpoint = f"{base}/admin/api/{API_VERSION}/graphql.json"
        self.headers = {"X-Shopify-Access-Token": token, "Accept": "application/json"}
        self.session = session
        self.sleep = sleep

    # -- the calls -------------------------------------------------------------

    def tags_add(self, resource_gid: str, tags: list[str]) -> dict:
        data = self.execute(TAGS_ADD, {"id": resource_gid, "tags": tags})
        self._user_errors("tagsAdd", data["tagsAdd"])
        return {"id": resource_gid, "tags": tags}

    def append_order_note(self, order_gid: str, note: str) -> dict:
        """Add ``note`` below the order's existing note (orderUpdate replaces the whole note)."""
        order = self.execute(ORDER_NOTE, {"id": order_gid}).get("order")
        if order is None:
            raise PermanentError(f"Shopify: order {order_gid} not found")
        current = order.get("note") or ""
        if note in current:
            return {"id": order_gid, "note": "already present"}
        combined = f"{current}\n{note}" if current else note
        data = self.execute(ORDER_UPDATE, {"input": {"id": order_gid, "note": combined}})
        self._user_errors("orderUpdate", data["orderUpdate"])
        return {"id": order_gid}

    def create_discount_code(self, discount: dict) -> dict:
        """discountCodeBasicCreate; a code that exists already (a repeated call) is looked up."""
        data = self.execute(DISCOUNT_CREATE, {"input": discount})
        payload = data["discountCodeBasicCreate"]
        errors = payload.get("userErrors") or []
        if errors and all(e.get("code") == "TAKEN" for e in errors):
            found = self.execute(DISCOUNT_BY_CODE, {"code": discount["code"]})
            node = found.get("codeDiscountNodeByCode")
            if node:
                return {"id": node["id"], "code": discount["code"], "existing": True}
        self._user_errors("discountCodeBasicCreate", payload)
        return {"id": payload["codeDiscountNode"]["id"], "code": discount["code"]}

    # -- webhook subscriptions --------------------------------------------------------

    def webhook_subscriptions(self) -> list[dict]:
        """Every subscription this app has on the shop: [{id, topic (enum), uri}]."""
        found, after = [], None
        while True:
            data = self.patient(WEBHOOKS_LIST, {"after": after})["webhookSubscriptions"]
            found += data.get("nodes") or []
            page = data.get("pageInfo") or {}
            if not page.get("hasNextPage"):
                return found
            after = page.get("endCursor")

    def register_webhooks(self, uri: str, topics: dict[str, str]) -> list[tuple[str, str, str]]:
        """Make the subscriptions exactly ``topics`` ({topic: GraphQL enum}), all to ``uri``.

        Idempotent: a subscription already right is kept; one of a needed topic pointing
        elsewhere is moved to ``uri``; duplicates and topics no longer needed are deleted
        (every subscription listed is this app's own). Returns [(topic, created | updated |
        unchanged | deleted, subscription id)], a deleted one named by its enum when no
        longer needed.
        """
        by_enum = {enum: topic for topic, enum in topics.items()}
        existing: dict[str, list[dict]] = {}
        for sub in self.webhook_subscriptions():
            existing.setdefault(sub.get("topic"), []).append(sub)
        done: list[tuple[str, str, str]] = []
        for enum, subs in existing.items():
            topic = by_enum.get(enum)
            keep = None
            if topic is not None:
                keep = next((s for s in subs if s.get("uri") == uri), subs[0])
                if keep.get("uri") == uri:
                    done.append((topic, "unchanged", keep["id"]))
                else:
                    variables = {"id": keep["id"], "webhookSubscription": {"uri": uri}}
                    data = self.patient(WEBHOOK_UPDATE, variables)
                    self._user_errors(
                        "webhookSubscriptionUpdate", data["webhookSubscriptionUpdate"]
                    )
                    done.append((topic, "updated", keep["id"]))
            for sub in subs:
                if sub is not keep:
                    self._delete_subscription(sub["id"])
                    done.append((topic or str(enum), "deleted", sub["id"]))
        for topic, enum in topics.items():
            if enum in existing:
                continue
            variables = {"topic": enum, "webhookSubscription": {"uri": uri, "format": "JSON"}}
            payload = self.patient(WEBHOOK_CREATE, variables)["webhookSubscriptionCreate"]
            self._user_errors("webhookSubscriptionCreate", payload)
            done.append((topic, "created", payload["webhookSubscription"]["id"]))
        return done

    def remove_webhooks(self, uri: str) -> list[str]:
        """Delete this app's subscriptions that post to ``uri`` (the shop is being removed
        here); the ids deleted. Subscriptions posting elsewhere are another deployment's."""
        removed = []
        for sub in self.webhook_subscriptions():
            if sub.get("uri") == uri:
                self._delete_subscription(sub["id"])
                removed.append(sub["id"])
        return removed

    def _delete_subscription(self, subscription_id: str) -> None:
        data = self.patient(WEBHOOK_DELETE, {"id": subscription_id})
        self._user_errors("webhookSubscriptionDelete", data["webhookSubscriptionDelete"])

    # -- transport ---------------------------------------------------------------

    def execute(self, query: str, variables: dict) -> dict:
        """Run one GraphQL operation; its ``data``, or the error that says what to do next."""
        response = http.request(
            self.session,
            "POST",
            self.endpoint,
            "Shopify",
            timeout=TIMEOUT,
            json={"query": query, "variables": variables},
            headers=self.headers,
        )
        answer = http.json_or_none(response)
        http.check(response, "Shopify", _first_error(answer))
        if not isinstance(answer, dict):
            raise TransientError("Shopify: answer is not JSON", status_code=response.status_code)
        errors = answer.get("errors") or []
        if any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors):
            raise TransientError(
                "Shopify: throttled",
                status_code=response.status_code,
                retry_after=throttle_wait(answer.get("extensions") or {}),
                response=http.truncated(response.text),
            )
        if errors:
            raise PermanentError(
                f"Shopify: {_first_error(answer)}",
                status_code=response.status_code,
                response=http.truncated(response.text),
            )
        return answer.get("data") or {}

    def patient(self, query: str, variables: dict) -> dict:
        """:meth:`execute`, waiting out throttling, 429 and 5xx a few times (the wait Shopify's
        throttle status or Retry-After asks for, else doubling from one second)."""
        for attempt in range(PATIENT_ATTEMPTS):
            try:
                return self.execute(query, variables)
            except TransientError as exc:
                if attempt == PATIENT_ATTEMPTS - 1:
                    raise
                wait = exc.retry_after if exc.retry_after is not None else 2.0**attempt
                self.sleep(min(MAX_WAIT, max(0.0, wait)))
        raise AssertionError("unreachable")

    @staticmethod
    def _user_errors(operation: str, payload: dict) -> None:
        errors = payload.get("userErrors") or []
        if errors:
            text = "; ".join(
                f"{'.'.join(map(str, e.get('field') or []))}: {e.get('message')}".lstrip(": ")
                for e in errors
            )
            raise PermanentError(f"Shopify {operation}: {text}")


def throttle_wait(extensions: dict) -> float:
    """Seconds until the bucket holds the requested cost again (at least one second)."""
    cost = extensions.get("cost") or {}
    status = cost.get("throttleStatus") or {}
    requested = cost.get("requestedQueryCost") or 0
    available = status.get("currentlyAvailable") or 0
    rate = status.get("restoreRate") or 0
    if rate <= 0:
        return 1.0
    return max(1.0, math.ceil((requested - available) / rate))


def _first_error(answer) -> str | None:
    if isinstance(answer, dict):
        errors = answer.get("errors")
        if isinstance(errors, list) and errors:
            return str(errors[0].get("message", errors[0]))[:500]
        if isinstance(errors, str):
            return errors[:500]
    return None
