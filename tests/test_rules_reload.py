"""A worker reloads its rules on SIGHUP, all or nothing: a bad folder keeps the rules in force."""

from __future__ import annotations

import os
import signal
import textwrap

import pytest

RULE = """
- name: {name}
  on: order.created
  category: transactional
  do:
    - email: {{template: thank_you}}
"""


@pytest.fixture
def rules_dir(tmp_path):
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "rules.yaml").write_text(RULE.format(name="first"))
    return folder


@pytest.fixture
def hup(runtime):
    from aftersale.workers.runner import reload_on_sighup

    previous = signal.getsignal(signal.SIGHUP)
    reload_on_sighup(runtime)
    yield lambda: os.kill(os.getpid(), signal.SIGHUP)
    signal.signal(signal.SIGHUP, previous)


def test_sighup_swaps_in_a_good_folder_and_keeps_the_old_rules_on_a_bad_one(
    runtime, rules_dir, hup, capfd
):
    assert [r.name for r in runtime.rules.rules] == ["first"]
    (rules_dir / "rules.yaml").write_text(RULE.format(name="second"))
    hup()
    assert [r.name for r in runtime.rules.rules] == ["second"]

    (rules_dir / "broken.yaml").write_text(
        textwrap.dedent(
            """
            - name: broken
              on: order.craeted
              category: transactional
              do: [{email: {template: thank_you}}]
            """
        )
    )
    hup()
    assert [r.name for r in runtime.rules.rules] == ["second"]  # nothing half-loaded
    captured = capfd.readouterr()
    logged = captured.out + captured.err
    assert "rules.reload_failed" in logged
    assert "broken.yaml:3:" in logged and "order.created" in logged  # where, and the suggestion
