"""``GET /metrics``: Prometheus text for the web processes, and the state of the whole system.

The counters of all web worker processes are added up
(multiprocess mode, see core/metrics.py); the gauges read from the database
and Redis (store/monitoring.py) are the same whichever process answers.

The page names shops and tells how busy they are, so it is served only to
``Authorization: Bearer <METRICS_TOKEN>``; without METRICS_TOKEN set it is 404,
like any route the app does not have. (The shipped nginx does not pass it on
either: Prometheus scrapes the app's port from inside the network.)
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST

from aftersale.core import metrics
from aftersale.store.monitoring import StateCollector

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape():
    runtime = current_app.extensions["aftersale"]
    token = runtime.config.metrics_token
    if not token:
        return Response("not found (set METRICS_TOKEN to serve metrics)\n", status=404)
    if not _authorized(token):
        return Response("metrics need a bearer token\n", status=401, mimetype="text/plain")
    body = metrics.scrape(StateCollector(runtime))
    response = Response(body, content_type=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response


def _authorized(token: str) -> bool:
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), token.encode()
    )
