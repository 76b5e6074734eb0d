"""The ``sms`` step: a short text to the customer's phone, through Twilio.

A transactional text (shipping, a delivery problem: the rule's own
``category``) needs only a phone number, like a transactional mail; a
marketing text needs the customer's SMS consent (or the shop's
``consent: existing_customers`` basis), and a STOP reply suppresses the number
for every text. Numbers are validated and normalized to E.164 with phonenumbers,
read in the country of the order's address when written without ``+``; an
unusable number fails the action with the reason.
"""

from __future__ import annotations

import phonenumbers

from aftersale.core.addresses import phone_candidates
from aftersale.core.errors import PermanentError
from aftersale.workers.channels.twilio_sms import SMSMessage
from aftersale.workers.executors.base import ActionContext, Executor, Prepared, render_inline
from aftersale.workers.policy import Skip, check_recipient
from aftersale.workers.render import TemplateProblem

#: one SMS segment is 160 GSM characters; beyond a few segments a text is a letter
MAX_LENGTH = 640


class SMSExecutor(Executor):
    step = "sms"
    sends_alongside = True

    def prepare(self, runtime, conn, ctx: ActionContext) -> Prepared:
        number = recipient_number(ctx)
        check_recipient(
            conn,
            ctx.action,
            "sms",
            number,
            ctx.customer,
            keys=runtime.config.secret_keys,
            basis=ctx.settings.consent,
            reads=ctx.reads,
        )
        text = render_inline(runtime, ctx.action.params["text"], ctx.template_context, "sms text")
        text = text.strip()
        if not text:
            raise TemplateProblem("the SMS text rendered empty")
        if len(text) > MAX_LENGTH:
            raise TemplateProblem(f"the SMS text is {len(text)} characters (at most {MAX_LENGTH})")
        return Prepared("sms", number, None, SMSMessage(number, text))

    def send(self, runtime, prepared: Prepared):
        return runtime.sms.send([prepared.payload])[0]


def recipient_number(ctx: ActionContext) -> str:
    """The number to text in E.164; Skip when there is none, PermanentError when it is unusable."""
    target = ctx.action.params.get("to", "customer")
    tc = ctx.template_context
    order = tc.get("order") or {}
    if target == "customer":
        raw = (tc.get("customer") or {}).get("phone") or order.get("phone")
        raw = raw or (order.get("shipping_address") or {}).get("phone")
    else:
        raw = target
    candidates = phone_candidates(raw)
    if not candidates:
        raise Skip("no_recipient", "the customer has no phone number in this event")
    # A field often holds two numbers ("mobile / home"): text the first one that is valid.
    problem = None
    for candidate in candidates:
        try:
            return e164(candidate, _region(order))
        except PermanentError as exc:
            problem = problem or exc
    raise problem


def e164(raw: str, region: str | None = None) -> str:
    try:
        number = phonenumbers.parse(str(raw), region)
    except phonenumbers.NumberParseException as exc:
        raise PermanentError(f"invalid phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(number):
        raise PermanentError("invalid phone number (not a number in use in its country)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _region(order: dict) -> str | None:
    for key in ("shipping_address", "billing_address"):
        code = (order.get(key) or {}).get("country_code")
        if code:
            return str(code).upper()
    return None
