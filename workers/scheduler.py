"""The scheduler loop: the database says what is due, Redis only carries what is due now.

It is also the relay of the delivery inbox: the web process only stores a
delivery and nudges (a Redis LPUSH); the relay claims new deliveries and
enqueues them on RQ in batches, at once when nudged and at least every
second, so deliveries stored while Redis was down go out when it is back.

Each tick it
1. relays pending deliveries to RQ,
2. makes actions whose worker died (lease expired) due again,
3. emits estimated deliveries now due (workers/estimates.py), then claims due
   actions in batches and enqueues them,
4. re-enqueues deliveries and actions whose RQ job will not run: gone (Redis
   flushed or restarted without persistence), or started by a worker whose
   heartbeat expired (killed: its rows resume within seconds),
5. every few minutes, empties raw webhook bodies older than DELIVERY_BODY_DAYS
   (they hold customer data; the delivery row and its outcome stay), and deletes
   why-not records older than RULE_MISS_DAYS,
6. every RECONCILE_MINUTES per shop, enqueues a reconcile run: orders changed
   since the shop's cursor, and its webhooks checked (workers/reconcile.py).
It beats a heartbeat (store/heartbeats.py) from its loop.
Several schedulers may run at once: every claim is a check-and-set.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from aftersale.connectors import get_connector
from aftersale.core import logs, metrics, sentry
from aftersale.core.crypto import CredentialsUnreadable
from aftersale.store import actions as action_store
from aftersale.store import deliveries as delivery_store
from aftersale.store import heartbeats, syncs, why_not
from aftersale.store import privacy as privacy_store
from aftersale.store import shops as shop_store
from aftersale.store.queues import (
    ACTIONS,
    DELIVERIES,
    behind,
    by_job,
    enqueue_actions,
    enqueue_deliveries,
    enqueue_reconcile,
    hand_off_actions,
    take_deferred,
    wait_for_nudge,
)
from aftersale.workers import estimates, recommend_model, recovery
from aftersale.workers.recovery import RECHECK_AFTER

log = logs.get_logger("workers.scheduler")
#: how often old delivery bodies are looked for once none are left
RETENTION_EVERY = timedelta(minutes=10)
#: how often the scheduler looks for shops whose reconcile run is due
RECONCILE_CHECK_EVERY = timedelta(seconds=30)


@dataclass
class TickReport:
    released: int = 0
    actions_enqueued: int = 0
    deliveries_enqueued: int = 0
    lost_jobs_requeued: int = 0
    bodies_expired: int = 0
    estimates_emitted: int = 0
    rule_misses_expired: int = 0
    reconciles_enqueued: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def busy(self) -> bool:
        return bool(self.actions_enqueued or self.deliveries_enqueued or self.lost_jobs_requeued)


class Scheduler:
    def __init__(
        self,
        runtime,
        *,
        batch: int = 1000,
        max_batches: int = 20,
        lost_after=timedelta(seconds=60),
        recheck_after=RECHECK_AFTER,
    ):
        self.runtime = runtime
        self.batch = batch
        self.popped_sightings = recovery.PoppedSightings()
        self.max_batches = max_batches
        self.lost_after = lost_after
        self.recheck_after = recheck_after
        self._retention_due: datetime | None = None  # the next body-retention pass
        self._misses_due: datetime | None = None  # the next why-not retention pass
        self._reconcile_check: datetime | None = None  # when to look for due reconcile runs
        self.name = f"{socket.gethostname()}.{os.getpid()}"
        self._next_beat = 0.0

    def tick(self, now: datetime | None = None) -> TickReport:
        now = now or self.runtime.clock.now()
        report = TickReport()
        steps = (
            self._relay,
            self._release_leases,
            self._time_out_waiting,
            self._emit_estimates,
            self._dispatch_due,
            self._recover_lost,
            self._expire_bodies,
            self._expire_rule_misses,
            self._reconcile_due,
            self._refresh_models,
        )
        for step in steps:
            self._guarded(step, now, report)
        if report.busy or report.released:
            log.info(
                "scheduler.tick",
                released=report.released,
                actions=report.actions_enqueued,
                deliveries=report.deliveries_enqueued,
                recovered=report.lost_jobs_requeued,
            )
        return report

    def relay(self, now: datetime | None = None) -> int:
        """Hand every pending delivery to RQ now; how many were enqueued."""
        report = TickReport()
        self._guarded(self._relay, now or self.runtime.clock.now(), report)
        return report.deliveries_enqueued

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Relay at once when nudged, tick every ``interval`` seconds, until ``stop`` is set."""
        log.info("scheduler.started", interval=interval)
        next_tick = 0.0
        while not stop.is_set():
            self._beat()
            if time.monotonic() >= next_tick:
                busy = self.tick().busy
                next_tick = time.monotonic() + (0 if busy else interval)
            elif self._hand_over():
                continue
            self._sleep(stop, max(0.0, next_tick - time.monotonic()))
        with suppress(RedisError):
            heartbeats.stop(self.runtime, "scheduler", self.name)
        log.info("scheduler.stopped")

    def dispatch(self, now: datetime | None = None) -> int:
        """Hand every due scheduled action to RQ now, in full batches; how many."""
        report = TickReport()
        self._guarded(self._dispatch_due, now or self.runtime.clock.now(), report)
        return report.actions_enqueued

    def _hand_over(self) -> bool:
        """On a nudge: relay waiting deliveries, and dispatch the due actions a worker left
        in the database, each unless the workers are already behind on that queue (then
        the work waits for the tick and goes over in full batches). True when anything
        was handed over."""
        moved = 0
        if not behind(self.runtime, DELIVERIES):
            moved += self.relay()
        if not behind(self.runtime, ACTIONS) and self._deferred():
            moved += self.dispatch()
        return bool(moved)

    def _deferred(self) -> bool:
        try:
            return take_deferred(self.runtime)
        except RedisError:
            return False

    def _beat(self) -> None:
        """The heartbeat, from the loop itself: a scheduler stuck in a tick stops beating."""
        interval = self.runtime.config.heartbeat_seconds
        if time.monotonic() < self._next_beat:
            return
        self._next_beat = time.monotonic() + interval
        try:
            heartbeats.beat(self.runtime, "scheduler", self.name, interval)
        except RedisError as exc:
            log.warning("heartbeat.failed", role="scheduler", error=logs.describe_error(exc))

    def _sleep(self, stop: threading.Event, seconds: float) -> None:
        """Wait for a nudge from a web process, at most ``seconds``; without Redis just wait."""
        if seconds <= 0:
            return
        try:
            wait_for_nudge(self.runtime, min(seconds, 1.0))
        except RedisError:
            stop.wait(seconds)

    def _guarded(self, step, now, report: TickReport) -> None:
        try:
            step(now, report)
        except (SQLAlchemyError, RedisError) as exc:
            message = f"{step.__name__}: {type(exc).__name__}: {str(exc).splitlines()[0]}"
            report.errors.append(message)
            log.warning("scheduler.step_failed", step=step.__name__, error=message)

    def _relay(self, now, report: TickReport) -> None:
        for _ in range(self.max_batches):
            with self.runtime.engine.begin() as conn:
                ids = delivery_store.claim_pending(conn, now, self.batch)
            if not ids:
                return
            try:
                jobs = by_job(enqueue_deliveries(self.runtime, ids))
            except RedisError:
                with self.runtime.engine.begin() as conn:
                    delivery_store.unclaim(conn, ids)
                raise
            with self.runtime.engine.begin() as conn:
                delivery_store.mark_enqueued(conn, jobs, now)
            report.deliveries_enqueued += len(ids)
            if len(ids) < self.batch:
                return

    def _release_leases(self, now, report: TickReport) -> None:
        with self.runtime.engine.begin() as conn:
            dead: list[int] = []
            released = action_store.release_expired_leases(conn, now, dead)
        if released:
            log.warning("actions.lease_expired", action_ids=released[:50], count=len(released))
        if dead:
            log.warning("actions.dead_after_lost_worker", action_ids=dead[:50], count=len(dead))
            self._report_dead(dead)
        report.released += len(released)

    def _report_dead(self, action_ids: list[int]) -> None:
        """Actions whose lease ran out with no attempt left are dead letters: count and
        report each once, as a worker does for the ones it makes dead."""
        with self.runtime.engine.connect() as conn:
            dead = action_store.by_ids(conn, action_ids)
            shops = {a.shop_id: self.runtime.shop(conn, a.shop_id) for a in dead}
        for action in dead:
            metrics.DEAD_LETTERS.labels(action.action_type).inc()
            shop = shops.get(action.shop_id)
            domain = shop.domain if shop is not None else None
            sentry.report_dead_letter(action, shop=domain, error=action.last_error)

    def _time_out_waiting(self, now, report: TickReport) -> None:
        """``wait_for`` actions whose awaited event never came: send now, or skip."""
        with self.runtime.engine.begin() as conn:
            send, skip = action_store.time_out_waiting(conn, now, self.batch)
        if send or skip:
            log.info("actions.wait_timed_out", send=send, skipped=skip)

    def _emit_estimates(self, now, report: TickReport) -> None:
        """Estimated deliveries now due (workers/estimates.py); their due actions go to RQ."""
        for _ in range(self.max_batches):
            done, due = estimates.emit_due(self.runtime, now, self.batch)
            hand_off_actions(self.runtime, due)
            report.estimates_emitted += done
            if done < self.batch:
                return

    def _dispatch_due(self, now, report: TickReport) -> None:
        for _ in range(self.max_batches):
            with self.runtime.engine.begin() as conn:
                ids = action_store.claim_due(conn, now, self.batch)
            if not ids:
                return
            self._enqueue_actions(ids, now)
            report.actions_enqueued += len(ids)
            if len(ids) < self.batch:
                return

    def _enqueue_actions(self, ids: list[int], now) -> None:
        try:
            jobs = by_job(enqueue_actions(self.runtime, ids))
        except RedisError:
            with self.runtime.engine.begin() as conn:
                action_store.unqueue(conn, ids, now)
            raise
        with self.runtime.engine.begin() as conn:
            action_store.set_jobs(conn, jobs, now)

    def _recover_lost(self, now, report: TickReport) -> None:
        """Hand deliveries and actions whose RQ job will not run to new jobs
        (which ones, and how soon: workers/recovery.py)."""
        lost_deliveries, lost_actions = recovery.find_lost(
            self.runtime,
            now,
            batch=self.batch,
            recheck_after=self.recheck_after,
            lost_after=self.lost_after,
            sightings=self.popped_sightings,
        )
        if lost_deliveries:
            jobs = by_job(enqueue_deliveries(self.runtime, lost_deliveries))
            with self.runtime.engine.begin() as conn:
                delivery_store.mark_enqueued(conn, jobs, now)
        if lost_actions:
            self._enqueue_actions(lost_actions, now)
        if lost_deliveries or lost_actions:
            log.warning(
                "jobs.lost_requeued", deliveries=len(lost_deliveries), actions=len(lost_actions)
            )
        report.lost_jobs_requeued += len(lost_deliveries) + len(lost_actions)

    def _expire_bodies(self, now, report: TickReport) -> None:
        """Empty old delivery bodies in bounded batches; again in a few minutes when done.

        A backlog (the first run, or a lowered DELIVERY_BODY_DAYS) is worked off
        ``max_batches`` batches a tick, in short transactions, so it never holds the
        tick or the inbox for long.
        """
        if self._retention_due is not None and now < self._retention_due:
            return
        before = now - timedelta(days=self.runtime.config.delivery_body_days)
        for _ in range(self.max_batches):
            with self.runtime.engine.begin() as conn:
                emptied = privacy_store.expire_bodies(
                    conn, before, self.batch, delivery_store.FINAL
                )
            report.bodies_expired += emptied
            if emptied < self.batch:
                self._retention_due = now + RETENTION_EVERY
                break
        if report.bodies_expired:
            log.info("deliveries.bodies_expired", count=report.bodies_expired, before=before)

    def _expire_rule_misses(self, now, report: TickReport) -> None:
        """Delete why-not records older than RULE_MISS_DAYS, like old bodies: in batches,
        again in a few minutes once none are left."""
        if self._misses_due is not None and now < self._misses_due:
            return
        before = now - timedelta(days=self.runtime.config.rule_miss_days)
        for _ in range(self.max_batches):
            with self.runtime.engine.begin() as conn:
                deleted = why_not.expire(conn, before, self.batch)
            report.rule_misses_expired += deleted
            if deleted < self.batch:
                self._misses_due = now + RETENTION_EVERY
                break
        if report.rule_misses_expired:
            log.info("rule_misses.expired", count=report.rule_misses_expired, before=before)

    def _refresh_models(self, now, report: TickReport) -> None:
        """Enqueue a goes-with model refresh per shop whose ``recommend.refresh`` is over
        (workers/recommend_model.py; claimed with a check-and-set like reconcile runs)."""
        if getattr(self, "_model_check", None) is not None and now < self._model_check:
            return
        self._model_check = now + recommend_model.CHECK_EVERY
        due = recommend_model.claim_due(self.runtime, now)
        for shop_id in due:
            recommend_model.enqueue_refresh(self.runtime, shop_id)
        if due:
            log.info("recommend.refresh_enqueued", shops=len(due))

    def _reconcile_due(self, now, report: TickReport) -> None:
        """Enqueue a reconcile run for each shop whose interval is over (workers/reconcile.py).

        Looked at every :data:`RECONCILE_CHECK_EVERY`; each shop's run is claimed
        with a check-and-set, so a second scheduler enqueues nothing twice.
        """
        minutes = self.runtime.config.reconcile_minutes
        if minutes <= 0 or (self._reconcile_check is not None and now < self._reconcile_check):
            return
        self._reconcile_check = now + RECONCILE_CHECK_EVERY
        with self.runtime.engine.begin() as conn:
            shops = [
                row.id
                for row in syncs.reconcilable_shops(conn)
                if _can_list_orders(row, self.runtime.config)
            ]
            due = syncs.claim_due(conn, shops, now, timedelta(minutes=minutes)) if shops else []
        for shop_id in due:
            enqueue_reconcile(self.runtime, shop_id)
        report.reconciles_enqueued += len(due)
        if due:
            log.info("reconcile.enqueued", shops=len(due))


def _can_list_orders(shop_row, config) -> bool:
    """A shop whose platform can list orders and whose credentials allow it (an installed
    shop without an API token, or a placeholder, is skipped: it would only fail)."""
    connector = get_connector(shop_row.platform)
    if connector is None or connector.orders is None:
        return False
    try:
        credentials = shop_store.credentials_of(shop_row, config.secret_keys)
    except CredentialsUnreadable:
        return False
    return connector.orders.has_access(credentials)


def stop_on_signals(stop: threading.Event) -> None:
    def handler(signum, _frame):
        log.info("scheduler.signal", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
