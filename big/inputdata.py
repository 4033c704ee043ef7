"""Images-only input data for code submissions: ``{flag}_{size}.npy`` per dataset and size.

Layout of an input-data folder (the bundle's ``input_data/{val,test}``, mounted by CodaBench at
/app/input_data; the same layout placed by an organizer at /app/data on their own worker)::

    manifest.json          format, split, sizes, per file: flag, size, n, shape, dtype, sha256, source
    {flag}_{size}.npy      exactly the uint8 ``{split}_images`` array of the medmnist npz, row i = id i

Never labels. Arrays are streamed from the npz zip member into a memory-mapped ``.npy`` in chunks,
so no array is ever decompressed whole into memory; the folder is written under a temporary name and
renamed into place, so a crash leaves no half-written folder.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import __version__, data, registry
from .errors import Problem, ReferenceDataError, SubmissionError
from .fsutil import atomic_folder

PathLike = Union[str, os.PathLike]
MANIFEST = "manifest.json"
FORMAT = "big-input-data/1"
#: bytes copied per step from the zip member into the memory map
CHUNK_BYTES = 16 << 20


def file_name(flag: str, size: int) -> str:
    return f"{flag}_{int(size)}.npy"


def _plan(root: Path, split: str, sizes: Sequence[int], flags: Sequence[str], allow_synthetic: bool,
          progress) -> Tuple[List[dict], List[Problem], bool]:
    """Check every source file (existence, MD5, member header) before anything is written."""
    jobs: List[dict] = []
    problems: List[Problem] = []
    synthetic = False
    for flag in flags:
        ds = registry.get(flag)
        for size in sizes:
            path = root / ds.file_name(size)
            if not path.is_file():
                problems.append(Problem(f"missing: {ds.file_name(size)} is needed for {flag} at {size} px "
                                        "(`python -m medmnist download` or `big synth` for synthetic data)",
                                        file=str(root)))
                continue
            if progress:
                progress(f"checking {path.name}")
            md5, genuine, problem = data.check_source_md5(path, ds, size, allow_synthetic=allow_synthetic)
            if problem:
                problems.append(problem)
                continue
            synthetic |= not genuine
            member = f"{split}_images.npy"
            try:
                with zipfile.ZipFile(path) as zf:
                    if member not in zf.namelist():
                        problems.append(Problem(f"no member {member} (found {', '.join(zf.namelist())})",
                                                file=path.name))
                        continue
                    with zf.open(member) as fh:
                        shape, fortran, dtype = data.read_npy_header(fh, with_order=True)
            except (zipfile.BadZipFile, ValueError, OSError) as exc:
                problems.append(Problem(f"cannot read {member}: {exc}", file=path.name))
                continue
            want = ds.image_shape(size)
            if dtype != np.uint8 or fortran or len(shape) != len(want) + 1 or tuple(shape[1:]) != want:
                problems.append(Problem(f"{member} has dtype {dtype} shape {shape}"
                                        f"{' (Fortran order)' if fortran else ''}, expected C-ordered uint8 "
                                        f"(N, {', '.join(map(str, want))})", file=path.name))
                continue
            if genuine and shape[0] != ds.n_samples[split]:
                problems.append(Problem(f"{member} has {shape[0]} images; medmnist INFO says {ds.n_samples[split]}",
                                        file=path.name))
                continue
            jobs.append({"flag": flag, "size": int(size), "path": path, "member": member, "shape": shape,
                         "md5": md5, "genuine": genuine})
    return jobs, problems, synthetic


def _copy_member(job: dict, target: Path, chunk_bytes: int) -> str:
    """Stream one npz member into ``target`` (``big.data.convert_member``: window by window, so memory
    stays at about ``chunk_bytes`` whatever the array size); return the sha256 of the written file."""
    h = hashlib.sha256()
    try:
        data.convert_member(job["path"], job["member"][:-len(".npy")], target, chunk_bytes=chunk_bytes, digest=h)
    except ValueError as exc:
        raise ReferenceDataError([Problem(f"{job['member']} is damaged: {exc}", file=job["path"].name)]) from None
    return h.hexdigest()


def write_input_data(data_root: PathLike, split: str, sizes: Sequence[int], out_dir: PathLike, *,
                     allow_synthetic: bool = False, progress: Optional[Callable[[str], None]] = None,
                     flags: Optional[Sequence[str]] = None, chunk_bytes: int = CHUNK_BYTES) -> Path:
    """Write the images of ``split`` for every dataset (default all 12) and size into ``out_dir``.

    Every source file is checked first (present, MD5 from medmnist INFO unless ``allow_synthetic``,
    member dtype/shape); any problem raises :class:`ReferenceDataError` listing all of them and
    nothing is written. An existing ``out_dir`` is replaced only when it is empty or an input-data
    folder itself (it has our manifest), so an unrelated folder is never clobbered.
    """
    if split not in registry.SPLITS:
        raise ReferenceDataError([Problem(f"split must be one of {', '.join(registry.SPLITS)}, not {split!r}")])
    sizes = [int(s) for s in sizes]
    bad = [s for s in sizes if s not in registry.SIZES]
    if bad or not sizes:
        raise ReferenceDataError([Problem(f"sizes {bad or sizes}: expected some of {', '.join(map(str, registry.SIZES))}")])
    sizes = sorted(set(sizes))
    flags = list(flags or registry.flags())
    root, out = Path(data_root), Path(out_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).is_file())):
        raise ReferenceDataError([Problem("exists and is not an input-data folder (no manifest.json); "
                                          "refusing to replace it", file=str(out))])
    jobs, problems, synthetic = _plan(root, split, sizes, flags, allow_synthetic, progress)
    if problems:
        raise ReferenceDataError(problems, None if len(problems) == 1 else
                                 f"{len(problems)} problems with the source files in {root}; the first: {problems[0]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    need = sum(int(np.prod(j["shape"])) + 128 for j in jobs)
    free = shutil.disk_usage(out.parent).free
    if need > free:
        raise ReferenceDataError([Problem(f"needs {need / 1e9:.2f} GB for the images, only {free / 1e9:.2f} GB free",
                                          file=str(out.parent))])
    with atomic_folder(out) as tmp:
        manifest = {
            "format": FORMAT,
            "split": split,
            "sizes": sizes,
            "datasets": flags,
            "synthetic": bool(synthetic),
            "medmnist_version": registry.medmnist_version(),
            "created_by": f"big {__version__}",
            "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "files": {},
        }
        for job in jobs:
            name = file_name(job["flag"], job["size"])
            if progress:
                progress(f"writing {name} ({job['shape'][0]} images from {job['path'].name})")
            sha = _copy_member(job, tmp / name, chunk_bytes)
            manifest["files"][name] = {
                "flag": job["flag"], "size": job["size"], "n": int(job["shape"][0]),
                "shape": list(job["shape"]), "dtype": "uint8", "sha256": sha,
                "source": {"file": job["path"].name, "member": job["member"], "md5": job["md5"],
                           "genuine": job["genuine"]},
            }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return out


def read_manifest(folder: PathLike) -> Optional[dict]:
    """The folder's manifest, or None when it has none (a hand-placed folder of .npy files is fine)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ReferenceDataError([Problem(f"{MANIFEST} is not valid JSON ({exc})", file=str(path))]) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ReferenceDataError([Problem(f"unknown format {found!r}, expected {FORMAT}", file=str(path))])
    return manifest


