"""``aftersale templates preview --score``: a store owner scores its own mail, with its own
name, products and languages, before going live (docs/deliverability.md).

Runs the real SpamAssassin (CI installs it) over the message as the worker would compose it.
"""

from __future__ import annotations

import shutil

import pytest

from aftersale.cli import build
from aftersale.core.config import EXAMPLES_DIR
from aftersale.workers import spam_check
from tests.helpers import fixture_path

pytestmark = pytest.mark.skipif(not spam_check.installed(), reason="spamassassin is not installed")


@pytest.fixture
def starter(tmp_path, monkeypatch):
    """A copy of the starter pack (Latin-script shop name) to add settings to."""
    folder = tmp_path / "pack"
    shutil.copytree(EXAMPLES_DIR / "starter", folder)
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("RULES_DIR", str(folder))
    return folder


def preview(cli_runner, tmp_path, template: str, locale: str):
    args = [
        "templates",
        "preview",
        template,
        "--event",
        str(fixture_path("shopify", "orders__create")),
        "--locale",
        locale,
        "--category",
        "marketing",
        "--out",
        str(tmp_path / "out"),
        "--score",
    ]
    return cli_runner.invoke(build(), args)


def test_a_latin_named_shop_sees_mixed_es_in_russian_and_what_carries_it(
    cli_runner, tmp_path, starter
):
    result = preview(cli_runner, tmp_path, "winback", "ru")
    assert result.exit_code == 0, result.output
    assert "SpamAssassin 4" in result.output and "(stock rules, local tests): 1.0" in result.output
    assert "MIXED_ES  Too many es are not es" in result.output
    # the hint counts the Latin "e" and names the words that carry them: the shop's name first
    hint = result.output[result.output.index("MIXED_ES: ") :]
    assert "Latin 'e' (the rule fires above 20)" in hint
    assert hint.index("Aftersale (") < hint.index("Demo (")
    assert "shop_name_by_language" in hint

    english = preview(cli_runner, tmp_path, "winback", "en")
    assert english.exit_code == 0, english.output
    assert "(stock rules, local tests): 0.0 (goal met)" in english.output
    assert "MIXED_ES" not in english.output


def test_the_shops_name_in_cyrillic_for_russian_brings_it_to_zero(cli_runner, tmp_path, starter):
    settings = starter / "settings.yaml"
    settings.write_text(settings.read_text() + "shop_name_by_language:\n  ru: Афтерсейл Демо\n")
    result = preview(cli_runner, tmp_path, "winback", "ru")
    assert result.exit_code == 0, result.output
    assert "Афтерсейл Демо" in result.output
    assert "(stock rules, local tests): 0.0 (goal met)" in result.output
    assert "MIXED_ES" not in result.output


def test_without_spamassassin_the_command_says_how_to_install_it(
    cli_runner, tmp_path, starter, monkeypatch
):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = preview(cli_runner, tmp_path, "winback", "ru")
    assert result.exit_code == 1
    assert "spamassassin is not installed" in result.output
    assert "apt-get install spamassassin" in result.output
