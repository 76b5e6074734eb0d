"""The web app: ``create_app()``, served by ``aftersale web`` (aftersale/web_server.py).

The app shell builds the runtime from the environment, hands it to the web
parts (``aftersale.webhooks.make_app``) and adds the store install flows,
which need the shell's shop handling.
"""

from __future__ import annotations

from flask import Flask

from aftersale import admin
from aftersale.core.config import Config
from aftersale.runtime import Runtime
from aftersale.shopify_app import bp as shopify_app_bp
from aftersale.webhooks import make_app, route
from aftersale.woocommerce_auth import bp as woocommerce_auth_bp


def create_app(config: Config | None = None, runtime: Runtime | None = None) -> Flask:
    """The whole web app; ``runtime`` for tests that share one with workers."""
    app = make_app(runtime or Runtime(config or Config.from_env()))
    app.register_blueprint(woocommerce_auth_bp)
    app.register_blueprint(shopify_app_bp)
    admin.install(app)  # /admin: off (and says how to turn it on) without ADMIN_PASSWORD
    route.install(app)  # webhook POSTs answered before Flask dispatches (webhooks/route.py)
    return app
