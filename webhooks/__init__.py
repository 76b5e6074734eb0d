"""The web app's parts: webhook receivers, health checks, and the signed links in messages.

``make_app(runtime)`` builds the Flask app around a runtime it is handed; the
app shell (``aftersale.web.create_app``) makes the runtime and adds the store
install flows. Nothing is opened at import time, and each process opens its
database pool, Redis client and writer thread lazily.
"""

from __future__ import annotations

from flask import Flask
from flask.sessions import SessionInterface

from aftersale.core import logs
from aftersale.core.config import Config
from aftersale.webhooks.health import bp as health_bp
from aftersale.webhooks.links import bp as links_bp
from aftersale.webhooks.receiver import ReceiverState
from aftersale.webhooks.receiver import bp as receiver_bp


def make_app(runtime) -> Flask:
    """The receiver, health and link endpoints around ``runtime`` (``aftersale.runtime``)."""
    config = runtime.config
    logs.configure(config.log_level, config.log_format)
    _init_sentry(config)

    app = Flask(__name__, instance_path=str(config.instance_path))
    app.config.update(
        MAX_CONTENT_LENGTH=config.max_body_bytes,
        SECRET_KEY=config.secret_key,
        JSON_SORT_KEYS=False,
    )
    app.session_interface = NoSessions()
    app.extensions["aftersale"] = runtime
    app.extensions["aftersale.receiver"] = ReceiverState(runtime)
    app.register_blueprint(receiver_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(links_bp)
    return app


class NoSessions(SessionInterface):
    """Aftersale keeps no cookie sessions (links carry signed tokens instead).

    Flask's default interface builds an itsdangerous serializer on every
    request once SECRET_KEY is set, a few percent of a webhook's CPU; this one
    hands Flask its null session at no cost.
    """

    def open_session(self, app, request):
        return None

    def save_session(self, app, session, response):
        return None


def _init_sentry(config: Config) -> None:
    if not config.sentry_dsn:
        return
    # deferred import: Sentry is loaded only when SENTRY_DSN is set
    import sentry_sdk

    sentry_sdk.init(
        dsn=config.sentry_dsn,
        environment=config.environment,
        send_default_pii=False,  # bodies and customer data stay out of Sentry
        max_request_body_size="never",
    )
