"""The numbers of a prediction CSV: the strict grammar, and an exact vectorized parser for it.

Grammar (the README's contract; ASCII only, no locale, no ``_``, no ``nan``/``inf`` spellings):

* a value: ``[+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][+-]?[0-9]+)?`` with optional ASCII spaces around it;
* an id: ``[0-9]+`` with optional ASCII spaces around it.

:func:`parse_table` reads a whole table of such cells with numpy only: no Python work per cell on
the good path (its cost follows the bytes), and the float64 of every value is the one Python's
``float()`` gives for the same text (correctly rounded). How: each cell is split into its digits and
decimal exponent with whole-array byte operations; the digits become a 64-bit integer M, eight at a
time (SWAR); M x 10^q is computed once in x87 extended precision (64-bit mantissa: M and 10^q for
|q| <= 27 are exact there, and the product or quotient is correctly rounded), then rounded to
float64. That second rounding can only differ from a direct one when the extended result lies
exactly halfway between two doubles; those cells, cells with more than 19 significant digits or an
exponent beyond the exact range, and cells with spaces go through ``float()`` one by one. Where
numpy's long double is not the x87 format (e.g. macOS on ARM), every cell goes through ``float()``.

Pure functions on bytes; numpy and the standard library only (this module is on the scoring path).
"""
from __future__ import annotations

import re
from typing import List, Optional, Tuple, Union

import numpy as np

