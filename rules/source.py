"""YAML with positions: every node keeps its line and column for error messages.

ruamel.yaml's safe round-trip loader is used because it records where each
key and item starts, and it reads YAML 1.2, where ``on:`` is the string "on"
and not the boolean True as in YAML 1.1. It never constructs Python objects
from tags, so a rule file cannot run code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from aftersale.rules.errors import RuleError


@dataclass
class Document:
    """A parsed YAML file: plain data plus a way back to positions."""

    file: str
    root: object  # CommentedMap / CommentedSeq / scalar, as ruamel built it

    def data(self):
        return _plain(self.root)

    def position(self, path: tuple) -> tuple[int | None, int | None]:
        """1-based (line, column) of the deepest node on ``path`` that exists."""
        node, best = self.root, _start(self.root)
        for part in path:
            if isinstance(node, CommentedMap) and part in node:
                line, col = node.lc.key(part)
                best = (line + 1, col + 1)
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                line, col = node.lc.item(part)
                best = (line + 1, col + 1)
                node = node[part]
            else:
                break
        return best

    def error(self, path: tuple, message: str, shown_path: str = "") -> RuleError:
        line, column = self.position(path)
        return RuleError(self.file, line, column, shown_path, message)


def load_document(path: Path, display: str | None = None) -> Document:
    """Parse one YAML file; a syntax error becomes a RuleError with its position."""
    display = display or str(path)
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SyntaxProblem(RuleError(display, None, None, "", f"not UTF-8 text: {exc}")) from exc
    try:
        root = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise SyntaxProblem(RuleError(display, line, col, "", f"YAML syntax: {problem}")) from exc
    except YAMLError as exc:
        raise SyntaxProblem(RuleError(display, None, None, "", f"YAML syntax: {exc}")) from exc
    return Document(display, root)


class SyntaxProblem(Exception):
    def __init__(self, error: RuleError):
        super().__init__(str(error))
        self.error = error


def _start(node) -> tuple[int | None, int | None]:
    lc = getattr(node, "lc", None)
    if lc is None or lc.line is None:
        return (1, 1)
    return (lc.line + 1, lc.col + 1)


def _plain(node):
    """ruamel's commented containers and scalar types -> dict, list, str, int, float, bool."""
    if isinstance(node, dict):
        return {
            str(k) if not isinstance(k, (int, float, bool)) else k: _plain(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node
