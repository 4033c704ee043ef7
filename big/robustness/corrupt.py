"""``big corrupt``: write the corrupted set (layout: :mod:`big.robustness.layout`).

For each split asked for (``val`` = the Development sample with the public seed, ``test`` = the Test
sample with the organizer's private seed) and each dataset: a seeded, stratified sample of at most N
images of the split's 224 px MedMNIST+ file; every MedMNIST-C corruption of that dataset at each
severity asked for (default 1, 3, 5), applied to the 224 px image as medmnistc's own generator does
(as RGB, grey datasets converted back to L); the clean copy and each corrupted image resized once to
the smaller sizes by :data:`~big.robustness.layout.RESIZE_RULE`.

medmnistc runs only here, only in the robustness venv (``make robustness-env``); it is imported
inside :func:`medmnistc_backend`, never at import time. ``stand_in=True`` uses
:mod:`big.robustness.standin` instead (numpy only), stamped as such.

Seeds: each image's corruption is seeded from (seed, dataset, corruption, severity, source row),
independent of the order of generation; medmnistc draws from Python's ``random``, NumPy's global
generator and, for impulse noise, its own ``rng``: all three are seeded before every image.
"""
from __future__ import annotations

import datetime as _dt
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import __version__, data, registry
from ..errors import Problem, ReferenceDataError, UsageError
from ..fsutil import atomic_folder, write_json_atomic
from . import layout, standin

PathLike = Union[str, os.PathLike]
SOURCE_SIZE = 224
#: packages whose versions the manifest records (those medmnistc's corruptions run on)
MEDMNISTC_PACKAGES = ("medmnistc", "numpy", "Pillow", "opencv-python-headless", "scikit-image", "scipy", "Wand",
                      "torch", "torchvision")
ENV_HINT = ("build the robustness environment with `make robustness-env` and run `.venv-robustness/bin/python -m "
            "big corrupt ...` (or use --stand-in for tests and demos: numpy corruptions, not MedMNIST-C)")

Apply = Callable[[np.ndarray, int, np.random.SeedSequence], np.ndarray]


@dataclass
class Backend:
    generator: str
    label: str
    corruptors: Callable[[str], Dict[str, Apply]]
    packages: Dict[str, str]
    baselines: Optional[dict] = None  # flag -> {"clean_score", "raw_scores": {corruption: error}}
    baselines_source: str = ""


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def medmnistc_backend() -> Backend:
    """medmnistc's corruptions, parameters and AlexNet baselines, from the installed package."""
    problems = []
    if int(np.__version__.split(".")[0]) >= 2:
        problems.append(Problem(f"numpy {np.__version__}: medmnistc's motion blur calls np.fromstring in binary "
                                f"mode, which numpy >= 2 refuses; {ENV_HINT}"))
    try:
        from medmnistc.corruptions.registry import CORRUPTIONS_DS, DATASET_RGB
        from medmnistc.utils.baselines import BASELINES
    except Exception as exc:  # ImportError, or a broken dependency (Wand without ImageMagick raises ImportError too)
        problems.append(Problem(f"medmnistc cannot be imported in {sys.executable} ({type(exc).__name__}: "
                                f"{str(exc)[:300]}); {ENV_HINT}"))
    if problems:
        raise UsageError(problems, summary="MedMNIST-C (medmnistc) is not usable in this Python")
    from PIL import Image

    def corruptors(flag: str) -> Dict[str, Apply]:
        rgb = bool(DATASET_RGB[flag])
        out: Dict[str, Apply] = {}
        for name, corruptor in CORRUPTIONS_DS[flag].items():
            def apply(img: np.ndarray, severity: int, seed: np.random.SeedSequence, _c=corruptor) -> np.ndarray:
                state = int(seed.generate_state(1)[0])
                random.seed(state)
                np.random.seed(state)
                _c.rng = np.random.default_rng(seed)  # impulse noise draws from its own rng
                pil = Image.fromarray(img).convert("RGB")  # medmnistc corrupts RGB images
                res = np.asarray(_c.apply(pil, int(severity) - 1))
                if not rgb:  # as medmnistc's generator: grey datasets back to L
                    res = np.asarray(Image.fromarray(res).convert("L"))
                return res

            out[name] = apply
        return out

    try:
        from wand.version import MAGICK_VERSION
    except Exception:  # pragma: no cover - imported fine above when medmnistc imports
        MAGICK_VERSION = "unknown"
    pkgs = {p: _version(p) for p in MEDMNISTC_PACKAGES}
    pkgs["ImageMagick"] = str(MAGICK_VERSION)
    return Backend(generator=layout.GENERATOR_MEDMNISTC, label=f"MedMNIST-C (medmnistc {pkgs['medmnistc']})",
                   corruptors=corruptors, packages=pkgs,
                   baselines={f: BASELINES[f] for f in registry.flags() if f in BASELINES},
                   baselines_source=("medmnistc.utils.baselines.BASELINES: AlexNet balanced error (1 - balanced "
                                     "accuracy) per corruption, mean over the 5 severities, 224 px, full test split"))


