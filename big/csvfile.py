"""One prediction CSV: read it exactly and fast, or say precisely what is wrong with it.

The format (README "Result submission format"): UTF-8 (a BOM and CRLF line ends are accepted),
header ``id,0,1,...,C-1``, one line per sample, ids and values in the grammar of
:mod:`big.csvnumbers`, values within [0, 1], ids 0..n-1 each exactly once.

Two passes, one rule. The good path (:func:`big.csvnumbers.parse_table` plus whole-array checks)
does no Python work per cell. Anything it does not accept is handed to :func:`_scan`, which reads
the rows one by one by the same rule, finds every problem (capped per kind) and says how to fix it
(and returns the scores of a valid file the fast path declined, e.g. one padded with many spaces). Memory stays bounded
by the file's size: lines are never all materialised, a file with far more lines than samples is
refused after counting them, and a line is split only when it has the right number of commas.
"""
from __future__ import annotations

import codecs
import math
from typing import Dict, List, Optional, Tuple

import numpy as np

from . import registry
from .csvnumbers import id_value, is_id, is_number, parse_table
from .errors import Problem

BOM = b"\xef\xbb\xbf"
MAX_PROBLEMS_PER_KIND = 10
_SHOW = 40  # characters of a cell quoted in a message


class Collector:
    """Collects problems, capping each kind per file so a broken file cannot flood the log."""

    def __init__(self, limit: int = MAX_PROBLEMS_PER_KIND):
        self.limit = limit
        self.problems: List[Problem] = []
        self._counts: Dict[Tuple[str, str], int] = {}
        self.total = 0

    def add(self, kind: str, problem: Problem) -> None:
        key = (problem.file or "", kind)
        self._counts[key] = self._counts.get(key, 0) + 1
        self.total += 1
        if self._counts[key] <= self.limit:
            self.problems.append(problem)

    def more(self, kind: str, file: str, count: int) -> None:
        """Count ``count`` further problems of ``kind`` beyond the shown ones (for '... and N more')."""
        if count > 0:
            key = (file or "", kind)
            self._counts[key] = self._counts.get(key, 0) + count
            self.total += count

    def finish(self) -> List[Problem]:
        out = list(self.problems)
        for (file, kind), count in self._counts.items():
            if count > self.limit:
                out.append(Problem(f"... and {count - self.limit} more {kind} problems in this file", file=file or None))
        return out


def show(raw: bytes, limit: int = _SHOW) -> str:
    """A cell or line as text for a message: undecodable bytes escaped, long ones cut."""
    text = raw[: limit * 4].decode("utf-8", errors="backslashreplace")
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    if len(text) > limit or len(raw) > limit * 4:
        quoted = repr(text[:limit])
        return f"{quoted[:-1]}...{quoted[-1]} ({len(raw):,} bytes)"
    return repr(text)


def parse_prediction_csv(data: bytes, *, name: str, n: int, n_cols: int, flag: str = "",
                         collector: Optional[Collector] = None) -> Optional[np.ndarray]:
    """Parse one prediction CSV; return (n, C) float64 scores ordered by id, or None after adding
    at least one problem to ``collector``."""
    col = collector if collector is not None else Collector()
    before = col.total
    arr = _parse(data, name=name, n=n, n_cols=n_cols, flag=flag, col=col)
    if arr is None and col.total == before:  # never reject silently
        col.add("internal", Problem("the file could not be read, and no reason was found; please report this "
                                    "file to the organizers", file=name))
    return arr if col.total == before else None


