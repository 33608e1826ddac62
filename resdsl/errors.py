"""Errors a user can cause. The CLI prints them and exits with code 2; nothing else is caught."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable


class ResdslError(Exception):
    """Base of every error that is the user's input, not a bug in resdsl."""


class DataError(ResdslError):
    """A data set is missing, malformed or unsafe."""


class RunError(ResdslError):
    """A training run cannot start or continue (bad record, bad option)."""


class SweepError(ResdslError):
    """A sweep cannot be set up (bad grid, bad storage, bad objective)."""


class ReportError(ResdslError):
    """Run records cannot be turned into a report."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelled name, or None when nothing is close."""
    # Short names differ by a larger share of their letters for one typo (bm for bn).
    cutoff = 0.5 if len(name) <= 3 else 0.6
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=cutoff)
    return close[0] if close else None


@dataclass
class SourcePos:
    """A place in a spec file: 1-based line and column."""

    path: str
    line: int
    col: int


# A source line wider than this is shown in an error as this many characters around the column
# (a generated spec can hold a stage list hundreds of characters long)
SHOWN_SOURCE_CHARS = 100


def source_window(text: str, col: int) -> tuple[str, int]:
    """The part of a source line an error shows, "…" where it is cut, and the caret's offset
    in it for 1-based column ``col``."""
    caret = max(col - 1, 0)
    if len(text) <= SHOWN_SOURCE_CHARS:
        return text, caret
    start = max(0, min(caret - SHOWN_SOURCE_CHARS // 2, len(text) - SHOWN_SOURCE_CHARS))
    end = start + SHOWN_SOURCE_CHARS
    shown = ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")
    return shown, caret - start + (1 if start else 0)


class SpecError(ResdslError):
    """A spec that does not parse or does not check; the message carries file:line:col."""

    def __init__(self, message: str, pos: SourcePos | None = None, source: str | None = None,
                 hint: str | None = None):
        self.message = message
        self.pos = pos
        self.source = source
        self.hint = hint
        super().__init__(self.format())

    def format(self) -> str:
        if self.pos is None:
            head = f"error: {self.message}"
        else:
            head = f"{self.pos.path}:{self.pos.line}:{self.pos.col}: error: {self.message}"
        lines = [head]
        if self.pos is not None and self.source is not None:
            src_lines = self.source.splitlines()
            if 1 <= self.pos.line <= len(src_lines):
                text, caret = source_window(src_lines[self.pos.line - 1].replace("\t", " "),
                                            self.pos.col)
                gutter = f"{self.pos.line:>5} | "
                lines.append(gutter + text)
                lines.append(" " * (len(gutter) - 2) + "| " + " " * caret + "^")
        if self.hint:
            lines.append(self.hint)
        return "\n".join(lines)


class ConstraintError(SpecError):
    """A `require` of the spec does not hold: the design is well formed but not admissible.

    The message is the spec's own; the place is the require's. A sweep rejects such a design
    instead of training it, as it rejects one over --max-flops.
    """
