"""What a code submission leaves in the output, decided by the supervisor after the model's whole
process tree is gone: the 12 prediction CSVs, read back and checked with the scorer's own reader,
and ``ingestion_status.json`` (written last, by :func:`.program.write_status`); nothing else.

The output is the prediction job's ``/app/output``: it reaches the scorer as ``res/``. Model code can
write anything there while it runs (extra CSVs, a status file of its own, links, folders, the
platform's reserved ``metadata``). :func:`clean_output` removes every entry that was not there
before the model started (the platform's copy of the submission is removed separately), and
anything not a regular file at the names the ingestion program writes. Entries that were there
before the run are left alone, so a local run into a non-empty folder loses nothing of its own.
"""
from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Set, Tuple

from .. import registry
from ..errors import Problem, ReferenceDataError, SubmissionError
from ..fsutil import remove_tree, walk_tree
from ..submission import INGESTION_STATUS, csv_name, read_submission
from .images import check_images, locate_images

#: CodaBench fails a prediction job whose output holds this name (codabench.md §2.5)
RESERVED = "metadata"
#: generous per-value bound for reading a staged CSV into memory; the scorer's reader applies its own cap
_BYTES_PER_VALUE = 64


def snapshot(root: Path) -> Set[str]:
    """Every entry under ``root`` (files, folders, links; links not followed), as relative posix paths."""
    out: Set[str] = set()
    if not root.is_dir():
        return out
    out.update(rel for rel, _ in walk_tree(root))
    return out


def _remove(path: Path) -> None:
    """Delete a file, link or folder of any depth (links are never followed; read-only folders too)."""
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        return
    remove_tree(path)


def clean_output(output: Path, before: Set[str], ours: Iterable[str]) -> Tuple[List[str], List[str]]:
    """Remove from ``output`` every entry not in ``before``, and any non-regular file at one of the
    names in ``ours`` (regular files there stay: they are replaced atomically next). Returns (removed,
    the entries that could not be removed, with the reason)."""
    ours = set(ours)
    removed: List[str] = []
    failed: List[str] = []

    def walk(folder: Path, prefix: str) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            rel = prefix + entry.name
            path = Path(entry.path)
            is_link = entry.is_symlink()
            is_dir = entry.is_dir(follow_symlinks=False)
            regular = entry.is_file(follow_symlinks=False)
            keep = (rel in ours and regular) or (rel in before and rel not in ours and rel != RESERVED)
            if keep:
                if is_dir and not is_link:
                    walk(path, rel + "/")
                continue
            try:
                _remove(path)
            except OSError as exc:
                failed.append(f"{rel} ({exc.strerror or exc})")
                continue
            removed.append(rel + ("/" if is_dir and not is_link else ""))

    walk(output, "")
    return removed, failed


def _read_regular(path: Path, limit: int) -> Tuple[Optional[bytes], str]:
    """The bytes of a regular file (never following a link, never blocking on a FIFO), or why not."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None, "missing"
    except OSError as exc:
        kind = "a symbolic link" if path.is_symlink() else "not readable"
        return None, f"{kind} ({exc.strerror or exc})"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, "not a regular file"
        if st.st_size > limit:
            return None, f"{st.st_size:,} bytes, far more than its rows can take"
        chunks, total = [], 0
        while total <= limit:
            block = os.read(fd, 1 << 20)
            if not block:
                break
            chunks.append(block)
            total += len(block)
        if total > limit:
            return None, f"more than {limit:,} bytes"
        return b"".join(chunks), ""
    finally:
        os.close(fd)


def expected_counts(dirs: List[Path], size: int) -> Dict[str, int]:
    """Rows of every dataset at ``size``, from the headers of the images the model was given."""
    images, problems = locate_images(dirs, size)
    if problems:
        raise ReferenceDataError(problems)
    return {flag: check_images(path, flag, size) for flag, path in images.items()}


def read_back(staged: Path, size: int, counts: Mapping[str, int], split: str, check_dir: Path) -> Dict[str, Path]:
    """Copy the 12 staged CSVs (regular files only, size-capped) into ``check_dir`` and read them with
    the scorer's own reader against ``counts``. Returns {file name: checked copy}, the bytes to publish;
    raises :class:`SubmissionError` with every problem found."""
    check_dir.mkdir(parents=True, exist_ok=True)
    problems: List[Problem] = []
    files: Dict[str, Path] = {}
    for flag in registry.flags():
        name = csv_name(flag, size)
        limit = 4096 + (counts[flag] + 1) * (registry.get(flag).n_labels + 1) * _BYTES_PER_VALUE
        data, why = _read_regular(staged / name, limit)
        if data is None:
            problems.append(Problem(f"the prediction file is {why}", file=name))
            continue
        (check_dir / name).write_bytes(data)
        files[name] = check_dir / name
    if problems:
        raise SubmissionError(problems)
    read_submission(check_dir, split=split, expected_n=dict(counts), resolutions=(size,))
    return files


def publish(files: Mapping[str, Path], output: Path) -> None:
    """Place the checked CSVs into the output, each atomically."""
    for name, src in files.items():
        tmp = output / f".{name}.partial"
        shutil.copyfile(src, tmp)
        os.replace(tmp, output / name)


def our_names(size: Optional[int]) -> List[str]:
    """The names the ingestion program writes into the output."""
    return [INGESTION_STATUS] + ([csv_name(f, size) for f in registry.flags()] if size else [])