def _parse(data: bytes, *, name: str, n: int, n_cols: int, flag: str, col: Collector) -> Optional[np.ndarray]:
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")  # a lone CR stays, and is explained
    begin = len(BOM) if data.startswith(BOM) else 0
    if not data.isascii():
        bad = _utf8_error(data)
        if bad is not None:
            line = data.count(b"\n", 0, bad) + 1
            hint = ""
            if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
                hint = " (it is UTF-16, e.g. Excel's 'Unicode Text'; save it as 'CSV UTF-8')"
            col.add("encoding", Problem(f"the file is not UTF-8 text (byte 0x{data[bad]:02x} at offset {bad}); "
                                        f"save it as UTF-8 CSV{hint}", file=name, row=line))
            return None
    end = _content_end(data, begin)
    if end <= begin:
        col.add("empty", Problem("the file is empty; expected a header line 'id,0,1,...' and one row per "
                                 f"sample ({n} rows)", file=name))
        return None
    hdr_end = data.find(b"\n", begin, end)
    if hdr_end < 0:
        hdr_end = end
    if not _check_header(data[begin:hdr_end], n_cols=n_cols, name=name, flag=flag, col=col):
        return None
    start = hdr_end + 1
    if start >= end:
        col.add("rows", Problem(f"the file has a header but no rows; expected {n} rows", file=name))
        return None
    parsed = parse_table(data, start, end, n, n_cols + 1)  # None unless all n rows are well-formed
    if parsed is not None:
        out = _assemble(*parsed, n=n)
        if out is not None:
            return out
    n_lines = data.count(b"\n", start, end) + 1
    if n_lines != n:
        hint = ""
        if flag:
            other = [sp for sp, k in registry.get(flag).n_samples.items() if k == n_lines]
            if other:
                hint = f" — {n_lines} is the size of the {other[0]} split: predictions for the wrong split?"
        col.add("rows", Problem(f"expected {n} rows (one per sample of the split), found {n_lines}{hint}", file=name))
        if n_lines > 2 * n + 10:
            return None
    return _scan(data, start, end, n=n, n_cols=n_cols, name=name, col=col)


def _utf8_error(data: bytes) -> Optional[int]:
    """Offset of the first byte that is not UTF-8, or None; in chunks, so memory stays small."""
    dec = codecs.getincrementaldecoder("utf-8")("strict")
    step = 1 << 20
    for i in range(0, len(data), step):
        pending = len(dec.getstate()[0])
        try:
            dec.decode(data[i:i + step], final=i + step >= len(data))
        except UnicodeDecodeError as exc:
            return max(i - pending + exc.start, 0)
    return None


def _content_end(data: bytes, begin: int) -> int:
    """End of the last line that is not blank (trailing blank lines are ignored); reads backwards in
    growing chunks, so the common case touches a few bytes and nothing is copied whole."""
    end, step = len(data), 4096
    while end > begin:
        chunk = data[max(begin, end - step):end]
        kept = len(chunk.rstrip(b" \t\n"))
        if kept:
            cut = data.find(b"\n", end - len(chunk) + kept)
            return len(data) if cut < 0 else cut
        end -= len(chunk)
        step *= 2
    return begin


def _header_cells(header: bytes, limit: int) -> List[bytes]:
    return [c.strip(b" \t").strip(b'"').strip(b" \t") for c in header.split(b",", limit)[:limit]]


