"""Errors that say where: file, line, column, the rule, the field, and a suggestion."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class RuleError:
    """One problem in a rule or settings file. ``line`` and ``column`` are 1-based."""

    file: str
    line: int | None
    column: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class RulesInvalid(Exception):
    """Loading failed; nothing from the folder is used. ``errors`` lists every problem found."""

    def __init__(self, errors: Iterable[RuleError]):
        self.errors = sorted(errors, key=lambda e: (e.file, e.line or 0, e.column or 0))
        super().__init__("\n".join(str(e) for e in self.errors))


class Invalid(Exception):
    """Raised inside compilers; the loader adds the file position. ``path`` is relative."""

    def __init__(self, message: str, path: tuple = ()):
        super().__init__(message)
        self.message = message
        self.path = path


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'eq'?)`` when a close choice exists, else an empty string."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def format_path(path: tuple) -> str:
    """``('rules', 2, 'if', 0)`` -> ``rules[2].if[0]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
