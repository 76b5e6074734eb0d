"""How things stand now, read from the database and Redis: for metrics, /readyz and ``status``.

Counters in core/metrics.py say what happened in one process; these say what
is waiting everywhere, whichever process asks: RQ queue depth, actions due
but not handed to a worker, the oldest delivery not yet processed, dead
letters, the workers and schedulers alive, each shop's last webhook.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client.core import GaugeMetricFamily
from redis.exceptions import RedisError
from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from aftersale.core import logs
from aftersale.store import heartbeats
from aftersale.store.actions import ActionStatus
from aftersale.store.deliveries import UNPROCESSED
from aftersale.store.queues import ACTIONS, DELIVERIES
from aftersale.store.tables import actions, deliveries, shop_syncs, shops

log = logs.get_logger("store.monitoring")
#: an action due longer ago than this and still not handed to RQ means the scheduler is
#: behind or down (it dispatches every second)
DISPATCH_GRACE = timedelta(minutes=1)
RECENT = timedelta(hours=1)


@dataclass(frozen=True)
class ShopStatus:
    """One shop on ``aftersale status``: its last webhook, what is due, what went wrong."""

    domain: str
    platform: str
    status: str
    last_webhook: datetime | None
    pending_deliveries: int
    actions_due: int
    failed_last_hour: int
    dead_last_hour: int
    #: the last reconcile run (workers/reconcile.py): when it ended, ok | failed | running,
    #: and what it did (RunSummary.as_dict(): orders, events, repaired webhooks, error)
    reconciled_at: datetime | None = None
    reconcile_status: str | None = None
    reconcile_summary: dict | None = None


def queue_depths(runtime) -> dict[str, int]:
    """Jobs waiting on each RQ queue."""
    return {purpose: runtime.queue(purpose).count for purpose in (DELIVERIES, ACTIONS)}


def due_not_dispatched(conn: Connection, now: datetime) -> int:
    """Actions due more than DISPATCH_GRACE ago and not on RQ: still ``scheduled`` (the
    scheduler is behind or down), or ``queued`` without a job (a hand-off that was lost)."""
    not_on_rq = or_(
        actions.c.status == ActionStatus.SCHEDULED.value,
        and_(actions.c.status == ActionStatus.QUEUED.value, actions.c.job_id.is_(None)),
    )
    return conn.execute(
        select(func.count()).where(not_on_rq, actions.c.due_at <= now - DISPATCH_GRACE)
    ).scalar_one()


def oldest_pending_age(conn: Connection, now: datetime) -> float:
    """Seconds since the oldest delivery still waiting to be processed arrived (0: none)."""
    oldest = conn.execute(
        select(func.min(deliveries.c.received_at)).where(deliveries.c.status.in_(UNPROCESSED))
    ).scalar_one()
    if oldest is None:
        return 0.0
    if oldest.tzinfo is None:  # min() on SQLite bypasses the column type's conversion
        oldest = datetime.fromisoformat(str(oldest)).replace(tzinfo=now.tzinfo)
    return max((now - oldest).total_seconds(), 0.0)


def dead_letters(conn: Connection) -> int:
    return conn.execute(
        select(func.count()).where(actions.c.status == ActionStatus.DEAD.value)
    ).scalar_one()


def shop_statuses(conn: Connection, now: datetime) -> list[ShopStatus]:
    """Every shop with its last webhook, pending deliveries, due actions and the last hour's
    failures and dead letters, in one query per figure."""
    last = _by_shop(  # webhooks only: what a reconcile run stored says nothing of them
        conn,
        select(deliveries.c.shop_id, func.max(deliveries.c.received_at)).where(
            deliveries.c.source.is_(None)
        ),
    )
    runs = {
        row.shop_id: row
        for row in conn.execute(select(shop_syncs).where(shop_syncs.c.kind == "orders"))
    }
    pending = _by_shop(
        conn,
        select(deliveries.c.shop_id, func.count()).where(deliveries.c.status.in_(UNPROCESSED)),
    )
    due = _by_shop(
        conn,
        select(actions.c.shop_id, func.count()).where(
            actions.c.status.in_([ActionStatus.SCHEDULED.value, ActionStatus.QUEUED.value]),
            actions.c.due_at <= now,
        ),
    )
    since = now - RECENT
    ended = conn.execute(
        select(actions.c.shop_id, actions.c.status, func.count())
        .where(
            and_(
                actions.c.status.in_([ActionStatus.FAILED.value, ActionStatus.DEAD.value]),
                actions.c.finished_at >= since,
            )
        )
        .group_by(actions.c.shop_id, actions.c.status)
    ).all()
    failed = {(shop_id, status): n for shop_id, status, n in ended}
    rows = conn.execute(select(shops).order_by(shops.c.domain)).all()
    return [
        ShopStatus(
            domain=row.domain,
            platform=row.platform,
            status=row.status,
            last_webhook=_aware(last.get(row.id), now),
            pending_deliveries=pending.get(row.id, 0),
            actions_due=due.get(row.id, 0),
            failed_last_hour=failed.get((row.id, ActionStatus.FAILED.value), 0),
            dead_last_hour=failed.get((row.id, ActionStatus.DEAD.value), 0),
            reconciled_at=_aware(runs[row.id].finished_at, now) if row.id in runs else None,
            reconcile_status=runs[row.id].status if row.id in runs else None,
            reconcile_summary=runs[row.id].summary if row.id in runs else None,
        )
        for row in rows
    ]


def _by_shop(conn: Connection, query) -> dict:
    table = query.selected_columns[0].table
    return dict(conn.execute(query.group_by(table.c.shop_id)).all())


def _aware(moment, now: datetime) -> datetime | None:
    """An aggregate's datetime made aware (SQLite returns max() as naive text)."""
    if moment is None or isinstance(moment, datetime) and moment.tzinfo is not None:
        return moment
    return datetime.fromisoformat(str(moment)).replace(tzinfo=now.tzinfo)


