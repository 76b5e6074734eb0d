"""The few Shopify GraphQL Admin API calls Aftersale makes: tag, note, discount code.

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
from decimal import Decimal

import requests

from aftersale.core import http
from aftersale.core.errors import PermanentError, TransientError
from aftersale.core.platform import ShopAccess

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

    def __init__(self, shop: ShopAccess, session: requests.Session):
        token = shop.credentials.get("access_token")
        if not token:
            raise PermanentError(f"no Shopify access token stored for {shop.domain}")
        base = (shop.api_url or f"https://{shop.domain}").rstrip("/")
        self.endpoint = f"{base}/admin/api/{API_VERSION}/graphql.json"
        self.headers = {"X-Shopify-Access-Token": token, "Accept": "application/json"}
        self.session = session

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
