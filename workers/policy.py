"""May this message go out now? Consent, suppressions and the like, checked just before sending.

Transactional messages (order and shipping information) go to anyone who
ordered, unless the address bounced or complained. Marketing messages also
need the customer's consent for the channel and an address that did not
unsubscribe.
"""

from __future__ import annotations

from store import messages as message_store

CONSENT_FIELD = {"email": "accepts_email_marketing", "sms": "accepts_sms_marketing"}


class Skip(Exception):
    """The action must not run; ``reason`` is recorded as its skip reason."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def check_recipient(conn, action, channel: str, address: str, customer: dict) -> None:
    """Raise Skip when ``address`` must not get this action's message on ``channel``."""
    reason = message_store.suppression(conn, action.shop_id, channel, address, action.category)
    if reason:
        raise Skip("suppressed", f"{channel} address suppressed ({reason})")
    if action.category == "marketing" and customer.get(CONSENT_FIELD[channel]) is not True:
        raise Skip(
            "no_consent", f"marketing {channel} needs the customer's {channel} marketing consent"
        )
