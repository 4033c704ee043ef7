r"""The result-submission format: write it, read it, and validate it for participants.

Format (documented in the README and on the submission page; keep them in sync):

* a zip (or, on CodaBench, the folder the platform unzipped it into) holding ``{flag}_{size}.csv``
  for all 12 flags, one size for all (28, 64, 128 or 224), at the root or in one wrapping folder;
  other files are ignored and listed;
* each CSV: UTF-8 (BOM and CRLF accepted), header ``id,0,1,...,C-1``, one row per sample of the
  split, ids 0..n-1 each exactly once in any order (id i = row i of ``{split}_images``);
* values: ``[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?`` within [0, 1], ids ``[0-9]+``, each
  with optional ASCII spaces around it (:mod:`big.csvnumbers`; one file: :mod:`big.csvfile`).

What a zip or folder is (result, code, neither) is decided by :func:`big.kind.submission_kind`,
the rule the ingestion program follows too. Everything read here comes from the participant: names,
sizes, the bytes of each file and ``ingestion_status.json`` are capped and checked before use.

Only numpy and the standard library are used: this module is on the scoring path.
"""
from __future__ import annotations

import io
import json
import os
import re
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import registry
from .csvfile import Collector, parse_prediction_csv  # noqa: F401  (parse_prediction_csv: public here)
from .errors import Problem, SubmissionError
from .fsutil import walk_tree
from .kind import CODE, NEITHER, REZIP, posix_names, submission_kind

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
    max_members: int = 10_000  # entries in a zip, or files in a folder
    max_problems_per_kind: int = 10
    max_status_bytes: int = 1 << 20  # ingestion_status.json (the ingestion program writes a few kB)

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
    name: str  # the path as stored (zip member name or relative folder path); posix and printable after _finish
    size: int
    raw: object = None  # what the source needs to read it (ZipInfo, or the path relative to the folder)
    symlink: bool = False
    regular: bool = True
    stored: str = ""  # the name as stored, for big.kind (set by _finish)


def _printable(name: str) -> str:
    """A name safe to print and to write as UTF-8: control characters, and bytes that were not UTF-8
    (surrogate escapes from a folder listing), become escapes."""
    if name.isprintable() and name.encode("utf-8", "surrogatepass").decode("utf-8", "ignore") == name:
        return name
    return "".join(c if c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF else repr(c)[1:-1] for c in name)


class _Source:
    label: str
    entries: List[_Entry]
    problems: List[Problem]

    def read(self, entry: _Entry, limit: int) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        pass


def _unsafe(name: str) -> bool:
    p = PurePosixPath(name.replace("\\", "/"))
    return name.startswith(("/", "\\")) or ".." in p.parts or (len(name) > 1 and name[1] == ":")


def _finish(entries: List[_Entry]) -> bool:
    """Give each entry its posix name (:func:`big.kind.posix_names`, decided on the names as stored)
    made printable; True when backslashes were read as separators."""
    mapping = posix_names(e.name for e in entries)
    changed = False
    for e in entries:
        e.stored = e.name
        changed |= mapping[e.name] != e.name
        e.name = _printable(mapping[e.name])
    return changed


class _ZipSource(_Source):
    def __init__(self, path: Path, limits: Limits):
        self.label = _printable(path.name)
        self.entries, self.problems = [], []
        self._zf = zipfile.ZipFile(path)
        infos = self._zf.infolist()
        if len(infos) > limits.max_members:
            self.problems.append(Problem(f"the zip holds {len(infos)} entries; at most {limits.max_members} "
                                         f"are accepted", file=self.label))
            infos = []
        for info in infos:
            if not info.filename or info.filename.endswith("/"):  # is_dir() fails on an empty name
                continue
            if _unsafe(info.filename):
                self.problems.append(Problem(f"the zip entry {_printable(info.filename)!r} points outside the archive "
                                             f"(absolute path or '..'); rebuild the zip from the folder itself",
                                             file=self.label))
                continue
            mode = info.external_attr >> 16
            self.entries.append(_Entry(info.filename, info.file_size, raw=info, symlink=stat.S_ISLNK(mode)))
        self.backslashes = _finish(self.entries)
        self.entries = [e for e in self.entries if not e.name.endswith("/")]

    def read(self, entry: _Entry, limit: int) -> bytes:
        with self._zf.open(entry.raw) as fh:
            return fh.read(limit + 1)

    def close(self) -> None:
        self._zf.close()


