"""Putting work on RQ. Jobs carry ids only; the database holds the state.

Jobs are enqueued in batches through one Redis pipeline, and each row
remembers the id of the job carrying it, so the scheduler can tell a job
that is merely waiting behind others from one that Redis lost (flushed, or
restarted without persistence) and enqueue the latter again. Results are
not kept (the database records outcomes); a failed job is kept a week for
inspection with ``rq info``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job
from rq.registry import StartedJobRegistry

from aftersale.core import logs
from aftersale.store import actions as action_store

DELIVERIES = "deliveries"
ACTIONS = "actions"
DELIVERY_BATCH = 20
ACTION_BATCH = 25
FAILURE_TTL = 7 * 24 * 3600
#: jobs waiting on a queue (taken by no worker yet) from which new work is left in the
#: database, to go over in full batches when the workers catch up (see ``behind``)
BEHIND_AT = {DELIVERIES: 1, ACTIONS: 2}
#: seconds one reconcile run may take before RQ stops it (the cursor keeps its progress)
RECONCILE_TIMEOUT = 3600

log = logs.get_logger("store.queues")


def nudge_key(runtime) -> str:
    return f"{runtime.config.queue_prefix}:relay:nudge"


def nudge_relay(runtime) -> None:
    """Wake the relay: new deliveries are waiting in the database (one cheap Redis command)."""
    with runtime.redis.pipeline(transaction=False) as pipe:
        _push_nudge(pipe, runtime)
        pipe.execute()


def _push_nudge(pipe, runtime) -> None:
    pipe.lpush(nudge_key(runtime), b"1")
    pipe.ltrim(nudge_key(runtime), 0, 0)  # one pending nudge is enough


def deferred_key(runtime) -> str:
    return f"{runtime.config.queue_prefix}:relay:actions-deferred"


def note_deferred(runtime) -> None:
    """Tell the relay a worker left due actions in the database (see ``hand_off_actions``)."""
    with runtime.redis.pipeline(transaction=False) as pipe:
        pipe.set(deferred_key(runtime), b"1", ex=60)
        _push_nudge(pipe, runtime)
        pipe.execute()


def take_deferred(runtime) -> bool:
    """True once after :func:`note_deferred` (GET and DEL in one transaction)."""
    with runtime.redis.pipeline() as pipe:
        pipe.get(deferred_key(runtime))
        pipe.delete(deferred_key(runtime))
        noted, _ = pipe.execute()
    return noted is not None


def wait_for_nudge(runtime, timeout: float) -> bool:
    """Block until nudged or ``timeout`` seconds pass; True when nudged."""
    return runtime.redis.blpop([nudge_key(runtime)], timeout=max(timeout, 0.01)) is not None


def enqueue_registration(runtime, domain: str) -> str:
    """Create a connected WooCommerce store's webhooks in a worker; the job id."""
    job = runtime.queue(DELIVERIES).enqueue(
        "aftersale.shops.register_webhooks_job", domain, failure_ttl=FAILURE_TTL
    )
    return job.id


def enqueue_reconcile(runtime, shop_id: int) -> str:
    """One shop's reconcile run (orders changed since its cursor, webhook health); the job id.

    On the actions queue, behind webhooks; a run of many pages may take long.
    """
    job = runtime.queue(ACTIONS).enqueue(
        "aftersale.reconcile_jobs.reconcile_job",
        shop_id,
        failure_ttl=FAILURE_TTL,
        job_timeout=RECONCILE_TIMEOUT,
        result_ttl=0,
    )
    return job.id


def enqueue_deliveries(runtime, ids: list[int]) -> dict[int, str]:
    """``process_deliveries`` jobs of up to DELIVERY_BATCH ids; returns id -> job id."""
    return _enqueue_chunks(
        runtime.queue(DELIVERIES),
        "aftersale.workers.jobs.process_deliveries",
        ids,
        DELIVERY_BATCH,
        300,
    )


def enqueue_actions(runtime, ids: list[int]) -> dict[int, str]:
    """``run_actions`` jobs of up to ACTION_BATCH ids; returns id -> job id."""
    return _enqueue_chunks(
        runtime.queue(ACTIONS), "aftersale.workers.jobs.run_actions", ids, ACTION_BATCH, 900
    )


def _enqueue_chunks(
    queue: Queue, func: str, ids: list[int], size: int, timeout: int
) -> dict[int, str]:
    if not ids:
        return {}
    assigned: dict[int, str] = {}
    jobs = []
    for start in range(0, len(ids), size):
        chunk = list(ids[start : start + size])
        job_id = f"{func.rsplit('.', 1)[1]}-{chunk[0]}-{uuid.uuid4().hex[:10]}"
        jobs.append(
            Queue.prepare_data(
                func,
                args=(chunk,),
                job_id=job_id,
                result_ttl=0,
                failure_ttl=FAILURE_TTL,
                timeout=timeout,
            )
        )
        assigned.update(dict.fromkeys(chunk, job_id))
    with queue.connection.pipeline() as pipe:
        queue.enqueue_many(jobs, pipeline=pipe)
        pipe.execute()
    return assigned


#: RQ job statuses after which the job will not run (again) on its own
ENDED = {b"finished", b"failed", b"stopped", b"canceled"}


