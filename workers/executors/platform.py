"""Steps that act on the store itself through its connector: tag the order or the customer,
add an order note, create a single-use discount code.

Executors only use the connector interface (``connectors/base.py``), so the
same step works on every platform that implements the call; a platform that
cannot (WooCommerce has no customer tags) fails the action with that reason.
A discount code is derived from the action id with SECRET_KEY, so a retry
after a crash asks for the same code and the platform call stays idempotent;
the code is kept on the action and later steps of the rule use it.

The shop's credentials are read when the call is made, in ``send``, not in
``prepare``: ``workers.shop_access`` may have to renew an expiring Shopify
token first, which writes to the database, and ``prepare`` runs inside a read
connection that on SQLite already holds the single-writer lock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from functools import partial

from aftersale.connectors import get_connector
from aftersale.core.events import iso
from aftersale.rules.durations import parse_duration
from aftersale.workers import shop_access
from aftersale.workers.channels.base import SendResult
from aftersale.workers.executors.base import ActionContext, Executor, Prepared, render_inline
from aftersale.workers.policy import Skip


@dataclass(frozen=True)
class PlatformCall:
    """A prepared platform call: the shop row, and ``run(access, session=...)``."""

    shop: object
    run: object


class PlatformExecutor(Executor):
    """Prepare builds the call (checked); send gets the shop's access and makes it."""

    def prepare(self, runtime, conn, ctx: ActionContext) -> Prepared:
        connector = get_connector(ctx.shop.platform)
        if connector is None:
            raise Skip("unsupported", f"no connector for platform {ctx.shop.platform!r}")
        prepared = self.call(runtime, ctx, connector)
        prepared.payload = PlatformCall(ctx.shop, prepared.payload)
        return prepared

    def call(self, runtime, ctx: ActionContext, connector) -> Prepared:
        """The Prepared whose payload is ``run(access, session=...)``."""
        raise NotImplementedError

    def send(self, runtime, prepared: Prepared) -> SendResult:
        call: PlatformCall = prepared.payload
        session = runtime.platform_session()
        data = shop_access.call(runtime, call.shop, partial(_run, call.run, session=session))
        data = data or {}
        return SendResult(provider_id=str(data.get("id")) if data.get("id") else None, data=data)


def _run(run, access, *, session):
    return run(access, session=session)


class TagOrderExecutor(PlatformExecutor):
    step = "tag_order"

    def call(self, runtime, ctx, connector) -> Prepared:
        order_ref = _order_ref(ctx)
        tags = list(ctx.action.params["tags"])
        return Prepared(
            self.step,
            f"order {order_ref}",
            f"tags: {', '.join(tags)}",
            partial(connector.tag_order, order_ref=order_ref, tags=tags),
        )


class TagCustomerExecutor(PlatformExecutor):
    step = "tag_customer"

    def call(self, runtime, ctx, connector) -> Prepared:
        ref = ctx.action.customer_ref or ctx.event.customer_ref
        if not ref or ref.startswith("guest:"):
            raise Skip("no_customer", "the order has no customer account to tag")
        tags = list(ctx.action.params["tags"])
        return Prepared(
            self.step,
            f"customer {ref}",
            f"tags: {', '.join(tags)}",
            partial(connector.tag_customer, customer_ref=ref, tags=tags),
        )


class NoteOrderExecutor(PlatformExecutor):
    step = "note_order"

    def call(self, runtime, ctx, connector) -> Prepared:
        order_ref = _order_ref(ctx)
        note = render_inline(runtime, ctx.action.params["note"], ctx.template_context, "note")
        note = note.strip()
        return Prepared(
            self.step,
            f"order {order_ref}",
            note[:200],
            partial(connector.add_order_note, order_ref=order_ref, note=note),
        )


class DiscountCodeExecutor(PlatformExecutor):
    step = "discount_code"
    provides_result = True

    def call(self, runtime, ctx, connector) -> Prepared:
        params = ctx.action.params
        now = runtime.clock.now()
        code = discount_code(runtime.config.secret_key, ctx.action, params.get("prefix"))
        expires = now + parse_duration(params["expires_in"]) if params.get("expires_in") else None
        spec = {
            "code": code,
            "kind": params.get("type", "percentage"),
            "value": str(params["value"]),
            "currency": (ctx.template_context.get("order") or {}).get("currency"),
            "title": params.get("title"),
            "starts_at": iso(now),
            "expires_at": iso(expires) if expires else None,
            "customer_id": ctx.action.customer_ref or ctx.event.customer_ref,
            "customer_email": (ctx.customer or {}).get("email"),
        }
        return Prepared(
            self.step,
            spec["customer_email"],
            f"discount code {code}",
            partial(_create, connector, spec=spec),
        )


def _create(connector, access, spec: dict, *, session) -> dict:
    created = connector.create_discount_code(access, spec, session=session)
    return {
        "id": created.get("id"),
        "code": created.get("code") or spec["code"],
        "kind": spec["kind"],
        "value": spec["value"],
        "currency": spec["currency"],
        "expires_at": spec["expires_at"],
    }


def discount_code(secret_key: str, action, prefix: str | None) -> str:
    """``THANKS-7KQ2M9XD``: the same for every attempt of one action, unguessable without the key."""
    digest = hmac.new(
        secret_key.encode(), f"discount|{action.shop_id}|{action.id}".encode(), hashlib.sha256
    ).digest()
    suffix = base64.b32encode(digest).decode("ascii").rstrip("=")[:10]
    return f"{prefix}-{suffix}" if prefix else suffix


def _order_ref(ctx: ActionContext) -> str:
    ref = ctx.action.order_ref or ctx.event.order_ref
    if not ref:
        raise Skip("no_order", "the event is not about an order")
    return ref


__all__ = [
    "DiscountCodeExecutor",
    "NoteOrderExecutor",
    "TagCustomerExecutor",
    "TagOrderExecutor",
]