class _DirSource(_Source):
    def __init__(self, path: Path, limits: Limits):
        self.label = _printable(path.name or str(path))
        self.root = path
        self.entries, self.problems = [], []
        seen = 0
        for rel, st in walk_tree(path):  # any depth; stops listing past the cap, so memory stays small
            seen += 1
            if seen > limits.max_members:  # files and folders
                self.problems.append(Problem(f"the submission holds more than {limits.max_members} files "
                                             f"and folders; at most {limits.max_members} are accepted",
                                             file=self.label))
                self.entries = []
                break
            if stat.S_ISDIR(st.st_mode):
                continue
            self.entries.append(_Entry(rel, st.st_size, raw=rel, symlink=stat.S_ISLNK(st.st_mode),
                                       regular=stat.S_ISREG(st.st_mode)))
        self.backslashes = _finish(self.entries)
        self.entries.sort(key=lambda e: e.name)

    def read(self, entry: _Entry, limit: int) -> bytes:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(self.root / entry.raw, flags)
        with open(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise OSError("not a regular file")
            return fh.read(limit + 1)


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


#: what `big validate` and `big score` tell the owner of a code submission
CODE_CHECK = ("check a code submission by running it locally: `big result-zip --model DIR/model.py --data-root "
              "DATA --split val --out result.zip` writes the result zip the platform would score (then `big "
              "validate result.zip --split val`), and `big ingest INPUT_DATA OUTPUT DIR` runs it exactly as the "
              "ingestion program does")
RESULT_CHECK = "check the zip locally with `big validate SUBMISSION.zip --split val|test` before submitting"

_STATUS_KEYS = {"status": str, "message": str, "dataset": (str, type(None)), "batch": (int, type(None)),
                "track": str, "submission": (str, type(None))}
_MAX_SHOWN_MESSAGE = 16_000


def _status_problem(reason: str) -> SubmissionError:
    return SubmissionError([Problem(
        f"{INGESTION_STATUS} is not a status written by the ingestion program ({reason}). A result submission "
        f"must not contain a file of that name: remove it from the zip")], kind=None)


def read_ingestion_status(folder: PathLike, *, limits: Limits = DEFAULT_LIMITS) -> Optional[dict]:
    """The ingestion program's status file in a prediction folder, checked against its schema, or
    None when there is none. Raises :class:`SubmissionError` when the file is not such a status
    (too large, not JSON, not an object, wrong types). The file may come from a participant (a
    result zip that holds one), so it is read capped and never trusted beyond its schema.
    """
    path = Path(folder) / INGESTION_STATUS
    try:
        st = path.lstat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise _status_problem("not a regular file")
    if st.st_size > limits.max_status_bytes:
        raise _status_problem(f"{st.st_size:,} bytes; a status is at most {limits.max_status_bytes:,}")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        with open(fd, "rb") as fh:
            data = fh.read(limits.max_status_bytes + 1)
    except OSError as exc:
        raise _status_problem(f"unreadable: {exc.strerror or exc}") from None
    if len(data) > limits.max_status_bytes:
        raise _status_problem(f"more than {limits.max_status_bytes:,} bytes")
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _status_problem(f"not UTF-8 JSON: {type(exc).__name__}") from None
    if not isinstance(body, dict):
        raise _status_problem(f"a JSON {type(body).__name__}, not an object")
    if not isinstance(body.get("status"), str):
        raise _status_problem("no string 'status'")
    for key, types in _STATUS_KEYS.items():
        value = body.get(key)
        if key in body and (not isinstance(value, types) or isinstance(value, bool)):
            raise _status_problem(f"'{key}' is a JSON {type(value).__name__}")
    status = body["status"]
    if not (0 < len(status) <= 40 and status.isascii() and status.isprintable()):
        raise _status_problem("'status' is not a short word")
    dataset = body.get("dataset")
    if dataset is not None and dataset not in registry.flags():
        raise _status_problem("'dataset' is not a dataset flag")
    batch = body.get("batch")
    if batch is not None and not 0 <= batch < 2 ** 53:
        raise _status_problem("'batch' is out of range")
    message = body.get("message") or ""
    if len(message) > _MAX_SHOWN_MESSAGE:
        message = message[:_MAX_SHOWN_MESSAGE] + f"\n... ({len(message) - _MAX_SHOWN_MESSAGE:,} more characters)"
    message = "".join(c if c.isprintable() or c in "\n\t" else repr(c)[1:-1] for c in message)
    submission = body.get("submission")
    return {"status": status, "message": message, "dataset": dataset, "batch": batch,
            "track": body.get("track"), "submission": submission if submission in ("code", "invalid") else None}


def _open_source(path: Path, limits: Limits) -> _Source:
    if path.is_dir():
        return _DirSource(path, limits)
    label = _printable(path.name)
    if not path.exists():
        raise SubmissionError([Problem(f"{_printable(str(path))} does not exist")])
    if not path.is_file() or not zipfile.is_zipfile(path):
        raise SubmissionError([Problem("not a zip file; submit a .zip holding the 12 CSV files "
                                       "(or a folder with them to `big score`)", file=label)])
    declared = _declared_entries(path)
    if declared is not None and declared > limits.max_members:  # refused before zipfile lists them all
        raise SubmissionError([Problem(f"the zip holds {declared:,} entries; at most {limits.max_members} are accepted",
                                       file=label)])
    try:
        return _ZipSource(path, limits)
    except UnicodeDecodeError as exc:
        raise SubmissionError([Problem(
            f"a file name in the zip is marked as UTF-8 but is not UTF-8 ({_show_bytes(exc.object)}); make the zip "
            "again with a standard tool, e.g. `python -m zipfile -c sub.zip FILES...`", file=label)]) from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, struct.error,
            NotImplementedError, OverflowError, IndexError) as exc:
        raise SubmissionError([Problem(f"the zip cannot be read ({_printable(str(exc))[:300]})", file=label)]) from None


