"""``wait: {until: repurchase_due, before: 5d, fallback: 30d}``: remind when it runs out.

The shop's repurchase cycles (store/recommend.py) say how many days customers
take, in the median, to buy a product again (or a product of the same type).
Judging an order, the facts step (rules/catalog_facts.py) puts the moment the
order's soonest-due product is expected to be bought again into
``order.repurchase_due_at`` (and the cycle behind it into
``order.repurchase_cycle``), when the product's cycle, else its type's, has at
least ``recommend.min_observations`` observations. The wait is that moment
minus ``before``; without a trusted cycle it is the order's time plus
``fallback``.
"""

from __future__ import annotations

from datetime import timedelta

from marshmallow import ValidationError

from aftersale.rules.durations import parse_duration

REPURCHASE_DUE = "repurchase_due"
#: where the facts step puts the due moment (a canonical order field)
DUE_PATH = "order.repurchase_due_at"
KEYS = ("until", "before", "fallback")


def repurchase_wait(value: dict) -> dict:
    """The compiled ``wait`` (as rules/schema.py ``Wait`` returns it) for ``repurchase_due``."""
    unknown = sorted(set(value) - set(KEYS))
    if unknown:
        raise ValidationError(
            f"unknown key {unknown[0]!r} in wait: until: repurchase_due takes before and fallback"
        )
    if "fallback" not in value:
        raise ValidationError(
            "wait: {until: repurchase_due} needs a fallback for products without enough"
            " repeat purchases yet, e.g. fallback: 30d"
        )
    try:
        before = parse_duration(value.get("before", "0m"))
        fallback = parse_duration(value["fallback"])
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    if fallback <= timedelta(0):
        raise ValidationError("wait.fallback must be longer than 0, e.g. 30d")
    return {"until": DUE_PATH, "offset": -before, "fallback": fallback}
