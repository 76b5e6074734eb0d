"""The ``webhook`` step: POST the event (or a body the rule shapes) to a URL, signed.

Without ``body`` the payload is the whole event as Aftersale sees it, plus
what earlier steps of the rule produced (a discount code). With ``body``,
each string in it is a template, so a Slack message is one line of YAML:
``webhook: {url: ..., body: {text: "Order {{ order.name }} was delivered"}}``.
"""

from __future__ import annotations

import orjson

from aftersale.workers.channels.webhook import WebhookRequest
from aftersale.workers.executors.base import ActionContext, Executor, Prepared, render_inline

RECIPIENT_LIMIT = 320


class WebhookExecutor(Executor):
    step = "webhook"
    sends_alongside = True

    def prepare(self, runtime, conn, ctx: ActionContext) -> Prepared:
        params = ctx.action.params
        body = params.get("body")
        payload = (
            _render(runtime, body, ctx.template_context) if body is not None else default_body(ctx)
        )
        raw = orjson.dumps(payload, default=str)
        request = WebhookRequest(
            url=params["url"],
            body=raw,
            delivery_id=f"action-{ctx.action.id}",
            event=ctx.event.kind,
        )
        return Prepared("webhook", params["url"][:RECIPIENT_LIMIT], None, request)

    def send(self, runtime, prepared: Prepared):
        return runtime.webhooks.send([prepared.payload])[0]


def default_body(ctx: ActionContext) -> dict:
    action = ctx.action
    return {
        "id": f"action-{action.id}",
        "rule": action.rule,
        "shop": ctx.shop.domain,
        "event": ctx.event.to_dict(),
        "customer": ctx.customer or None,
        "steps": ctx.template_context.get("steps") or {},
    }


def _render(runtime, value, context: dict):
    if isinstance(value, str):
        return render_inline(runtime, value, context, "webhook body")
    if isinstance(value, dict):
        return {k: _render(runtime, v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(runtime, v, context) for v in value]
    return value
