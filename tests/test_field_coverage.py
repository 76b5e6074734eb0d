"""``rules check`` warns about conditions on fields a platform's connector never fills.

``order.line_items.product_type`` is in the event model, so a rule on it loads,
but no connector fills it yet: such a rule would never fire, silently. The
warning names file, line and column; checks that hold for a missing field
(under ``not:``, or ``exists: false``) are not reported.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aftersale.cli import build
from aftersale.rules.field_coverage import unfilled_field_warnings

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

RULES = """\
- name: boots-care
  on: shipment.delivered
  if:
    - order.total_price: {gte: 20}
    - any:
        - order.line_items.product_type: {in: [Shoes, Boots]}
        - order.line_items.sku: {matches: '^BOOT-'}
    - not: {order.tags: {contains: no-review}}
    - order.cancel_reason: {exists: false}
  category: marketing
  do:
    - email: {template: care_tips}

- name: baby-again
  on: order.created
  if: {customer.has_purchased: {product_type: [Baby], older_than: 52w}}
  category: marketing
  do:
    - email: {template: cross_sell}

- name: vip
  on: order.created
  if:
    - order.tags: {contains: vip}
  category: transactional
  do:
    - email: {template: thank_you}
"""


@pytest.fixture
def folder(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "care.yaml").write_text(RULES)
    return rules


def test_each_check_on_a_never_filled_field_is_named_with_its_position(folder):
    found = [
        (w.file, w.line, w.column, w.rule, w.field, tuple(n for n, _ in w.platforms))
        for w in unfilled_field_warnings(folder)
    ]
    assert found == [
        (
            "rules/care.yaml",
            6,
            11,
            "boots-care",
            "order.line_items.product_type",
            ("shopify", "woocommerce"),
        ),
        (
            "rules/care.yaml",
            16,
            33,
            "baby-again",
            "order.line_items.product_type",
            ("shopify", "woocommerce"),
        ),
        ("rules/care.yaml", 24, 7, "vip", "order.tags", ("woocommerce",)),
    ]


def test_rules_check_prints_the_warnings_and_still_exits_0(cli_runner, folder, tmp_path):
    result = cli_runner.invoke(
        build(), ["rules", "check", str(folder)], env={"INSTANCE_PATH": str(tmp_path)}
    )
    assert result.exit_code == 0, result.output
    assert (
        "rules/care.yaml:6:11: warning: rule 'boots-care': order.line_items.product_type is "
        "never filled on shopify and woocommerce, so this check cannot match there"
    ) in result.output
    assert "OK (3 warning(s))" in result.output


@pytest.mark.parametrize("pack", sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()))
def test_the_example_packs_use_only_filled_fields(pack):
    assert [str(w) for w in unfilled_field_warnings(EXAMPLES / pack)] == []
