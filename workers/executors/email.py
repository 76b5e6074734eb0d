"""The ``email`` step: render the template in the customer's language and send it."""

from __future__ import annotations

from aftersale.core.addresses import one_email
from aftersale.core.errors import PermanentError
from aftersale.workers.compose import compose_email
from aftersale.workers.executors.base import ActionContext, Executor, Prepared
from aftersale.workers.message_links import MessageLinks
from aftersale.workers.policy import Skip, check_recipient
from aftersale.workers.render import message_locales


class EmailExecutor(Executor):
    step = "email"
    sends_alongside = True

    def prepare(self, runtime, conn, ctx: ActionContext) -> Prepared:
        recipient = _recipient(ctx)
        check_recipient(
            conn,
            ctx.action,
            "email",
            recipient,
            ctx.customer,
            keys=runtime.config.secret_keys,
            basis=ctx.settings.consent,
            reads=ctx.reads,
        )
        tc = customer_facing(ctx.template_context, ctx.action.params)
        locales = message_locales(tc, ctx.settings.default_locale)
        links = MessageLinks.for_action(
            runtime, ctx.shop, ctx.settings, ctx.action, tc.get("order"), None
        )
        rendered = runtime.renderer.render(ctx.action.params["template"], tc, locales, links)
        message = compose_email(
            runtime, ctx, rendered, recipient, links.with_locale(rendered.locale)
        )
        return Prepared("email", recipient, rendered.subject, message, message["Message-ID"])

    def send(self, runtime, prepared: Prepared):
        return runtime.mailer.send([prepared.payload])[0]


def customer_facing(context: dict, params: dict) -> dict:
    """The template context without what staff wrote for staff: a refund's note (the reason
    typed in the admin, e.g. "customer abusive, refund to stop chargeback") reaches the
    customer only when the step says ``show_refund_note: true``."""
    refund = context.get("refund")
    if params.get("show_refund_note") or not refund or not refund.get("note"):
        return context
    return {**context, "refund": {**refund, "note": None}}


def _recipient(ctx: ActionContext) -> str:
    """Exactly one bare address; a field holding two, or none valid, is skipped ``no_recipient``."""
    target = ctx.action.params.get("to", "customer")
    if target not in ("auto", "order", "customer"):
        address = one_email(target)
        if address is None:
            raise PermanentError("the step's 'to' is not exactly one valid email address")
        return address
    tc = ctx.template_context
    # the order's contact email or the customer's current one (workers/promises.py)
    raw = (tc.get("recipient") or {}).get("email")
    if not raw:
        raise Skip("no_recipient", "the customer has no email address in this event")
    address = one_email(raw)
    if address is None:
        raise Skip("no_recipient", "the customer's email is not exactly one valid address")
    return address
