"""Group commit for the webhook inbox, and the hand-off to RQ off the request path.

A request thread verifies a delivery and hands it to this process's writer
thread, then waits. The writer takes every delivery that arrived meanwhile,
inserts them in one transaction (one commit, one fsync, for many requests),
wakes the waiting requests so they can answer 200, and only then enqueues
the new deliveries on RQ in one Redis pipeline and marks them queued.

Why: a commit per request costs more than the rest of the request together
(see docs/performance.md); batching keeps "stored before 200" while paying for
one commit per batch. If Redis is down the rows stay ``pending`` and the
scheduler's sweeper enqueues them later, so a 200 still means never lost.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from aftersale import logs
from store import deliveries as delivery_store
from workers.queues import by_job

log = logs.get_logger(__name__)


class StorageUnavailable(Exception):
    """The database did not take the delivery; the receiver answers 503 so the platform retries."""


@dataclass
class _Barrier:
    """Set once everything queued before it is committed and handed off (see ``drain``)."""

    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Ticket:
    delivery: delivery_store.NewDelivery
    done: threading.Event = field(default_factory=threading.Event)
    delivery_pk: int | None = None
    error: Exception | None = None


class DeliveryWriter:
    """One writer thread per process; started lazily and again after a fork."""

    def __init__(
        self,
        runtime,
        enqueue: Callable[[list[int]], dict[int, str]],
        *,
        max_batch: int = 500,
        wait_timeout: float = 10.0,
    ):
        self._runtime = runtime
        self._enqueue = enqueue
        self._max_batch = max_batch
        self._wait_timeout = wait_timeout
        self._queue: queue.SimpleQueue[_Ticket | _Barrier | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._start_lock = threading.Lock()

    def store(self, delivery: delivery_store.NewDelivery) -> int | None:
        """Store durably; the new row's id, or None for a duplicate. Raises StorageUnavailable."""
        self._ensure_running()
        ticket = _Ticket(delivery)
        self._queue.put(ticket)
        if not ticket.done.wait(self._wait_timeout):
            raise StorageUnavailable("timed out waiting for the database")
        if ticket.error is not None:
            raise StorageUnavailable(str(ticket.error)) from ticket.error
        return ticket.delivery_pk

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every delivery stored so far has been handed to RQ (or deferred).

        For tests and graceful shutdown: a 200 is sent after the commit, the
        hand-off to RQ happens just after it.
        """
        if self._thread is None or self._pid != os.getpid():
            return True
        barrier = _Barrier()
        self._queue.put(barrier)
        return barrier.done.wait(timeout)

    def stop(self) -> None:
        if self._thread is not None and self._pid == os.getpid():
            self._queue.put(None)
            self._thread.join(timeout=5)
        self._thread = None

    def _ensure_running(self) -> None:
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._queue = queue.SimpleQueue() if self._pid != os.getpid() else self._queue
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="delivery-writer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            items = [first]
            while len(items) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                items.append(item)
            batch = [item for item in items if isinstance(item, _Ticket)]
            barriers = [item for item in items if isinstance(item, _Barrier)]
            try:
                new_ids = self._commit(batch)
                if new_ids:
                    self._hand_off(new_ids)
            except (
                Exception
            ) as exc:  # a bug here must not leave requests hanging or kill the thread
                log.exception("delivery.writer_error", batch=len(batch))
                for ticket in batch:
                    if not ticket.done.is_set():
                        ticket.error = exc
                        ticket.done.set()
            for barrier in barriers:
                barrier.done.set()

    def _commit(self, batch: list[_Ticket]) -> list[int]:
        if not batch:
            return []
        try:
            with self._runtime.engine.begin() as conn:
                ids = delivery_store.insert_many(conn, [t.delivery for t in batch])
        except SQLAlchemyError as exc:
            log.error("delivery.store_failed", batch=len(batch), error=str(exc).splitlines()[0])
            for ticket in batch:
                ticket.error = exc
                ticket.done.set()
            return []
        for ticket, pk in zip(batch, ids, strict=True):
            ticket.delivery_pk = pk
            ticket.done.set()
        return [pk for pk in ids if pk is not None]

    def _hand_off(self, ids: list[int]) -> None:
        try:
            jobs = by_job(self._enqueue(ids))
        except RedisError as exc:
            log.warning("delivery.enqueue_deferred", count=len(ids), error=str(exc))
            return
        try:
            with self._runtime.engine.begin() as conn:
                delivery_store.mark_enqueued(conn, jobs, self._runtime.clock.now())
        except SQLAlchemyError as exc:
            # Harmless: the sweeper will enqueue them again and the worker's claim dedupes.
            log.warning(
                "delivery.mark_enqueued_failed", count=len(ids), error=str(exc).splitlines()[0]
            )
