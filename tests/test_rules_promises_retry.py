"""An automatic retry that comes due inside quiet hours waits for their end (issue 22).

The mail server is down (nothing listens on its port): the first attempt fails with a
transient error and is retried a minute later, which is inside the shop's quiet hours.
"""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest

from tests.conftest import free_port
from tests.test_rules_promises import due_now, only, order, send
from tests.test_rules_promises_timing import RETRIED, SETTINGS, local, rules_folder

IMMEDIATE = RETRIED.replace("  wait: 1h\n", "")


@pytest.fixture
def smtp_server():
    """A mail server that is down: connections to this port are refused."""
    return SimpleNamespace(url=f"smtp://127.0.0.1:{free_port()}")


@pytest.fixture
def rules_dir(tmp_path):
    return rules_folder(tmp_path, IMMEDIATE, SETTINGS)


def test_a_retry_due_inside_quiet_hours_is_moved_to_their_end(
    client, work, runtime, clock, scheduler
):
    clock.set(local(20, 20, 59) + timedelta(seconds=30))  # 20:59:30 in Belgrade: not quiet yet
    send(client, "orders/create", order())
    work()
    failed = only(runtime)
    assert (failed.status, failed.attempts) == ("scheduled", 1)  # a retry, backed off
    assert "cannot connect to SMTP" in failed.last_error
    assert local(20, 21) <= failed.due_at <= local(20, 21, 0) + timedelta(seconds=30)

    due_now(clock, scheduler, work, local(20, 21, 2))
    deferred = only(runtime)
    assert (deferred.status, deferred.due_at, deferred.attempts) == ("scheduled", local(21, 8), 1)
    assert "quiet hours" in deferred.last_error
