"""The participants' starting kit as files: what ``big bundle`` copies into it (the starting_kit/
folder, the ``big`` package, pyproject.toml, the baseline configs and tables, thin copies of both
programs and competition.yaml) and how its Markdown is made self-contained. The bundle's own facts
are filled in afterwards by :func:`big.codabench.bundle.finish_starting_kit`.
"""
from __future__ import annotations

import os
import re
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


def ignore_code(src: str, names: List[str]) -> set:
    skipped = set(_IGNORE(src, names))
    skipped.update(n for n in names if n.lower().endswith(_DATA_SUFFIXES))
    return skipped


def copy_package(dest: PathLike) -> Path:
    """Copy the ``big`` package (code and registry.json, no caches, no data) to ``dest/big``."""
    target = Path(dest) / "big"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(PACKAGE, target, ignore=ignore_code)
    return target


def _copy_tree_contents(src: Path, dest: Path) -> List[Path]:
    """Copy the contents of ``src`` into ``dest`` (merging), skipping caches. Data files such as the
    sample model's weights are kept; `big lint` checks that none of them holds labels."""
    written = []
    dest.mkdir(parents=True, exist_ok=True)
    for item in sorted(src.iterdir()):
        if item.name in _IGNORE(str(src), [item.name]):
            continue
        target = dest / item.name
        if item.is_dir():
            shutil.copytree(item, target, ignore=_IGNORE, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target)
        written.append(target)
    return written


#: the starting kit's copies of the competition configuration (used by `big run-local --kit`)
KIT_PROGRAMS = ("scoring_program", "ingestion_program")
KIT_COMPETITION_HEADER = ("# A copy of this competition's configuration, for `big run-local --kit` (the Development phase\n"
                          "# on your machine, as CodaBench's worker runs it). Not a bundle: do not upload it.\n")
#: Markdown files of the kit and the repository file each comes from (for link checks and rewrites)
KIT_MARKDOWN = {"README.md": "starting_kit/README.md", "baselines/README.md": "baselines/README.md"}


def copy_thin_program(src: Path, dest: Path) -> Path:
    """A program folder as the kit ships it: the entry point, metadata and config only (the ``big``
    package sits one folder up, at the kit root, as in the repository)."""
    if dest.exists():
        shutil.rmtree(dest)
    skip = shutil.ignore_patterns("big", "baselines", "__pycache__", "*.pyc", ".DS_Store")
    shutil.copytree(src, dest, ignore=lambda d, names: set(skip(d, names)) | set(ignore_code(d, names)))
    return dest


