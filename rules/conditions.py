"""The compiled form of the condition language: a small tree of callables.

:func:`aftersale.rules.compiler.compile_condition` turns the YAML under ``if:``
into a :class:`Condition` built from the nodes here: calling it with an event
context returns a bool, and :meth:`Condition.explain` says which check failed
and with what actual value. The operator tests a :class:`Check` runs live in
:mod:`aftersale.rules.operators`.

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

from collections.abc import Callable

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
        if not self.child(ctx):
            return None
        seen = "; ".join(
            f"{check.path}: actual {_shown(resolve(ctx, check.keys))}"
            for check in _checks(self.child)
        )
        return f"not ({self.text}) failed: it holds" + (f" ({seen})" if seen else "")


def _checks(condition) -> list:
    """The :class:`Check` leaves under a condition, to show what a ``not`` saw."""
    if isinstance(condition, Check):
        return [condition]
    children = list(getattr(condition, "children", ()) or ())
    child = getattr(condition, "child", None)
    if child is not None:
        children.append(child)
    return [leaf for c in children for leaf in _checks(c)]


def _shown(values: list) -> str:
    return "missing" if not values else repr(values[0] if len(values) == 1 else values)


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
        return f"{self.path} {self.op} {self.operand!r}: actual {_shown(values)}"

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
