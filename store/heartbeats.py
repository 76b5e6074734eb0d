"""Heartbeats: each worker and scheduler process keeps a Redis key alive while it runs.

The key expires HEARTBEAT_SECONDS x 3 after the last beat, so a process that
was killed (or hangs, for the scheduler, which beats from its loop) drops out
of :func:`alive` by itself; nothing has to notice it die. ``/readyz`` and
``aftersale status`` read them.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import orjson

#: a heartbeat lives this many beat intervals: one late beat is not a death
MISSED_BEATS = 3
ROLES = ("worker", "scheduler")


@dataclass(frozen=True)
class Beat:
    role: str
    name: str
    host: str
    pid: int
    at: str  # ISO time of the last beat


def _prefix(runtime) -> str:
    return f"{runtime.config.queue_prefix}:heartbeat"


def beat(runtime, role: str, name: str, interval: float) -> None:
    """Say that this process is alive for the next ``interval`` x MISSED_BEATS seconds."""
    value = orjson.dumps(
        {"host": socket.gethostname(), "pid": os.getpid(), "at": runtime.clock.now().isoformat()}
    )
    ttl_ms = max(int(interval * MISSED_BEATS * 1000), 1000)
    runtime.redis.set(f"{_prefix(runtime)}:{role}:{name}", value, px=ttl_ms)


def stop(runtime, role: str, name: str) -> None:
    """A process stopping cleanly says so at once rather than waiting out its heartbeat."""
    runtime.redis.delete(f"{_prefix(runtime)}:{role}:{name}")


def living(runtime, role: str, names) -> set[str]:
    """Which of ``names`` still beat: one pipelined EXISTS each.

    The scheduler asks this of the workers its started jobs name (RQ notes the
    worker on the job): a job whose worker stopped beating will not finish, and
    its rows are handed to another worker within one heartbeat lifetime rather
    than after RQ's own registries expire, minutes later.
    """
    ordered = sorted(names)
    if not ordered:
        return set()
    with runtime.redis.pipeline(transaction=False) as pipe:
        for name in ordered:
            pipe.exists(f"{_prefix(runtime)}:{role}:{name}")
        found = pipe.execute()
    return {name for name, exists in zip(ordered, found, strict=True) if exists}


def alive(runtime) -> dict[str, list[Beat]]:
    """{role: [beats]} of the processes whose heartbeat has not expired."""
    found: dict[str, list[Beat]] = {role: [] for role in ROLES}
    keys = sorted(runtime.redis.scan_iter(match=f"{_prefix(runtime)}:*", count=500))
    values = runtime.redis.mget(keys) if keys else []
    for key, value in zip(keys, values, strict=True):
        if value is None:  # expired between SCAN and MGET
            continue
        role, _, name = key.decode().removeprefix(f"{_prefix(runtime)}:").partition(":")
        data = orjson.loads(value)
        found.setdefault(role, []).append(Beat(role, name, data["host"], data["pid"], data["at"]))
    return found
