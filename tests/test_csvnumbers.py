"""The number grammar and the vectorized parser: the same floats as Python's float(), the same
acceptance as the grammar, in every interpreter the scoring program runs in."""
from __future__ import annotations

import inspect
import random
import struct
import subprocess
import time
from decimal import Decimal, getcontext

import numpy as np
import pytest

from big import csvnumbers
from big.csvnumbers import id_value, is_id, is_number, parse_table
from conftest import REPO, image_env, image_python

GRAMMAR_YES = [b"0", b"1", b"0.", b".5", b"+.5", b"-0", b"1e5", b"1E-5", b"1e+05", b"0.12345678901234567",
               b"5e-324", b"1e999", b"00000000000000000000000000001", b"1" * 400, b"0." + b"0" * 300 + b"1"]
GRAMMAR_NO = [b"", b".", b"-", b"+", b"e5", b"1e", b"1e+", b"1.2.3", b"1e5.5", b"+-1", b"1 2", b"nan", b"inf",
              b"Infinity", b"0x10", b"1_000", b"0_0.5", "\u0660.\u0665".encode(), "\uff10.\uff15".encode(), b"1,5",
              b"'1'", b'"0.5"', b"1\t", b"0.5%", b"1d5", b"\xff"]


@pytest.mark.parametrize("cell", GRAMMAR_YES)
def test_grammar_accepts_plain_decimal_notation(cell):
    assert is_number(cell)
    float(cell)


@pytest.mark.parametrize("cell", GRAMMAR_NO)
def test_grammar_refuses_the_rest_even_what_float_reads(cell):
    assert not is_number(cell)


def test_ids_are_digits_only_and_never_huge_ints():
    assert is_id(b"0") and is_id(b"007")
    assert not is_id(b"+1") and not is_id(b"1.0") and not is_id(b"1e3") and not is_id("\u0660".encode())
    assert id_value(b"007") == 7
    assert id_value(b"9" * 5000) == csvnumbers.MAX_ID  # no int() of 5000 digits (a ValueError in 3.11+)
    assert id_value(b"0" * 5000 + b"12") == 12


def test_the_greedy_match_is_the_full_match():
    """is_number uses match() + end check (linear); it agrees with fullmatch() on every string."""
    rng = random.Random(3)
    for _ in range(20000):
        cell = "".join(rng.choice("0123456789.eE+-") for _ in range(rng.randint(0, 9))).encode()
        assert is_number(cell) == bool(csvnumbers.NUMBER_RE.fullmatch(cell)), cell


def test_grammar_check_is_linear_on_long_digit_runs():
    cell = b"1" * 2_000_000 + b"x"
    t = time.perf_counter()
    assert not is_number(cell)
    assert time.perf_counter() - t < 5.0  # a backtracking fullmatch takes minutes here


def table(lines, width):
    header = "id," + ",".join(map(str, range(width - 1)))
    data = (header + "\n" + "\n".join(lines)).encode()
    return data, len(header) + 1


def reference(lines, width):
    """What the grammar and Python's float() say, cell by cell."""
    ids, rows = [], []
    for line in lines:
        cells = line.split(",")
        if len(cells) != width:
            return None
        raw = cells[0].strip(" ").encode()
        if not is_id(raw):
            return None
        ids.append(id_value(raw))
        row = [0.0]
        for c in cells[1:]:
            raw = c.strip(" ").encode()
            if not is_number(raw):
                return None
            row.append(float(raw))
        rows.append(row)
    return np.array(ids, dtype=np.int64), np.array(rows, dtype=np.float64)


def random_cell(rng: random.Random, junk: bool) -> str:
    r = rng.random()
    if r < 0.3:
        x = rng.random() ** rng.choice([1, 3, 10, 30])
        return rng.choice(["%.17g", "%s", "%.3f", "%.10e", "%.1f", "%g", "%.20f", "%.25g"]) % x
    if r < 0.4:
        x = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        return repr(x) if np.isfinite(x) or junk else "%.17g" % rng.random()
    if r < 0.55 and junk:
        alpha = "0123456789.eE+- " if rng.random() < 0.9 else "0123456789.eE+- x_\t"
        return "".join(rng.choice(alpha) for _ in range(rng.randint(0, 25)))
    if r < 0.7:
        fixed = ["0", "1", "0.", ".5", "-0", "+0.5", "1e5", "1E-5", "1e+05", "0" * 25 + "1", "1" * 25,
                 "0." + "0" * 30 + "1", "1e-30", "1e30", "1e999", "-1e-999", " 0.5", "0.5 ", "  1e-5  "]
        return rng.choice(fixed + ([" ", "", "1e", ".", "-", "1.2.3", "1e5.5", "e5", "+-1"] if junk else []))
    digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 22)))
    k = rng.randint(0, len(digits))
    s = digits[:k] + "." + digits[k:]
    if rng.random() < 0.5:
        s += rng.choice("eE") + rng.choice(["", "+", "-"]) + str(rng.randint(0, 40))
    return (rng.choice("+-") + s) if rng.random() < 0.3 else s


