"""The action lifecycle on real Redis, RQ workers, SMTP and both databases: never twice, never lost."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
import redis as redis_lib

from aftersale.store import actions as action_store
from aftersale.store.queues import (
    ACTIONS,
    behind,
    enqueue_actions,
    hand_off_actions,
    take_deferred,
)
from aftersale.store.tables import actions, messages
from aftersale.workers.recovery import POPPED_GRACE, RECHECK_AFTER
from aftersale.workers.scheduler import Scheduler
from tests.action_helpers import hand_off, plant, store_event
from tests.helpers import count, rows

EMAIL = ("email", {"template": "thank_you", "to": "customer"})


def message_ids(smtp_server) -> Counter:
    return Counter(m["Message-ID"] for m in smtp_server.handler.messages)


def test_the_same_action_job_enqueued_twice_sends_one_message(runtime, work, smtp_server):
    shop_id, event_id, event = store_event(runtime)
    (action_id,) = plant(runtime, shop_id, event_id, event, [EMAIL])
    hand_off(runtime, [action_id])
    enqueue_actions(runtime, [action_id])  # a second job for the same action
    work()
    assert len(smtp_server.handler.messages) == 1
    (action,) = rows(runtime.engine, actions)
    assert (action.status, action.attempts) == ("sent", 1)
    assert count(runtime.engine, messages) == 1


def test_two_schedulers_at_once_hand_each_due_action_over_once(runtime, clock, work, smtp_server):
    shop_id, event_id, event = store_event(runtime)
    due = clock.now() + timedelta(hours=1)
    ids = plant(runtime, shop_id, event_id, event, [EMAIL], due_at=due, count=300)
    clock.advance(timedelta(hours=1, seconds=1))
    schedulers = [Scheduler(runtime, batch=50), Scheduler(runtime, batch=50)]
    reports, barrier = [], threading.Barrier(2)

    def tick(scheduler):
        barrier.wait()
        reports.append(scheduler.tick(clock.now()))

    threads = [threading.Thread(target=tick, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.actions_enqueued for r in reports) == len(ids)
    assert all(not r.errors for r in reports)
    work()
    sent = message_ids(smtp_server)
    assert len(sent) == len(ids) and max(sent.values()) == 1
    assert count(runtime.engine, actions, actions.c.status == "sent") == len(ids)


def test_redis_flushed_while_1000_actions_wait_all_are_sent_when_due(
    runtime, clock, work, smtp_server, scheduler
):
    shop_id, event_id, event = store_event(runtime)
    now_ids = plant(runtime, shop_id, event_id, event, [EMAIL], count=500, rule="now")
    later = clock.now() + timedelta(days=2)
    later_ids = plant(
        runtime, shop_id, event_id, event, [EMAIL], due_at=later, count=500, rule="later"
    )
    hand_off(runtime, now_ids)
    redis_lib.Redis.from_url(runtime.config.redis_url).flushall()  # every queued job is gone

    work()
    assert smtp_server.handler.messages == []
    clock.advance(timedelta(seconds=61))  # past the scheduler's lost-job threshold
    assert scheduler.tick(clock.now()).lost_jobs_requeued == len(now_ids)
    work()
    assert len(message_ids(smtp_server)) == len(now_ids)

    clock.set(later + timedelta(seconds=1))
    assert scheduler.tick(clock.now()).actions_enqueued == len(later_ids)
    work()
    sent = message_ids(smtp_server)
    assert len(sent) == 1000 and max(sent.values()) == 1
    assert count(runtime.engine, actions, actions.c.status == "sent") == 1000


def popped_job(runtime) -> tuple[list[int], str, redis_lib.Redis, str]:
    """Three planted sends handed to RQ in one job, which is then popped off its queue as
    a worker's BLPOP does: (action ids, job id, a Redis connection, the queue's name)."""
    from rq import Queue

    from aftersale.store.queues import ACTIONS

    shop_id, event_id, event = store_event(runtime)
    ids = plant(runtime, shop_id, event_id, event, [EMAIL], count=3)
    hand_off(runtime, ids)
    connection = redis_lib.Redis.from_url(runtime.config.redis_url)
    (job_id,) = {row.job_id for row in rows(runtime.engine, actions)}
    queue_name = runtime.queue(ACTIONS).name
    assert connection.lpop(Queue(queue_name, connection=connection).key) == job_id.encode()
    return ids, job_id, connection, queue_name


def test_a_job_popped_by_a_worker_killed_before_starting_it_is_enqueued_again(
    runtime, clock, work, smtp_server, scheduler
):
    """RQ pops a job id off the queue before it marks the job started; a worker killed in
    between leaves a job that is ``queued`` yet in no queue. Its actions are not lost."""
    ids, job_id, connection, _ = popped_job(runtime)
    assert connection.hget(f"rq:job:{job_id}", "status") == b"queued"

    work()
    assert smtp_server.handler.messages == []
    # a healthy worker between BLPOP and marking the job started looks just like this for
    # a few milliseconds: lost only when a second look, POPPED_GRACE later, sees it still
    clock.advance(RECHECK_AFTER + timedelta(seconds=1))
    assert scheduler.tick(clock.now()).lost_jobs_requeued == 0
    clock.advance(POPPED_GRACE - timedelta(seconds=1))
    assert scheduler.tick(clock.now()).lost_jobs_requeued == 0
    clock.advance(timedelta(seconds=1))
    assert scheduler.tick(clock.now()).lost_jobs_requeued == len(ids)
    work()
    sent = message_ids(smtp_server)
    assert len(sent) == len(ids) and max(sent.values()) == 1


def test_a_popped_job_its_worker_then_starts_is_left_to_it(runtime, clock, scheduler):
    """The first look at a popped job may fall between a live worker's BLPOP and its
    start; once that worker marks it started and beats, the second look leaves it."""
    from aftersale.store import heartbeats

    ids, job_id, connection, queue_name = popped_job(runtime)
    clock.advance(RECHECK_AFTER + timedelta(seconds=1))
    assert scheduler.tick(clock.now()).lost_jobs_requeued == 0
    mark_started(connection, queue_name, job_id, clock.now(), worker="w-alive")
    heartbeats.beat(runtime, "worker", "w-alive", 60)
    clock.advance(POPPED_GRACE + timedelta(seconds=1))
    assert scheduler.tick(clock.now()).lost_jobs_requeued == 0
    assert connection.hget(f"rq:job:{job_id}", "status") == b"started"


def mark_started(connection, queue_name: str, job_id: str, at, worker: str = "") -> None:
    """What RQ writes when a worker starts a job: its status, start time and worker, and an
    entry in the queue's started registry that the worker's heartbeats keep alive."""
    from rq.registry import StartedJobRegistry

    started = at.isoformat().replace("+00:00", "Z")
    mapping = {"status": "started", "started_at": started, "worker_name": worker}
    connection.hset(f"rq:job:{job_id}", mapping=mapping)
    registry = StartedJobRegistry(queue_name, connection=connection)
    connection.zadd(registry.key, {f"{job_id}:execution": time.time() + 3600})


def test_a_job_started_by_a_worker_killed_before_it_claimed_its_actions_is_enqueued_again(
    runtime, clock, work, smtp_server, scheduler
):
    """A SimpleWorker killed between starting a job and claiming its rows leaves the job
    ``started`` until RQ's own cleanup many minutes later; the rows must not wait for that."""
    ids, job_id, connection, queue_name = popped_job(runtime)
    mark_started(connection, queue_name, job_id, clock.now())

    clock.advance(timedelta(seconds=30))  # a live job claims its rows at once; give it time
    assert scheduler.tick(clock.now()).lost_jobs_requeued == 0
    clock.advance(timedelta(seconds=31))
    assert scheduler.tick(clock.now()).lost_jobs_requeued == len(ids)
    work()
    sent = message_ids(smtp_server)
    assert len(sent) == len(ids) and max(sent.values()) == 1


