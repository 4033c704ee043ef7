"""What kind of submission a folder holds (code, result or invalid), and the platform's copy of it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from ..submission import INGESTION_STATUS, METADATA_NAMES
from .config import PathLike

MODEL_FILE = "model.py"
IGNORED_NAMES = {"__MACOSX", ".DS_Store", "__pycache__"}


@dataclass
class Classified:
    kind: str  # "code", "result" or "invalid"
    model_path: Optional[Path] = None
    message: str = ""


def _visible(folder: Path) -> List[Path]:
    return sorted(p for p in folder.iterdir() if p.name not in IGNORED_NAMES and not p.name.startswith("._"))


def _listing(folder: Path, limit: int = 12) -> str:
    files = [p.relative_to(folder).as_posix() for p in sorted(folder.rglob("*")) if p.is_file()
             and not any(part in IGNORED_NAMES for part in p.relative_to(folder).parts)]
    if not files:
        return "nothing"
    return ", ".join(files[:limit]) + (f", ... ({len(files)} files)" if len(files) > limit else "")


def classify_submission(program_dir: PathLike) -> Classified:
    """A code submission (model.py at the root or in one wrapping folder), a result zip (CSV files,
    no model.py), or something invalid (with the participant-facing reason)."""
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
    if (root / MODEL_FILE).is_file():
        return Classified("code", model_path=root / MODEL_FILE)
    visible = _visible(root)
    if len(visible) == 1 and visible[0].is_dir() and (visible[0] / MODEL_FILE).is_file():
        return Classified("code", model_path=visible[0] / MODEL_FILE)
    if any(p.suffix.lower() == ".csv" for p in root.rglob("*") if p.is_file()):
        return Classified("result")
    deeper = sorted(p for p in root.rglob(MODEL_FILE) if p.is_file())
    if deeper:
        rel = deeper[0].relative_to(root).as_posix()
        return Classified("invalid", message=(
            f"model.py was found at {rel!r}; it must be at the zip root or inside one single wrapping folder "
            f"(the zip holds: {_listing(root)})"))
    return Classified("invalid", message=(
        "the submission holds neither model.py (a code submission) nor {flag}_{size}.csv files (a result "
        f"submission); the zip holds: {_listing(root)}"))


def remove_copied_submission(program_dir: PathLike, output_dir: PathLike) -> List[str]:
    """Delete from the output the files CodaBench copied there from the submission (same relative
    paths; weights would bloat the prediction upload). Returns the removed paths."""
    program, output = Path(program_dir), Path(output_dir)
    removed: List[str] = []
    if not program.is_dir() or not output.is_dir() or program.resolve() == output.resolve():
        return removed
    for src in sorted(program.rglob("*")):
        if src.is_dir() and not src.is_symlink():
            continue
        rel = src.relative_to(program)
        dst = output / rel
        if rel.as_posix() == INGESTION_STATUS:
            continue
        if dst.is_file() or dst.is_symlink():
            dst.unlink()
            removed.append(rel.as_posix())
    # prune folders that the copy created and that are now empty (deepest first)
    for src in sorted((p for p in program.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        dst = output / src.relative_to(program)
        if dst.is_dir() and not dst.is_symlink() and not any(dst.iterdir()):
            dst.rmdir()
    return removed