def sizes_present(folder: PathLike, flag: str) -> List[int]:
    folder = Path(folder)
    return [s for s in registry.SIZES if (folder / file_name(flag, s)).is_file()]


def open_images(folder: PathLike, flag: str, size: int) -> np.ndarray:
    """The read-only memory map of ``{flag}_{size}.npy`` in ``folder``.

    A size that is not there raises :class:`SubmissionError` (the model asked for it) naming the
    sizes that are; a file of the wrong dtype/shape raises :class:`ReferenceDataError`.
    """
    folder = Path(folder)
    ds = registry.get(flag)
    path = folder / file_name(flag, size)
    if not path.is_file():
        present = sizes_present(folder, flag)
        if not present:
            raise ReferenceDataError([Problem(f"no images for {flag} at any size (expected {file_name(flag, size)})",
                                              file=str(folder))])
        raise SubmissionError([Problem(f"resolution {size} is not available for {flag}; the sizes present are "
                                       f"{', '.join(map(str, present))}", file=str(folder))])
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ReferenceDataError([Problem(f"cannot read the images: {exc}", file=str(path))]) from None
    want = (ds.image_shape(size))
    if arr.dtype != np.uint8 or arr.ndim != len(want) + 1 or tuple(arr.shape[1:]) != want:
        raise ReferenceDataError([Problem(f"images have dtype {arr.dtype} shape {arr.shape}, expected uint8 "
                                          f"(N, {', '.join(map(str, want))})", file=str(path))])
    manifest = read_manifest(folder)
    entry = (manifest or {}).get("files", {}).get(path.name)
    if entry is not None and list(arr.shape) != list(entry["shape"]):
        raise ReferenceDataError([Problem(f"shape {arr.shape} differs from the manifest's {tuple(entry['shape'])}",
                                          file=str(path))])
    return arr


def file_sha256(path: PathLike) -> str:
    return data.file_digest(path, "sha256")


def verify_input_data(folder: PathLike, *, progress: Optional[Callable[[str], None]] = None) -> Dict[str, int]:
    """Recompute every file's sha256 against the manifest; return n per file, or raise listing problems."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise ReferenceDataError([Problem(f"no {MANIFEST} (write the folder with `big input-data`)", file=str(folder))])
    problems: List[Problem] = []
    counts: Dict[str, int] = {}
    for name, entry in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            problems.append(Problem("listed in the manifest but missing", file=str(path)))
            continue
        if progress:
            progress(f"verifying {name}")
        got = file_sha256(path)
        if got != entry["sha256"]:
            problems.append(Problem(f"sha256 {got} differs from the manifest's {entry['sha256']}", file=str(path)))
            continue
        counts[name] = int(entry["n"])
    if problems:
        raise ReferenceDataError(problems)
    return counts