@pytest.mark.parametrize("beating", [True, False])
def test_a_job_started_by_a_worker_that_stopped_beating_is_enqueued_again_at_once(
    runtime, clock, work, smtp_server, scheduler, beating
):
    """RQ notes the worker on a started job. While that worker's heartbeat lives, the job
    gets the full ``lost_after`` to claim its rows; once it expired (the worker was
    killed), the rows go to a new job at the next tick, not a minute later."""
    from aftersale.store import heartbeats

    ids, job_id, connection, queue_name = popped_job(runtime)
    mark_started(connection, queue_name, job_id, clock.now(), worker="w-killed")
    if beating:
        heartbeats.beat(runtime, "worker", "w-killed", 60)

    clock.advance(RECHECK_AFTER + timedelta(seconds=1))
    requeued = scheduler.tick(clock.now()).lost_jobs_requeued
    assert requeued == (0 if beating else len(ids))
    if beating:  # a living worker's job is trusted until lost_after
        heartbeats.stop(runtime, "worker", "w-killed")
        assert scheduler.tick(clock.now()).lost_jobs_requeued == len(ids)
    work()
    sent = message_ids(smtp_server)
    assert len(sent) == len(ids) and max(sent.values()) == 1


def test_a_worker_lost_mid_run_is_run_again_after_its_lease(
    runtime, clock, work, smtp_server, scheduler
):
    from aftersale.workers.actions import LEASE

    shop_id, event_id, event = store_event(runtime)
    (action_id,) = plant(runtime, shop_id, event_id, event, [EMAIL])
    with runtime.engine.begin() as conn:  # a worker claims it, then dies before sending
        assert action_id in action_store.start_many(conn, [action_id], clock.now(), LEASE)

    clock.advance(LEASE - timedelta(seconds=1))
    assert scheduler.tick(clock.now()).released == 0
    clock.advance(timedelta(seconds=2))
    report = scheduler.tick(clock.now())
    assert report.released == 1 and report.actions_enqueued == 1
    work()

    assert len(smtp_server.handler.messages) == 1
    (action,) = rows(runtime.engine, actions)
    assert (action.status, action.attempts) == ("sent", 2)
    attempts = rows(runtime.engine, messages)
    assert [(m.attempt, m.status) for m in attempts] == [(1, "lost"), (2, "sent")]


