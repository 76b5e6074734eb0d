"""Liveness and readiness for load balancers and process managers.

Both endpoints are public, so they say *whether* something is down, never
where it lives or why: a connection error names the database host, port,
database and user, which is a map of the internals for anyone probing. The
reason goes to the log. A caller presenting READYZ_TOKEN (``Authorization:
Bearer ...``; monitoring, an operator) also gets which check failed, still
without hosts or error text.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, current_app, jsonify, request
from redis.exceptions import RedisError
from sqlalchemy import text

from aftersale.core import logs
from aftersale.store import heartbeats

bp = Blueprint("health", __name__)
log = logs.get_logger("webhooks.health")


@bp.get("/healthz")
def healthz():
    """The process answers; says nothing about its dependencies."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Database and Redis reachable. Webhooks are still accepted without Redis (outbox), so
    Redis being down is reported but does not make the process unready; so are workers and
    the scheduler without a heartbeat."""
    runtime = current_app.extensions["aftersale"]
    checks = {"database": _check("database", _ping_database, runtime)}
    checks["redis"] = _check("redis", lambda rt: rt.redis.ping(), runtime)
    down = {role: "down" for role in heartbeats.ROLES}
    checks.update(_processes(runtime) if checks["redis"] == "ok" else down)
    ready = checks["database"] == "ok"
    body = {"status": "ok" if ready else "unavailable"}
    if _authorized(runtime.config.readyz_token):
        body["checks"] = checks
    response = jsonify(body)
    response.status_code = 200 if ready else 503
    response.headers["Cache-Control"] = "no-store"
    return response


def _processes(runtime) -> dict[str, str]:
    """``worker`` and ``scheduler``: ``ok`` while one beats (store/heartbeats.py), else ``down``.

    Reported, never a reason to be unready: webhooks are stored without them
    and processed when they come back.
    """
    try:
        beats = heartbeats.alive(runtime)
    except RedisError as exc:
        log.warning("health.check_failed", check="heartbeats", error=type(exc).__name__)
        return {role: "down" for role in heartbeats.ROLES}
    return {role: "ok" if beats.get(role) else "down" for role in heartbeats.ROLES}


def _ping_database(runtime) -> None:
    with runtime.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _check(name: str, probe, runtime) -> str:
    """``ok`` or ``down``; whatever went wrong (any exception: a driver's own, a timeout) is
    logged for the operator and never becomes the answer or a 500."""
    try:
        probe(runtime)
    except Exception as exc:
        reason = next(iter(str(exc).splitlines()), "")[:300]
        log.warning("health.check_failed", check=name, error=type(exc).__name__, reason=reason)
        return "down"
    return "ok"


def _authorized(token: str) -> bool:
    """The request carries ``Authorization: Bearer <READYZ_TOKEN>`` (compared in constant time).

    Without READYZ_TOKEN set nobody gets the details.
    """
    if not token:
        return False
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())
