"""Deliveries and actions whose RQ job will not run: found by the scheduler each tick.

Rows queued more than :data:`RECHECK_AFTER` ago are checked against their job.
Certain deaths count at once: the job gone from Redis or ended, or started by a
worker whose heartbeat expired (HEARTBEAT_SECONDS x 3; RQ notes the worker on
the job), so the deliveries and sends a SIGKILLed worker held resume about 15 s
after the kill (measured: tests/faults/test_lease_recovery.py, bench/e2e_bench.py).
Before, every sign waited out one minute.

Two signs race a healthy worker and count only once the rows waited
``lost_after`` (a minute): a job started that long ago with its rows still
waiting, and a job marked queued yet in no queue (popped by a worker that died
before starting it, or being started this very millisecond). Rows found lost are
read again after Redis was asked: a job that finished meanwhile (RQ deletes it at
once, ``result_ttl=0``) took them, and they are not handed out twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from aftersale.store import actions as action_store
from aftersale.store import deliveries as delivery_store
from aftersale.store import heartbeats
from aftersale.store.queues import missing_jobs

#: rows queued longer than this are checked against their RQ job each tick
RECHECK_AFTER = timedelta(seconds=5)


def find_lost(
    runtime, now: datetime, *, batch: int, recheck_after: timedelta, lost_after: timedelta
) -> tuple[list[int], list[int]]:
    """(delivery ids, action ids) still waiting for a job that will not run them."""
    with runtime.engine.connect() as conn:
        deliveries = delivery_store.queued_before(conn, now - recheck_after, batch)
        actions = action_store.queued_before(conn, now - recheck_after, batch)
    long_ago = now - lost_after
    gone = missing_jobs(
        runtime.redis,
        {r.job_id for r in deliveries} | {r.job_id for r in actions},
        started_before=long_ago,
        living=lambda names: heartbeats.living(runtime, "worker", names),
        popped_among={r.job_id for r in (*deliveries, *actions) if r.since < long_ago},
    )
    lost_deliveries = {r.id: r.job_id for r in deliveries if not r.job_id or r.job_id in gone}
    lost_actions = {r.id: r.job_id for r in actions if not r.job_id or r.job_id in gone}
    if not lost_deliveries and not lost_actions:
        return [], []
    with runtime.engine.connect() as conn:
        waiting_deliveries = delivery_store.still_queued(conn, list(lost_deliveries))
        waiting_actions = action_store.still_queued(conn, list(lost_actions))
    return _unchanged(lost_deliveries, waiting_deliveries), _unchanged(
        lost_actions, waiting_actions
    )


def _unchanged(lost: dict[int, str | None], waiting: dict[int, str | None]) -> list[int]:
    """The ids of ``lost`` still waiting for the very job that was found gone."""
    return [
        row_id for row_id, job_id in lost.items() if row_id in waiting and waiting[row_id] == job_id
    ]