class StateCollector:
    """Prometheus collector: the gauges above, read when scraped.

    A part that cannot be read (the database or Redis down) is left out of
    that scrape and logged; the rest is still served.
    """

    def __init__(self, runtime):
        self.runtime = runtime

    def collect(self):
        now = self.runtime.clock.now()
        try:
            yield from self._database(now)
        except SQLAlchemyError as exc:
            log.warning("metrics.database_unreadable", error=logs.describe_error(exc))
        try:
            yield from self._redis()
        except RedisError as exc:
            log.warning("metrics.redis_unreadable", error=logs.describe_error(exc))

    def _database(self, now: datetime):
        with self.runtime.engine.connect() as conn:
            due = due_not_dispatched(conn, now)
            oldest = oldest_pending_age(conn, now)
            dead = dead_letters(conn)
            statuses = shop_statuses(conn, now)
        yield _gauge(
            "aftersale_actions_due_not_dispatched",
            "Actions due more than a minute ago and still not handed to a worker",
            due,
        )
        yield _gauge(
            "aftersale_oldest_pending_delivery_seconds",
            "Age of the oldest delivery not yet processed (0 when none is waiting)",
            oldest,
        )
        yield _gauge("aftersale_actions_dead", "Dead letters waiting for an operator", dead)
        last = GaugeMetricFamily(
            "aftersale_shop_last_webhook_timestamp_seconds",
            "Unix time of each active shop's last stored webhook",
            labels=["shop"],
        )
        for shop in statuses:
            if shop.last_webhook is not None and shop.status == "active":
                last.add_metric([shop.domain], shop.last_webhook.timestamp())
        yield last

    def _redis(self):
        depth = GaugeMetricFamily(
            "aftersale_queue_depth", "Jobs waiting on each RQ queue", labels=["queue"]
        )
        for purpose, count in queue_depths(self.runtime).items():
            depth.add_metric([purpose], count)
        yield depth
        alive = GaugeMetricFamily(
            "aftersale_processes_alive",
            "Workers and schedulers whose heartbeat has not expired",
            labels=["role"],
        )
        for role, beats in heartbeats.alive(self.runtime).items():
            alive.add_metric([role], len(beats))
        yield alive


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
