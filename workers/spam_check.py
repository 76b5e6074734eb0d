"""A message scored by SpamAssassin as a receiving server would start, and what to do about it.

``spamassassin -L -t`` runs the stock rules with local tests only (no DNS
blocklists, no network), which is what the templates themselves control. Used
by ``aftersale templates preview --score`` so a store owner can score its own
mail, with its own name, products and languages, before going live, and by the
built-in templates' SpamAssassin test.

Most of what SpamAssassin scores is the template's, and the built-in ones score
0 or below. One rule scores the merchant's data instead: ``MIXED_ES`` ("Too many
es are not es", +1.0) fires when a mail has more than 20 Latin ``e`` and 1.4 to
10 times as many e-like letters, which is what Russian or Serbian Cyrillic prose
beside a Latin-script shop name and product titles looks like. :func:`hints`
names the words that carry the Latin ``e`` and what the shop can set.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from html import unescape

SPAMASSASSIN = "spamassassin"
#: the X-Spam-Status header: its score
_STATUS = re.compile(rb"^X-Spam-Status: \w+, score=(-?[\d.]+)", re.MULTILINE)
_VERSION = re.compile(rb"^X-Spam-Checker-Version: SpamAssassin (\S+)", re.MULTILINE)
#: a row of the report's table: " 1.0 MIXED_ES               Too many es are not es"
_ROW = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*)$")
_LATIN_E_WORD = re.compile(r"[^\s<>()\"]*e[^\s<>()\"]*")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
#: the rule's threshold of Latin "e" (72_active.cf: __LOWER_E > 20)
MIXED_ES_LATIN_E = 20


class SpamCheckFailed(RuntimeError):
    """SpamAssassin could not score the message; the message says why."""


class SpamAssassinMissing(SpamCheckFailed):
    """``spamassassin`` is not on PATH."""


@dataclass(frozen=True)
class Hit:
    """One rule that fired: its points and SpamAssassin's description."""

    rule: str
    points: float
    description: str


@dataclass(frozen=True)
class SpamReport:
    score: float
    hits: tuple[Hit, ...]
    version: str

    @property
    def rules(self) -> list[str]:
        return [hit.rule for hit in self.hits]

    @property
    def scoring(self) -> list[Hit]:
        """The hits that moved the score (informational rules score 0.0 or -0.0)."""
        return [hit for hit in self.hits if abs(hit.points) >= 0.001]


def installed() -> bool:
    return shutil.which(SPAMASSASSIN) is not None


def score(raw: bytes, timeout: float = 120) -> SpamReport:
    """SpamAssassin's verdict on the message bytes ``raw``, stock rules, local tests only.

    Raises:
        SpamAssassinMissing: it is not installed (Debian: ``apt-get install spamassassin``).
        SpamCheckFailed: it failed or took longer than ``timeout`` seconds.
    """
    if not installed():
        raise SpamAssassinMissing(
            "spamassassin is not installed; on Debian or Ubuntu: apt-get install spamassassin"
        )
    try:
        checked = subprocess.run(
            [SPAMASSASSIN, "-L", "-t"], input=raw, capture_output=True, timeout=timeout, check=True
        ).stdout
    except subprocess.CalledProcessError as exc:
        stderr = exc.stderr.decode("utf-8", "replace").strip()[-500:]
        raise SpamCheckFailed(f"spamassassin exited {exc.returncode}: {stderr}") from exc
    except subprocess.TimeoutExpired as exc:
        raise SpamCheckFailed(f"spamassassin took longer than {timeout:g} s") from exc
    head = checked.split(b"\n\n", 1)[0].replace(b"\n\t", b" ")
    found = _STATUS.search(head)
    if found is None:
        raise SpamCheckFailed(f"spamassassin gave no X-Spam-Status: {head[:300]!r}")
    version = _VERSION.search(head)
    return SpamReport(
        score=float(found.group(1)),
        hits=tuple(_report_rows(checked.decode("utf-8", "replace"))),
        version=version.group(1).decode() if version else "",
    )


def _report_rows(checked: str):
    """The rows of the "Content analysis details" table ``-t`` adds at the end; a long
    description goes on over indented lines."""
    table = checked.rpartition("Content analysis details:")[2]
    rows: list[Hit] = []
    started = False
    for line in table.splitlines():
        if line.startswith("----"):
            started = True
            continue
        if not started or not line.strip():
            continue
        row = _ROW.match(line)
        if row:
            rows.append(Hit(row.group(2), float(row.group(1)), row.group(3).strip()))
        elif rows and line.startswith(" "):
            last = rows[-1]
            rows[-1] = Hit(last.rule, last.points, f"{last.description} {line.strip()}")
    return rows


def latin_e_words(subject: str, text: str, html: str | None) -> Counter:
    """Latin ``e`` per word over what SpamAssassin reads: the subject, the text part and the
    HTML part's visible text (its ``<title>`` included)."""
    visible = ""
    if html:
        visible = re.sub(r"(?is)<(style|script)\b.*?</\1>", " ", html)
        visible = unescape(re.sub(r"<[^>]+>", " ", visible))
    words: Counter = Counter()
    for word in _LATIN_E_WORD.findall(f"{subject}\n{text}\n{visible}"):
        words[word.strip(".,:;!?")] += word.count("e")
    return words


def hints(report: SpamReport, subject: str, text: str, html: str | None) -> list[str]:
    """What the shop can do about the rules that scored, where the data is the shop's."""
    found = []
    if "MIXED_ES" in report.rules:
        words = latin_e_words(subject, text, html)
        cyrillic = bool(_CYRILLIC.search(text))
        top = ", ".join(f"{_short(word)} ({count})" for word, count in words.most_common(6))
        found.append(
            f"MIXED_ES: {sum(words.values())} Latin 'e' (the rule fires above "
            f"{MIXED_ES_LATIN_E}) beside {'Cyrillic' if cyrillic else 'other'} e-like letters. "
            f"Most come from: {top}. Names the shop writes in this language's script "
            "(settings.yaml shop_name_by_language, per-shop string overrides) lower the count; "
            "product titles and links are the platform's."
        )
    return found


def _short(word: str, limit: int = 40) -> str:
    return word if len(word) <= limit else word[: limit - 1] + "\u2026"
