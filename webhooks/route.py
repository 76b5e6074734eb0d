"""``POST /webhooks/<platform>[/<shop>]`` served in front of Flask, by the same handler.

Flask's request context, URL map, before/after hooks and response object cost
about as much CPU per webhook as verifying and parsing it (profiled, see
docs/performance.md), and the receiver uses none of them: it reads the WSGI
environ and answers a small JSON object. This wraps the app's ``wsgi_app`` so
a webhook POST goes straight to ``receiver.handle``; everything else, and any
webhook path this does not recognise exactly (a trailing slash, an empty or
non-ASCII segment, another method), goes through Flask as before, where the
Flask route runs the very same handler. The Flask app stays the one users
configure and serve; Sentry's Flask integration wraps ``Flask.__call__``,
outside this, so it still sees an exception raised here.
"""

from __future__ import annotations

import re
from http import HTTPStatus

from flask import Flask

from aftersale.webhooks.receiver import handle, json_body

#: what Flask's ``/webhooks/<platform>`` and ``/webhooks/<platform>/<path:shop>`` match,
#: narrowed to plain ASCII paths; anything else is left to Flask's own routing
_PATH = re.compile(r"/webhooks/([A-Za-z0-9_.-]+)(?:/([\x21-\x2e\x30-\x7e][\x20-\x7e]*))?")
_STATUS_LINES = {status.value: f"{status.value} {status.phrase.upper()}" for status in HTTPStatus}


def install(app: Flask) -> None:
    """Serve webhook POSTs of ``app`` before Flask dispatches; idempotent."""
    if isinstance(app.wsgi_app, ReceiverRoute):
        return
    app.wsgi_app = ReceiverRoute(app.wsgi_app, app.extensions["aftersale.receiver"])


class ReceiverRoute:
    """A WSGI callable: webhook POSTs to the receiver, every other request to ``flask_app``."""

    __slots__ = ("flask_app", "state")

    def __init__(self, flask_app, state):
        self.flask_app = flask_app
        self.state = state

    def __call__(self, environ: dict, start_response):
        match = environ["REQUEST_METHOD"] == "POST" and _PATH.fullmatch(environ["PATH_INFO"])
        if not match or environ.get("SCRIPT_NAME"):
            return self.flask_app(environ, start_response)
        status, answer = handle(self.state, environ, match.group(1), match.group(2))
        body = json_body(answer)
        start_response(
            _STATUS_LINES[status],
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]
