"""RQ entry points. Jobs take ids, never objects, and find their process's runtime here.

The process that runs jobs (``aftersale worker``, or a test) installs its
runtime with :func:`install`; the app shell registers a factory so that a job
run elsewhere (``rq worker`` by hand) builds one from the environment. Either
way this floor never imports the shell above it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from aftersale.store.queues import hand_off_actions
from aftersale.workers.actions import JOB_BUDGET, claim, hand_back, run_claimed
from aftersale.workers.processing import process_one

_current = None
_factory: Callable[[], object] | None = None
_lock = threading.Lock()


def install(runtime) -> None:
    """Make ``runtime`` the one jobs in this process use (None to forget it)."""
    global _current
    _current = runtime


def set_factory(factory: Callable[[], object]) -> None:
    """How to build a runtime when a job runs before any was installed."""
    global _factory
    _factory = factory


def current():
    """The process's runtime; built by the registered factory the first time if none was installed."""
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                if _factory is None:
                    raise RuntimeError("no runtime installed: run jobs with `aftersale worker`")
                _current = _factory()
    return _current


def process_deliveries(delivery_ids: list[int]) -> dict[int, str]:
    """Process each delivery in its own transaction; one failing does not hold up the others.

    The actions they make due are handed to RQ together at the end, as one
    batch, rather than one job per delivery.
    """
    runtime = current()
    results, failures, due = {}, [], []
    for delivery_id in delivery_ids:
        try:
            processed = process_one(runtime, delivery_id)
        except Exception as exc:  # recorded on the delivery row by process_one; re-raised below
            results[delivery_id] = "error"
            failures.append((delivery_id, exc))
            continue
        results[delivery_id] = processed.status
        due += processed.due_actions
    hand_off_actions(runtime, due)
    _raise_first(failures, len(delivery_ids), "deliveries")
    return results


def run_actions(action_ids: list[int]) -> dict[int, str]:
    """Claim the job's actions in one transaction, then run each in turn.

    An unexpected error in one action (its lease expires and it runs again)
    does not stop the others, and fails the job afterwards so it is visible
    in RQ and Sentry. Past the job's time budget the actions not yet started
    are handed back rather than left to outlive their lease.
    """
    runtime = current()
    claimed = claim(runtime, action_ids)
    budget_ends = time.monotonic() + JOB_BUDGET.total_seconds()
    results = {action_id: "not_claimed" for action_id in action_ids if action_id not in claimed}
    failures = []
    pending = [claimed[action_id] for action_id in action_ids if action_id in claimed]
    for index, action in enumerate(pending):
        if time.monotonic() > budget_ends:
            hand_back(runtime, pending[index:])
            results.update({a.id: "handed_back" for a in pending[index:]})
            break
        try:
            results[action.id] = run_claimed(runtime, action)
        except Exception as exc:
            results[action.id] = "error"
            failures.append((action.id, exc))
    _raise_first(failures, len(action_ids), "actions")
    return results


def _raise_first(failures: list, total: int, what: str) -> None:
    if failures:
        first_id, exc = failures[0]
        raise RuntimeError(f"{len(failures)} of {total} {what} failed; first {first_id}") from exc
