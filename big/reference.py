"""Reference data: the hidden labels of one split for the scoring program, and their manifest.

Layout of a reference folder (CodaBench mounts it at /app/input/ref)::

    manifest.json      split, n per dataset, sha256 of the labels, source MD5 per file, medmnist version
    {flag}.npy         uint8 labels of the split, (n, 1) or (n, 14) for chestmnist, row i = id i

No images ever go here. Files whose MD5 differs from medmnist INFO are refused unless
``allow_synthetic``; the manifest is then stamped ``"synthetic": true``.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from . import __version__, data, registry
from .errors import Problem, ReferenceDataError
from .fsutil import atomic_folder

PathLike = Union[str, os.PathLike]
MANIFEST = "manifest.json"
FORMAT = "big-reference/1"


def labels_sha256(labels: np.ndarray) -> str:
    """sha256 over dtype, shape and bytes, so a reshaped or re-typed copy does not match."""
    h = hashlib.sha256()
    h.update(f"{labels.dtype.str}{labels.shape}".encode())
    h.update(np.ascontiguousarray(labels).tobytes())
    return h.hexdigest()


def available_sizes(data_root: PathLike, flag: str) -> List[int]:
    ds = registry.get(flag)
    return [s for s in registry.SIZES if (Path(data_root) / ds.file_name(s)).is_file()]


def download(data_root: PathLike, flag: str, size: int, *, progress: Optional[Callable[[str], None]] = print,
             opener=None) -> Path:
    """Fetch one MedMNIST+ file from the URL in medmnist INFO (via the registry) and check its MD5."""
    import urllib.request

    ds = registry.get(flag)
    target = Path(data_root) / ds.file_name(size)
    target.parent.mkdir(parents=True, exist_ok=True)
    url = ds.url(size)
    tmp = target.with_name(target.name + ".partial")
    opener = opener or urllib.request.urlopen
    if progress:
        progress(f"downloading {url}")
    try:
        with opener(url) as resp, open(tmp, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) if hasattr(resp, "headers") else 0
            done, last = 0, -1
            for block in iter(lambda: resp.read(1 << 20), b""):
                out.write(block)
                done += len(block)
                pct = int(100 * done / total) if total else -1
                if progress and total and pct // 10 != last // 10:
                    progress(f"  {target.name}: {pct}% of {total / 1e6:.1f} MB")
                    last = pct
        got = data.md5sum(tmp)
        if got != ds.md5(size):
            raise ReferenceDataError([Problem(f"downloaded file has MD5 {got}, expected {ds.md5(size)} (medmnist INFO)",
                                              file=target.name)])
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target


def collect_labels(data_root: PathLike, split: str, *, allow_synthetic: bool = False, download_missing: bool = False,
                   flags: Optional[Sequence[str]] = None, progress: Optional[Callable[[str], None]] = None):
    """Labels of ``split`` for every dataset, checked across all sizes present. Returns
    (labels by flag, source description by flag, synthetic flag)."""
    root = Path(data_root)
    if not root.is_dir():
        raise ReferenceDataError([Problem(f"the data root {root} is not a folder; give the folder holding the "
                                          "MedMNIST+ npz files (e.g. ~/.medmnist)")])
    problems: List[Problem] = []
    labels: Dict[str, np.ndarray] = {}
    sources: Dict[str, dict] = {}
    synthetic = False
    for flag in flags or registry.flags():
        ds = registry.get(flag)
        sizes = available_sizes(root, flag)
        if not sizes and download_missing:
            download(root, flag, 28, progress=progress)
            sizes = [28]
        if not sizes:
            problems.append(Problem(f"no file for {flag} (expected one of "
                                    f"{', '.join(ds.file_name(s) for s in registry.SIZES)}); "
                                    "download it with --download or `python -m medmnist download`", file=str(root)))
            continue
        first = None
        files = {}
        for size in sizes:
            path = root / ds.file_name(size)
            md5, genuine, problem = data.check_source_md5(path, ds, size, allow_synthetic=allow_synthetic)
            if problem:
                problems.append(problem)
                continue
            synthetic |= not genuine
            layout = data.check_layout(path, ds, size, splits=(split,))
            if layout:
                problems.extend(Problem(p) for p in layout)
                continue
            lab = data.read_labels(path, split)
            if lab.shape[0] != ds.n_samples[split] and genuine:
                problems.append(Problem(f"{split} has {lab.shape[0]} samples; medmnist INFO says {ds.n_samples[split]}",
                                        file=path.name))
                continue
            files[str(size)] = {"file": path.name, "md5": md5, "genuine": genuine}
            if first is None:
                first = (size, lab)
            elif not np.array_equal(first[1], lab):
                diff = int((first[1] != lab).any(axis=1).sum()) if first[1].shape == lab.shape else -1
                what = f"{diff} rows differ" if diff >= 0 else f"shapes {first[1].shape} vs {lab.shape}"
                problems.append(Problem(f"{split} labels differ between {ds.file_name(first[0])} and {path.name} "
                                        f"({what}); MedMNIST+ labels are identical across sizes", file=path.name))
        if first is not None:
            labels[flag] = first[1]
            sources[flag] = files
            problems.extend(check_labels(flag, first[1], file=ds.file_name(first[0])))
    if problems:
        raise ReferenceDataError(problems)
    return labels, sources, synthetic


def check_labels(flag: str, lab: np.ndarray, *, file: Optional[str] = None) -> List[Problem]:
    """Problems that make a dataset's labels unusable as a reference (metrics would be undefined)."""
    ds = registry.get(flag)
    where = file or flag
    if lab.dtype != np.uint8 or lab.ndim != 2 or lab.shape[1] != ds.label_width:
        return [Problem(f"labels are {lab.dtype} {lab.shape}, expected uint8 (n, {ds.label_width})", file=where)]
    if lab.shape[0] == 0:
        return [Problem("no samples", file=where)]
    if lab.max() >= (2 if ds.kind == registry.MULTILABEL else ds.n_labels):
        return [Problem(f"label value {int(lab.max())} out of range for {ds.n_labels} classes", file=where)]
    if ds.kind == registry.MULTILABEL:
        if not any(lab[:, j].min() != lab[:, j].max() for j in range(lab.shape[1])):
            return [Problem("every label column is constant: no metric is defined", file=where)]
    elif np.unique(lab).size < 2:
        return [Problem("a single class in the labels: AUC and kappa are undefined", file=where)]
    return []


