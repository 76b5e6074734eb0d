"""Keeping each shop's goes-with model and repurchase cycles fresh.

The scheduler looks every :data:`CHECK_EVERY` for shops whose model is older
than their ``recommend.refresh`` setting, claims each with the same
check-and-set as reconcile runs (``shop_syncs`` row of kind ``model``), so
two schedulers never double the work, and enqueues :func:`refresh_job`.
Counting happens in the database (store/recommend.py), in one transaction:
a lookup during a refresh sees the old model or the new one, never half.
A backfill refreshes the model at its end, and ``aftersale insights`` can too.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from aftersale.core import logs
from aftersale.rules.settings import shop_settings
from aftersale.store import recommend, syncs
from aftersale.store import shops as shop_store
from aftersale.store.queues import ACTIONS, FAILURE_TTL
from aftersale.store.tables import shops
from aftersale.workers import job_runtime as jobs

log = logs.get_logger("workers.recommend_model")
MODEL = "model"
#: how often the scheduler looks for shops whose model is due
CHECK_EVERY = timedelta(minutes=1)
REFRESH_TIMEOUT = 1800


def refresh_shop(runtime, shop_id: int) -> recommend.Recomputed:
    """Recount one shop's pairs and cycles now; what was counted."""
    now = runtime.clock.now()
    with runtime.engine.begin() as conn:
        shop = shop_store.get_shop(conn, shop_id)
        if shop is None:  # removed since the job was enqueued
            return recommend.Recomputed(0, 0, 0, 0)
        settings = shop_settings(runtime.rules, shop).recommend
        done = recommend.recompute(conn, shop_id, settings.min_support, now)
        syncs.finish(conn, shop_id, "ok", done.__dict__, now, kind=MODEL)
    log.info("recommend.refreshed", shop=shop.domain, **done.__dict__)
    return done


def refresh_job(shop_id: int) -> dict:
    """RQ job: refresh one shop's model."""
    return refresh_shop(jobs.current(), shop_id).__dict__


def claim_due(runtime, now: datetime) -> list[int]:
    """The active shops whose model refresh is due, each claimed for this caller."""
    claimed = []
    with runtime.engine.begin() as conn:
        rows = conn.execute(select(shops).where(shops.c.status == "active")).all()
        for shop in rows:
            every = shop_settings(runtime.rules, shop).recommend.refresh
            if every > timedelta(0):
                claimed += syncs.claim_due(conn, [shop.id], now, every, kind=MODEL)
    return claimed


def enqueue_refresh(runtime, shop_id: int) -> str:
    job = runtime.queue(ACTIONS).enqueue(
        "aftersale.workers.recommend_model.refresh_job",
        shop_id,
        failure_ttl=FAILURE_TTL,
        job_timeout=REFRESH_TIMEOUT,
        result_ttl=0,
    )
    return job.id
