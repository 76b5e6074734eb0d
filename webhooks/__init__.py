"""The web app's parts: webhook receivers, health checks, and the signed links in messages.

``make_app(runtime)`` builds the Flask app around a runtime it is handed; the
app shell (``aftersale.web.create_app``) makes the runtime and adds the store
install flows. Nothing is opened at import time, and each process opens its
database pool, Redis client and writer thread lazily.
"""

from __future__ import annotations

from flask import Flask
from flask.sessions import SessionInterface

from aftersale.core import logs, sentry
from aftersale.webhooks.health import bp as health_bp
from aftersale.webhooks.links import bp as links_bp
from aftersale.webhooks.metrics import bp as metrics_bp
from aftersale.webhooks.preferences import bp as preferences_bp
from aftersale.webhooks.receiver import ReceiverState
from aftersale.webhooks.receiver import bp as receiver_bp

log = logs.get_logger("webhooks")


def make_app(runtime) -> Flask:
    """The receiver, health and link endpoints around ``runtime`` (``aftersale.runtime``)."""
    config = runtime.config
    logs.configure(config.log_level, config.log_format)
    sentry.init(config, "web")
    for warning in config.warnings():  # production refuses these instead
        log.warning("config.warning", warning=warning)

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
    app.register_blueprint(metrics_bp)
    app.register_blueprint(preferences_bp)
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