def _declared_entries(path: Path) -> Optional[int]:
    """The entry count the zip's end record declares (zipfile's own reader of it), or None."""
    try:
        with open(path, "rb") as fh:
            rec = zipfile._EndRecData(fh)  # type: ignore[attr-defined]
        return int(rec[zipfile._ECD_ENTRIES_TOTAL]) if rec else None  # type: ignore[attr-defined]
    except (AttributeError, IndexError, OSError, ValueError, struct.error, TypeError):
        return None


def _show_bytes(raw: object) -> str:
    if isinstance(raw, (bytes, bytearray)):
        return repr(bytes(raw[:80]))
    return "?"


def read_submission(path: PathLike, *, split: str, expected_n: Optional[Mapping[str, int]] = None,
                    resolutions: Sequence[int] = registry.SIZES, limits: Limits = DEFAULT_LIMITS,
                    log: Optional[Callable[[str], None]] = None) -> Submission:
    """Read and validate a result submission (zip or folder). Raises :class:`SubmissionError`
    listing every problem found; ``expected_n`` (flag -> rows) defaults to the registry's split sizes.
    """
    path = Path(path)
    is_zip = not path.is_dir()
    if not is_zip:
        status = read_ingestion_status(path, limits=limits)
        if status and status["status"] != "ok":
            msg = status["message"] or "no message"
            if status.get("submission") == "invalid":  # neither kind: the ingestion program ran nothing
                raise SubmissionError([Problem(f"the ingestion program could not run your submission: {msg}")],
                                      summary=f"submission not run: {msg.splitlines()[0]}")
            where = ", ".join(f"{k} {status[k]}" for k in ("dataset", "batch") if status.get(k) is not None)
            raise SubmissionError([Problem(f"your code submission failed during ingestion "
                                           f"({status['status']}{'; ' + where if where else ''}): {msg}")],
                                  summary=f"code submission {status['status']}: {msg.splitlines()[0]}",
                                  kind=CODE)
    src = _open_source(path, limits)
    try:
        return _read(src, is_zip=is_zip, split=split, expected_n=expected_n, resolutions=resolutions,
                     limits=limits, log=log)
    finally:
        src.close()


