"""Cookie sessions for ``/admin`` only.

The web app otherwise keeps no sessions (webhooks/__init__.py ``NoSessions``:
opening one on every webhook costs CPU for nothing), so this interface hands
admin requests Flask's signed cookie session and every other request the
interface the app had before.
"""

from __future__ import annotations

from flask import request
from flask.sessions import SecureCookieSessionInterface, SessionInterface


class AdminSessions(SessionInterface):
    def __init__(self, others: SessionInterface, prefix: str):
        self.others = others
        self.admin = SecureCookieSessionInterface()
        self.prefix = prefix

    def _pick(self, req) -> SessionInterface:
        path = req.path
        return (
            self.admin if path == self.prefix or path.startswith(self.prefix + "/") else self.others
        )

    def open_session(self, app, request):
        return self._pick(request).open_session(app, request)

    def save_session(self, app, session, response):
        return self._pick(request).save_session(app, session, response)

    def make_null_session(self, app):
        return self.others.make_null_session(app)

    def is_null_session(self, obj) -> bool:
        return self.admin.is_null_session(obj) or self.others.is_null_session(obj)
