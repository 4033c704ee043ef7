"""Error types: one for problems a participant must fix, one for problems an organizer must fix.

Entry points print ``problems`` one per line, then ``summary`` as the last line on stderr, and
exit non-zero. A traceback means a bug in this project, never a bad submission.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List, Optional


@dataclass(frozen=True)
class Problem:
    """One thing wrong, located as precisely as possible."""

    message: str
    file: Optional[str] = None
    row: Optional[int] = None  # 1-based line number in the file (the header is line 1)
    column: Optional[str] = None

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.row is not None:
            where.append(f"line {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        return (", ".join(where) + ": " if where else "") + self.message


class BigError(Exception):
    """Base class: a list of problems and a one-line summary."""

    audience = "user"

    def __init__(self, problems: Iterable, summary: Optional[str] = None):
        self.problems: List[Problem] = [p if isinstance(p, Problem) else Problem(str(p)) for p in problems]
        self.summary = summary or (str(self.problems[0]) if len(self.problems) == 1 else
                                   f"{len(self.problems)} problems found; the first: {self.problems[0]}")
        super().__init__(self.summary)

    def report(self, limit: int = 200) -> List[str]:
        """The lines to print: each problem, capped, then nothing else (the caller prints summary)."""
        lines = [str(p) for p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"... and {len(self.problems) - limit} more problems not shown")
        return lines


class SubmissionError(BigError):
    """The submission (result zip, prediction folder or code submission) is invalid.

    ``kind`` says what the submission is, when known ("result" or "code", as :mod:`big.kind`
    decides): the advice on how to check it locally depends on it.
    """

    audience = "participant"

    def __init__(self, problems: Iterable, summary: Optional[str] = None, *, kind: Optional[str] = None):
        super().__init__(problems, summary)
        self.kind = kind


class ReferenceDataError(BigError):
    """The reference data or the source files are invalid: for the organizer or reviewer."""

    audience = "organizer"


class UsageError(BigError):
    """A command was called with bad options or paths."""