def standin_backend() -> Backend:
    return Backend(generator=layout.GENERATOR_STANDIN, label=layout.STANDIN_LABEL, corruptors=standin.corruptors,
                   packages={**standin.packages(), "Pillow": _version("Pillow")})


# ---------------------------------------------------------------------------------------------
# options and checks
# ---------------------------------------------------------------------------------------------

@dataclass
class CorruptOptions:
    data_root: PathLike
    out: PathLike
    seed: Optional[int] = None  # the Test sample's (private) seed
    splits: Sequence[str] = layout.SPLITS
    per_dataset: int = layout.PER_DATASET
    dev_per_dataset: int = layout.DEV_PER_DATASET
    dev_seed: int = layout.PUBLIC_DEV_SEED
    severities: Sequence[int] = layout.SEVERITIES
    sizes: Sequence[int] = (28, 64)
    flags: Optional[Sequence[str]] = None  # default all 12
    corruptions: Optional[Sequence[str]] = None  # default every corruption of each dataset (tests: fewer)
    stand_in: bool = False
    allow_synthetic: bool = False


def _check(o: CorruptOptions) -> Tuple[List[str], List[int], List[int], List[str]]:
    problems: List[Problem] = []
    splits = [s for s in o.splits]
    if not splits or any(s not in layout.SPLITS for s in splits):
        problems.append(Problem(f"--splits {','.join(map(str, splits))}: expected val, test or both"))
    if "test" in splits and o.seed is None:
        problems.append(Problem("--seed is required for the test sample: the organizer's private seed (keep it secret; "
                                "the pages never show it)"))
    if o.seed is not None and "test" in splits and int(o.seed) == int(o.dev_seed):
        problems.append(Problem(f"--seed {o.seed} equals the public Development seed: the Test sample's seed must be "
                                "private"))
    sev = sorted({int(s) for s in o.severities})
    if not sev or any(s not in layout.ALL_SEVERITIES for s in sev):
        problems.append(Problem(f"--severities {sev}: expected some of 1..5 (MedMNIST-C's severities)"))
    sizes = sorted({int(s) for s in o.sizes})
    if not sizes or any(s not in registry.SIZES for s in sizes):
        problems.append(Problem(f"--sizes {sizes}: expected some of {', '.join(map(str, registry.SIZES))}"))
    for name, n in (("--per-dataset", o.per_dataset), ("--dev-per-dataset", o.dev_per_dataset)):
        if int(n) <= 0:
            problems.append(Problem(f"{name} {n}: expected a positive number of images"))
    flags = list(o.flags or registry.flags())
    bad = [f for f in flags if f not in registry.flags()]
    if bad:
        problems.append(Problem(f"unknown dataset(s) {', '.join(bad)}; expected some of {', '.join(registry.flags())}"))
    if not Path(o.data_root).is_dir():
        problems.append(Problem("the data root is not a folder", file=str(o.data_root)))
    if problems:
        raise UsageError(problems)
    return splits, sev, sizes, [f for f in registry.flags() if f in flags]


def _select(flag: str, available: Dict[str, Apply], wanted: Optional[Sequence[str]]) -> List[str]:
    names = list(available)
    if not wanted:
        return names
    chosen = [c for c in names if c in wanted]
    if not chosen:
        raise UsageError([Problem(f"--corruptions {','.join(wanted)}: {flag} has none of them; its corruptions are "
                                  f"{', '.join(names)}")])
    return chosen


