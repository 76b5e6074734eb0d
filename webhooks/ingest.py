"""Group commit for the webhook inbox: many requests, one database commit.

A request thread verifies a delivery and hands it to this process's writer
thread, then waits. The writer takes every delivery that arrived meanwhile,
inserts them in one transaction (one commit, one fsync, for many requests)
and wakes the waiting requests, which answer 200. It then nudges the relay
(one Redis LPUSH per batch); the relay in the scheduler process claims the
new deliveries and enqueues them on RQ in batches.

Why: a commit per request costs more than the rest of the request, and
building RQ jobs in the web process took a seventh of its CPU (see
docs/performance.md). Here the request path does one durable write, shared,
and nothing else. If Redis is down the nudge is lost, not the delivery: the
relay also sweeps ``pending`` rows every second, so a 200 still means never lost.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, TimeoutError

from aftersale.core import logs
from aftersale.store import deliveries as delivery_store
from aftersale.webhooks.guard import Unstorable

log = logs.get_logger(__name__)

#: at most one relay nudge per this many seconds per process; a burst of
#: batches needs one wake-up, and a nudge costs a Redis round trip (at 5 ms
#: nudges took a tenth of the web process's CPU under load)
NUDGE_INTERVAL = 0.02
#: seconds the writer keeps its connection between batches before handing it back to the pool
CONNECTION_IDLE = 1.0


class StorageUnavailable(Exception):
    """The database did not take the delivery; the receiver answers 503 so the platform retries."""


@dataclass
class _Barrier:
    """Set once everything queued before it is committed and handed off (see ``drain``)."""

    done: threading.Event = field(default_factory=threading.Event)


class _Ticket:
    """One waiting request. ``waiting`` is a bare lock, taken when the ticket is made and
    released by the writer once the outcome is set: the request blocks in C on it. A
    ``threading.Event`` builds a Condition and a waiter lock per wait, in Python, and that
    showed in the profile of every request (docs/performance.md)."""

    __slots__ = ("delivery", "log_fields", "waiting", "answered", "delivery_pk", "error")

    def __init__(self, delivery: delivery_store.NewDelivery, log_fields: dict):
        self.delivery = delivery
        self.log_fields = log_fields
        self.waiting = threading.Lock()
        self.waiting.acquire()
        self.answered = False
        self.delivery_pk: int | None = None
        self.error: Exception | None = None

    def answer(self, delivery_pk: int | None = None, error: Exception | None = None) -> None:
        """Set the outcome and wake the request (once; later calls do nothing)."""
        if self.answered:
            return
        self.delivery_pk, self.error, self.answered = delivery_pk, error, True
        self.waiting.release()

    def wait(self, timeout: float) -> bool:
        return self.waiting.acquire(timeout=timeout)


class DeliveryWriter:
    """One writer thread per process; started lazily and again after a fork."""

    def __init__(
        self,
        runtime,
        nudge: Callable[[], None],
        *,
        max_batch: int = 500,
        wait_timeout: float = 10.0,
    ):
        self._runtime = runtime
        self._nudge = nudge
        self._max_batch = max_batch
        self._wait_timeout = wait_timeout
        self._queue: queue.SimpleQueue[_Ticket | _Barrier | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._start_lock = threading.Lock()
        self._conn = None  # the writer thread's connection (see _insert)
        self._conn_used = 0.0

    def store(self, delivery: delivery_store.NewDelivery, log_fields: dict) -> int | None:
        """Store durably; the new row's id, or None for a duplicate. Raises StorageUnavailable.

        The writer logs the outcome (``delivery.stored`` / ``delivery.duplicate``
        with ``log_fields``) after answering: one thread writing a batch of lines
        costs a fraction of each request thread contending for the log stream.
        """
        self._ensure_running()
        ticket = _Ticket(delivery, log_fields)
        self._queue.put(ticket)
        if not ticket.wait(self._wait_timeout):
            raise StorageUnavailable("timed out waiting for the database")
        if isinstance(ticket.error, Unstorable):
            raise ticket.error
        if ticket.error is not None:
            raise StorageUnavailable(logs.describe_error(ticket.error)) from ticket.error
        return ticket.delivery_pk

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every delivery submitted so far is committed and the relay nudged.

        For tests and graceful shutdown.
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
        self._conn = None  # one inherited across a fork belongs to the parent
        try:
            self._loop()
        finally:
            self._close_connection()

    def _loop(self) -> None:
        relay_owed = False  # new rows committed since the last nudge
        last_nudge = 0.0
        while True:
            try:
                first = self._queue.get(timeout=NUDGE_INTERVAL if relay_owed else None)
            except queue.Empty:
                last_nudge, relay_owed = time.monotonic(), False
                self._wake_relay()
                continue
            if first is None:
                return
            items = self._take_more([first])
            batch = [item for item in items if isinstance(item, _Ticket)]
            barriers = [item for item in items if isinstance(item, _Barrier)]
            try:
                relay_owed |= bool(self._commit(batch))
            except Exception as exc:  # a bug must not leave requests hanging or kill the thread
                log.exception(
                    "delivery.writer_error", batch=len(batch), error=logs.describe_error(exc)
                )
                for ticket in batch:
                    ticket.answer(error=exc)
            if relay_owed and (barriers or time.monotonic() - last_nudge >= NUDGE_INTERVAL):
                last_nudge, relay_owed = time.monotonic(), False
                self._wake_relay()
            for barrier in barriers:
                barrier.done.set()

    def _take_more(self, items: list) -> list:
        """Everything else already waiting, up to the batch size."""
        while len(items) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)
                break
            items.append(item)
        return items

    def _commit(self, batch: list[_Ticket]) -> list[int]:
        """Insert the batch in one transaction; answer its requests; the new rows' ids.

        If the database refuses the batch for anything but an outage, each row
        is tried again alone, so one delivery it cannot hold fails only its own
        request (400) and its honest neighbours are stored (see webhooks/guard.py,
        which keeps such rows out of batches in the first place).
        """
        if not batch:
            return []
        try:
            ids = self._insert([t.delivery for t in batch])
        except Exception as exc:
            if _is_outage(exc) or len(batch) == 1:
                self._fail(batch, exc)
                return []
            log.warning("delivery.batch_refused", batch=len(batch), error=logs.describe_error(exc))
            return [pk for ticket in batch for pk in self._commit([ticket])]
        for ticket, pk in zip(batch, ids, strict=True):
            ticket.answer(pk)
        for ticket, pk in zip(batch, ids, strict=True):
            if pk is None:
                log.info("delivery.duplicate", status=200, **ticket.log_fields)
            else:
                log.info("delivery.stored", status=200, delivery=pk, **ticket.log_fields)
        return [pk for pk in ids if pk is not None]

    def _insert(self, rows: list[delivery_store.NewDelivery]) -> list[int | None]:
        """One transaction on the writer's own connection, kept between batches.

        Checking a connection out of the pool for each batch cost a pre-ping (a
        round trip on PostgreSQL) and the pool's bookkeeping, per batch. It is
        kept only while batches follow each other (under load): after
        CONNECTION_IDLE seconds it goes back to the pool, whose pre-ping on the
        next checkout notices a database restarted meanwhile. After a failure it
        is dropped, so an outage heals as before.
        """
        now = time.monotonic()
        if self._conn is not None and now - self._conn_used > CONNECTION_IDLE:
            self._close_connection()
        if self._conn is None:
            self._conn = self._runtime.engine.connect()
        self._conn_used = now
        try:
            with self._conn.begin():
                return delivery_store.insert_many(self._conn, rows)
        except Exception:
            self._close_connection()
            raise

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception as exc:  # a broken connection may fail to close; it is dropped anyway
                log.warning(
                    "delivery.writer_connection_close_failed", error=logs.describe_error(exc)
                )

    def _fail(self, batch: list[_Ticket], exc: Exception) -> None:
        """Answer each request of a batch the database did not take: 503 in an outage, else 400."""
        outage = _is_outage(exc)
        log.error(
            "delivery.store_failed",
            batch=len(batch),
            outage=outage,
            error=logs.describe_error(exc),
            **(batch[0].log_fields if len(batch) == 1 else {}),
        )
        for ticket in batch:
            ticket.answer(
                error=exc if outage else Unstorable("the database cannot store this delivery")
            )

    def _wake_relay(self) -> None:
        try:
            self._nudge()
        except RedisError as exc:
            log.warning("delivery.relay_not_nudged", error=str(exc))


def _is_outage(exc: BaseException) -> bool:
    """The database is unreachable or overloaded (retry later), not refusing this data.

    A refused value is a DataError, IntegrityError, or a driver's ValueError
    (psycopg will not send NUL in text); an outage is a lost or refused
    connection, a pool time-out, or SQLite's lock time-out, all of which a
    retry by the platform can cure.
    """
    if isinstance(exc, TimeoutError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError)
