"""Short leases, renewed from a thread while the worker lives: a killed worker's sends resume
within seconds, a slow send that completes is never taken over.

A claim gives an action a lease of :data:`LEASE` (20 s). While the action is
held, the worker's :class:`LeaseKeeper` thread pushes the lease forward every
:data:`RENEW_EVERY` (5 s), so it expires only when the process is gone (or
cannot reach the database for three renewals in a row). The scheduler then
makes the action due again at its next tick (every second when idle): a
SIGKILLed worker's actions run again within about LEASE + 2 s.

Before this, leases were five minutes long with no renewal, sized to outlast
the slowest send; a crash made the customer wait those five minutes.
"""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

from aftersale.core import logs
from aftersale.store import actions as action_store

log = logs.get_logger("workers.leases")

#: how long a claim holds without renewal: the time a killed worker's sends wait
LEASE = timedelta(seconds=20)
#: how often a living worker renews its leases: three renewals may fail before one lapses
RENEW_EVERY = timedelta(seconds=5)


class Held:
    """The ids of the actions this process holds a lease on (claimed, not yet finished)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._ids: set[int] = set()

    def add(self, ids) -> None:
        with self._lock:
            self._ids.update(ids)

    def discard(self, ids) -> None:
        with self._lock:
            self._ids.difference_update(ids)

    def snapshot(self) -> list[int]:
        with self._lock:
            return sorted(self._ids)


#: this process's held actions (a worker runs one job at a time; the keeper reads it)
HELD = Held()


def renew(runtime, held: Held = HELD) -> int:
    """Renew every lease this process holds, in one statement; how many rows it touched."""
    ids = held.snapshot()
    if not ids:
        return 0
    with runtime.engine.begin() as conn:
        return action_store.renew_leases(conn, ids, runtime.clock.now(), LEASE)


class LeaseKeeper:
    """A daemon thread renewing :data:`HELD` every :data:`RENEW_EVERY` until :meth:`stop`.

    A renewal that fails (database away) is logged and tried at the next
    interval; the worker goes on. Dies with the process, which is the point.
    """

    def __init__(self, runtime, held: Held = HELD, every: timedelta = RENEW_EVERY):
        self.runtime = runtime
        self.held = held
        self.every = every.total_seconds()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)

    def start(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                renew(self.runtime, self.held)
            except SQLAlchemyError as exc:
                log.warning("leases.renew_failed", error=logs.describe_error(exc))