def test_a_lease_expiring_on_the_last_attempt_makes_a_dead_letter(runtime, clock, scheduler):
    from aftersale.workers.actions import LEASE

    shop_id, event_id, event = store_event(runtime)
    (action_id,) = plant(runtime, shop_id, event_id, event, [EMAIL])
    with runtime.engine.begin() as conn:
        conn.execute(actions.update().values(max_attempts=1))
        action_store.start_many(conn, [action_id], clock.now(), LEASE)
    clock.advance(LEASE + timedelta(seconds=1))
    scheduler.tick(clock.now())
    (action,) = rows(runtime.engine, actions)
    assert action.status == "dead" and "attempts used up" in action.last_error


def test_a_cancelled_action_is_not_sent_even_if_its_job_runs(runtime, work, smtp_server):
    shop_id, event_id, event = store_event(runtime)
    (action_id,) = plant(runtime, shop_id, event_id, event, [EMAIL])
    hand_off(runtime, [action_id])
    with runtime.engine.begin() as conn:
        assert action_store.cancel(conn, action_id, runtime.clock.now(), "operator")
    work()
    assert smtp_server.handler.messages == []
    (action,) = rows(runtime.engine, actions)
    assert (action.status, action.skip_reason) == ("skipped", "cancelled")


def test_every_step_type_is_registered_accepted_by_rules_and_executed():
    """A channel is one registry entry, one rule schema, one executor: the three agree."""
    from aftersale.core.steps import STEP_TYPES
    from aftersale.rules.step_schemas import STEP_TYPES as RULE_STEPS
    from aftersale.workers.executors import EXECUTORS

    assert set(STEP_TYPES) == set(RULE_STEPS) == set(EXECUTORS)


def test_actions_planned_while_the_queue_is_behind_go_over_in_one_full_batch(
    runtime, work, smtp_server
):
    """At a steady trickle each delivery job planned one or two mails, and one action job
    each made the workers fall behind for good; behind, a worker leaves them due in the
    database and the relay hands them over together once the queue has room."""
    shop_id, event_id, event = store_event(runtime)
    waiting = plant(runtime, shop_id, event_id, event, [EMAIL], count=2, rule="waiting")
    for action_id in waiting:  # two jobs no worker has taken: the queue is behind
        hand_off(runtime, [action_id])
    assert behind(runtime, ACTIONS)
    trickle = []
    for n in range(5):  # five delivery jobs, one mail each
        (action_id,) = plant(runtime, shop_id, event_id, event, [EMAIL], rule=f"trickle-{n}")
        hand_off_actions(runtime, [action_id], coalesce=True)
        trickle.append(action_id)
    statuses = {r.id: r.status for r in rows(runtime.engine, actions)}
    assert {statuses[i] for i in trickle} == {"scheduled"}  # left due, not one job each
    assert runtime.redis.llen(runtime.queue(ACTIONS).key) == 2
    assert take_deferred(runtime) and not take_deferred(runtime)  # the relay was told once

    assert Scheduler(runtime).dispatch() == len(trickle)
    job_ids = {r.job_id for r in rows(runtime.engine, actions) if r.id in trickle}
    assert len(job_ids) == 1  # one job for the five
    work()
    assert len(message_ids(smtp_server)) == len(waiting) + len(trickle)
