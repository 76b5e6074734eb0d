"""Template mistakes fail when the rules load (``rules check``, worker start), not at send time."""

from __future__ import annotations

import textwrap

import pytest

from aftersale.cli import build
from aftersale.core.config import Config
from aftersale.rules import RulesInvalid
from aftersale.runtime import Runtime


def pack(tmp_path, template_files: dict, rules: str, settings: str = "") -> str:
    folder = tmp_path / "pack"
    for name, text in template_files.items():
        path = folder / "templates" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    folder.mkdir(exist_ok=True)
    (folder / "rules.yaml").write_text(textwrap.dedent(rules))
    if settings:
        (folder / "settings.yaml").write_text(textwrap.dedent(settings))
    return str(folder)


RULE = """
- name: greet
  on: {on}
  category: transactional
  do:
    - email: {{template: greet}}
"""


def check(cli_runner, folder, tmp_path, monkeypatch):
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "instance"))
    return cli_runner.invoke(build(), ["rules", "check", folder])


def test_a_misspelled_field_fails_rules_check_naming_rule_and_file(
    cli_runner, tmp_path, monkeypatch
):
    folder = pack(
        tmp_path,
        {"greet/subject.txt": "Hi", "greet/body.txt": "Total: {{ order.totl_price }}"},
        RULE.format(on="order.created"),
    )
    result = check(cli_runner, folder, tmp_path, monkeypatch)
    assert result.exit_code == 1
    assert "pack/rules.yaml:2" in result.output
    assert "rule 'greet', do[0].email.template" in result.output
    assert "greet/body.txt" in result.output and "totl_price" in result.output


def test_a_subject_the_event_kind_does_not_carry_fails_for_that_kind_only(
    cli_runner, tmp_path, monkeypatch
):
    files = {"greet/subject.txt": "Shipped", "greet/body.txt": "{{ fulfillment.tracking_number }}"}
    ok = pack(tmp_path, files, RULE.format(on="fulfillment.created"))
    assert check(cli_runner, ok, tmp_path, monkeypatch).exit_code == 0
    (tmp_path / "pack" / "rules.yaml").write_text(
        RULE.format(on="[fulfillment.created, order.paid]")
    )
    result = check(cli_runner, ok, tmp_path, monkeypatch)
    assert result.exit_code == 1 and "rendering for order.paid" in result.output


def test_a_template_that_breaks_when_the_platform_withholds_data_fails_at_load(
    cli_runner, tmp_path, monkeypatch
):
    """Protected customer data: an order may come without line items or names."""
    folder = pack(
        tmp_path,
        {"greet/subject.txt": "About {{ order.line_items[0].title }}", "greet/body.txt": "x"},
        RULE.format(on="order.created"),
    )
    result = check(cli_runner, folder, tmp_path, monkeypatch)
    assert result.exit_code == 1 and "greet/subject.txt" in result.output


def test_a_broken_translation_fails_even_when_english_is_fine(cli_runner, tmp_path, monkeypatch):
    folder = pack(
        tmp_path,
        {
            "greet/subject.txt": "Hi",
            "greet/body.txt": "Hi",
            "greet/sr/subject.txt": "Zdravo",
            "greet/sr/body.txt": "{{ customer.ime }}",
        },
        RULE.format(on="order.created"),
    )
    result = check(cli_runner, folder, tmp_path, monkeypatch)
    assert result.exit_code == 1 and "greet/sr/body.txt" in result.output


def test_a_worker_refuses_to_start_with_a_broken_template(tmp_path):
    folder = pack(
        tmp_path,
        {"greet/subject.txt": "{{ shop.nmae }}", "greet/body.txt": "x"},
        RULE.format(on="order.created"),
    )
    runtime = Runtime(Config.from_env({}, instance_path=tmp_path / "i", rules_dir=folder))
    with pytest.raises(RulesInvalid, match="nmae"):
        runtime.load_rules_or_fail()


@pytest.mark.parametrize(
    ("storefront", "message"),
    [
        ('review_url: "{product_url}#r{bogus}"', "unknown placeholder {bogus}"),
        ("returns: {days: 0}", "returns.days"),
        ("products: {X: {replenish_after: soon}}", "expected days like 60d"),
        ("help_url: ftp://x", "a URL starts with"),
    ],
)
def test_storefront_settings_are_checked_at_load_time(
    cli_runner, tmp_path, monkeypatch, storefront, message
):
    folder = pack(
        tmp_path,
        {"greet/subject.txt": "Hi", "greet/body.txt": "Hi"},
        RULE.format(on="order.created"),
        settings=f"storefront:\n  {storefront}\n",
    )
    result = check(cli_runner, folder, tmp_path, monkeypatch)
    assert result.exit_code == 1, result.output
    assert message in result.output


def test_templates_preview_renders_a_real_payload_and_writes_html(
    cli_runner, tmp_path, monkeypatch
):
    from aftersale.core.config import EXAMPLES_DIR
    from tests.helpers import fixture_path

    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("RULES_DIR", str(EXAMPLES_DIR / "review-invites"))
    args = [
        "templates",
        "preview",
        "review_invite",
        "--event",
        str(fixture_path("shopify", "fulfillments__update__delivered")),
        "--order",
        str(fixture_path("shopify", "orders__create")),
        "--category",
        "marketing",
        "--out",
        str(tmp_path / "out"),
    ]
    result = cli_runner.invoke(build(), args)
    assert result.exit_code == 0, result.output
    assert "review_invite for shipment.delivered in sr" in result.output
    assert "Subject: Kako vam se čini Leather shoe care kit?" in result.output
    assert "Zdravo Ana," in result.output
    html = (tmp_path / "out" / "review_invite.sr.html").read_text()
    assert "Napišite recenziju" in html and 'style="' in html

    english = cli_runner.invoke(build(), [*args, "--locale", "en"])
    assert "Subject: How do you like your Leather shoe care kit?" in english.output

    missing = cli_runner.invoke(build(), [*args[:2], "no_such_template", *args[3:]])
    assert missing.exit_code == 1 and "not found" in missing.output


def test_templates_preview_names_the_events_when_the_first_one_does_not_fit(
    cli_runner, tmp_path, monkeypatch
):
    from tests.helpers import fixture_path

    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "instance"))
    payload = fixture_path("woocommerce", "order.updated__completed_with_tracking")
    args = ["templates", "preview", "shipping_update", "--platform", "woocommerce"]
    args += ["--event", str(payload), "--topic", "order.updated", "--out", str(tmp_path)]
    result = cli_runner.invoke(build(), args)
    assert result.exit_code == 1
    assert "'fulfillment' is undefined" in result.output
    assert "this payload makes order.paid, fulfillment.created, order.fulfilled" in result.output
    assert "pick with --kind" in result.output
    chosen = cli_runner.invoke(build(), [*args, "--kind", "fulfillment.created"])
    assert chosen.exit_code == 0, chosen.output