# ---------------------------------------------------------------------------------------------
# generation
# ---------------------------------------------------------------------------------------------

def read_rows(npz: Path, split: str, rows: np.ndarray, batch: int = 256) -> np.ndarray:
    """The images at sorted ``rows`` of ``{split}_images``, streamed (never the whole member in memory)."""
    from ..ingestion.images import iter_npz_batches

    out = None
    k = 0
    for start, imgs in iter_npz_batches(npz, split, batch):
        stop = start + imgs.shape[0]
        while k < rows.size and rows[k] < stop:
            if out is None:
                out = np.empty((rows.size, *imgs.shape[1:]), dtype=np.uint8)
            out[k] = imgs[rows[k] - start]
            k += 1
        if k == rows.size:
            break
    if out is None or k != rows.size:
        raise ReferenceDataError([Problem(f"{split}_images has fewer rows than the labels", file=str(npz))])
    return out


def _resizer(sizes: Sequence[int]):
    from PIL import Image

    def resize(img: np.ndarray) -> Dict[int, np.ndarray]:
        out = {}
        pil = None
        for s in sizes:
            if s == img.shape[0]:
                out[s] = img
                continue
            if pil is None:
                pil = Image.fromarray(img)
            out[s] = np.asarray(pil.resize((s, s), Image.Resampling.BICUBIC))
        return out

    return resize


def _corrupt_dataset(flag: str, root: Path, split: str, seed: int, n_max: int, severities: Sequence[int],
                     sizes: Sequence[int], backend: Backend, wanted: Optional[Sequence[str]], allow_synthetic: bool,
                     dest: Path, log: Callable[[str], None]) -> dict:
    ds = registry.get(flag)
    src = root / ds.file_name(SOURCE_SIZE)
    if not src.is_file():
        raise ReferenceDataError([Problem(f"missing {src.name}: MedMNIST-C corrupts the 224 px images "
                                          f"(`python -m medmnist download --size=224`)", file=str(root))])
    md5, genuine, problem = data.check_source_md5(src, ds, SOURCE_SIZE, allow_synthetic=allow_synthetic)
    if problem:
        raise ReferenceDataError([problem])
    layout_problems = data.check_layout(src, ds, SOURCE_SIZE, splits=(split,))
    if layout_problems:
        raise ReferenceDataError([Problem(p) for p in layout_problems])
    all_labels = data.read_labels(src, split)
    rng = np.random.default_rng(layout.sample_seed(seed, flag))
    rows = layout.stratified_sample(all_labels, ds.kind, n_max, rng)
    labels = np.ascontiguousarray(all_labels[rows])
    src_imgs = read_rows(src, split, rows)
    available = backend.corruptors(flag)
    chosen = _select(flag, available, wanted)
    blocks = layout.blocks(chosen, severities)
    n = rows.size
    dest.mkdir(parents=True)
    arrays = {s: np.lib.format.open_memmap(dest / layout.images_name(s), mode="w+", dtype=np.uint8,
                                           shape=(n * len(blocks), *ds.image_shape(s))) for s in sizes}
    resize = _resizer(sizes)
    timing: Dict[str, dict] = {}
    want_shape = ds.image_shape(SOURCE_SIZE)
    for b, (name, sev) in enumerate(blocks):
        t0 = time.perf_counter()
        t_corrupt = 0.0
        ci = chosen.index(name) if name != layout.CLEAN else -1
        for i in range(n):
            img = src_imgs[i]
            if name != layout.CLEAN:
                t1 = time.perf_counter()
                img = available[name](img, sev, layout.image_seed(seed, flag, ci, sev, int(rows[i])))
                t_corrupt += time.perf_counter() - t1
                if img.dtype != np.uint8 or tuple(img.shape) != want_shape:
                    raise ReferenceDataError([Problem(f"{backend.generator} {name} severity {sev} returned "
                                                      f"{img.dtype} {img.shape}, expected uint8 {want_shape}")])
            for s, small in resize(img).items():
                arrays[s][b * n + i] = small
        if name != layout.CLEAN:
            t = timing.setdefault(name, {"images": 0, "corrupt_s": 0.0, "total_s": 0.0})
            t["images"] += n
            t["corrupt_s"] = round(t["corrupt_s"] + t_corrupt, 4)
            t["total_s"] = round(t["total_s"] + time.perf_counter() - t0, 4)
    for a in arrays.values():
        a.flush()
    del arrays
    np.save(dest / "labels.npy", labels)
    np.save(dest / "source_index.npy", rows)
    files = {}
    for f in sorted(dest.iterdir()):
        arr = np.load(f, mmap_mode="r", allow_pickle=False)
        files[f.name] = {"sha256": layout.sha256_file(f), "shape": list(arr.shape), "dtype": str(arr.dtype)}
        del arr
    total = sum(t["corrupt_s"] for t in timing.values())
    log(f"{split} {flag}: {n} of {all_labels.shape[0]} images x {len(blocks) - 1} corrupted versions "
        f"({len(chosen)} corruptions x {len(severities)} severities) + the clean copy = {n * len(blocks)} rows; "
        f"corruptions {total:.1f} s")
    return {
        "n": int(n), "split_size": int(all_labels.shape[0]), "rows": int(n * len(blocks)),
        "corruptions": chosen, "all_corruptions": list(available), "complete": chosen == list(available),
        "blocks": [[c, s] for c, s in blocks],
        "source": {"file": src.name, "md5": md5, "genuine": bool(genuine), "size": SOURCE_SIZE},
        "sample_ids": [int(r) for r in rows],  # rows of the split (also source_index.npy)
        "files": files, "timing_s": timing,
    }


