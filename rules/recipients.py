"""Who a message goes to: the address the platform itself mails about the order.

A mail about an order goes to the order's contact email (Shopify ``email``, which
is ``contact_email``; WooCommerce ``billing.email``: the canonical ``order.email``),
because that is where the platform sends its own order notifications and it may
differ from the customer account's latest address. Customer-scoped mail (a
win-back, a reminder not tied to one order, ``to: customer``) goes to the
customer's current email. The email step's ``to`` chooses:

* ``auto`` (default): the order's contact email when the action is about an
  order, else the customer's current email;
* ``order``: the order's contact email (the customer's when the order has none);
* ``customer``: the customer's current email (the order's when the customer has none).
"""

from __future__ import annotations


def email_for(to: str | None, order: dict | None, customer: dict | None) -> str | None:
    """The address an email step with ``to`` goes to, or None when there is none."""
    order_email = (order or {}).get("email") or None
    customer_email = (customer or {}).get("email") or None
    if to == "customer":
        return customer_email or order_email
    if to in ("order", "auto", None):
        if to == "auto" and not order:
            return customer_email
        return order_email or customer_email
    return to  # a fixed address, validated when the rules loaded
