"""The Development phase on a participant's machine, from the starting kit alone (``big run-local --kit``).

The validation labels of MedMNIST+ are public, so a participant can rebuild what the platform uses in
the Development phase: the reference (labels of the val split) and the input images of the code
track. :func:`run_kit` stages a bundle folder from the kit's own copies of the programs and of
competition.yaml plus those two folders made from the participant's MedMNIST+ files, then runs it
through the same worker emulator as ``big run-local --bundle`` (big.codabench.worker): ingestion,
then scoring, then the leaderboard row.

Also here, for the try-out on synthetic files: ``big synth`` leaves :data:`SYNTH_MARKER` in its output
folder, and the participant-side commands (``big build-reference``, ``big run-local --kit``) accept the
files of such a folder as if given ``--allow-synthetic`` (stamped synthetic, and they say so), so the
synthetic path runs with the same commands as the genuine one. :func:`split_counts` gives the rows of
each dataset's split in the files actually used (``big validate --data-root``).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

from .. import registry
from ..errors import Problem, UsageError

PathLike = Union[str, os.PathLike]
SYNTH_MARKER = "BIG_SYNTHETIC.txt"
SYNTH_MARKER_TEXT = ("Written by `big synth`: synthetic stand-ins for the MedMNIST+ files, not the genuine ones.\n"
                     "`big build-reference` and `big run-local --kit` accept the files of this folder (stamped\n"
                     "synthetic) without --allow-synthetic; their scores mean nothing.\n")


def mark_synthetic(folder: PathLike) -> Path:
    path = Path(folder) / SYNTH_MARKER
    path.write_text(SYNTH_MARKER_TEXT, encoding="utf-8")
    return path


def is_marked_synthetic(folder: PathLike) -> bool:
    return (Path(folder) / SYNTH_MARKER).is_file()


def split_counts(data_root: PathLike, split: str, size: Optional[int] = None) -> Dict[str, int]:
    """Rows of ``{split}_labels`` per dataset in the files of ``data_root`` (the given size, else the
    first size present; labels are identical across sizes). Reads only the npy headers."""
    import zipfile

    from .. import data

    root = Path(os.path.expanduser(str(data_root)))
    if not root.is_dir():
        raise UsageError([Problem("--data-root is not a folder", file=str(root))])
    counts: Dict[str, int] = {}
    problems: List[Problem] = []
    for ds in registry.datasets():
        sizes = [size] if size else list(registry.SIZES)
        path = next((root / ds.file_name(s) for s in sizes if (root / ds.file_name(s)).is_file()), None)
        if path is None:
            problems.append(Problem(f"no file for {ds.flag} (" + " or ".join(ds.file_name(s) for s in sizes) + ")",
                                    file=str(root)))
            continue
        try:
            with zipfile.ZipFile(path) as zf, zf.open(f"{split}_labels.npy") as fh:
                counts[ds.flag] = int(data.read_npy_header(fh)[0][0])
        except (KeyError, OSError, ValueError, zipfile.BadZipFile) as exc:
            problems.append(Problem(f"cannot read {split}_labels ({exc})", file=str(path)))
    if problems:
        raise UsageError(problems, summary=f"{len(problems)} dataset file(s) missing or unreadable in {root}")
    return counts


def kit_root(kit: Optional[PathLike] = None) -> Path:
    """The kit folder: the one given, else the folder holding this ``big`` package (an unpacked starting
    kit, or a checkout of the repository, which has the same layout)."""
    root = Path(kit) if kit else Path(__file__).resolve().parents[2]
    missing = [n for n in ("competition.yaml", "scoring_program") if not (root / n).exists()]
    if missing:
        raise UsageError([Problem(f"not a starting kit: {', '.join(missing)} missing (run it in the unpacked starting "
                                  "kit, or give --kit DIR)", file=str(root))])
    return root


def _dev_phase(doc: dict, phase: str) -> tuple:
    phases = sorted([p for p in doc.get("phases") or [] if isinstance(p, dict)], key=lambda p: p.get("index", 0))
    if not phases:
        raise UsageError([Problem("the kit's competition.yaml has no phases")])
    want = str(phase).strip().lower()
    if want not in ("development", "dev", "0", str(phases[0].get("name", "")).lower()):
        raise UsageError([Problem(f"--kit runs the Development phase only (the validation split, whose labels are "
                                  f"public); {phase!r} is scored by the platform on labels you must never use")])
    ph = phases[0]
    tasks = {t.get("index"): t for t in doc.get("tasks") or [] if isinstance(t, dict)}
    task = tasks.get((ph.get("tasks") or [None])[0])
    if task is None:
        raise UsageError([Problem("the kit's competition.yaml: the Development phase has no task")])
    return ph, task


def stage_bundle(kit: Path, stage: Path, *, data_root: PathLike, reference: Optional[PathLike] = None,
                 allow_synthetic: bool = False, phase: str = "development",
                 log: Callable[[str], None] = print) -> Path:
    """A bundle folder for the Development phase in ``stage``: the kit's competition.yaml and programs
    (each with the ``big`` package beside it, as ``big bundle`` ships them), the validation labels
    (``reference`` or built from ``data_root``) and the validation images at the code track's sizes."""
    import yaml

    from ..inputdata import write_input_data
    from ..reference import Reference, build_reference
    from .bundle import copy_program
    from .facts import FACTS_FILE, load

    doc = yaml.safe_load((kit / "competition.yaml").read_text(encoding="utf-8")) or {}
    _, task = _dev_phase(doc, phase)
    root = Path(os.path.expanduser(str(data_root)))
    if not root.is_dir():
        raise UsageError([Problem("--data-root is not a folder (the MedMNIST+ npz files, e.g. ~/.medmnist)",
                                  file=str(root))])
    if is_marked_synthetic(root) and not allow_synthetic:
        log(f"note: {root} holds synthetic files (`big synth`): accepted as with --allow-synthetic; scores mean nothing")
        allow_synthetic = True
    stage.mkdir(parents=True)
    shutil.copy2(kit / "competition.yaml", stage / "competition.yaml")
    tables = kit / "baselines" / "tables"
    copy_program(kit / "scoring_program", stage / str(task["scoring_program"]).rstrip("/"),
                 baselines_tables=tables if tables.is_dir() else None)
    split = "val"
    ref_dest = stage / str(task.get("reference_data", "dev/reference_data/")).rstrip("/")
    if reference is not None:
        ref = Reference(reference)
        if ref.split != split:
            raise UsageError([Problem(f"the reference is for the {ref.split} split; the Development phase scores "
                                      "the val split (`big build-reference --split val`)", file=str(reference))])
        shutil.copytree(reference, ref_dest)
        log(f"reference: {reference} (val split{', SYNTHETIC' if ref.synthetic else ''})")
    else:
        build_reference(root, split, ref_dest, allow_synthetic=allow_synthetic, progress=None)
        log(f"reference: the val labels of {root}")
    if task.get("ingestion_program") and (kit / "ingestion_program").is_dir():
        copy_program(kit / "ingestion_program", stage / str(task["ingestion_program"]).rstrip("/"))
        facts_path = kit / FACTS_FILE
        wanted = load(facts_path).input_sizes if facts_path.is_file() else [28, 64]
        present = [s for s in wanted if all((root / d.file_name(s)).is_file() for d in registry.datasets())]
        in_dest = stage / str(task.get("input_data", "dev/input_data/")).rstrip("/")
        if present:
            write_input_data(root, split, present, in_dest, allow_synthetic=allow_synthetic)
            log(f"input images: val split at {', '.join(map(str, present))} px from {root}")
        else:
            in_dest.mkdir(parents=True)
        absent = [s for s in wanted if s not in present]
        if absent:
            log(f"note: the platform gives code submissions images at {', '.join(map(str, wanted))} px; "
                f"{', '.join(map(str, absent))} px is not complete in {root}, so a model asking for it fails here "
                f"(python -m medmnist download --size={absent[0]})")
    return stage


def run_kit(*, submission: PathLike, data_root: PathLike, kit: Optional[PathLike] = None,
            reference: Optional[PathLike] = None, allow_synthetic: bool = False, phase: str = "development",
            work_dir: Optional[PathLike] = None, log: Callable[[str], None] = print, **worker_options):
    """Stage the Development phase from the kit and run ``submission`` through the worker emulator."""
    from .worker import RunLocalOptions, run_local

    root = kit_root(kit)
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="big-run-local-kit-"))
    if work.exists() and any(work.iterdir()):
        raise UsageError([Problem("the work folder exists and is not empty", file=str(work))])
    work = work.resolve()
    log(f"run-local --kit: the Development phase from {root} (its competition.yaml and programs)")
    stage = stage_bundle(root, work / "bundle", data_root=data_root, reference=reference,
                         allow_synthetic=allow_synthetic, phase=phase, log=lambda m: log(f"run-local --kit: {m}"))
    return run_local(RunLocalOptions(bundle=stage, submission=submission, phase="development", work_dir=work / "run",
                                     **worker_options), log=log)


def sizes_text(sizes: Sequence[int]) -> str:
    return ", ".join(map(str, sizes))
