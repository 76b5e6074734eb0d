"""WooCommerce's key exchange: the store posts a new API key here after its owner approves.

``aftersale shops connect-woocommerce --url ...`` prints the authorize link;
its ``user_id`` is a token signed with SECRET_KEY, so only a key exchange that
started here is accepted. The callback must answer exactly 200, or WooCommerce
deletes the key it just made, so webhook registration (calls back to the store)
runs afterwards in a worker.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request
from markupsafe import escape

from aftersale.core import logs
from aftersale.shops import ConnectError, accept_keys
from aftersale.store.queues import enqueue_registration

bp = Blueprint("woocommerce_auth", __name__)
log = logs.get_logger("webhooks.woocommerce_auth")


@bp.post("/woocommerce/auth-callback")
def auth_callback():

    runtime = current_app.extensions["aftersale"]
    posted = request.get_json(silent=True)
    if not isinstance(posted, dict):
        return Response("expected the JSON WooCommerce posts", status=400)
    try:
        _, domain = accept_keys(runtime, posted)
    except ConnectError as exc:
        log.warning("shop.connect_refused", reason=str(exc))
        return Response(str(exc), status=400)
    try:
        enqueue_registration(runtime, domain)
    except Exception as exc:  # Redis down: the key is stored; registration can be run by hand
        log.warning("shop.registration_not_queued", shop=domain, error=str(exc))
    return Response("", status=200)


@bp.get("/woocommerce/connected")
def connected():
    ok = request.args.get("success") == "1"
    text = (
        "Aftersale is connected to your store. Its webhooks are being created; "
        "you can close this page."
        if ok
        else "The connection was not approved. Nothing was changed."
    )
    body = f"<!doctype html><meta charset=utf-8><title>Aftersale</title><p>{escape(text)}</p>"
    return Response(body, status=200 if ok else 400, mimetype="text/html")