def assemble_starting_kit(dest_dir: PathLike, *, repo: PathLike = REPO,
                          log: Optional[Callable[[str], None]] = None) -> Path:
    """Write the participants' starting kit into ``dest_dir`` (created; existing files are replaced).

    Contents: the repository's ``starting_kit/`` folder (README, notebook, scripts, sample
    submissions) at the root, plus the ``big`` package, ``pyproject.toml`` (``pip install -e .``),
    ``baselines/configs/``, ``baselines/tables/`` and ``baselines/README.md``, and the competition's
    programs as thin entry points (``scoring_program/``, ``ingestion_program/``) with
    ``competition.yaml``, so that ``big run-local --kit`` runs the Development phase from the kit
    alone. ``big bundle`` replaces the programs' configs, competition.yaml and the README's generated
    blocks with the bundle's own (:func:`finish_starting_kit`). Caches are never copied;
    npz/npy/weights files only from starting_kit/ (the sample model's weights), never with the package
    or the configs. Repository files that the kit's Markdown names but the kit lacks are marked as
    such (:func:`localize_markdown`).
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
    for sub in ("configs", "tables"):
        folder = repo / "baselines" / sub
        if folder.is_dir():
            shutil.copytree(folder, dest / "baselines" / sub, ignore=ignore_code, dirs_exist_ok=True)
    readme = repo / "baselines" / "README.md"
    if readme.is_file():
        (dest / "baselines").mkdir(parents=True, exist_ok=True)
        shutil.copy2(readme, dest / "baselines" / "README.md")
    for name in KIT_PROGRAMS:
        if (repo / name).is_dir():
            copy_thin_program(repo / name, dest / name)
    if (repo / "competition.yaml").is_file():
        (dest / "competition.yaml").write_text(KIT_COMPETITION_HEADER + (repo / "competition.yaml").read_text(
            encoding="utf-8"), encoding="utf-8")
    if not (dest / "README.md").is_file():
        # pyproject.toml names README.md as the project readme: pip install needs the file
        (dest / "README.md").write_text(
            "# BIG benchmark starting kit\n\nInstall with `pip install -e \".[train]\"`, then run `big --help`.\n"
            "See baselines/README.md for training the mm-PT baselines.\n", encoding="utf-8")
    localize_markdown(dest, repo)
    if log:
        log(f"starting kit in {dest}: " + ", ".join(sorted(p.name for p in dest.iterdir())))
    return dest



_MD_LINK_RE = re.compile(r"(?<!!)\[([^\]\n]*)\]\(([^)\s]+)\)")
_CODE_PATH_RE = re.compile(r"`([A-Za-z0-9_.\-]+(?:/[A-Za-z0-9_.\-]+)*/?)`")
_BARE_DOC_RE = re.compile(r"(?<![`/\w])([A-Za-z0-9_\-]+(?:/[A-Za-z0-9_\-]+)*\.md)(?![`\w])")
_SPLIT_RE = re.compile(r"(`[^`\n]*`|(?<!!)\[[^\]\n]*\]\([^)\s]+\))")
OUTSIDE_NOTE = " (in the BIG repository, not in this kit)"
MISSING_NOTE = " (not in this kit)"


def relative_links(text: str) -> List[str]:
    """The relative link targets of a Markdown text (no URLs, no pure #anchors), without their #part."""
    out = []
    for m in _MD_LINK_RE.finditer(text):
        target = m.group(2)
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("#"):
            continue
        out.append(target.split("#", 1)[0])
    return out


def localize_markdown(kit: Path, repo: Path) -> List[str]:
    """Make the kit's Markdown self-contained: a relative link whose target is in the repository but
    not in the kit is replaced by its text plus a note; a code-span path of a repository file the kit
    lacks, and a bare ``*.md`` name found nowhere, get a note. Returns what changed."""
    changed: List[str] = []
    for rel, repo_rel in KIT_MARKDOWN.items():
        md = kit / rel
        if not md.is_file():
            continue
        text = md.read_text(encoding="utf-8")
        here, there = md.parent, (repo / repo_rel).parent

        def in_kit(target: str) -> bool:
            t = target.rstrip("/")
            return bool(t) and ((here / t).exists() or (kit / t).exists())

        def in_repo(target: str) -> bool:
            t = target.rstrip("/")
            return bool(t) and ((there / t).exists() or (repo / t).exists())

        def link(m):
            target = m.group(2)
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("#"):
                return m.group(0)
            path = target.split("#", 1)[0]
            if in_kit(path):
                return m.group(0)
            changed.append(f"{rel}: link {target} -> text")
            return m.group(1) + (OUTSIDE_NOTE if in_repo(path) else MISSING_NOTE)

        def code(m):
            path = m.group(1)
            if ("/" not in path and not path.endswith((".py", ".md"))) or in_kit(path) or not in_repo(path):
                return m.group(0)
            if m.group(0) + OUTSIDE_NOTE in text:
                return m.group(0)
            changed.append(f"{rel}: {path} noted as outside the kit")
            return m.group(0) + OUTSIDE_NOTE

        def bare(m):
            path = m.group(1)
            if in_kit(path):
                return m.group(0)
            note = OUTSIDE_NOTE if in_repo(path) else MISSING_NOTE
            if m.string[m.end():m.end() + len(note)] == note:
                return m.group(0)
            changed.append(f"{rel}: {path} noted as outside the kit")
            return m.group(0) + note

        pieces = _SPLIT_RE.split(text)  # code spans and links apart from the prose (odd indexes)
        for i, piece in enumerate(pieces):
            if i % 2 == 0:
                pieces[i] = _BARE_DOC_RE.sub(bare, piece)
            elif piece.startswith("`"):
                pieces[i] = _CODE_PATH_RE.sub(code, piece)
            else:
                pieces[i] = _MD_LINK_RE.sub(link, piece)
        new = "".join(pieces)
        if new != text:
            md.write_text(new, encoding="utf-8")
    return changed


def iter_files(root: PathLike) -> Iterable[Path]:
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            yield Path(dirpath) / f