def corrupt(options: CorruptOptions, *, backend: Optional[Backend] = None,
            log: Callable[[str], None] = print) -> Dict[str, Path]:
    """Write ``out/{split}`` for each split asked for; returns {split: folder}. Each folder appears whole
    or not at all; an existing folder is replaced only when it is a corrupted set itself."""
    o = options
    splits, severities, sizes, flags = _check(o)
    backend = backend or (standin_backend() if o.stand_in else medmnistc_backend())
    root, out = Path(o.data_root), Path(o.out)
    if out.exists() and not out.is_dir():
        raise UsageError([Problem("exists and is not a folder", file=str(out))])
    written: Dict[str, Path] = {}
    for split in splits:
        target = out / split
        if target.exists() and any(target.iterdir()) and not (target / layout.MANIFEST).is_file():
            raise UsageError([Problem("exists and is not a corrupted set (no manifest.json); refusing to replace it",
                                      file=str(target))])
        seed = int(o.seed) if split == "test" else int(o.dev_seed)
        n_max = int(o.per_dataset) if split == "test" else int(o.dev_per_dataset)
        log(f"== {split} sample: {backend.label}; seed {seed} ({'private' if split == 'test' else 'public'}), at most "
            f"{n_max} images per dataset, severities {', '.join(map(str, severities))}, sizes "
            f"{', '.join(map(str, sizes))} px")
        t0 = time.perf_counter()
        with atomic_folder(target) as tmp:
            entries = {}
            for flag in flags:
                entries[flag] = _corrupt_dataset(flag, root, split, seed, n_max, severities, sizes, backend,
                                                 o.corruptions, o.allow_synthetic, tmp / flag, log)
            manifest = {
                "format": layout.FORMAT,
                "generator": backend.generator,
                "label": backend.label,
                "split": split,
                "seed": seed,
                "seed_is_public": split != "test",
                "per_dataset": n_max,
                "severities": severities,
                "sizes": sizes,
                "source_size": SOURCE_SIZE,
                "resize": layout.RESIZE_RULE,
                "synthetic_source": any(not e["source"]["genuine"] for e in entries.values()),
                "complete": all(e["complete"] for e in entries.values()) and flags == list(registry.flags()),
                "packages": backend.packages,
                "python": sys.version.split()[0],
                "baselines": {f: backend.baselines[f] for f in flags if f in (backend.baselines or {})} or None,
                "baselines_source": backend.baselines_source or None,
                "medmnist_version": registry.medmnist_version(),
                "created_by": f"big {__version__}",
                "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "seconds": round(time.perf_counter() - t0, 3),
                "datasets": entries,
            }
            write_json_atomic(tmp / layout.MANIFEST, manifest)
        written[split] = target
        log(f"wrote {target} ({sum(e['rows'] for e in entries.values()):,} images per size) in "
            f"{time.perf_counter() - t0:.1f} s")
    return written
