"""The admin page under ``/admin``: what happened to an order, without the CLI.

One password from ADMIN_PASSWORD; without it every ``/admin`` page says how
to turn it on. A login is a signed cookie session (Flask's, with SECRET_KEY)
that only ``/admin`` requests open (the webhook path keeps no sessions);
every form carries a Flask-WTF CSRF token; login attempts are rate-limited
per client address in Redis. Pages are server-rendered templates from this
package, with no script, laid out for a 375 px phone.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from aftersale.admin import pages, rule_pages  # noqa: F401  (their routes join bp)
from aftersale.admin.blueprint import bp
from aftersale.admin.sessions import AdminSessions

#: how long a login lasts without logging in again
SESSION_HOURS = 12


def install(app: Flask) -> None:
    """Add the admin blueprint, its sessions and its CSRF check to the web app."""
    runtime = app.extensions["aftersale"]
    config = runtime.config
    app.config.update(
        SECRET_KEY_FALLBACKS=[config.previous_secret_key] if config.previous_secret_key else [],
        SESSION_COOKIE_NAME="aftersale_admin",
        SESSION_COOKIE_PATH="/admin",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.public_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
        # checked by the blueprint for its own forms only: the webhook receivers and the
        # customers' link pages are not forms of a logged-in session
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=SESSION_HOURS * 3600,
    )
    app.session_interface = AdminSessions(app.session_interface, prefix=bp.url_prefix)
    CSRFProtect(app)
    app.register_blueprint(bp)
