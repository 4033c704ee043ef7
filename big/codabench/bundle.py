"""Build the CodaBench bundle (``big bundle``) and the participants' starting kit.

See ``build_bundle`` for the layout. Everything is written into a temporary folder next to the
target and moved into place only when complete, so a failed build never leaves half a bundle.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Union

PathLike = Union[str, os.PathLike]
REPO = Path(__file__).resolve().parents[2]
PACKAGE = Path(__file__).resolve().parents[1]

#: files and folders never copied into a bundle or a starting kit
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".DS_Store", ".pytest_cache", "*.egg-info",
                                 ".ipynb_checkpoints")
#: data files that must never travel with the code (labels, images, weights)
_DATA_SUFFIXES = (".npz", ".npy", ".pth", ".pt", ".ckpt", ".safetensors")


def _ignore_code(src: str, names: List[str]) -> set:
    skipped = set(_IGNORE(src, names))
    skipped.update(n for n in names if n.lower().endswith(_DATA_SUFFIXES))
    return skipped


def copy_package(dest: PathLike) -> Path:
    """Copy the ``big`` package (code and registry.json, no caches, no data) to ``dest/big``."""
    target = Path(dest) / "big"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(PACKAGE, target, ignore=_ignore_code)
    return target


def _copy_tree_contents(src: Path, dest: Path) -> List[Path]:
    """Copy the contents of ``src`` into ``dest`` (merging), skipping caches and data files."""
    written = []
    dest.mkdir(parents=True, exist_ok=True)
    for item in sorted(src.iterdir()):
        if item.name in _ignore_code(str(src), [item.name]):
            continue
        target = dest / item.name
        if item.is_dir():
            shutil.copytree(item, target, ignore=_ignore_code, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target)
        written.append(target)
    return written


def assemble_starting_kit(dest_dir: PathLike, *, repo: PathLike = REPO,
                          log: Optional[Callable[[str], None]] = None) -> Path:
    """Write the participants' starting kit into ``dest_dir`` (created; existing files are replaced).

    Contents: the repository's ``starting_kit/`` folder (README, scripts, sample submissions) at the
    root, plus what is needed to train and package the mm-PT baselines on one's own machine: the
    ``big`` package, ``pyproject.toml`` (``pip install -e ".[train]"``), ``baselines/configs/`` and
    ``baselines/README.md``. Caches, npz/npy files and weights are never copied.
    """
    repo = Path(repo)
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    kit = repo / "starting_kit"
    if kit.is_dir():
        _copy_tree_contents(kit, dest)
    elif log:
        log(f"note: {kit} does not exist; the starting kit holds the package and baselines only")
    copy_package(dest)
    for name in ("pyproject.toml",):
        if (repo / name).is_file():
            shutil.copy2(repo / name, dest / name)
    configs = repo / "baselines" / "configs"
    if configs.is_dir():
        shutil.copytree(configs, dest / "baselines" / "configs", ignore=_ignore_code, dirs_exist_ok=True)
    readme = repo / "baselines" / "README.md"
    if readme.is_file():
        (dest / "baselines").mkdir(parents=True, exist_ok=True)
        shutil.copy2(readme, dest / "baselines" / "README.md")
    if not (dest / "README.md").is_file():
        # pyproject.toml names README.md as the project readme: pip install needs the file
        (dest / "README.md").write_text(
            "# BIG benchmark starting kit\n\nInstall with `pip install -e \".[train]\"`, then run `big --help`.\n"
            "See baselines/README.md for training the mm-PT baselines.\n", encoding="utf-8")
    if log:
        log(f"starting kit in {dest}: " + ", ".join(sorted(p.name for p in dest.iterdir())))
    return dest


def iter_files(root: PathLike) -> Iterable[Path]:
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            yield Path(dirpath) / f
