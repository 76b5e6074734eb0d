"""Send one action while preparing the next: a job's worker no longer idles on the channel.

A mail costs its worker two kinds of time: its own CPU (reading, rendering,
composing, recording) and waiting for the channel's answers (four SMTP round
trips; an HTTP request for a text or a webhook). Sent one after another, the
waits add up: to a local SMTP sink they were a fifth of a mail's time, and to
a relay across a network (tens of milliseconds per round trip) they are
nearly all of it. So a job hands each prepared message to one sender thread
and prepares the next while it goes out; it records an outcome when the
channel has answered, in the order the actions were started.

What stays as it was, and why:

- One sender thread per process, so a channel's connection is still used by
  one thread at a time, in order; only executors that talk to nothing but
  their channel send there (``Executor.sends_alongside``). Platform calls,
  which refresh tokens in the database, send on the job's thread as before.
- An action of the same customer or order as one still in flight waits for
  that one to be recorded before it is prepared. Its checks (frequency cap,
  an earlier step's result, a suppression the first send caused) read what
  the earlier send recorded.
- At most two are unrecorded at once: the one the channel is answering and
  the one just handed over. A worker killed meanwhile leaves both ``running``
  under their leases, as before.
"""

from __future__ import annotations

import contextvars
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from aftersale.workers.actions import Ready, finish, start
from aftersale.workers.leases import HELD

_sender: ThreadPoolExecutor | None = None


def sender() -> ThreadPoolExecutor:
    """This process's sender thread (made on first use, joined when the process exits)."""
    global _sender
    if _sender is None:
        _sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aftersale-send")
    return _sender


class InFlight:
    """The actions of one job whose messages were handed to the sender and not yet recorded.

    ``start`` prepares an action (on the job's connection) and, when it is
    ready and its executor allows, hands its send to the sender thread;
    ``land`` records the oldest one's outcome. ``drain`` records them all; the
    job calls it however it ends, so nothing handed over goes unrecorded.
    Each outcome goes to ``landed(action, outcome)``, an error no outcome
    could be recorded for to ``crashed(action, exc)``, each inside
    ``bound(action)`` (the action's own ids on every log line).
    """

    def __init__(self, runtime, conn, reads, *, bound, landed, crashed, depth: int = 2):
        self.runtime, self.conn, self.reads = runtime, conn, reads
        self.bound, self.landed, self.crashed = bound, landed, crashed
        self.depth = depth
        self.flying: deque[tuple[Ready, Future | None]] = deque()

    def start(self, action) -> None:
        if any(_related(action, ready.action) for ready, _ in self.flying):
            self.drain()
        with self.bound(action):
            try:
                ready = start(self.runtime, self.conn, action, self.reads)
            except Exception as exc:  # its lease brings it back
                HELD.discard((action.id,))
                self.crashed(action, exc)
                return
            if not isinstance(ready, Ready):
                HELD.discard((action.id,))
                self.landed(action, ready)
                return
            future = None
            if ready.executor.sends_alongside:
                run_here = contextvars.copy_context().run  # the action's log ids go along
                future = sender().submit(run_here, _send, self.runtime, ready)
        self.flying.append((ready, future))
        while len(self.flying) >= self.depth or (self.flying and future is None):
            self.land()

    def land(self) -> None:
        """Record the oldest action in flight (waiting for its channel's answer)."""
        ready, future = self.flying.popleft()
        action = ready.action
        send = future.result if future is not None else _direct(self.runtime, ready)
        with self.bound(action):
            try:
                outcome = finish(self.runtime, self.conn, ready, send)
            except Exception as exc:  # its lease brings it back
                self.crashed(action, exc)
                return
            finally:
                HELD.discard((action.id,))
            self.landed(action, outcome)

    def drain(self) -> None:
        while self.flying:
            self.land()


def _send(runtime, ready: Ready):
    """On the sender thread: the send, timed from when it starts (not from when it queued)."""
    ready.started = time.monotonic()
    return ready.executor.send(runtime, ready.prepared)


def _direct(runtime, ready: Ready):
    return lambda: ready.executor.send(runtime, ready.prepared)


def _related(action, other) -> bool:
    """Same shop and the same customer or order: the later one's checks read the earlier's record."""
    if action.shop_id != other.shop_id:
        return False
    same_customer = action.customer_ref and action.customer_ref == other.customer_ref
    same_order = action.order_ref and action.order_ref == other.order_ref
    return bool(same_customer or same_order)
