"""Liveness and readiness for load balancers and process managers."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process answers; says nothing about its dependencies."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Database and Redis reachable. Webhooks are still accepted without Redis (outbox), so
    Redis being down is reported but does not make the process unready."""
    runtime = current_app.extensions["aftersale"]
    checks = {}
    try:
        with runtime.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except SQLAlchemyError as exc:
        checks["database"] = f"error: {str(exc).splitlines()[0]}"
    try:
        runtime.redis.ping()
        checks["redis"] = "ok"
    except RedisError as exc:
        checks["redis"] = f"error: {exc}"
    ready = checks["database"] == "ok"
    return jsonify(
        {"status": "ok" if ready else "unavailable", "checks": checks}
    ), 200 if ready else 503
