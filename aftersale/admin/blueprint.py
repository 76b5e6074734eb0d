"""The ``/admin`` blueprint: the guard every page passes, login and logout.

Pages live in pages.py and rule_pages.py and register on :data:`bp`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import CSRFError

from aftersale.admin import auth
from aftersale.core import logs

log = logs.get_logger("admin")
bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")
#: pages that need no login
OPEN = {"admin.login"}
#: no script, no framing, forms only to this site (styles are inline in the layout)
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def runtime():
    return current_app.extensions["aftersale"]


def limiter() -> auth.LoginLimiter:
    found = current_app.extensions.get("aftersale.admin.limiter")
    if found is None:
        found = current_app.extensions["aftersale.admin.limiter"] = auth.LoginLimiter(runtime())
    return found


@bp.before_request
def guard():
    """Off without ADMIN_PASSWORD; every form's CSRF token checked; a login for every page."""
    config = runtime().config
    if not config.admin_password:
        return render_template("admin/off.html"), 404
    if request.method == "POST":
        current_app.extensions["csrf"].protect()  # raises CSRFError, answered below
    if request.endpoint not in OPEN and not auth.is_logged_in(session, config):
        return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
    return None


@bp.after_request
def secure_headers(response):
    """The headers above, unless the view set its own (a sandboxed message preview)."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@bp.errorhandler(CSRFError)
def csrf_refused(exc):
    log.warning("admin.csrf_refused", reason=exc.description, path=request.path)
    return render_template("admin/csrf.html", reason=exc.description), 400


@bp.route("/login", methods=["GET", "POST"])
def login():
    config = runtime().config
    target = _safe_next(request.values.get("next"))
    if request.method == "GET":
        if auth.is_logged_in(session, config):
            return redirect(target)
        return render_template("admin/login.html", next=target)
    address = request.remote_addr or ""
    if not limiter().attempt(address):
        wait = limiter().retry_after(address)
        log.warning("admin.login_limited", remote=address)
        page = render_template("admin/login.html", next=target, limited=wait)
        return page, 429, {"Retry-After": str(wait)}
    if not auth.password_matches(config, request.form.get("password", "")):
        log.warning("admin.login_refused", remote=address)
        return render_template("admin/login.html", next=target, wrong=True), 401
    session.clear()
    session[auth.SESSION_KEY] = auth.fingerprint(config)
    session.permanent = True
    log.info("admin.login", remote=address)
    return redirect(target)


@bp.post("/logout")
def logout():
    session.clear()
    flash("Logged out.")
    return redirect(url_for("admin.login"))


def sandboxed(html: str):
    """A message's HTML served so that nothing in it can act: CSP sandbox, images only."""
    headers = {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline';"
        " img-src https: data:",
    }
    return html, 200, headers


def _safe_next(target: str | None) -> str:
    """Only a path of this admin page: never another site (``//evil``, ``https://...``)."""
    default = url_for("admin.shops")
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith(bp.url_prefix + "/"):
        return default
    return target
