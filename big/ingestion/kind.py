"""What kind of submission a folder holds (code, result or invalid), and the platform's copy of it."""
from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from ..fsutil import walk_tree
from ..kind import CODE, RESULT, submission_kind
from ..submission import INGESTION_STATUS, METADATA_NAMES
from .config import PathLike

@dataclass
class Classified:
    kind: str  # "code", "result" or "invalid"
    model_path: Optional[Path] = None
    message: str = ""
    ignored_model: Optional[str] = None  # a model.py beside a complete result submission
    folder: str = ""  # result submissions: "" or "name/", where the prediction files are


def folder_files(root: Path) -> List[str]:
    """Every file under ``root`` as a posix path relative to it (links are not followed: a link to a
    folder is listed as a file), at any depth."""
    return sorted(rel for rel, st in walk_tree(root) if not stat.S_ISDIR(st.st_mode))


def classify_submission(program_dir: PathLike) -> Classified:
    """Code, result or invalid (with the participant-facing reason), by :func:`big.kind.submission_kind`."""
    root = Path(program_dir)
    if not root.is_dir():
        return Classified("invalid", message=f"the submission folder {root} does not exist; nothing was submitted")
    present = [m for m in METADATA_NAMES if (root / m).exists()]
    if present:
        return Classified("invalid", message=(
            f"the zip holds {present[0]!r} at its root. CodaBench then treats the zip as a program of its own "
            "instead of passing it to the ingestion program (and never copies its files to scoring). Remove "
            f"{present[0]!r}: a code submission holds model.py (+ weights), a result submission the "
            "{flag}_{size}.csv files"))
    k = submission_kind(folder_files(root))
    if k.kind == CODE:
        return Classified("code", model_path=root / k.model)
    if k.kind == RESULT:
        return Classified("result", ignored_model=k.model, folder=k.folder)
    return Classified("invalid", message=k.reason)


def remove_copied_submission(program_dir: PathLike, output_dir: PathLike) -> List[str]:
    """Delete from the output the files CodaBench copied there from the submission (same relative
    paths; weights would bloat the prediction upload). Returns the removed paths."""
    program, output = Path(program_dir), Path(output_dir)
    removed: List[str] = []
    if not program.is_dir() or not output.is_dir() or program.resolve() == output.resolve():
        return removed
    entries = sorted(walk_tree(program), key=lambda e: Path(e[0]))  # listed once, at any depth
    for rel, st in entries:
        if stat.S_ISDIR(st.st_mode) or rel == INGESTION_STATUS:
            continue
        dst = output / rel
        if dst.is_file() or dst.is_symlink():
            dst.unlink()
            removed.append(rel)
    # prune folders that the copy created and that are now empty (deepest first)
    for rel in sorted((rel for rel, st in entries if stat.S_ISDIR(st.st_mode)), key=lambda r: -r.count("/")):
        dst = output / rel
        if dst.is_dir() and not dst.is_symlink() and not any(dst.iterdir()):
            dst.rmdir()
    return removed


def drop_participant_status(output_dir: PathLike, folder: str = "") -> List[str]:
    """Result submissions: delete an ``ingestion_status.json`` that came from the participant's zip
    (at the output's root, or beside the predictions in ``folder``). Only the ingestion program writes
    that file; the scorer would otherwise take a participant's file for the outcome of a code run.
    Returns the removed paths."""
    out = Path(output_dir)
    removed: List[str] = []
    folders = [""] + ([folder] if folder and not (out / folder.rstrip("/")).is_symlink() else [])
    for rel in (f + INGESTION_STATUS for f in folders):
        path = out / rel
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            import shutil

            shutil.rmtree(path)
        else:
            continue
        removed.append(rel)
    return removed
