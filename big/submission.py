"""The result-submission format: write it, read it, and validate it for participants.

Format (documented in the README and on the submission page; keep them in sync):

* a zip (or, on CodaBench, the folder the platform unzipped it into) holding ``{flag}_{size}.csv``
  for all 12 flags, one size for all (28, 64, 128 or 224), at the root or in one wrapping folder;
  other files are ignored and listed;
* each CSV: UTF-8 (BOM and CRLF accepted), header ``id,0,1,...,C-1``, one row per sample of the
  split, ids 0..n-1 each exactly once in any order (id i = row i of ``{split}_images``);
* values: anything Python's ``float()`` reads except nan/inf, within [0, 1].

Only numpy and the standard library are used: this module is on the scoring path.
"""
from __future__ import annotations

import io
import json
import os
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import registry
from .errors import Problem, SubmissionError

PathLike = Union[str, os.PathLike]

CSV_RE = re.compile(r"^(?P<flag>[a-z]+)_(?P<size>\d+)\.csv$")
#: files the platform or our ingestion program put beside the predictions
PLATFORM_FILES = {"metadata", "ingestion_status.json"}
INGESTION_STATUS = "ingestion_status.json"
METADATA_NAMES = ("metadata", "metadata.yaml")

EMPTY_HINT = ("On CodaBench this happens when the submitted zip contains a file named 'metadata' or "
              "'metadata.yaml' at its root (the platform then treats the zip as a program and passes "
              "no files on), or when the zip is empty. A result submission is a zip holding the 12 files "
              "{flag}_{size}.csv; a code submission is a zip holding model.py.")


@dataclass(frozen=True)
class Limits:
    """Caps that protect the scorer (also on CodaBench, where the platform has already unzipped).

    A prediction file larger than ``max_bytes`` (declared size in the zip, or size on disk) is refused
    unread; reading is also cut at that many bytes, so a zip bomb never expands beyond the cap.
    """

    bytes_per_value: int = 40  # '%.17g' needs at most 24 characters plus a comma
    slack_bytes: int = 4096
    max_members: int = 10_000  # entries in a zip
    max_problems_per_kind: int = 10

    def max_bytes(self, n: int, n_cols: int) -> int:
        return self.slack_bytes + (n + 1) * (n_cols + 1) * self.bytes_per_value


DEFAULT_LIMITS = Limits()


def csv_name(flag: str, size: int) -> str:
    return f"{flag}_{int(size)}.csv"


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------

