"""Processing one stored delivery: normalize, remember, decide. One transaction, all or nothing.

The delivery row is claimed, the order's state locked, events stored
(deduplicated by their key), pending actions cancelled where a rule says so,
and new actions planned, all in one transaction: a crash anywhere leaves the
delivery unprocessed, to be processed again, with nothing half-recorded.
Actions already due are handed to RQ right after the commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import orjson

from aftersale.connectors import get_connector
from aftersale.core import logs, metrics
from aftersale.rules import pipeline
from aftersale.store import deliveries as delivery_store
from aftersale.store import shops as shop_store
from aftersale.store.queues import hand_off_actions
from aftersale.workers import privacy, shop_catalog

log = logs.get_logger("workers.processing")
MAX_DELIVERY_ATTEMPTS = 5
OUTCOME_STATUS = {
    "processed": "processed",
    "no_change": "processed",
    "stale": "stale",
    "rejected": "rejected",  # the body is not shaped like its topic (connectors/base.py misfit)
}


@dataclass
class Processed:
    status: str  # processed | stale | ignored | skipped (already done by another job)
    due_actions: list[int] = field(default_factory=list)  # created queued: hand to RQ after commit


def process_delivery(runtime, delivery_id: int) -> str:
    """Process one delivery and hand its due actions to RQ; returns its final status."""
    result = process_one(runtime, delivery_id)
    hand_off_actions(runtime, result.due_actions)
    return result.status


def process_one(runtime, delivery_id: int, ruleset=None) -> Processed:
    """Process one delivery in one transaction; the caller hands ``due_actions`` to RQ.

    ``ruleset``: the rules to judge it by (default: the loaded ones); a backfill
    passes its own (one rule, or none for history only).

    Raises whatever processing raised, after recording the failure on the
    delivery row (it is retried by the relay, then marked ``failed``).
    """
    now = runtime.clock.now()
    ruleset = ruleset if ruleset is not None else runtime.rules
    try:
        with runtime.engine.begin() as conn:
            row = delivery_store.claim(conn, delivery_id)
            if row is None:
                log.info("delivery.already_processed", delivery=delivery_id)
                return Processed("skipped")
            shop = shop_store.get_shop(conn, row.shop_id)
            logs.bind(shop=shop.domain, platform=shop.platform, delivery=row.id, topic=row.topic)
            status, queued = _process(conn, runtime, ruleset, shop, row, now)
    except Exception as exc:
        _record_failure(runtime, delivery_id, exc, now)
        raise
    finally:
        # not clear(): the job's own id, bound around this call, stays on later lines
        logs.unbind("shop", "platform", "delivery", "topic", "order")
    return Processed(status, queued)


def _process(conn, runtime, ruleset, shop, row, now: datetime) -> tuple[str, list[int]]:
    if privacy.ignored_after_uninstall(shop, row.topic) or not row.body:
        note = "shop uninstalled" if row.body else "body removed (retention or erasure)"
        delivery_store.finish(conn, row.id, "ignored", now, note=note)
        log.info("delivery.processed", status="ignored", outcome=note, events=0)
        return "ignored", []
    payload = orjson.loads(row.body)
    # every line of this delivery's processing names its order (unbound by process_one)
    logs.bind(order=get_connector(shop.platform).order_ref(row.topic, payload))
    result, handled = pipeline.run_delivery(
        conn, ruleset, shop, pipeline.delivery_meta(shop, row), payload, row.id, now
    )
    privacy.apply(conn, runtime, shop, result, payload, now)
    shop_catalog.apply(conn, shop, result, now, ruleset)  # products, order lines (issue 25)
    queued = [action_id for one in handled for action_id in one.due]
    for one in handled:
        if not one.duplicate:
            metrics.EVENTS.labels(one.event.kind).inc()
    status = OUTCOME_STATUS.get(result.outcome, "ignored")
    delivery_store.finish(conn, row.id, status, now, note=_note(result))
    log.info(
        "delivery.processed",
        status=status,
        outcome=result.outcome,
        events=len(result.events),
        actions_due=len(queued),
        detail=result.detail,
    )
    if result.warnings:
        log.warning("delivery.odd_payload", warnings=result.warnings)
    return status, queued


def _note(result) -> str | None:
    if result.outcome == "processed":
        return None
    return f"{result.outcome}: {result.detail}" if result.detail else result.outcome


def _record_failure(runtime, delivery_id: int, exc: Exception, now: datetime) -> None:
    error = logs.describe_error(exc, limit=2000)
    try:
        with runtime.engine.begin() as conn:
            status = delivery_store.record_failure(
                conn, delivery_id, error, now, MAX_DELIVERY_ATTEMPTS
            )
    except Exception:
        log.exception("delivery.failure_not_recorded", delivery=delivery_id)
        return
    log.error(
        "delivery.processing_failed", delivery=delivery_id, error=error, status=status, exc_info=exc
    )
