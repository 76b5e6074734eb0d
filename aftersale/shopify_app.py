"""The Shopify install pages: ``/shopify/install`` and ``/shopify/callback``.

Thin on purpose: what they check and store is ``aftersale.shopify_install``.
Every refusal is a small 400 page saying what went wrong and to start again,
never a stack trace; the success page says what was set up, so a merchant
(or whoever runs Aftersale for them) can see the scopes and webhooks at once.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, redirect, request
from markupsafe import escape

from aftersale.core import logs
from aftersale.shopify_install import (
    InstallFailed,
    InstallRefused,
    begin_install,
    complete_install,
)

bp = Blueprint("shopify_app", __name__)
log = logs.get_logger("aftersale.shopify_app")


def _page(title: str, paragraphs: list[str], status: int, items: list[str] | None = None):
    body = [
        "<!doctype html><meta charset=utf-8>",
        f"<title>Aftersale: {escape(title)}</title>",
        f"<h1>{escape(title)}</h1>",
    ]
    body += [f"<p>{escape(p)}</p>" for p in paragraphs]
    if items:
        body.append("<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>")
    return Response("\n".join(body), status=status, mimetype="text/html")


@bp.get("/shopify/install")
def install():
    runtime = current_app.extensions["aftersale"]
    try:
        url = begin_install(runtime, request.args.get("shop"))
    except InstallRefused as exc:
        log.warning("shopify.install_refused", reason=str(exc))
        return _page("Cannot install", [str(exc)], 400)
    return redirect(url, code=302)


@bp.get("/shopify/callback")
def callback():
    runtime = current_app.extensions["aftersale"]
    params = request.args.to_dict(flat=True)
    try:
        result = complete_install(runtime, params)
    except InstallRefused as exc:
        log.warning("shopify.callback_refused", reason=str(exc))
        return _page("Install refused", [str(exc), "Nothing was changed."], 400)
    except InstallFailed as exc:
        return _page("Install failed", [str(exc)], 502)
    lines = [
        f"Aftersale is installed on {result.shop}.",
        f"Access: {', '.join(result.scopes)}.",
    ]
    if result.webhook_error:
        lines.append(
            "The webhooks could not be created yet ("
            f"{result.webhook_error}); run: aftersale shopify register-webhooks --shop "
            f"{result.shop}"
        )
        items = None
    else:
        lines.append("Webhooks:")
        items = [f"{topic}: {what}" for topic, what, _ in result.webhooks]
    return _page("Aftersale installed", lines, 200, items)