def format_prediction_csv(scores: np.ndarray) -> bytes:
    """CSV bytes with header ``id,0,..,C-1`` and full float precision ('%.17g' round-trips float64)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (n, C), got shape {scores.shape}")
    n, c = scores.shape
    buf = io.StringIO()
    buf.write("id," + ",".join(str(i) for i in range(c)) + "\n")
    if n:
        fmt = "%d" + ",%.17g" * c
        np.savetxt(buf, np.column_stack([np.arange(n), scores]), fmt=fmt, delimiter=",")
    return buf.getvalue().encode("utf-8")


def write_submission(out: PathLike, predictions: Mapping[str, np.ndarray], size: int) -> Path:
    """Write a result submission: a ``.zip`` (files at its root) or a folder. Atomic for zips.

    ``predictions`` maps each flag to its (n, C) score array, row i = id i.
    """
    out = Path(out)
    files = {csv_name(flag, size): format_prediction_csv(arr) for flag, arr in predictions.items()}
    if out.suffix == ".zip":
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".partial")
        try:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for name, data in files.items():
                    zf.writestr(name, data)
            os.replace(tmp, out)
        finally:
            if tmp.exists():
                tmp.unlink()
    else:
        out.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            tmp = out / (name + ".partial")
            tmp.write_bytes(data)
            os.replace(tmp, out / name)
    return out


# ---------------------------------------------------------------------------------------------
# sources: a zip or a folder, seen as a list of relative posix paths
# ---------------------------------------------------------------------------------------------

@dataclass
class _Entry:
    name: str  # posix path relative to the submission root
    size: int
    symlink: bool = False


class _Source:
    label: str
    entries: List[_Entry]
    problems: List[Problem]

    def read(self, entry: _Entry, limit: int) -> bytes:
        raise NotImplementedError


def _unsafe(name: str) -> bool:
    p = PurePosixPath(name.replace("\\", "/"))
    return name.startswith(("/", "\\")) or ".." in p.parts or (len(name) > 1 and name[1] == ":")


class _ZipSource(_Source):
    def __init__(self, path: Path, limits: Limits):
        self.label = path.name
        self.entries, self.problems = [], []
        self._zf = zipfile.ZipFile(path)
        infos = self._zf.infolist()
        if len(infos) > limits.max_members:
            self.problems.append(Problem(f"the zip holds {len(infos)} entries; at most {limits.max_members} "
                                         f"are accepted", file=self.label))
            infos = []
        for info in infos:
            if info.is_dir():
                continue
            if _unsafe(info.filename):
                self.problems.append(Problem(f"the zip entry {info.filename!r} points outside the archive "
                                             f"(absolute path or '..'); rebuild the zip from the folder itself",
                                             file=self.label))
                continue
            mode = info.external_attr >> 16
            self.entries.append(_Entry(info.filename, info.file_size, symlink=stat.S_ISLNK(mode)))
        self._info = {i.filename: i for i in infos}

    def read(self, entry: _Entry, limit: int) -> bytes:
        info = self._info[entry.name]
        with self._zf.open(info) as fh:
            return fh.read(limit + 1)

    def close(self):
        self._zf.close()


class _DirSource(_Source):
    def __init__(self, path: Path):
        self.label = path.name or str(path)
        self.root = path
        self.entries, self.problems = [], []
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
            rel_dir = Path(dirpath).relative_to(path)
            for name in sorted(filenames) + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]:
                full = Path(dirpath) / name
                rel = (rel_dir / name).as_posix()
                st = full.lstat()
                self.entries.append(_Entry(rel, st.st_size, symlink=stat.S_ISLNK(st.st_mode)))
        self.entries.sort(key=lambda e: e.name)

    def read(self, entry: _Entry, limit: int) -> bytes:
        with open(self.root / entry.name, "rb") as fh:
            return fh.read(limit + 1)

    def close(self):
        pass


# ---------------------------------------------------------------------------------------------
# reading and validating
# ---------------------------------------------------------------------------------------------

@dataclass
class Submission:
    """A validated result submission."""

    size: int
    predictions: Dict[str, np.ndarray]  # flag -> (n, C) float64, row i = id i
    files: Dict[str, str]  # flag -> path inside the submission
    ignored: List[str] = field(default_factory=list)
    source: str = ""


class _Collector:
    """Collects problems, capping each kind per file so a broken file cannot flood the log."""

    def __init__(self, limit: int):
        self.limit = limit
        self.problems: List[Problem] = []
        self._counts: Dict[Tuple[str, str], int] = {}

    def add(self, kind: str, problem: Problem) -> None:
        key = (problem.file or "", kind)
        self._counts[key] = self._counts.get(key, 0) + 1
        if self._counts[key] <= self.limit:
            self.problems.append(problem)

    def finish(self) -> List[Problem]:
        out = list(self.problems)
        for (file, kind), count in self._counts.items():
            if count > self.limit:
                out.append(Problem(f"... and {count - self.limit} more {kind} problems in this file", file=file or None))
        return out


def parse_prediction_csv(data: bytes, *, name: str, n: int, n_cols: int, flag: str = "",
                         collector: Optional[_Collector] = None) -> Optional[np.ndarray]:
    """Parse one prediction CSV; return (n, C) scores ordered by id, or None after adding problems."""
    col = collector or _Collector(DEFAULT_LIMITS.max_problems_per_kind)
    before = sum(col._counts.values())
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col.add("encoding", Problem(f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                                    f"{exc.start}); save it as UTF-8 CSV", file=name, row=line))
        return None
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        col.add("empty", Problem("the file is empty; expected a header line 'id,0,1,...' and one row per "
                                 f"sample ({n} rows)", file=name))
        return None
    expected_header = ["id"] + [str(i) for i in range(n_cols)]
    header = [c.strip().strip('"') for c in lines[0].split(",")]
    if header != expected_header:
        shown = ",".join(expected_header) if n_cols <= 6 else f"id,0,1,...,{n_cols - 1}"
        what = f"{flag} has {n_cols} score columns" if flag else f"{n_cols} score columns are expected"
        hint = ""
        if header and header[0] == "":
            hint = " (pandas writes this header with df.rename_axis('id').to_csv())"
        elif len(header) != n_cols + 1:
            hint = f" ({what}, so {n_cols + 1} columns in all; found {len(header)})"
        found = ",".join(header) if len(header) <= 8 else ",".join(header[:6]) + ",...," + header[-1]
        col.add("header", Problem(f"wrong header: expected '{shown}', found '{found}'{hint}", file=name, row=1))
        return None
    body = lines[1:]
    if len(body) != n:
        if not body:
            col.add("rows", Problem(f"the file has a header but no rows; expected {n} rows", file=name))
            return None
        hint = ""
        if flag:
            other = [sp for sp, k in registry.get(flag).n_samples.items() if k == len(body)]
            if other:
                hint = f" — {len(body)} is the size of the {other[0]} split: predictions for the wrong split?"
        col.add("rows", Problem(f"expected {n} rows (one per sample of the split), found {len(body)}{hint}",
                                file=name))
        if len(body) > 2 * n + 10:
            return None
    width = n_cols + 1
    bad = [i for i, ln in enumerate(body) if ln.count(",") != n_cols]
    for i in bad:
        if not body[i].strip():
            col.add("blank line", Problem("blank line inside the data", file=name, row=i + 2))
        else:
            col.add("column count", Problem(f"expected {width} values (id and {n_cols} scores), found "
                                            f"{body[i].count(',') + 1}", file=name, row=i + 2))
    if bad:
        return None
    # fast path: one split over the whole body; every row has exactly `width` cells
    cells = ",".join(body).split(",")
    id_cells = cells[0::width]
    del cells[0::width]  # cells[i * n_cols + j] is row i, score column j
    ids = _parse_ids(id_cells, name, col)
    vals = _parse_values(cells, len(body), name, n_cols, col)
    if ids is None or vals is None:
        return None
    finite = np.isfinite(vals)
    if not finite.all():
        for i, j in zip(*np.nonzero(~finite)):
            col.add("nan/inf", Problem(f"expected a number in [0, 1], found {cells[i * n_cols + j].strip()!r} "
                                       "(NaN and infinity are not allowed)", file=name, row=int(i) + 2, column=str(j)))
    out_of_range = finite & ((vals < 0.0) | (vals > 1.0))
    if out_of_range.any():
        for i, j in zip(*np.nonzero(out_of_range)):
            col.add("range", Problem(f"expected a number in [0, 1], found {cells[i * n_cols + j].strip()!r} "
                                     "(submit probabilities, not logits)", file=name, row=int(i) + 2, column=str(j)))
    in_range = (ids >= 0) & (ids < n)
    for i in np.nonzero(~in_range)[0]:
        col.add("id", Problem(f"id {ids[i]} is out of range; ids run from 0 to {n - 1}", file=name,
                              row=int(i) + 2, column="id"))
    counts = np.bincount(ids[in_range], minlength=n)
    dup = np.nonzero(counts > 1)[0]
    for d in dup:
        where = np.nonzero(ids == d)[0] + 2
        col.add("duplicate id", Problem(f"id {d} appears {counts[d]} times (lines {', '.join(map(str, where[:5]))})",
                                        file=name, column="id"))
    missing = np.nonzero(counts == 0)[0]
    if missing.size:
        listed = ", ".join(map(str, missing[:20])) + (", ..." if missing.size > 20 else "")
        col.add("missing id", Problem(f"{missing.size} id(s) have no row: {listed}", file=name, column="id"))
    if sum(col._counts.values()) > before:
        return None
    out = np.empty((n, n_cols), dtype=np.float64)
    out[ids] = vals
    return out


def _parse_ids(id_cells: List[str], name: str, col: _Collector) -> Optional[np.ndarray]:
    try:
        return np.fromiter(map(int, id_cells), dtype=np.int64, count=len(id_cells))
    except (ValueError, OverflowError):
        pass
    for i, v in enumerate(id_cells):
        try:
            int(v)
        except (ValueError, OverflowError):
            col.add("id", Problem(f"expected an integer id, found {v.strip()!r}", file=name, row=i + 2, column="id"))
    return None


def _parse_values(cells: List[str], n_rows: int, name: str, n_cols: int, col: _Collector) -> Optional[np.ndarray]:
    """Python's float() on every cell (the documented rule), fast when all parse."""
    try:
        return np.fromiter(map(float, cells), dtype=np.float64, count=len(cells)).reshape(n_rows, n_cols)
    except ValueError:
        pass
    for k, v in enumerate(cells):
        try:
            float(v)
        except ValueError:
            col.add("number", Problem(f"expected a number in [0, 1], found {v.strip()!r}", file=name,
                                      row=k // n_cols + 2, column=str(k % n_cols)))
    return None


def read_ingestion_status(folder: PathLike) -> Optional[dict]:
    """The ingestion program's status file in a prediction folder, or None."""
    path = Path(folder) / INGESTION_STATUS
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return {"status": "failed", "message": f"the ingestion status file is unreadable ({exc})"}


def _open_source(path: Path, limits: Limits) -> _Source:
    if path.is_dir():
        return _DirSource(path)
    if not path.exists():
        raise SubmissionError([Problem(f"{path} does not exist")])
    if not zipfile.is_zipfile(path):
        raise SubmissionError([Problem("not a zip file; submit a .zip holding the 12 CSV files "
                                       "(or a folder with them to `big score`)", file=path.name)])
    try:
        return _ZipSource(path, limits)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SubmissionError([Problem(f"the zip cannot be read ({exc})", file=path.name)]) from None


def read_submission(path: PathLike, *, split: str, expected_n: Optional[Mapping[str, int]] = None,
                    resolutions: Sequence[int] = registry.SIZES, limits: Limits = DEFAULT_LIMITS,
                    log: Optional[Callable[[str], None]] = None) -> Submission:
    """Read and validate a result submission (zip or folder). Raises :class:`SubmissionError`
    listing every problem found; ``expected_n`` (flag -> rows) defaults to the registry's split sizes.
    """
    path = Path(path)
    is_zip = not path.is_dir()
    if not is_zip:
        status = read_ingestion_status(path)
        if status and status.get("status") != "ok":
            where = ", ".join(f"{k} {status[k]}" for k in ("dataset", "batch") if status.get(k) is not None)
            msg = status.get("message") or "no message"
            raise SubmissionError([Problem(f"your code submission failed during ingestion "
                                           f"({status.get('status')}{'; ' + where if where else ''}): {msg}")],
                                  summary=f"code submission {status.get('status')}: {msg.splitlines()[0] if msg else ''}")
    src = _open_source(path, limits)
    try:
        return _read(src, is_zip=is_zip, split=split, expected_n=expected_n, resolutions=resolutions,
                     limits=limits, log=log)
    finally:
        src.close()


def _read(src: _Source, *, is_zip: bool, split: str, expected_n, resolutions, limits: Limits, log) -> Submission:
    problems = list(src.problems)
    flags = registry.flags()
    if expected_n is None:
        expected_n = {f: registry.get(f).n_samples[split] for f in flags}
    names = [e.name for e in src.entries]
    if is_zip:
        present = [m for m in METADATA_NAMES if m in names]
        if present:
            raise SubmissionError([Problem(f"the zip holds {present[0]!r} at its root. CodaBench treats such a zip as a "
                                           "program and passes none of its files to scoring; remove the file. A result "
                                           "submission holds only the {flag}_{size}.csv files", file=src.label)])
    # where do the predictions live: the root or one wrapping folder
    csvs = [e for e in src.entries if e.name.endswith(".csv") and not e.name.startswith("__MACOSX/")]
    tops = {e.name.split("/", 1)[0] for e in csvs if "/" in e.name}
    root_csvs = [e for e in csvs if "/" not in e.name]
    prefix = ""
    if not root_csvs and len(tops) == 1:
        prefix = next(iter(tops)) + "/"
    preds: Dict[Tuple[str, int], List[_Entry]] = {}
    ignored: List[str] = []
    for e in src.entries:
        if e.name.startswith("__MACOSX/") or e.name in PLATFORM_FILES:
            continue
        inside = e.name.startswith(prefix) if prefix else True
        rel = e.name[len(prefix):] if inside else e.name
        m = CSV_RE.match(rel) if inside and "/" not in rel else None
        if e.name.endswith(".csv") and not m:
            if "/" in rel or not inside:
                problems.append(Problem(f"prediction file in a nested folder: {e.name!r}. Put the 12 CSV files at the "
                                        "zip root or inside a single folder", file=src.label))
            else:
                problems.append(Problem(f"unexpected file name {rel!r}: prediction files are named "
                                        "{flag}_{size}.csv, e.g. pathmnist_28.csv", file=src.label))
            continue
        if not m:
            ignored.append(e.name)
            continue
        flag, size = m.group("flag"), int(m.group("size"))
        if flag not in flags:
            problems.append(Problem(f"unknown dataset {flag!r} in file name {rel!r}; expected one of "
                                    f"{', '.join(flags)}", file=src.label))
            continue
        if size not in registry.SIZES:
            problems.append(Problem(f"{rel}: {size} is not a MedMNIST+ size (28, 64, 128, 224)", file=src.label))
            continue
        preds.setdefault((flag, size), []).append(e)
    if not preds and not problems:
        if is_zip:
            raise SubmissionError([Problem("the zip holds no prediction files ({flag}_{size}.csv)" +
                                           (f"; it holds: {', '.join(ignored[:10])}" if ignored else ""), file=src.label)])
        raise SubmissionError([Problem("no prediction files arrived (the prediction folder is empty" +
                                       (f" but for {', '.join(ignored[:10])}" if ignored else "") + "). " + EMPTY_HINT)],
                              summary="no prediction files found")
    sizes = sorted({s for _, s in preds})
    if len(sizes) > 1:
        by_size = {s: sorted(f for f, s2 in preds if s2 == s) for s in sizes}
        detail = "; ".join(f"size {s}: {', '.join(v[:4])}{', ...' if len(v) > 4 else ''} ({len(v)} files)"
                           for s, v in by_size.items())
        problems.append(Problem(f"prediction files for more than one size ({detail}). All 12 files must be for one "
                                "size; submit one zip per resolution", file=src.label))
    size = sizes[0] if sizes else 0
    if len(sizes) == 1 and size not in resolutions:
        allowed = ", ".join(map(str, resolutions))
        problems.append(Problem(f"this competition accepts resolution(s) {allowed}; the submission is for {size}",
                                file=src.label))
    for (flag, s), entries in preds.items():
        if len(entries) > 1:
            problems.append(Problem(f"{csv_name(flag, s)} appears {len(entries)} times "
                                    f"({', '.join(e.name for e in entries)}); keep one copy", file=src.label))
    if len(sizes) == 1:
        missing = [csv_name(f, size) for f in flags if (f, size) not in preds]
        if missing:
            problems.append(Problem(f"missing prediction file(s): {', '.join(missing)} (all 12 datasets are required)",
                                    file=src.label))
    if log and ignored:
        log(f"ignored {len(ignored)} file(s) that are not predictions: {', '.join(ignored[:20])}"
            + (" ..." if len(ignored) > 20 else ""))
    if problems and len(sizes) != 1:
        raise SubmissionError(problems)
    collector = _Collector(limits.max_problems_per_kind)
    out: Dict[str, np.ndarray] = {}
    files: Dict[str, str] = {}
    for flag in flags:  # check every file present, even when others are missing
        if (flag, size) not in preds:
            continue
        entry = preds[(flag, size)][0]
        ds = registry.get(flag)
        n = int(expected_n[flag])
        cap = limits.max_bytes(n, ds.n_labels)
        rel = entry.name
        if entry.symlink:
            collector.add("link", Problem("symbolic links are not accepted", file=rel))
            continue
        if entry.size > cap:
            collector.add("size", Problem(f"the file is {entry.size:,} bytes; at most {cap:,} bytes are accepted for "
                                          f"{n} rows x {ds.n_labels} scores", file=rel))
            continue
        try:
            data = src.read(entry, cap)
        except (RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error, OSError) as exc:
            # encrypted members, unsupported compression, corrupt data, unreadable files
            collector.add("unreadable", Problem(f"the file cannot be read ({exc}); rebuild the zip with plain "
                                                "deflate compression and no password", file=rel))
            continue
        if len(data) > cap:
            collector.add("size", Problem(f"the file exceeds {cap:,} bytes for {n} rows x {ds.n_labels} scores",
                                          file=rel))
            continue
        arr = parse_prediction_csv(data, name=rel, n=n, n_cols=ds.n_labels, flag=flag, collector=collector)
        if arr is not None:
            out[flag] = arr
            files[flag] = rel
    found = problems + collector.finish()
    if found:
        raise SubmissionError(found)
    return Submission(size=size, predictions=out, files=files, ignored=ignored, source=src.label)

