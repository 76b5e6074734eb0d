"""The operators of the condition language: ``eq``, ``in``, ``gte``, ``matches``, ...

Each ``compile_<op>(operand)`` parses its operand once (Decimals, regexes,
durations) and returns ``test(values, ctx) -> bool`` over the values
:func:`~aftersale.rules.conditions.resolve` found at a path, so evaluation
does no parsing. A bad operand raises :class:`~aftersale.rules.errors.Invalid`.
A new operator is a compiler here plus its entry in :data:`OPERATORS`
(and any :data:`SYNONYMS` people write for it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation

from aftersale.core.events import parse_time
from aftersale.rules.durations import parse_duration
from aftersale.rules.errors import Invalid


def _leaves(values: list):
    """Values with lists at the end of the path opened up: ``tags: [a, b]`` -> a, b."""
    for value in values:
        if isinstance(value, list):
            yield from value
        elif value is not None:
            yield value


# -- operand comparison -------------------------------------------------------


def _decimal(value) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None


def _equals(expected):
    """An equality test for one operand: numeric when the operand is a number."""
    if isinstance(expected, bool) or expected is None:
        return lambda actual: actual is expected or actual == expected
    if isinstance(expected, (int, float, Decimal)):
        number = Decimal(str(expected))
        return lambda actual: not isinstance(actual, bool) and _decimal(actual) == number
    text = str(expected)
    return lambda actual: isinstance(actual, str) and actual == text


def _time_of(value) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return parse_time(value) if isinstance(value, str) else None
    except ValueError:
        return None


# -- operator compilers: operand -> test(values, ctx) ---------------------------


def compile_eq(operand):
    equals = _scalar_operand(operand, _equals)
    return lambda values, ctx: any(equals(v) for v in _leaves(values))


def compile_ne(operand):
    equals = _scalar_operand(operand, _equals)
    return lambda values, ctx: (
        bool(values)
        and any(v is not None for v in values)
        and not any(equals(v) for v in _leaves(values))
    )


def compile_in(operand):
    tests = _list_operand(operand)
    if isinstance(operand, list) and operand and all(isinstance(o, str) for o in operand):
        texts = frozenset(operand)  # the usual case: one set lookup per value

        def test(values, ctx):
            for value in _leaves(values):  # noqa: SIM110 - hot path, no generator
                if isinstance(value, str) and value in texts:
                    return True
            return False

        return test
    return lambda values, ctx: any(t(v) for v in _leaves(values) for t in tests)


def compile_not_in(operand):
    tests = _list_operand(operand)
    return lambda values, ctx: (
        bool(values)
        and any(v is not None for v in values)
        and not any(t(v) for v in _leaves(values) for t in tests)
    )


def _ordering(compare):
    def compiler(operand):
        number = None if isinstance(operand, bool) else _decimal(operand)
        if number is None:
            raise Invalid(f"expects a number, got {operand!r}")

        def test(values, ctx):
            for value in _leaves(values):
                actual = _decimal(value)
                if actual is not None and compare(actual, number):
                    return True
            return False

        return test

    return compiler


compile_gt = _ordering(lambda a, b: a > b)
compile_gte = _ordering(lambda a, b: a >= b)
compile_lt = _ordering(lambda a, b: a < b)
compile_lte = _ordering(lambda a, b: a <= b)


def compile_contains(operand):
    if isinstance(operand, (dict, list)) or operand is None:
        raise Invalid(f"expects a single value, got {operand!r}")
    equals = _equals(operand)
    text = str(operand)

    def test(values, ctx):
        for value in values:
            if isinstance(value, list):
                if any(equals(element) for element in value):
                    return True
            elif isinstance(value, str) and text in value:
                return True
        return False

    return test


def compile_matches(operand):
    if not isinstance(operand, str):
        raise Invalid(f"expects a regular expression string, got {operand!r}")
    try:
        pattern = re.compile(operand)
    except re.error as exc:
        raise Invalid(f"bad regular expression {operand!r}: {exc}") from exc
    return lambda values, ctx: any(
        isinstance(v, str) and pattern.search(v) for v in _leaves(values)
    )


def compile_exists(operand):
    if not isinstance(operand, bool):
        raise Invalid(f"expects true or false, got {operand!r}")

    def present(values):
        return any(v is not None and v != "" and v != [] for v in values)

    return (
        (lambda values, ctx: present(values))
        if operand
        else (lambda values, ctx: not present(values))
    )


def _age_test(compare):
    def compiler(operand):
        try:
            span = parse_duration(operand)
        except ValueError as exc:
            raise Invalid(str(exc)) from exc

        def test(values, ctx):
            now = ctx.get("_now")
            if now is None:
                return False
            for value in _leaves(values):
                moment = _time_of(value)
                if moment is not None and compare(now - moment, span):
                    return True
            return False

        return test

    return compiler


compile_within = _age_test(lambda age, span: abs(age) <= span)
compile_older_than = _age_test(lambda age, span: age > span)


def _scalar_operand(operand, make):
    if isinstance(operand, (dict, list)):
        raise Invalid(f"expects a single value, got {operand!r} (use 'in' for a list)")
    return make(operand)


def _list_operand(operand):
    if not isinstance(operand, list) or not operand:
        raise Invalid(f"expects a non-empty list, got {operand!r}")
    return [_scalar_operand(item, _equals) for item in operand]


OPERATORS: dict[str, Callable] = {
    "eq": compile_eq,
    "ne": compile_ne,
    "gt": compile_gt,
    "gte": compile_gte,
    "lt": compile_lt,
    "lte": compile_lte,
    "in": compile_in,
    "not_in": compile_not_in,
    "contains": compile_contains,
    "matches": compile_matches,
    "exists": compile_exists,
    "within": compile_within,
    "older_than": compile_older_than,
}


#: what people write for an operator -> the operator they mean
SYNONYMS = {
    "equals": "eq",
    "equal": "eq",
    "is": "eq",
    "==": "eq",
    "=": "eq",
    "not_equals": "ne",
    "not_equal": "ne",
    "is_not": "ne",
    "!=": "ne",
    "greater_than": "gt",
    ">": "gt",
    ">=": "gte",
    "at_least": "gte",
    "less_than": "lt",
    "<": "lt",
    "<=": "lte",
    "at_most": "lte",
    "one_of": "in",
    "any_of": "in",
    "not_one_of": "not_in",
    "none_of": "not_in",
    "includes": "contains",
    "has": "contains",
    "regex": "matches",
    "match": "matches",
    "present": "exists",
    "older": "older_than",
    "newer_than": "within",
}