NUMBER_RE = re.compile(rb"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
ID_RE = re.compile(rb"[0-9]+")
SPACES = b" "

#: ids beyond this are out of range for any split (MedMNIST+ splits are far smaller)
MAX_ID = 2 ** 53
_U = np.uint64


def _is(regex: "re.Pattern", text: bytes) -> bool:
    """Whole-text match in linear time (``match`` is greedy and the grammar is deterministic, so
    its first match is the longest; ``fullmatch`` could backtrack over a long digit run)."""
    m = regex.match(text)
    return m is not None and m.end() == len(text)


def is_number(cell: bytes) -> bool:
    """``cell`` (without surrounding spaces) is a value in the grammar."""
    return _is(NUMBER_RE, cell)


def is_id(cell: bytes) -> bool:
    return _is(ID_RE, cell)


def id_value(cell: bytes) -> int:
    """Value of an id in the grammar; ``MAX_ID`` for anything at least that large (never a huge int)."""
    digits = cell.lstrip(b"0")
    if len(digits) > 16:
        return MAX_ID
    return min(int(digits or b"0"), MAX_ID)


# ---------------------------------------------------------------------------------------------
# exact decimal -> float64 with numpy
# ---------------------------------------------------------------------------------------------

def _x87_layout() -> bool:
    """numpy's long double is the x87 80-bit format (64-bit mantissa, explicit integer bit)."""
    try:
        if np.finfo(np.longdouble).nmant != 63 or np.dtype(np.longdouble).itemsize != 16:
            return False
        words = np.array([1.5, -3.0], dtype=np.longdouble).view(np.uint32)
        w = words.reshape(2, 4)
        ok_one = (w[0, 1] == 0xC0000000 and w[0, 0] == 0 and (w[0, 2] & 0xFFFF) == 0x3FFF)
        ok_neg = (w[1, 1] == 0xC0000000 and w[1, 0] == 0 and (w[1, 2] & 0xFFFF) == 0xC000)
        return bool(ok_one and ok_neg)
    except (TypeError, ValueError):
        return False


EXACT = _x87_layout()
MAX_Q = 27  # 10**27 = 5**27 * 2**27 and 5**27 < 2**63: exact in a 64-bit mantissa
_POW10 = np.ones(MAX_Q + 1, dtype=np.longdouble)
for _k in range(1, MAX_Q + 1):
    _POW10[_k] = _POW10[_k - 1] * np.longdouble(10)
_UP = np.concatenate([np.ones(MAX_Q, dtype=np.longdouble), _POW10])  # [q + MAX_Q] -> 10**max(q, 0)
_DOWN = np.concatenate([_POW10[:0:-1], np.ones(MAX_Q + 1, dtype=np.longdouble)])  # -> 10**max(-q, 0)
_P10 = [10 ** k for k in range(20)]
_STEP = 1 << 20  # bytes per step of the first scan


def _eight_digits(w: np.ndarray) -> np.ndarray:
    """Eight ASCII digits loaded little-endian (first character lowest) -> their value; in place."""
    w -= _U(0x3030303030303030)
    t = w >> _U(8)
    w *= _U(10)
    w += t
    t = w & _U(0x000000FF000000FF)
    t *= _U(100 + (1000000 << 32))
    w >>= _U(16)
    w &= _U(0x000000FF000000FF)
    w *= _U(1 + (10000 << 32))
    w += t
    w >>= _U(32)
    return w


class _Digits:
    """Digit runs read from ``data`` at given offsets of many cells at once (positions count from
    ``base``, with ``base >= 8``: a run's 8-byte load may start up to 7 bytes before its cell)."""

    def __init__(self, data: bytes, base: int):
        self.base = base
        self.bytes = np.frombuffer(data, dtype=np.uint8)
        self.words = np.ndarray(shape=(len(data) - 7,), dtype="<u8", buffer=data, strides=(1,))

    def byte(self, starts: np.ndarray, offset: int) -> np.ndarray:
        return self.bytes[starts + (self.base + offset)]

    def run(self, starts: np.ndarray, offset: int, length: int) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """The value of the ``length`` digits at ``starts + offset`` as uint64, and where it has more
        than 19 significant digits (None when it cannot: ``length <= 19``)."""
        acc: Optional[np.ndarray] = None
        over: Optional[np.ndarray] = None
        pos, left = offset, length
        while left:
            c = left % 8 or 8
            if c <= 2:  # one or two digits: plain byte loads
                v = self.byte(starts, pos).astype(_U)
                v -= _U(48)
                if c == 2:
                    v *= _U(10)
                    v += self.byte(starts, pos + 1)
                    v -= _U(48)
            else:  # the 8 bytes ending at the chunk's end; bytes before the chunk become '0'
                v = self.words[starts + (self.base + pos + c - 8)]
                if c < 8:
                    keep = ((1 << (8 * c)) - 1) << (8 * (8 - c))
                    v &= _U(keep)
                    v |= _U(0x3030303030303030 & ~keep)
                v = _eight_digits(v)
            if acc is None:
                acc = v
            else:
                if length > 19:
                    big = acc >= _U(_P10[19 - c])
                    over = big if over is None else (over | big)
                acc *= _U(_P10[c])
                acc += v
            pos += c
            left -= c
        assert acc is not None
        return acc, over


def parse_table(data: bytes, start: int, end: int, n_rows: int,
                width: int) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """The cells of ``data[start:end]``: ``n_rows`` lines of ``width`` comma-separated cells joined
    by ``\\n`` (no trailing newline, no ``\\r``). Returns (the first column as int64 ids, all columns
    as float64 (n_rows, width) with column 0 unspecified), or None when any line or cell breaks the
    grammar (the caller then explains what is wrong). Ids are exact below 2**53; larger ones come
    back as ``MAX_ID``. No copy of ``data`` is made when ``start >= 8``.
    """
    n_cells = n_rows * width
    if n_rows <= 0 or width < 1 or not 0 <= start <= end <= len(data):
        return None
    if start < 8:  # the 8-byte loads below reach up to 7 bytes before a cell
        data, start, end = b"\0" * 8 + data[start:end], 8, 8 + end - start
    a = np.frombuffer(data, dtype=np.uint8, count=end - start, offset=start)
    # 1. where the cells are: every byte that is not a digit (found in 1 MiB steps, so the masks stay
    #    small), and the separators among them
    found: List[np.ndarray] = []
    n_special, limit = 0, 6 * n_cells + 64  # more is not a table of numbers
    for c0 in range(0, a.size, _STEP):
        part = a[c0:c0 + _STEP]
        mask = part < 48
        mask |= part > 57
        hits = np.flatnonzero(mask)
        n_special += hits.size
        if n_special > limit:
            return None
        hits += c0
        found.append(hits)
    special = np.concatenate(found) if found else np.zeros(0, dtype=np.intp)
    del found
    sc = a[special]
    is_sep = sc == 44
    if int(np.count_nonzero(is_sep)) != n_rows * (width - 1):
        return None
    is_nl = sc == 10
    if int(np.count_nonzero(is_nl)) != n_rows - 1:
        return None
    is_sep |= is_nl
    del is_nl
    sep = np.compress(is_sep, special)
    if width > 1 and n_rows > 1 and not (a[sep[width - 1::width]] == 10).all():
        return None  # a line with too many or too few cells
    starts = np.empty(n_cells, dtype=np.int64)
    starts[0] = 0
    np.add(sep, 1, out=starts[1:])
    lengths = np.empty(n_cells, dtype=np.int64)
    lengths[:-1] = sep
    lengths[-1] = a.size
    lengths -= starts
    del sep
    if not lengths.all():
        return None  # an empty cell
    # 2. the other non-digits: which cell, which offset, which character
    oth = np.flatnonzero(~is_sep)
    del is_sep
    ch = sc[oth]
    if ch.size and not _ALLOWED[ch].all():
        return None  # a letter, a quote, a tab, a non-ASCII byte...: explained by the caller
    pos = special.take(oth)
    cell = oth
    cell -= np.arange(oth.size)  # separators before it
    del special, sc
    off = pos - starts[cell]
    del pos
    # 3. each cell's layout: [sign] digits [. digits] [e [sign] digits]; anything else is irregular
    irregular = lengths > 31
    is_dot = ch == 46
    dcell = cell[is_dot]
    dot_off = np.full(n_cells, -1, dtype=np.int32)
    dot_off[dcell] = off[is_dot]
    twice = dcell[1:][dcell[1:] == dcell[:-1]]  # cells are in order, so repeats are adjacent
    rest = ~is_dot
    if rest.any():  # exponents, signs, spaces
        cell, off, ch = cell[rest], off[rest], ch[rest]
        is_e = (ch | 32) == 101
        ecell = cell[is_e]
        e_off = np.full(n_cells, -1, dtype=np.int32)
        e_off[ecell] = off[is_e]
        irregular[ecell[1:][ecell[1:] == ecell[:-1]]] = True
        is_sign = (ch == 43) | (ch == 45)
        scell, soff = cell[is_sign], off[is_sign]
        lead = np.zeros(n_cells, dtype=np.int32)
        lead[scell[soff == 0]] = 1
        esign = np.zeros(n_cells, dtype=np.int32)
        after_e = soff == e_off[scell] + 1
        esign[scell[after_e]] = 1
        irregular[scell[(soff != 0) & ~after_e]] = True  # a sign inside the digits
        irregular[cell[ch == 32]] = True  # spaces around a number: float() below
        irregular |= (e_off >= 0) & (dot_off > e_off)
        key = dot_off + 1
        key <<= 5
        e_off += 1
        e_off <<= 10
        key |= e_off
        lead <<= 15
        key |= lead
        esign <<= 16
        key |= esign
        del e_off, lead, esign
    else:
        key = dot_off + 1
        key <<= 5
    key |= np.minimum(lengths, 31).astype(np.int32)
    irregular[twice] = True
    del dot_off, cell, off, ch
    key[irregular] = 0
    # 4. convert each layout's cells at once
    ids = np.full(n_rows, MAX_ID, dtype=np.int64)
    vals = np.empty(n_cells, dtype=np.float64)
    slow: List[np.ndarray] = [np.flatnonzero(irregular)]
    del irregular
    digits = _Digits(data, start)
    counts = np.bincount(key)
    distinct = np.flatnonzero(counts)
    compact = np.zeros(counts.size, dtype=np.uint16)
    compact[distinct] = np.arange(distinct.size, dtype=np.uint16)
    ckey = compact[key]
    order = np.argsort(ckey, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(counts[distinct])])
    del ckey, compact, key
    for g, k in enumerate(distinct.tolist()):
        if k == 0:
            continue
        idx = order[bounds[g]:bounds[g + 1]]
        L, d, eo = k & 31, (k >> 5 & 31) - 1, (k >> 10 & 31) - 1
        ld, es = k >> 15 & 1, k >> 16 & 1
        mant_end = eo if eo >= 0 else L
        int_len = (d if d >= 0 else mant_end) - ld
        frac_len = mant_end - d - 1 if d >= 0 else 0
        exp_len = L - eo - 1 - es if eo >= 0 else 0
        if int_len + frac_len < 1 or (eo >= 0 and exp_len < 1):
            return None  # '.', '-', '1e', 'e5', ...: not a number
        plain = d < 0 and eo < 0 and not ld
        id_rows = idx % width == 0
        n_id = int(np.count_nonzero(id_rows))
        if n_id and not plain:
            return None  # an id with a sign, a point or an exponent
        st = starts[idx]
        over: Optional[np.ndarray] = None
        if int_len:
            m, over = digits.run(st, ld, int_len)
        else:
            m = np.zeros(idx.size, dtype=_U)
        if frac_len:
            fv, fo = digits.run(st, d + 1, frac_len)
            if int_len + frac_len > 19:
                big = (m >= _U(_P10[19 - frac_len])) if frac_len < 19 else (m > 0)
                over = big if over is None else (over | big)
                if fo is not None:
                    over |= fo
            m *= _U(_P10[min(frac_len, 19)])
            m += fv
        if n_id:
            mi = m[id_rows]
            ok = mi < _U(MAX_ID)
            if over is not None:
                ok &= ~over[id_rows]
            rows = idx[id_rows] // width
            ids[rows[ok]] = mi[ok].astype(np.int64)
            if n_id == idx.size:
                continue
            keep = ~id_rows
            idx, st, m = idx[keep], st[keep], m[keep]
            over = over[keep] if over is not None else None
        if eo >= 0:
            if exp_len > 4:
                slow.append(idx)
                continue
            ev = digits.run(st, eo + 1 + es, exp_len)[0].astype(np.int64)
            if es:
                np.negative(ev, out=ev, where=digits.byte(st, eo + 1) == 45)
            ev -= frac_len
            q: Union[int, np.ndarray] = ev
        else:
            q = -frac_len
        if not EXACT:
            slow.append(idx)
            continue
        y = m.astype(np.longdouble)
        if isinstance(q, int):
            if abs(q) > MAX_Q:
                slow.append(idx)
                continue
            if q:
                y = y / _POW10[-q] if q < 0 else y * _POW10[q]
        else:
            far = np.abs(q) > MAX_Q
            if far.any():
                over = far if over is None else (over | far)
                q[far] = 0
            qi = q + MAX_Q
            y *= _UP[qi]  # one of the two is 1: a single rounding
            y /= _DOWN[qi]
        bad = (y.view(_U)[::2] & _U(0x7FF)) == _U(0x400)  # halfway after the first rounding
        if over is not None:
            bad |= over
        z = y.astype(np.float64)
        if ld:
            np.negative(z, out=z, where=digits.byte(st, 0) == 45)
        vals[idx] = z
        if bad.any():
            slow.append(idx[bad])
    # 5. the few cells left to Python's float() and int()
    for i in np.concatenate(slow).tolist():
        text = data[start + starts[i]:start + starts[i] + lengths[i]].strip(SPACES)
        if i % width == 0:
            if not is_id(text):
                return None
            ids[i // width] = id_value(text)
        else:
            if not is_number(text):
                return None
            vals[i] = float(text)
    return ids, vals.reshape(n_rows, width)


_ALLOWED = np.zeros(256, dtype=bool)
_ALLOWED[np.frombuffer(b".eE+- ", dtype=np.uint8)] = True
