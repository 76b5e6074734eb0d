"""RQ entry points. Jobs take ids, never objects, and find their process's runtime with
``current`` (workers/job_runtime.py).

The process that runs jobs (``aftersale worker``, or a test) installs its
runtime there; the app shell registers a factory so that a job run elsewhere
(``rq worker`` by hand) builds one from the environment. Either way this floor
never imports the shell above it.
"""

from __future__ import annotations

import time

from rq import get_current_job

from aftersale.core import logs, metrics, sentry
from aftersale.store import actions as action_store
from aftersale.store.queues import hand_off_actions
from aftersale.workers.actions import JOB_BUDGET, claim, hand_back, release_held
from aftersale.workers.job_reads import JobReads
from aftersale.workers.job_runtime import current
from aftersale.workers.processing import process_one
from aftersale.workers.send_ahead import InFlight


def process_deliveries(delivery_ids: list[int]) -> dict[int, str]:
    """Process each delivery in its own transaction; one failing does not hold up the others.

    The actions they make due are handed to RQ together at the end, as one
    batch, rather than one job per delivery.
    """
    runtime = current()
    results, failures, due = {}, [], []
    with logs.bound(job=_job_id()):
        for delivery_id in delivery_ids:
            try:
                processed = process_one(runtime, delivery_id)
            except Exception as exc:  # recorded on the delivery row by process_one; re-raised below
                results[delivery_id] = "error"
                failures.append((delivery_id, exc))
                continue
            results[delivery_id] = processed.status
            due += processed.due_actions
        hand_off_actions(runtime, due, coalesce=True)
        if failures:
            sentry.tag(delivery=failures[0][0])
        _raise_first(failures, len(delivery_ids), "deliveries")
    return results


def run_actions(action_ids: list[int]) -> dict[int, str]:
    """Claim the job's actions in one transaction, then run each in turn.

    An unexpected error in one action (its lease expires and it runs again)
    does not stop the others, and fails the job afterwards so it is visible
    in RQ and Sentry (tagged with the shop and rule of the first). Past the
    job's time budget the actions not yet started are handed back rather
    than left to outlive their lease.
    """
    runtime = current()
    with logs.bound(job=_job_id()):
        claimed = claim(runtime, action_ids)
        results = {a: "not_claimed" for a in action_ids if a not in claimed}
        failures: list = []
        try:
            pending = [claimed[action_id] for action_id in action_ids if action_id in claimed]
            _run_pending(runtime, pending, results, failures)
        finally:  # a job that broke off must not keep renewing its actions' leases
            release_held(claimed)
        _raise_first(failures, len(action_ids), "actions")
    return results


def _run_pending(runtime, pending: list, results: dict, failures: list) -> None:
    """Run the claimed actions in turn on one connection, within the job's time budget.

    Each message goes out on the sender thread while the next is prepared
    (workers/send_ahead.py); outcomes are recorded in the order actions started.
    """
    shops = _shops(runtime, pending)
    budget_ends = time.monotonic() + JOB_BUDGET.total_seconds()

    def domain(action):
        shop = shops.get(action.shop_id)
        return shop.domain if shop is not None else None

    def bound(action):
        shop = shops.get(action.shop_id)
        ids = {"shop": domain(action), "platform": shop.platform if shop is not None else None}
        return logs.bound(**ids, order=action.order_ref, customer=action.customer_ref)

    def landed(action, outcome: str) -> None:
        results[action.id] = outcome
        _observe(runtime, action, outcome, domain(action))

    def crashed(action, exc: Exception) -> None:
        if not failures:
            sentry.tag(shop=domain(action), rule=action.rule, action=action.id)
        failures.append((action.id, exc))
        landed(action, "error")

    with runtime.engine.connect() as conn:  # one connection for the job's actions
        reads = JobReads.read(conn, pending, secrets=runtime.config.secret_keys)
        conn.rollback()
        flight = InFlight(runtime, conn, reads, bound=bound, landed=landed, crashed=crashed)
        try:
            for index, action in enumerate(pending):
                if time.monotonic() > budget_ends:
                    flight.drain()
                    hand_back(runtime, pending[index:])
                    results.update({a.id: "handed_back" for a in pending[index:]})
                    return
                flight.start(action)
        finally:  # however the loop ended, what was handed to the sender is recorded
            flight.drain()


def _job_id() -> str | None:
    """The RQ job running this function (None when called outside RQ, e.g. by a test)."""
    job = get_current_job()
    return job.id if job is not None else None


def _shops(runtime, actions) -> dict:
    """The shop rows of a job's actions (cached by the runtime): their domains go on every line."""
    shop_ids = {action.shop_id for action in actions}
    if not shop_ids:
        return {}
    with runtime.engine.connect() as conn:
        return {shop_id: runtime.shop(conn, shop_id) for shop_id in shop_ids}


#: what a run returned -> the ``state`` label of aftersale_actions
STATE_LABELS = {"scheduled": "retry"}


def _observe(runtime, action, outcome: str, domain: str | None) -> None:
    """Count the run; report a new dead letter once (the run that made it dead)."""
    metrics.ACTIONS.labels(STATE_LABELS.get(outcome, outcome), action.action_type).inc()
    if outcome != "dead":
        return
    metrics.DEAD_LETTERS.labels(action.action_type).inc()
    if sentry.enabled():
        with runtime.engine.connect() as conn:
            row = action_store.get(conn, action.id)
        sentry.report_dead_letter(row or action, shop=domain, error=row.last_error if row else None)


def _raise_first(failures: list, total: int, what: str) -> None:
    if failures:
        first_id, exc = failures[0]
        raise RuntimeError(f"{len(failures)} of {total} {what} failed; first {first_id}") from exc