def _check_header(header: bytes, *, n_cols: int, name: str, flag: str, col: Collector) -> bool:
    expected = [b"id"] + [str(i).encode() for i in range(n_cols)]
    n_found = header.count(b",") + 1
    if n_found == n_cols + 1 and _header_cells(header, n_cols + 1) == expected:
        return True
    cells = _header_cells(header, min(n_found, n_cols + 3))
    shown = ",".join(e.decode() for e in expected) if n_cols <= 6 else f"id,0,1,...,{n_cols - 1}"
    found = show(header, 60)[1:-1] if n_found <= 8 or len(header) > 240 else \
        ",".join(show(c, 12)[1:-1] for c in cells[:6]) + ",...," + show(header.rsplit(b",", 1)[-1], 12)[1:-1]
    what = f"{flag} has {n_cols} score columns" if flag else f"{n_cols} score columns are expected"
    if cells and cells[0] == b"":
        if n_found == n_cols + 2 and cells[1:] == expected:
            hint = (" (the row index was written as an extra first column: write the file without it, with "
                    "pandas df.to_csv(path, index=False), or R write.csv(df, path, row.names = FALSE))")
        elif n_found == n_cols + 1 and cells[1:] == expected[1:]:
            hint = (" (the first column, the row index, has no name: name it when writing, with pandas "
                    "df.to_csv(path, index_label='id') or df.rename_axis('id').to_csv(path); the index must "
                    "run 0..n-1 in the order of the split's images)")
        else:
            hint = (" (the first column has no name: the file was written with its row index, e.g. by pandas "
                    "df.to_csv(path) or R write.csv(df, path). Write a column named id holding 0..n-1 and the "
                    f"scores in columns named 0..{n_cols - 1}, without the row index: pandas "
                    "df.to_csv(path, index=False), R write.csv(df, path, row.names = FALSE))")
    elif n_found == 1 and (b";" in header or b"\t" in header):
        sep = "';'" if b";" in header else "tabs"
        hint = (f" (the file uses {sep} between values; use commas. In Excel, save as 'CSV UTF-8 (Comma "
                "delimited)')")
    elif b"\r" in header:
        hint = " (the file has old Mac line ends, a bare CR; save it with LF or CRLF line ends)"
    elif n_found != n_cols + 1:
        hint = f" ({what}, so {n_cols + 1} columns in all; found {n_found})"
    elif cells and cells[0] == b"id":
        hint = f" (the score columns are named by their index 0..{n_cols - 1}, in the registry's class order)"
    else:
        hint = ""
    col.add("header", Problem(f"wrong header: expected '{shown}', found '{found}'{hint}", file=name, row=1))
    return False


def _assemble(ids: np.ndarray, table: np.ndarray, *, n: int) -> Optional[np.ndarray]:
    """The (n, C) scores in id order when every value and id is acceptable, else None."""
    vals = table[:, 1:]
    inside = vals >= 0.0
    inside &= vals <= 1.0  # False for NaN and infinity too
    if not inside.all():
        return None
    if ids.min() < 0 or ids.max() >= n:
        return None
    if not (np.bincount(ids, minlength=n) == 1).all():
        return None
    out = np.empty(vals.shape, dtype=np.float64)
    out[ids] = vals
    return out


# ---------------------------------------------------------------------------------------------
# explaining a rejection
# ---------------------------------------------------------------------------------------------

def _value_problem(cell: bytes) -> str:
    """The message for a value cell that is not in the grammar."""
    if cell == b"":
        return ("expected a number in [0, 1], but the cell is empty: probably a NaN (pandas writes NaN as an "
                "empty cell); every score must be a number, so replace NaNs before writing")
    return f"expected a number in [0, 1], found {show(cell)} ({_why_not_number(cell)})"


def _why_not_number(cell: bytes) -> str:
    """The hint for a value cell that is not in the grammar."""
    low = cell.lower().strip(b"+-")
    if low in (b"nan", b"inf", b"infinity", b"na", b"nan%"):
        return "NaN and infinity are not allowed"
    if not cell.isascii():
        return "only the ASCII digits 0-9 are read as digits; write plain decimal numbers like 0.25 or 1e-05"
    if b"_" in cell:
        return "write numbers without '_' separators"
    if cell.startswith(b'"') or cell.endswith(b'"') or cell.startswith(b"'"):
        return "write numbers without quotes"
    if cell.endswith(b"%"):
        return "write probabilities, not percentages"
    if b"\t" in cell:
        return "a tab is not a separator here; use commas between values"
    if b"\r" in cell:
        return "the file has a bare CR (old Mac line end); save it with LF or CRLF line ends"
    return "write plain decimal numbers like 0.25, 1, or 1e-05"


def _why_not_id(cell: bytes) -> str:
    if cell == b"":
        return "the id is empty"
    if not cell.isascii():
        return "only the ASCII digits 0-9 are read as digits"
    if cell.startswith(b'"') or cell.endswith(b'"'):
        return "write ids without quotes"
    return "ids are whole numbers 0..n-1 written with the digits 0-9 only: no sign, decimal point or exponent"


