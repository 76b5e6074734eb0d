"""The step types a rule can take, in one registry: what each one is, read by every floor.

Whether a step is a message (quiet hours, frequency caps, consent), which
customer field holds its marketing consent, how many attempts it is worth
before it becomes a dead letter, which runtime channel carries it, and how
its recipient is masked in logs: all of it is said once, here. Rules (which
steps are messages), the store (attempt budgets, which actions count toward
a cap), workers (consent, channels at start-up, masking) read this table.

Adding a channel is this entry plus its executor module (workers/executors)
and its rule schema (rules/step_schemas); a test checks the three agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aftersale.core.logs import mask_email, mask_phone


def _mask_address(recipient: str) -> str:
    return mask_email(recipient) if "@" in recipient else recipient


def _mask_url(recipient: str) -> str:
    """Only the host: webhook URLs (Slack's) carry their token in the path."""
    return urlsplit(recipient).netloc


@dataclass(frozen=True)
class StepType:
    """One kind of step.

    Attributes:
        name: the key rules use (``- email: thank_you``).
        message: a message to a customer: quiet hours and frequency caps apply, and
            marketing needs consent.
        consent_field: the customer field that must be True for marketing on it.
        max_attempts: attempts before transient failures make it a dead letter (a customer
            mail is worth about a day of retries; a store's own endpoint a little longer).
        channel: the runtime attribute carrying it (``runtime.mailer``), checked at start-up;
            None for platform calls, which use the shop's API.
        mask: how a recipient is shown in logs.
    """

    name: str
    message: bool = False
    consent_field: str | None = None
    max_attempts: int = 10
    channel: str | None = None
    mask: Callable[[str], str] = _mask_address
    #: an opt-out on this channel (a STOP reply to a text) blocks transactional messages too
    opt_out_blocks_all: bool = False


STEP_TYPES: dict[str, StepType] = {
    step.name: step
    for step in (
        StepType(
            "email",
            message=True,
            consent_field="accepts_email_marketing",
            max_attempts=8,
            channel="mailer",
        ),
        StepType(
            "sms",
            message=True,
            consent_field="accepts_sms_marketing",
            max_attempts=6,
            channel="sms",
            mask=mask_phone,
            opt_out_blocks_all=True,
        ),
        StepType("webhook", channel="webhooks", mask=_mask_url),
        StepType("tag_order"),
        StepType("tag_customer"),
        StepType("note_order"),
        StepType("discount_code"),
    )
}

#: the step types that are messages to a customer
MESSAGE_STEPS = frozenset(name for name, step in STEP_TYPES.items() if step.message)
#: every customer field that holds a marketing consent
CONSENT_FIELDS = tuple(step.consent_field for step in STEP_TYPES.values() if step.consent_field)
DEFAULT_MAX_ATTEMPTS = 5


def step_type(name: str) -> StepType:
    """The registry entry; KeyError for a name no rule can have (the loader checked them)."""
    return STEP_TYPES[name]


def max_attempts_for(name: str) -> int:
    step = STEP_TYPES.get(name)
    return step.max_attempts if step else DEFAULT_MAX_ATTEMPTS


def masked(name: str, recipient: str | None) -> str | None:
    """A recipient as logs may show it: never a full address, number or webhook URL."""
    if not recipient:
        return None
    step = STEP_TYPES.get(name)
    return (step.mask if step else _mask_address)(recipient)


def has_consent(customer: dict, name: str) -> bool:
    """The customer agreed to marketing on this step's channel (the registry names the field)."""
    field = STEP_TYPES[name].consent_field
    return field is not None and customer.get(field) is True


#: consent states (Shopify's names, also used for WooCommerce) that are an opt-out
OPTED_OUT_STATES = frozenset({"unsubscribed", "redacted"})


def may_market(
    customer: dict, name: str, basis: str = "explicit", *, bought: bool, opted_out: bool
) -> bool:
    """Whether a marketing message on this step's channel may go to the customer.

    ``basis`` is the store owner's legal basis (settings.yaml ``consent``):
    ``explicit`` needs the customer's consent; ``existing_customers`` (the soft
    opt-in some laws allow for similar products) also reaches a customer who
    ``bought`` from the shop and never ``opted_out`` on that channel (an
    unsubscribed consent record; unsubscribe links are suppressions, checked
    before this). Transactional messages never ask.
    """
    if has_consent(customer, name):
        return True
    return basis == "existing_customers" and bought and not opted_out
