"""RQ entry points. Jobs take ids, never objects, and find their process's Runtime."""

from __future__ import annotations

from aftersale import runtime as runtime_module
from workers.actions import run_action
from workers.processing import process_delivery


def process_deliveries(delivery_ids: list[int]) -> dict[int, str]:
    """Process each delivery in its own transaction; one failing does not hold up the others."""
    runtime = runtime_module.current()
    results, failures = {}, []
    for delivery_id in delivery_ids:
        try:
            results[delivery_id] = process_delivery(runtime, delivery_id)
        except (
            Exception
        ) as exc:  # recorded on the delivery row by process_delivery; re-raised below
            results[delivery_id] = "error"
            failures.append((delivery_id, exc))
    if failures:
        delivery_id, exc = failures[0]
        raise RuntimeError(
            f"{len(failures)} of {len(delivery_ids)} deliveries failed; first {delivery_id}"
        ) from exc
    return results


def run_actions(action_ids: list[int]) -> dict[int, str]:
    """Run each action; an unexpected error in one (its lease will expire and it is retried)
    does not stop the others, and fails the job afterwards so it is visible in RQ and Sentry."""
    runtime = runtime_module.current()
    results, failures = {}, []
    for action_id in action_ids:
        try:
            results[action_id] = run_action(runtime, action_id)
        except Exception as exc:
            results[action_id] = "error"
            failures.append((action_id, exc))
    if failures:
        action_id, exc = failures[0]
        raise RuntimeError(
            f"{len(failures)} of {len(action_ids)} actions failed; first {action_id}"
        ) from exc
    return results