def random_id(rng: random.Random, i: int, junk: bool) -> str:
    if rng.random() < 0.9:
        return str(i)
    return rng.choice([f" {i}", f"{i} ", f"0{i}", "0" * 22 + str(i), "9" * 23, "18446744073709551617"]
                      + ([f"+{i}", f"{i}.0", f"-{i}", "1e1", "", " "] if junk else []))


@pytest.mark.parametrize("seed", range(4))
def test_vectorized_parser_agrees_with_grammar_and_float(seed):
    rng = random.Random(seed)
    accepted = 0
    for _ in range(250):
        width, n, junk = rng.randint(1, 6), rng.randint(1, 40), rng.random() < 0.3
        lines = []
        for i in range(n):
            cells = [random_id(rng, i, junk)] + [random_cell(rng, junk) for _ in range(width - 1)]
            lines.append(",".join(cells) + ("," if rng.random() < 0.01 else ""))
        data, start = table(lines, width)
        got = parse_table(data, start, len(data), n, width)
        want = reference(lines, width)
        assert (got is None) == (want is None), lines
        if got is None:
            continue
        accepted += 1
        assert np.array_equal(got[0], want[0])
        assert np.array_equal(got[1][:, 1:].view(np.uint64), want[1][:, 1:].view(np.uint64)), lines
    assert accepted > 50


def halfway_cells(count: int, seed: int = 5):
    """Decimals within 10**-19 of the midpoint between two doubles: the hard cases of rounding."""
    getcontext().prec = 60
    rng = random.Random(seed)
    cells = []
    for _ in range(count):
        d = rng.random() * 10 ** rng.randint(-8, 0)
        mid = (Decimal(d) + Decimal(float(np.nextafter(d, 2.0)))) / 2
        for digits in (16, 17, 18, 19):
            q = Decimal(10) ** (mid.adjusted() - digits + 1)
            for s in (mid.quantize(q, rounding="ROUND_FLOOR"), mid.quantize(q, rounding="ROUND_CEILING")):
                cells.append(format(s, "f") if rng.random() < 0.5 else format(s, "e").replace("E", "e"))
    return cells


def same_floats(cells):
    data, start = table([f"{i},{c}" for i, c in enumerate(cells)], 2)
    _, vals = parse_table(data, start, len(data), len(cells), 2)
    return np.array_equal(vals[:, 1].view(np.uint64), np.array([float(c) for c in cells]).view(np.uint64))


def test_values_next_to_a_rounding_boundary_are_exact():
    assert same_floats(halfway_cells(2000))


def test_without_x87_long_double_every_cell_goes_through_float(monkeypatch):
    cells = halfway_cells(200) + ["%.17g" % v for v in np.random.default_rng(0).random(500)]
    monkeypatch.setattr(csvnumbers, "EXACT", False)
    assert same_floats(cells)


def test_the_layout_of_long_double_is_checked():
    assert csvnumbers.EXACT == (np.finfo(np.longdouble).nmant == 63 and np.dtype(np.longdouble).itemsize == 16)


@pytest.mark.parametrize("venv", ["py312", "gpu310"])
def test_exact_in_the_codabench_images(venv, tmp_path):
    """numpy 1.26.4 on Python 3.12 and 3.10: the same doubles as float() for writers' usual spellings
    and the hard cases, on the vectorized path."""
    py = image_python(venv)
    script = tmp_path / "check.py"
    helpers = "\n".join(inspect.getsource(f) for f in (table, halfway_cells, same_floats))
    script.write_text(f"""
import random, sys
from decimal import Decimal, getcontext
sys.path.insert(0, {str(REPO)!r})
import numpy as np
from big import csvnumbers
from big.csvnumbers import parse_table
{helpers}
x = np.random.default_rng(1).random(20000) ** np.random.default_rng(2).choice([1, 5, 40], size=20000)
cells = halfway_cells(500) + ["%.17g" % v for v in x] + [repr(float(v)) for v in x] + ["%.6f" % v for v in x]
ok = same_floats(cells)
print("EXACT", csvnumbers.EXACT, "equal", ok, np.__version__)
sys.exit(0 if ok and csvnumbers.EXACT else 1)
""")
    proc = subprocess.run([str(py), str(script)], capture_output=True, text=True, env=image_env(), timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1.26.4" in proc.stdout


def test_structure_is_checked_before_any_big_array():
    data, start = table(["0,0.5", "1,0.5,0.5", "2"], 2)  # the right comma total, wrong per line
    assert parse_table(data, start, len(data), 3, 2) is None
    junk = b"id,0\n" + b"x\n" * 100_000
    assert parse_table(junk, 5, len(junk) - 1, 10, 2) is None
