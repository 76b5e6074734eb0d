"""The one marketing-consent check, for the worker before sending and for ``rules test``.

Both ask the same question with the same stored facts, so a dry run and a
real send cannot disagree: does the customer's consent on the channel, or
the store's legal basis (``consent: existing_customers``), allow a marketing
message? Consent lands in one place for both platforms (the customer row's
``accepts_*`` flags and ``customer_consents``), whether Shopify's consent
webhooks or WooCommerce plugin meta reported it.
"""

from __future__ import annotations

from aftersale.core.steps import OPTED_OUT_STATES, STEP_TYPES, has_consent, may_market
from aftersale.store import events as event_store
from aftersale.store import state as state_store
from aftersale.store.state import consent_channel


def marketing_allowed(
    conn, shop_id: int, customer: dict, step: str, basis: str, order_ref: str | None
) -> bool:
    """May a marketing ``step`` (email, sms) go to ``customer`` under ``basis``?

    Under ``existing_customers`` the customer must have bought (the message is
    about an order, or an order is on record) and hold no opted-out consent
    record for the channel; only then are the stored records read.
    """
    if has_consent(customer, step):
        return True
    ref = customer.get("id")
    if basis != "existing_customers" or not ref:
        return False
    field = STEP_TYPES[step].consent_field
    record = state_store.get_consents(conn, shop_id, str(ref)).get(consent_channel(field))
    opted_out = record is not None and record.state in OPTED_OUT_STATES
    bought = bool(order_ref) or event_store.has_ordered(conn, shop_id, str(ref))
    return may_market(customer, step, basis, bought=bought, opted_out=opted_out)


def no_consent_detail(step: str, basis: str) -> str:
    """The skip reason's detail, saying which basis was applied."""
    if basis == "existing_customers":
        return (
            f"marketing {step} needs the customer's {step} marketing consent, or an earlier "
            f"purchase without an opt-out (consent: existing_customers)"
        )
    return f"marketing {step} needs the customer's {step} marketing consent"