def missing_jobs(
    redis: Redis,
    job_ids: set[str],
    started_before: datetime | None = None,
    living: Callable[[set[str]], set[str]] | None = None,
    confirm_popped: Callable[[set[str]], set[str]] | None = None,
) -> set[str]:
    """The job ids that will not run: gone, ended, or held by a worker that died.

    A row still waiting for such a job was lost and must be enqueued again.
    Cases: Redis flushed or restarted (no job hash); the job ended without
    finishing its rows; a worker popped the job from the queue and was killed
    before starting it (status still ``queued`` but in no queue: RQ pops
    with a plain BLPOP when a worker listens on several queues); a worker
    started it and died with its work-horse (the started-registry entry is
    no longer renewed by heartbeats and expires), or a job started before
    ``started_before`` whose rows are still waiting: a live job claims its
    rows first thing, so it died (a SimpleWorker killed mid-job leaves its
    job ``started`` until RQ's own cleanup, many minutes later). A false alarm
    only costs a second job: claims are check-and-set, so a row runs once.

    ``living``, given the names of the workers that started jobs, says which of
    them still beat (store/heartbeats.py): a job whose worker stopped beating is
    gone within one heartbeat lifetime, long before RQ's registries expire.

    The popped-and-dropped check races a live worker: between BLPOP and marking
    the job started (a few milliseconds) a healthy job is in no list with status
    ``queued``. So ``confirm_popped``, given the jobs found so, says which of them
    count as gone (the caller's second look, workers/recovery.py); without it, all do.
    """
    ordered = [j for j in job_ids if j]
    if not ordered:
        return set()
    with redis.pipeline(transaction=False) as pipe:
        for job_id in ordered:
            pipe.hmget(Job.key_for(job_id), "status", "origin", "started_at", "worker_name")
        found = pipe.execute()
    gone, waiting, running, by_worker = set(), [], {}, {}
    for job_id, (status, origin, started_at, worker) in zip(ordered, found, strict=True):
        if status is None or status in ENDED:
            gone.add(job_id)
        elif status == b"queued" and origin:
            waiting.append((job_id, origin.decode()))
        elif status == b"started" and _started_before(started_at, started_before):
            gone.add(job_id)
        elif status == b"started" and origin:
            running.setdefault(origin.decode(), []).append(job_id)
            if worker:
                by_worker.setdefault(worker.decode(), []).append(job_id)
    popped = _popped_and_dropped(redis, waiting)
    gone |= popped if confirm_popped is None else confirm_popped(popped)
    for origin, started in running.items():
        gone |= _started_by_the_dead(redis, origin, started)
    if living is not None and by_worker:
        alive = living(set(by_worker))
        gone.update(j for name, jobs in by_worker.items() if name not in alive for j in jobs)
    return gone


def _started_before(started_at: bytes | None, moment: datetime | None) -> bool:
    if moment is None or not started_at:
        return False
    try:
        started = datetime.fromisoformat(started_at.decode().replace("Z", "+00:00"))
    except ValueError:
        return False
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return started < moment


def _popped_and_dropped(redis: Redis, waiting: list[tuple[str, str]]) -> set[str]:
    """Jobs marked queued that are in neither their queue nor its intermediate list."""
    if not waiting:
        return set()
    with redis.pipeline(transaction=False) as pipe:
        for job_id, origin in waiting:
            key = Queue(origin, connection=redis).key
            pipe.lpos(key, job_id)
            pipe.lpos(IntermediateQueue.get_intermediate_queue_key(key), job_id)
        positions = pipe.execute()
    return {
        job_id
        for index, (job_id, _) in enumerate(waiting)
        if positions[2 * index] is None and positions[2 * index + 1] is None
    }


def _started_by_the_dead(redis: Redis, origin: str, job_ids: list[str]) -> set[str]:
    """Started jobs whose started-registry entry expired or vanished (no heartbeat renews it)."""
    registry = StartedJobRegistry(origin, connection=redis)
    alive = set(registry.get_job_ids(cleanup=False)) - set(registry.get_expired_job_ids())
    return {job_id for job_id in job_ids if job_id not in alive}


def by_job(assigned: dict[int, str]) -> dict[str, list[int]]:
    grouped: dict[str, list[int]] = {}
    for row_id, job_id in assigned.items():
        grouped.setdefault(job_id, []).append(row_id)
    return grouped


def behind(runtime, name: str) -> bool:
    """True when ``name``'s queue already holds jobs no worker has taken.

    Handing more over then only lines up small jobs behind them: at 50 webhooks a
    second each job carried one or two ids, and a job's own cost (RQ's round trips,
    the claim, the reads) made the workers fall behind for good (measured:
    bench/e2e_bench.py, docs/performance.md). Left in the database a moment, the
    work goes over in full batches once the workers catch up. Without Redis: False
    (the enqueue that follows reports it).
    """
    try:
        return runtime.redis.llen(runtime.queue(name).key) >= BEHIND_AT[name]
    except RedisError:
        return False


def hand_off_actions(runtime, ids: list[int], *, coalesce: bool = False) -> None:
    """Enqueue actions created due; if Redis fails they stay queued and the scheduler re-enqueues them.

    With ``coalesce`` (a worker handing over what its job planned), when the workers
    are :func:`behind` the actions go back to ``scheduled``, due now, and the relay is
    told: it hands them over in full batches as soon as the queue has room (at the
    latest the scheduler's next tick, within a second).
    """
    if not ids:
        return
    if coalesce and behind(runtime, ACTIONS):
        with runtime.engine.begin() as conn:
            action_store.unqueue(conn, ids, runtime.clock.now())
        with suppress(RedisError):
            note_deferred(runtime)
        return
    try:
        jobs = by_job(enqueue_actions(runtime, ids))
    except RedisError as exc:
        # They stay queued in the database; the scheduler re-enqueues lost jobs.
        log.warning("actions.enqueue_deferred", count=len(ids), error=str(exc))
        return
    with runtime.engine.begin() as conn:
        action_store.set_jobs(conn, jobs, runtime.clock.now())
