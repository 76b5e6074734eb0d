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

    def prepare(self, runtime, conn, ctx: ActionContext) -> Prepared:
        recipient = _recipient(ctx)
        check_recipient(
            conn, ctx.action, "email", recipient, ctx.customer, keys=runtime.config.secret_keys
        )
        tc = ctx.template_context
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


def _recipient(ctx: ActionContext) -> str:
    """Exactly one bare address; a field holding two, or none valid, is skipped ``no_recipient``."""
    target = ctx.action.params.get("to", "customer")
    if target != "customer":
        address = one_email(target)
        if address is None:
            raise PermanentError("the step's 'to' is not exactly one valid email address")
        return address
    tc = ctx.template_context
    raw = (tc.get("customer") or {}).get("email") or (tc.get("order") or {}).get("email")
    if not raw:
        raise Skip("no_recipient", "the customer has no email address in this event")
    address = one_email(raw)
    if address is None:
        raise Skip("no_recipient", "the customer's email is not exactly one valid address")
    return address