def _scan(data: bytes, start: int, end: int, *, n: int, n_cols: int, name: str,
          col: Collector) -> Optional[np.ndarray]:
    """Read the rows one by one, adding every problem found; the (n, C) scores when there is none.

    The rule itself, cell by cell (grammar, then ``float()``); used when the vectorized path declines
    a file, which is nearly always because something is wrong with it.
    """
    before = col.total
    out = np.zeros((n, n_cols), dtype=np.float64)
    first_line = np.zeros(n, dtype=np.int64)  # line of each id's first row (0: not seen)
    counts = np.zeros(n, dtype=np.int64)
    dup_lines: Dict[int, List[int]] = {}
    ranges: List[Tuple[int, int, str]] = []
    n_range = 0
    lo, hi = math.inf, -math.inf
    skipped = False  # a row whose id could not be read: 'missing id' would mislead
    pos, line_no = start, 2
    while True:
        stop = data.find(b"\n", pos, end)
        if stop < 0:
            stop = end
        line = data[pos:stop]
        if not line.strip(b" \t"):
            col.add("blank line", Problem("blank line inside the data", file=name, row=line_no))
            skipped = True
        elif line.count(b",") != n_cols:
            found = line.count(b",") + 1
            hint = ""
            if found == 1 and (b";" in line or b"\t" in line):
                hint = "; the values are separated by ';' or tabs, use commas"
            col.add("column count", Problem(f"expected {n_cols + 1} values (id and {n_cols} scores), found {found}"
                                            f"{hint}", file=name, row=line_no))
            skipped = True
        else:
            cells = line.split(b",")
            raw = cells[0].strip(b" ")
            i = -1
            if not is_id(raw):
                col.add("id", Problem(f"expected an integer id, found {show(raw)} ({_why_not_id(raw)})", file=name,
                                      row=line_no, column="id"))
                skipped = True
            else:
                i = id_value(raw)
                if i >= n:
                    shown = raw.lstrip(b"0").decode() or "0"
                    shown = shown if len(shown) <= 20 else shown[:20] + f"... ({len(shown)} digits)"
                    col.add("id", Problem(f"id {shown} is out of range; ids run from 0 to {n - 1}", file=name,
                                          row=line_no, column="id"))
                else:
                    counts[i] += 1
                    if counts[i] == 1:
                        first_line[i] = line_no
                    elif len(dup_lines) < col.limit or i in dup_lines:
                        lines = dup_lines.setdefault(i, [int(first_line[i])])
                        if len(lines) < 5:
                            lines.append(line_no)
            for j, cell in enumerate(cells[1:]):
                raw = cell.strip(b" ")
                if not is_number(raw):
                    kind = "nan/inf" if raw.lower().strip(b"+-") in (b"nan", b"inf", b"infinity") else "number"
                    col.add(kind, Problem(_value_problem(raw), file=name, row=line_no, column=str(j)))
                    continue
                v = float(raw)
                if 0.0 <= v <= 1.0:
                    if 0 <= i < n:
                        out[i, j] = v
                    continue
                if v == v:
                    lo, hi = min(lo, v), max(hi, v)
                n_range += 1
                if len(ranges) < col.limit:
                    ranges.append((line_no, j, show(raw)))
        if stop >= end:
            break
        pos, line_no = stop + 1, line_no + 1
    if n_range:
        if lo >= 0.0 and 1.0 < hi <= 100.0:
            hint = "the scores look like percentages (0-100): divide them by 100"
        else:
            hint = "submit probabilities, not logits"
        for line_no, j, shown in ranges:
            col.add("range", Problem(f"expected a number in [0, 1], found {shown} ({hint})", file=name, row=line_no,
                                     column=str(j)))
        col.more("range", name, n_range - len(ranges))
    n_dup = int((counts > 1).sum())
    for i in sorted(dup_lines):
        col.add("duplicate id", Problem(f"id {i} appears {counts[i]} times (lines {', '.join(map(str, dup_lines[i]))})",
                                        file=name, column="id"))
    col.more("duplicate id", name, n_dup - len(dup_lines))
    if not skipped:
        missing = np.flatnonzero(counts == 0)
        if missing.size:
            listed = ", ".join(map(str, missing[:20])) + (", ..." if missing.size > 20 else "")
            col.add("missing id", Problem(f"{missing.size} id(s) have no row: {listed}", file=name, column="id"))
    return out if col.total == before else None
