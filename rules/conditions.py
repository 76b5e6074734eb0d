"""The condition language, compiled once into small callables.

``compile_condition(spec)`` turns the YAML under ``if:`` into a
:class:`Condition`: calling it with an event context returns a bool, and
:meth:`Condition.explain` says which check failed and with what actual
value. Every operand is parsed at compile time (Decimals, regexes,
durations), so evaluation does no parsing.

Semantics, chosen so a rule never raises at run time:

* A path that goes through a list matches when any element does
  (``order.line_items.sku: {eq: KIT-1}``); a list at the end of a path
  (``order.tags``) is searched element by element as well.
* A missing path (or a value of the wrong type) makes every operator false,
  except ``exists: false``. ``ne`` and ``not_in`` therefore mean "present and
  different"; wrap a check in ``not:`` to mean "absent or different".
* Numbers in a rule compare as Decimals with numeric strings in the event,
  so ``order.total_price: {gte: 20}`` works with "20.00".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation

from aftersale.core.events import FIELDS, parse_time
from aftersale.rules.durations import parse_duration
from aftersale.rules.errors import Invalid, suggest

COMBINATORS = ("all", "any", "not")
MISSING = object()


class Condition:
    """A compiled condition. Subclasses implement ``__call__`` and ``explain``."""

    __slots__ = ()

    def __call__(self, ctx: dict) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def explain(self, ctx: dict) -> str | None:
        """None when the condition holds, else a sentence naming the first failing check."""
        raise NotImplementedError  # pragma: no cover


class Always(Condition):
    __slots__ = ()

    def __call__(self, ctx):
        return True

    def explain(self, ctx):
        return None


class All(Condition):
    __slots__ = ("children",)

    def __init__(self, children):
        self.children = tuple(children)

    def __call__(self, ctx):
        for child in self.children:  # noqa: SIM110 - a plain loop is cheaper than all(genexpr)
            if not child(ctx):
                return False
        return True

    def explain(self, ctx):
        for child in self.children:
            reason = child.explain(ctx)
            if reason:
                return reason
        return None


class Any(Condition):
    __slots__ = ("children",)

    def __init__(self, children):
        self.children = tuple(children)

    def __call__(self, ctx):
        return any(child(ctx) for child in self.children)

    def explain(self, ctx):
        if self(ctx):
            return None
        return "none of: " + "; ".join(child.explain(ctx) or "?" for child in self.children)


class Not(Condition):
    __slots__ = ("child", "text")

    def __init__(self, child, text):
        self.child = child
        self.text = text

    def __call__(self, ctx):
        return not self.child(ctx)

    def explain(self, ctx):
        return f"not ({self.text}) failed: it holds" if self.child(ctx) else None


class Check(Condition):
    """One ``path: {operator: operand}`` test."""

    __slots__ = ("keys", "path", "op", "operand", "test")

    def __init__(self, path: str, op: str, operand, test: Callable[[list, dict], bool]):
        self.keys = tuple(path.split("."))
        self.path = path
        self.op = op
        self.operand = operand
        self.test = test

    def __call__(self, ctx):
        return self.test(resolve(ctx, self.keys), ctx)

    def explain(self, ctx):
        values = resolve(ctx, self.keys)
        if self.test(values, ctx):
            return None
        actual = "missing" if not values else repr(values[0] if len(values) == 1 else values)
        return f"{self.path} {self.op} {self.operand!r}: actual {actual}"

    def __repr__(self):
        return f"{self.path} {self.op} {self.operand!r}"


def resolve(ctx: dict, keys: tuple) -> list:
    """All values at a dotted path, descending into every element of lists on the way.

    Most paths cross no list (``order.total_price``): those are walked dict by
    dict without building lists, which halves the cost of a typical check.
    """
    value = ctx
    for index, key in enumerate(keys):
        if isinstance(value, dict):
            value = value.get(key, MISSING)
            if value is MISSING:
                return []
        elif isinstance(value, list):
            return _resolve_all([value], keys[index:])
        else:
            return []
    return [value]


def _resolve_all(values: list, keys: tuple) -> list:
    for key in keys:
        found = []
        for value in values:
            if isinstance(value, dict):
                item = value.get(key, MISSING)
                if item is not MISSING:
                    found.append(item)
            elif isinstance(value, list):
                for element in value:
                    if isinstance(element, dict):
                        item = element.get(key, MISSING)
                        if item is not MISSING:
                            found.append(item)
        if not found:
            return found
        values = found
    return values


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


# -- the compiler -----------------------------------------------------------


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
        from aftersale.rules.history import HasPurchased

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
