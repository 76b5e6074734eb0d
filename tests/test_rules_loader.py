"""Rule files: every validation error names file, line, column, rule and field."""

from __future__ import annotations

import textwrap
from datetime import timedelta

import pytest

from aftersale.rules import RulesInvalid, load_rules


def write(folder, name, text):
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def errors_of(folder, templates=("thank_you", "review_invite")):
    with pytest.raises(RulesInvalid) as caught:
        load_rules(folder, templates=templates)
    return [str(e) for e in caught.value.errors]


def test_loads_a_valid_rule_into_compiled_form(tmp_path):
    write(
        tmp_path,
        "review.yaml",
        """
        - name: review-invite
          description: ask for a review
          on: shipment.delivered
          if:
            - order.financial_status: paid
            - order.total_price: {gte: 20}
          wait: 7d
          cancel_on: [order.refunded, return.requested]
          once_per: order
          category: marketing
          do:
            - email: {template: review_invite}
    """,
    )
    ruleset = load_rules(tmp_path, templates=["review_invite"])
    (rule,) = ruleset.rules
    assert rule.name == "review-invite"
    assert rule.on == ("shipment.delivered",)
    assert rule.wait == timedelta(days=7)
    assert rule.cancel_on == {"order.refunded", "return.requested"}
    assert rule.once_per == "order"
    assert rule.steps[0].type == "email" and rule.steps[0].params["template"] == "review_invite"
    assert rule.source == f"{tmp_path.name}/review.yaml:1"
    assert ruleset.for_kind("shipment.delivered") == (rule,)
    assert ruleset.for_kind("order.created") == ()


def test_shorthand_step_and_several_event_kinds(tmp_path):
    write(
        tmp_path,
        "a.yaml",
        """
        - name: thanks
          on: [order.created, order.paid]
          category: transactional
          do:
            - email: thank_you
    """,
    )
    ruleset = load_rules(tmp_path, templates=["thank_you"])
    assert ruleset.rules[0].steps[0].params == {
        "template": "thank_you",
        "to": "auto",
        "reply_to": None,
    }
    assert set(ruleset.by_kind) == {"order.created", "order.paid"}


def test_every_error_has_file_line_column_rule_and_field(tmp_path):
    write(
        tmp_path,
        "bad.yaml",
        """
        - name: review-invite
          on: shipment.deliverd
          if:
            - order.total_price: {equals: 20}
            - order.totl: 5
          wiat: 7d
          category: marketing
          do:
            - email: {template: review_invit}
            - tag_ordr: x
    """,
    )
    found = errors_of(tmp_path)
    assert (
        f"{tmp_path.name}/bad.yaml:2:3: rule 'review-invite', on: unknown event kind 'shipment.deliverd' (did you mean 'shipment.delivered'?)"
        in found
    )
    assert (
        f"{tmp_path.name}/bad.yaml:4:27: rule 'review-invite', if[0].order.total_price.equals: unknown operator 'equals' (did you mean 'eq'?)"
        in found
    )
    assert any(
        e.startswith(
            f"{tmp_path.name}/bad.yaml:5:7: rule 'review-invite', if[1].order.totl: unknown field 'order.totl'"
        )
        for e in found
    )
    assert any(
        e.startswith(
            f"{tmp_path.name}/bad.yaml:6:3: rule 'review-invite', wiat: unknown key 'wiat' (did you mean 'wait'?)"
        )
        for e in found
    )
    assert (
        f"{tmp_path.name}/bad.yaml:9:15: rule 'review-invite', do[0].email.template: unknown template 'review_invit' (did you mean 'review_invite'?)"
        in found
    )
    assert any(
        e.startswith(
            f"{tmp_path.name}/bad.yaml:10:7: rule 'review-invite', do[1].tag_ordr: unknown step 'tag_ordr'"
        )
        for e in found
    )
    assert len(found) == 6


