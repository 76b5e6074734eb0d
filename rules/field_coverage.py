"""Warnings for rule conditions on fields a platform's connector never fills.

A condition on ``order.line_items.product_type`` validates (the field is in
the canonical model) but can never match while no connector fills it, and a
store owner would only learn that from mails that never go out. ``rules
check`` reads the rule files again (positions are needed, and the compiled
conditions keep none) and names the file, line and column of each such check.

Only checks that can never hold are reported: a check under ``not:`` or an
``exists: false`` holds for a missing field (``not: {order.tags: {contains:
no-review}}`` is the usual guard), so it is left alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from aftersale.connectors import CONNECTORS
from aftersale.rules.loader import rule_files
from aftersale.rules.source import Document, SyntaxProblem, load_document

#: item fields of ``customer.has_purchased`` and the line-item field each one matches
PURCHASE_FIELDS = {"product_type": "order.line_items.product_type"}


@dataclass(frozen=True)
class FieldWarning:
    file: str
    line: int | None
    column: int | None
    rule: str
    field: str
    platforms: tuple[tuple[str, str], ...]  # (platform, why it is never filled)

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.line, self.column) if p is not None)
        why = "; ".join(f"{name}: {reason}" for name, reason in self.platforms)
        names = " and ".join(name for name, _ in self.platforms)
        return (
            f"{where}: warning: rule {self.rule!r}: {self.field} is never filled on {names}, "
            f"so this check cannot match there ({why})"
        )


def never_filled() -> dict[str, tuple[tuple[str, str], ...]]:
    """field -> ((platform, reason), ...) from each connector's ``NEVER_FILLED``."""
    found: dict[str, list[tuple[str, str]]] = {}
    for name, connector in sorted(CONNECTORS.items()):
        for field, reason in connector.NEVER_FILLED.items():
            found.setdefault(field, []).append((name, reason))
    return {field: tuple(platforms) for field, platforms in found.items()}


def unfilled_field_warnings(folder: Path | str) -> list[FieldWarning]:
    """Every check in the folder's rules on a field some platform never fills.

    Call it on a folder that loaded without errors (``load_rules``); a file
    that does not parse is skipped here, since loading reported it already.
    """
    folder = Path(folder)
    unfilled = never_filled()
    warnings = []
    for path in rule_files(folder):
        display = str(path.relative_to(folder.parent)) if folder.parent != path else str(path)
        try:
            document = load_document(path, display)
        except SyntaxProblem:
            continue
        data = document.data()
        for index, rule in enumerate(data if isinstance(data, list) else []):
            if not isinstance(rule, dict) or "if" not in rule:
                continue
            for field, where in _checked_fields(rule["if"], (index, "if")):
                if field in unfilled:
                    warnings.append(_warning(document, where, rule, field, unfilled[field]))
    return warnings


def _warning(document: Document, where: tuple, rule: dict, field: str, platforms) -> FieldWarning:
    line, column = document.position(where)
    name = rule.get("name") if isinstance(rule.get("name"), str) else f"#{where[0] + 1}"
    return FieldWarning(document.file, line, column, name, field, platforms)


def _checked_fields(spec, path: tuple) -> Iterator[tuple[str, tuple]]:
    """(field, document path) for each check that needs the field present to hold."""
    if isinstance(spec, list):
        for i, item in enumerate(spec):
            yield from _checked_fields(item, path + (i,))
        return
    if not isinstance(spec, Mapping):
        return
    for key, value in spec.items():
        here = path + (key,)
        if key in ("all", "any"):
            yield from _checked_fields(value, here)
        elif key == "not":
            continue  # holds when the field is missing
        elif key == "customer.has_purchased" and isinstance(value, Mapping):
            for item_field in value:
                if item_field in PURCHASE_FIELDS:
                    yield PURCHASE_FIELDS[item_field], here + (item_field,)
        elif isinstance(key, str) and not _holds_when_missing(value):
            yield key, here


def _holds_when_missing(value) -> bool:
    return isinstance(value, Mapping) and value.get("exists") is False
