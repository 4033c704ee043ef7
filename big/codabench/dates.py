"""Phase dates: what an organizer wrote, and what CodaBench stores (codabench.md §1.5).

CodaBench's ``get_datetime`` (``unpackers/utils.py``) tests ``isinstance(field, datetime.date)``
first. A YAML date-time is a ``datetime.datetime``, a subclass of ``date``, so an unquoted
``end: 2027-05-31 23:59:59`` is cut to ``2027-05-31 00:00`` (checked by running the real unpacker,
codabench c7dbc756). Strings go through ``dateutil.parser.parse`` and keep their time; dashed
``1-2-2026`` parses month-first; a timezone offset is *replaced* by UTC, not converted.

``big bundle`` therefore writes every phase date as a quoted ``'YYYY-MM-DD HH:MM:SS'`` UTC string
(:func:`format_utc`), and ``big lint`` reads dates with :func:`codabench_datetime`.
"""
from __future__ import annotations

import datetime as _dt
from typing import Optional, Tuple

FORMAT = "%Y-%m-%d %H:%M:%S"
_FORMATS = (FORMAT, "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")


class DateError(ValueError):
    """A value CodaBench cannot read as a date (the upload fails)."""


def parse_utc(text: str) -> Optional[_dt.datetime]:
    """``YYYY-MM-DD`` or ``YYYY-MM-DD HH:MM[:SS]`` (UTC, naive), else None."""
    for fmt in _FORMATS:
        try:
            return _dt.datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
    return None


def format_utc(value: _dt.datetime) -> str:
    """The form ``big bundle`` writes (a string, so PyYAML quotes it and CodaBench keeps the time)."""
    return value.strftime(FORMAT)


def codabench_datetime(value) -> _dt.datetime:
    """What CodaBench's ``get_datetime`` stores for a phase date, as a naive UTC datetime.

    Raises :class:`DateError` for what it cannot read (the upload would fail).
    """
    if isinstance(value, _dt.date):  # first, as in CodaBench: a datetime is a date too -> midnight
        return _dt.datetime.combine(value, _dt.time())
    if isinstance(value, str):
        try:
            from dateutil import parser
        except ImportError:  # pragma: no cover - python-dateutil is a dependency of the project
            parsed = parse_utc(value)
            if parsed is None:
                raise DateError(f"{value!r} is not a date") from None
            return parsed
        try:
            parsed = parser.parse(value)
        except (ValueError, OverflowError) as exc:
            raise DateError(f"{value!r} is not a date CodaBench can read ({exc})") from None
        return parsed.replace(tzinfo=None)  # the offset is replaced by UTC, not converted
    raise DateError(f"{value!r} is not a date (CodaBench reads a YAML date or a quoted string)")


def intended_datetime(value) -> Tuple[Optional[_dt.datetime], str]:
    """The UTC instant the organizer meant, and how it was written (for messages).

    A YAML date-time keeps its time (offsets converted to UTC); a quoted string in the canonical form
    is read as UTC; other strings are taken as CodaBench reads them (their meaning is ambiguous).
    """
    if isinstance(value, _dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        return value, "an unquoted YAML date-time"
    if isinstance(value, _dt.date):
        return _dt.datetime.combine(value, _dt.time()), "a YAML date"
    if isinstance(value, str):
        parsed = parse_utc(value)
        if parsed is not None:
            return parsed, "a quoted string"
        try:
            from dateutil import parser

            aware = parser.parse(value)
        except (ImportError, ValueError, OverflowError):
            aware = None
        if aware is not None and aware.tzinfo is not None:
            return aware.astimezone(_dt.timezone.utc).replace(tzinfo=None), "a string with a UTC offset"
        try:
            return codabench_datetime(value), "a string"
        except DateError:
            return None, "a string"
    return None, type(value).__name__
