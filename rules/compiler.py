"""The condition compiler: the YAML under ``if:`` becomes a compiled :class:`Condition`.

``compile_condition(spec)`` checks every field path against the canonical
event model, compiles each operator with :mod:`aftersale.rules.operators`,
and raises :class:`ConditionErrors` listing every problem at once.
"""

from __future__ import annotations

from aftersale.core.events import FIELDS
from aftersale.rules.conditions import All, Always, Any, Check, Condition, Not
from aftersale.rules.errors import Invalid, suggest
from aftersale.rules.history import HasPurchased
from aftersale.rules.operators import OPERATORS, SYNONYMS, compile_eq, compile_in

COMBINATORS = ("all", "any", "not")


class ConditionErrors(Exception):
    """Every problem found in one ``if:``, each an :class:`Invalid` with its relative path."""

    def __init__(self, problems: list[Invalid]):
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


def compile_condition(spec, fields: dict | None = None) -> Condition:
    """Compile the value of ``if:``; raise :class:`ConditionErrors` listing every problem.

    Accepted shapes: a list (all of), a mapping whose keys are combinators
    (``all``, ``any``, ``not``) or dotted paths, and under a path either a
    value (equality), a list (membership) or a mapping of operators.
    """
    if spec is None:
        return Always()
    problems: list[Invalid] = []
    condition = _compile(spec, (), FIELDS if fields is None else fields, problems)
    if problems:
        raise ConditionErrors(problems)
    return condition


def _compile(spec, path: tuple, fields: dict, problems: list[Invalid]) -> Condition:
    if isinstance(spec, list):
        if not spec:
            problems.append(
                Invalid("an empty list of conditions; remove it or add a condition", path)
            )
            return Always()
        return _simplify(
            All(_compile(item, path + (i,), fields, problems) for i, item in enumerate(spec))
        )
    if not isinstance(spec, dict) or not spec:
        problems.append(
            Invalid(
                f"expected a condition (a mapping like 'order.total_price: {{gte: 20}}'), got {spec!r}",
                path,
            )
        )
        return Always()
    parts = []
    for key, value in spec.items():
        here = path + (key,)
        if key in ("all", "any"):
            items = value if isinstance(value, list) else None
            if not items:
                problems.append(Invalid(f"'{key}' expects a non-empty list of conditions", here))
                continue
            children = [
                _compile(item, here + (i,), fields, problems) for i, item in enumerate(items)
            ]
            parts.append(All(children) if key == "all" else Any(children))
        elif key == "not":
            parts.append(Not(_compile(value, here, fields, problems), _describe(value)))
        else:
            try:
                parts.extend(_compile_path(str(key), value, here, fields))
            except Invalid as exc:
                problems.append(exc)
    return _simplify(All(parts)) if parts else Always()


def _compile_path(dotted: str, value, here: tuple, fields: dict) -> list[Condition]:
    if dotted == "customer.has_purchased":
        try:
            return [HasPurchased(value)]
        except Invalid as exc:
            raise Invalid(exc.message, here + exc.path) from exc
    _check_path(dotted, here, fields)
    if isinstance(value, dict):
        if not value:
            raise Invalid("expected operators such as {eq: ...}, got an empty mapping", here)
        checks = []
        for op, operand in value.items():
            compiler = OPERATORS.get(op)
            if compiler is None:
                meant = SYNONYMS.get(str(op).lower())
                hint = (
                    f" (did you mean {meant!r}?)"
                    if meant
                    else (suggest(op, OPERATORS) or f" (operators: {', '.join(OPERATORS)})")
                )
                raise Invalid(f"unknown operator {op!r}{hint}", here + (op,))
            try:
                checks.append(Check(dotted, op, operand, compiler(operand)))
            except Invalid as exc:
                raise Invalid(f"{op}: {exc.message}", here + (op,)) from exc
        return checks
    if isinstance(value, list):
        try:
            return [Check(dotted, "in", value, compile_in(value))]
        except Invalid as exc:
            raise Invalid(exc.message, here) from exc
    return [Check(dotted, "eq", value, compile_eq(value))]


def check_field_path(dotted: str) -> None:
    """Raise Invalid unless ``dotted`` names a field of the canonical event model."""
    _check_path(dotted, (), FIELDS)


def _check_path(dotted: str, here: tuple, fields: dict) -> None:
    """Refuse paths outside the canonical event model, suggesting the nearest field."""
    parts = dotted.split(".")
    if any(not p for p in parts):
        raise Invalid(f"bad field path {dotted!r}", here)
    level = fields
    walked = []
    for part in parts:
        if level == "*":
            return
        if level is None:
            raise Invalid(f"{'.'.join(walked)} has no field {part!r}", here)
        if part not in level:
            if not walked:
                hint = suggest(part, level) or f" (one of: {', '.join(level)})"
                message = f"unknown field {dotted!r}: events have no {part!r}{hint}"
            else:
                hint = suggest(part, level)
                message = f"unknown field {dotted!r}: {'.'.join(walked)} has no {part!r}{hint}"
            if "." not in dotted and part in OPERATORS:
                message = f"operator {part!r} must be under a field, e.g. 'order.total_price: {{{part}: ...}}'"
            elif "." not in dotted and not walked:
                message += "; conditions are written as field paths such as 'order.total_price'"
            raise Invalid(message, here)
        level = level[part]
        walked.append(part)


def _simplify(condition: All) -> Condition:
    return condition.children[0] if len(condition.children) == 1 else condition


def _describe(spec) -> str:
    text = repr(spec)
    return text if len(text) < 80 else text[:77] + "..."