def write_reference(out: PathLike, split: str, labels: Dict[str, np.ndarray], sources: Dict[str, dict],
                    *, synthetic: bool) -> Path:
    """Write a reference folder atomically (a temp folder renamed into place)."""
    with atomic_folder(out) as tmp:
        manifest = {
            "format": FORMAT,
            "split": split,
            "synthetic": bool(synthetic),
            "medmnist_version": registry.medmnist_version(),
            "created_by": f"big {__version__}",
            "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "datasets": {},
        }
        for flag, lab in labels.items():
            np.save(tmp / f"{flag}.npy", lab)
            manifest["datasets"][flag] = {"n": int(lab.shape[0]), "labels_sha256": labels_sha256(lab),
                                          "source_files": sources.get(flag, {})}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return out


def build_reference(data_root: PathLike, split: str, out: PathLike, *, allow_synthetic: bool = False,
                    download_missing: bool = False, progress: Optional[Callable[[str], None]] = None) -> Path:
    if split not in ("val", "test"):
        raise ReferenceDataError([Problem(f"split must be val or test, not {split!r}")])
    labels, sources, synthetic = collect_labels(data_root, split, allow_synthetic=allow_synthetic,
                                                download_missing=download_missing, progress=progress)
    return write_reference(out, split, labels, sources, synthetic=synthetic)


class Reference:
    """A loaded reference folder: labels by flag plus the manifest."""

    def __init__(self, folder: PathLike):
        self.folder = Path(folder)
        path = self.folder / MANIFEST
        if not path.is_file():
            raise ReferenceDataError([Problem(f"no {MANIFEST} in the reference folder {self.folder}; build it with "
                                              "`big build-reference`")])
        try:
            self.manifest = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ReferenceDataError([Problem(f"{MANIFEST} is not valid JSON ({exc})", file=str(path))]) from None
        if self.manifest.get("format") != FORMAT:
            raise ReferenceDataError([Problem(f"unknown format {self.manifest.get('format')!r}, expected {FORMAT}",
                                              file=str(path))])
        self.split: str = self.manifest["split"]
        self.synthetic: bool = bool(self.manifest.get("synthetic"))
        self._labels: Dict[str, np.ndarray] = {}

    @property
    def expected_n(self) -> Dict[str, int]:
        return {f: int(v["n"]) for f, v in self.manifest["datasets"].items()}

    def sha256(self) -> str:
        """One digest of the whole reference (over the per-dataset label digests)."""
        h = hashlib.sha256()
        for flag in registry.flags():
            h.update(self.manifest["datasets"].get(flag, {}).get("labels_sha256", "").encode())
        return h.hexdigest()

    def labels(self, flag: str) -> np.ndarray:
        if flag not in self._labels:
            meta = self.manifest["datasets"].get(flag)
            path = self.folder / f"{flag}.npy"
            if meta is None or not path.is_file():
                raise ReferenceDataError([Problem(f"the reference has no labels for {flag}", file=str(self.folder))])
            lab = np.load(path, allow_pickle=False)
            if labels_sha256(lab) != meta["labels_sha256"]:
                raise ReferenceDataError([Problem("labels do not match the sha256 in the manifest", file=str(path))])
            problems = check_labels(flag, lab, file=str(path))
            if problems:
                raise ReferenceDataError(problems)
            self._labels[flag] = lab
        return self._labels[flag]

    def check_complete(self) -> None:
        missing = [f for f in registry.flags() if f not in self.manifest["datasets"]]
        if missing:
            raise ReferenceDataError([Problem(f"the reference lacks {', '.join(missing)}", file=str(self.folder))])
