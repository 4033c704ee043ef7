"""What a submission is: a result submission, a code submission, or neither (one rule, one place).

The rule, used by ``big validate``, ``big score``, the scoring program and the ingestion program,
and stated on the submission page:

1. All twelve ``{flag}_{size}.csv`` of one size, at the root or in one folder: a **result**
   submission. A ``model.py`` beside them is ignored (and listed as ignored).
2. Otherwise a ``model.py`` at the root, or inside the single folder that wraps everything: a
   **code** submission.
3. Otherwise any ``.csv`` file: a (broken) **result** submission, so that validation can say which
   prediction files are missing or misnamed.
4. Otherwise: **neither**, with the reason.

Zips made by some Windows tools (PowerShell's ``Compress-Archive`` in Windows PowerShell 5) use
``\\`` between folder names. When no name uses ``/`` and some use ``\\``, the backslash is read as the
separator (:func:`posix_names`). CodaBench extracts such a zip with Python's zipfile on Linux, so
``sub\\x.csv`` arrives in ``res/`` as one file whose name holds a backslash; the same rule decides
the folder as it decides the zip. A result submission made that way is accepted. A code submission
made that way is not (its folders would not exist on the platform): the reason says how to zip it
again.

CodaBench's own earlier rule is not part of this: a ``metadata`` file at the zip root makes the
platform treat the zip as a program of its own (codabench.md §2.4); the worker emulator keeps that
behaviour and validation explains it.

Pure function over relative posix paths, so a zip listing and a folder walk are decided the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional

from . import registry

MODEL_FILE = "model.py"
#: names that archivers and Python add and that never count as submission content
IGNORED_NAMES = frozenset({"__MACOSX", ".DS_Store", "__pycache__", "Thumbs.db"})

RESULT, CODE, NEITHER = "result", "code", "neither"


@dataclass(frozen=True)
class Kind:
    kind: str  # RESULT, CODE or NEITHER
    folder: str = ""  # "" for the root, else "name/": where the predictions or model.py are
    model: Optional[str] = None  # path of model.py (code), or of the ignored one beside complete results
    size: Optional[int] = None  # the size of a complete set of predictions
    reason: str = ""  # for NEITHER: what was found, for the participant
    backslashes: bool = False  # the names used '\\' between folders (read as '/')

    @property
    def complete(self) -> bool:
        """All twelve prediction files of one size are present (a result submission for sure)."""
        return self.kind == RESULT and self.size is not None


REZIP = ("zip it again with a tool that writes '/' between folder names: in the folder, `tar -a -c -f "
         "../sub.zip *` (Windows 10 and later), 7-Zip, or `python -m zipfile -c sub.zip FILES...`")


def posix_names(names: Iterable[str]) -> Dict[str, str]:
    """Each name -> its posix form. ``\\`` separates folders when no name uses ``/`` (Windows zips)."""
    names = list(names)
    if any("/" in n for n in names) or not any("\\" in n for n in names):
        return {n: n for n in names}
    return {n: n.replace("\\", "/") for n in names}


def _ignored(name: str) -> bool:
    parts = name.split("/")
    return any(p in IGNORED_NAMES or p.startswith("._") for p in parts)


def _listing(names: List[str], limit: int = 12) -> str:
    if not names:
        return "nothing"
    return ", ".join(names[:limit]) + (f", ... ({len(names)} files)" if len(names) > limit else "")


def _complete_size(present: set, folder: str) -> Optional[int]:
    from .submission import csv_name  # the file-name rule lives with the result format

    for size in registry.SIZES:
        if all(folder + csv_name(flag, size) in present for flag in registry.flags()):
            return size
    return None


def submission_kind(names: Iterable[str]) -> Kind:
    """Decide what the files ``names`` (paths relative to the submission root; files only) are.

    Paths in the result are posix paths (after :func:`posix_names`)."""
    mapping = posix_names(names)
    slashes = any(k != v for k, v in mapping.items())
    k = _kind(mapping.values())
    if slashes:
        if k.kind == CODE:
            return Kind(NEITHER, backslashes=True, reason=(
                "the zip writes '\\' between folder names (a Windows zip): the platform extracts it on Linux, where "
                f"each such path becomes one file name, so model.py would not find its files; {REZIP}"))
        return Kind(k.kind, folder=k.folder, model=k.model, size=k.size, reason=k.reason, backslashes=True)
    return k


def _kind(names: Iterable[str]) -> Kind:
    files = sorted(n for n in names if n and not n.endswith("/") and not _ignored(n))
    present = set(files)
    tops = sorted({n.split("/", 1)[0] for n in files})
    wrapped = len(tops) == 1 and "/" in files[0] if files else False
    folders = [""] + [t + "/" for t in tops if any(n.startswith(t + "/") for n in files)]
    for folder in folders:
        size = _complete_size(present, folder)
        if size is not None:
            model = folder + MODEL_FILE if folder + MODEL_FILE in present else None
            return Kind(RESULT, folder=folder, model=model, size=size)
    if MODEL_FILE in present:
        return Kind(CODE, folder="", model=MODEL_FILE)
    if wrapped and f"{tops[0]}/{MODEL_FILE}" in present:
        return Kind(CODE, folder=tops[0] + "/", model=f"{tops[0]}/{MODEL_FILE}")
    if any(n.lower().endswith(".csv") for n in files):
        return Kind(RESULT)
    deeper = [n for n in files if n.rsplit("/", 1)[-1] == MODEL_FILE]
    if deeper:
        return Kind(NEITHER, reason=(
            f"model.py was found at {deeper[0]!r}; it must be at the zip root or inside one single wrapping "
            f"folder (the zip holds: {_listing(files)})"))
    return Kind(NEITHER, reason=(
        "the submission holds neither model.py (a code submission) nor {flag}_{size}.csv files (a result "
        f"submission); it holds: {_listing(files)}"))