def test_missing_required_keys_and_bad_values(tmp_path):
    write(
        tmp_path,
        "bad.yaml",
        """
        - name: Bad Name
          on: order.created
          wait: 7 days
          once_per: shipment
          do: []
    """,
    )
    found = errors_of(tmp_path)
    joined = "\n".join(found)
    assert "bad.yaml:1:3: rule 'Bad Name', name: rule names are lower-case" in joined
    assert "bad.yaml:3:3: rule 'Bad Name', wait: bad duration '7 days'" in joined
    assert (
        "bad.yaml:4:3: rule 'Bad Name', once_per: unknown once_per 'shipment';"
        " one of event, order, fulfillment, customer" in joined
    )
    assert "bad.yaml:5:3: rule 'Bad Name', do: a rule needs at least one step" in joined
    assert "rule 'Bad Name', category: category is required" in joined


def test_duplicate_rule_names_across_files(tmp_path):
    write(
        tmp_path,
        "a.yaml",
        """
        - name: thanks
          on: order.created
          category: transactional
          do: [{email: thank_you}]
    """,
    )
    write(
        tmp_path,
        "b.yaml",
        """
        - name: thanks
          on: order.paid
          category: transactional
          do: [{email: thank_you}]
    """,
    )
    (error,) = errors_of(tmp_path)
    assert error == (
        f"{tmp_path.name}/b.yaml:1:3: rule 'thanks', name: duplicate rule name 'thanks' "
        f"(first defined at {tmp_path.name}/a.yaml:1)"
    )


def test_yaml_syntax_error_has_position(tmp_path):
    write(
        tmp_path,
        "broken.yaml",
        """
        - name: thanks
          on: [order.created
          category: transactional
    """,
    )
    (error,) = errors_of(tmp_path)
    assert error.startswith(f"{tmp_path.name}/broken.yaml:")
    assert "YAML syntax" in error


def test_a_file_that_is_not_a_list(tmp_path):
    write(tmp_path, "x.yaml", "name: thanks\n")
    (error,) = errors_of(tmp_path)
    assert "a rule file is a list of rules" in error


def test_settings_are_validated(tmp_path):
    write(
        tmp_path,
        "settings.yaml",
        """
        timezone: Europe/Belgrad
        sendr: x@example.com
    """,
    )
    found = errors_of(tmp_path)
    assert any(
        "settings.yaml:1:1" in e and "unknown time zone 'Europe/Belgrad'" in e for e in found
    )
    assert any(
        "settings.yaml:2:1" in e and "unknown key 'sendr' (did you mean 'sender'?)" in e
        for e in found
    )


def test_on_is_a_string_in_yaml_1_2(tmp_path):
    """YAML 1.1 would read `on:` as the boolean True; rule files are read as YAML 1.2."""
    write(
        tmp_path,
        "a.yaml",
        """
        - name: thanks
          on: order.created
          category: transactional
          do: [{email: thank_you}]
    """,
    )
    assert load_rules(tmp_path, templates=["thank_you"]).rules[0].on == ("order.created",)


def test_yaml_tags_cannot_construct_objects(tmp_path):
    write(
        tmp_path,
        "evil.yaml",
        """
        - name: evil
          on: order.created
          category: transactional
          description: !!python/object/apply:os.system ["echo pwned"]
          do: [{email: thank_you}]
    """,
    )
    found = errors_of(tmp_path)
    assert found and "evil.yaml" in found[0]


def test_missing_folder(tmp_path):
    (error,) = errors_of(tmp_path / "nope")
    assert "rules folder not found" in error


def test_the_starter_pack_loads(rules_dir):
    from aftersale.core.config import BUILTIN_TEMPLATES_DIR
    from aftersale.rules.loader import template_names_in

    ruleset = load_rules(rules_dir, templates=template_names_in([BUILTIN_TEMPLATES_DIR]))
    assert {r.name for r in ruleset.rules} == {
        "thank-you",
        "refund-confirmation",
        "shipping-update",
        "review-invite",
    }
    assert ruleset.settings.timezone == "Europe/Belgrade"
