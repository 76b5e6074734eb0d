"""Deliveries and actions whose RQ job will not run: found by the scheduler each tick.

Rows queued more than :data:`RECHECK_AFTER` ago are checked against their job.
Certain deaths count at once: the job gone from Redis or ended, or started by a
worker whose heartbeat expired (HEARTBEAT_SECONDS x 3; RQ notes the worker on
the job), so the deliveries and sends a SIGKILLed worker held resume about 15 s
after the kill (measured: tests/faults/test_lease_recovery.py, bench/e2e_bench.py).
Before, every sign waited out one minute.

A job started a minute (``lost_after``) ago with its rows still waiting counts
as dead then: a live job claims its rows first thing. A job marked queued yet in
no queue was popped by a worker that died before starting it, or is being
started this very millisecond; so it counts once a second look, at least
:data:`POPPED_GRACE` later, finds it so still (a healthy worker goes from pop to
start in milliseconds), or once its rows waited ``lost_after``. Before, that
case always waited the minute: the e2e bench's kill phase had one delivery 60 s
late. Rows found lost are read again after Redis was asked: a job that finished
meanwhile (RQ deletes it at once, ``result_ttl=0``) took them, and they are not
handed out twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from aftersale.store import actions as action_store
from aftersale.store import deliveries as delivery_store
from aftersale.store import heartbeats
from aftersale.store.queues import missing_jobs

#: rows queued longer than this are checked against their RQ job each tick
RECHECK_AFTER = timedelta(seconds=5)
#: a job seen popped yet not started, seen so again this much later, was dropped
POPPED_GRACE = timedelta(seconds=3)


class PoppedSightings:
    """Jobs seen marked queued yet in no queue, and when first: the scheduler's memory
    between ticks, for the second look (see the module's docstring)."""

    def __init__(self):
        self.first_seen: dict[str, datetime] = {}

    def confirm(self, popped: set[str], now: datetime, waited_long: set[str]) -> set[str]:
        """Those of ``popped`` (found so this tick) seen so :data:`POPPED_GRACE` ago, or in
        ``waited_long``; a job no longer found so is forgotten."""
        self.first_seen = {job: self.first_seen.get(job, now) for job in popped}
        return {
            job
            for job, since in self.first_seen.items()
            if job in waited_long or now - since >= POPPED_GRACE
        }


def find_lost(
    runtime,
    now: datetime,
    *,
    batch: int,
    recheck_after: timedelta,
    lost_after: timedelta,
    sightings: PoppedSightings,
) -> tuple[list[int], list[int]]:
    """(delivery ids, action ids) still waiting for a job that will not run them.

    ``sightings`` is the caller's memory of popped jobs between calls (the scheduler's).
    """
    with runtime.engine.connect() as conn:
        deliveries = delivery_store.queued_before(conn, now - recheck_after, batch)
        actions = action_store.queued_before(conn, now - recheck_after, batch)
    long_ago = now - lost_after
    waited_long = {r.job_id for r in (*deliveries, *actions) if r.since < long_ago}
    gone = missing_jobs(
        runtime.redis,
        {r.job_id for r in deliveries} | {r.job_id for r in actions},
        started_before=long_ago,
        living=lambda names: heartbeats.living(runtime, "worker", names),
        confirm_popped=lambda popped: sightings.confirm(popped, now, waited_long),
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
