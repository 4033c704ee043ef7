"""Atomic writes: a file or folder appears complete or not at all (never half-written); a listing of
any folder tree without recursion."""
from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Tuple, Union

PathLike = Union[str, os.PathLike]


@contextmanager
def atomic_folder(out: PathLike) -> Iterator[Path]:
    """Yield an empty temp folder beside ``out``; when the block succeeds it replaces ``out`` (an old
    folder there is removed), when it raises the temp folder is deleted and ``out`` is untouched."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", suffix=".partial", dir=out.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=out.name + ".", suffix=".old", dir=out.parent))
            os.replace(out, old / "x")
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_json_atomic(path: PathLike, obj) -> Path:
    """Strict JSON (no NaN/Infinity), written to a temp name and renamed into place."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=1, allow_nan=False)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def walk_tree(root: PathLike) -> Iterator[Tuple[str, os.stat_result]]:
    """Every entry below ``root`` as (posix path relative to it, its ``lstat``): files, folders and links,
    links never followed, unreadable entries skipped. No recursion, so any depth works (``os.walk`` and
    ``Path.rglob`` recurse before Python 3.12 and raise RecursionError on a deep tree, which a
    participant's zip or model can make); one folder is open at a time. Callers may stop early."""
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            it = os.scandir(os.path.join(root, rel_dir) if rel_dir else root)
        except OSError:
            continue
        with it:
            for item in it:
                rel = f"{rel_dir}/{item.name}" if rel_dir else item.name
                try:
                    st = item.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    stack.append(rel)
                yield rel, st


def remove_tree(top: PathLike) -> None:
    """Delete the folder ``top`` and everything in it, at any depth (``shutil.rmtree`` recurses before
    Python 3.12); links are removed, never followed; each folder is made writable by its owner first,
    so a tree made read-only goes too. Raises OSError when something cannot be removed."""
    stack = [os.fspath(top)]
    while stack:
        folder = stack[-1]
        try:
            os.chmod(folder, stat.S_IRWXU)
        except OSError:
            pass
        with os.scandir(folder) as it:
            entries = list(it)
        subdirs = [e.path for e in entries if e.is_dir(follow_symlinks=False)]
        for e in entries:
            if not e.is_dir(follow_symlinks=False):
                os.unlink(e.path)
        if subdirs:
            stack.extend(subdirs)
        else:
            os.rmdir(stack.pop())
