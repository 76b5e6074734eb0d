"""A worker's heartbeat, beaten from a thread of its own while the process lives.

RQ's own worker registration expires only after minutes (``worker_ttl``);
this key expires HEARTBEAT_SECONDS x 3 after the process dies, which is what
an alert on "no worker alive" needs. A beat that fails (Redis down) is
logged and tried again at the next interval: the worker goes on working.
"""

from __future__ import annotations

import threading
from contextlib import suppress

from redis.exceptions import RedisError

from aftersale.core import logs
from aftersale.store import heartbeats

log = logs.get_logger("workers.heartbeat")


class Heartbeat:
    """Beat for ``role``/``name`` every ``interval`` seconds until :meth:`stop`."""

    def __init__(self, runtime, role: str, name: str, interval: float):
        self.runtime = runtime
        self.role = role
        self.name = name
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{role}", daemon=True)

    def start(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def beat(self) -> None:
        try:
            heartbeats.beat(self.runtime, self.role, self.name, self.interval)
        except RedisError as exc:
            log.warning("heartbeat.failed", role=self.role, error=logs.describe_error(exc))

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        with suppress(RedisError):  # the key expires by itself
            heartbeats.stop(self.runtime, self.role, self.name)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()