def _not_a_result(src: _Source, k, is_zip: bool, csv_names: List[str], flags: List[str]) -> SubmissionError:
    """The error for a submission that :func:`big.kind.submission_kind` does not call a result."""
    if k.kind == CODE:
        have = [n for n in csv_names if CSV_RE.match(n.rsplit("/", 1)[-1])]
        extra = ""
        if have:
            extra = (f" It also holds {len(have)} prediction file(s), not all twelve of one size, so they do not "
                     "make it a result submission (with all twelve, model.py would be ignored).")
        if is_zip:
            msg = (f"this is a code submission ({k.model}); `big validate` and `big score` check result submissions "
                   f"(the 12 {{flag}}_{{size}}.csv files).{extra} To {CODE_CHECK}")
        else:
            msg = (f"a code submission ({k.model}) arrived, but no predictions: the ingestion program did not run or "
                   f"stopped without writing its status.{extra} To {CODE_CHECK}")
        return SubmissionError([Problem(msg, file=src.label)], kind=CODE,
                               summary="a code submission, not a result submission")
    if is_zip:
        return SubmissionError([Problem(k.reason, file=src.label)],
                               summary="neither a result submission nor a code submission")
    return SubmissionError([Problem(f"no prediction files arrived ({k.reason}). {EMPTY_HINT}")],
                           summary="no prediction files found")


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
    k = submission_kind(e.stored for e in src.entries if is_zip or e.name not in PLATFORM_FILES)
    k = replace(k, reason=_printable(k.reason), folder=_printable(k.folder),
                model=_printable(k.model) if k.model else None)
    content = names if is_zip else [n for n in names if n not in PLATFORM_FILES]
    if k.kind != "result" and not problems:
        raise _not_a_result(src, k, is_zip, [n for n in content if n.endswith(".csv")], flags)
    if k.kind == CODE or k.kind == NEITHER:  # with problems found already (e.g. entries outside the archive)
        raise SubmissionError(problems, kind=k.kind if k.kind == CODE else None)
    if log and k.model:
        log(f"{k.model} is ignored: all twelve prediction files are present, so this is a result submission")
    if log and src.backslashes:
        log("the zip writes '\\' between folder names (a Windows zip); they are read as folders")
    # where do the predictions live: the root or one wrapping folder
    csvs = [e for e in src.entries if e.name.endswith(".csv") and not e.name.startswith("__MACOSX/")]
    prefix = k.folder
    if not k.complete:
        tops = {e.name.split("/", 1)[0] for e in csvs if "/" in e.name}
        root_csvs = [e for e in csvs if "/" not in e.name]
        prefix = next(iter(tops)) + "/" if not root_csvs and len(tops) == 1 else ""
    preds: Dict[Tuple[str, int], List[_Entry]] = {}
    ignored: List[str] = []
    for e in src.entries:
        if e.name.startswith("__MACOSX/") or (not is_zip and e.name in PLATFORM_FILES):
            continue
        inside = e.name.startswith(prefix) if prefix else True
        rel = e.name[len(prefix):] if inside else e.name
        m = CSV_RE.match(rel) if inside and "/" not in rel else None
        if e.name.endswith(".csv") and not m:
            if "\\" in e.name:
                problems.append(Problem(f"the file name {e.name!r} holds a backslash: the zip mixes '\\' and '/' "
                                        f"between folder names; {REZIP}", file=src.label))
            elif "/" in rel or not inside:
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
        raise _not_a_result(src, k, is_zip, [], flags) if k.kind != "result" else \
            SubmissionError([Problem("no prediction files ({flag}_{size}.csv) were found" +
                                     (f"; the submission holds: {', '.join(ignored[:10])}" if ignored else ""),
                                     file=src.label)])
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
        raise SubmissionError(problems, kind="result")
    collector = Collector(limits.max_problems_per_kind)
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
        if not entry.regular:
            collector.add("link", Problem("not a regular file", file=rel))
            continue
        if entry.size > cap:
            collector.add("size", Problem(f"the file is {entry.size:,} bytes; at most {cap:,} bytes are accepted for "
                                          f"{n} rows x {ds.n_labels} scores", file=rel))
            continue
        try:
            data = src.read(entry, cap)
        except (RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError,
                UnicodeDecodeError, struct.error, OverflowError) as exc:
            # encrypted members, unsupported compression, corrupt data, unreadable files
            collector.add("unreadable", Problem(f"the file cannot be read ({_printable(str(exc))[:200]}); rebuild the "
                                                "zip with plain deflate compression and no password", file=rel))
            continue
        if len(data) > cap:
            collector.add("size", Problem(f"the file exceeds {cap:,} bytes for {n} rows x {ds.n_labels} scores",
                                          file=rel))
            continue
        arr = parse_prediction_csv(data, name=rel, n=n, n_cols=ds.n_labels, flag=flag, collector=collector)
        del data
        if arr is not None:
            out[flag] = arr
            files[flag] = rel
    found = problems + collector.finish()
    if found:
        raise SubmissionError(found, kind="result")
    if set(out) != set(flags):  # every file was parsed or a problem was added; never score a partial set
        raise SubmissionError([Problem(f"no predictions for {', '.join(f for f in flags if f not in out)}; please "
                                       "report this submission to the organizers")], kind="result")
    return Submission(size=size, predictions=out, files=files, ignored=ignored, source=src.label)
