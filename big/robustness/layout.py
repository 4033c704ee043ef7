"""The corrupted set that ``big corrupt`` writes and ``big bundle --benchmark robustness`` reads.

Layout of one split's folder (``CDIR/val`` = the Development sample, ``CDIR/test`` = the Test sample)::

    manifest.json                 FORMAT; generator and its label, seed, package versions, sizes,
                                  severities, resize rule, AlexNet baselines (medmnistc only), and per
                                  dataset: sample size n, source file, corruptions, blocks, sha256s
    {flag}/images_{size}.npy      uint8 (M, S, S[, 3]), M = n * (1 + corruptions * severities):
                                  block 0 = the clean copy, then one block of n rows per
                                  (corruption, severity) in manifest order; row b*n + i = sample image i
    {flag}/labels.npy             uint8 (n, 1) or (n, 14): labels of the sampled source images
    {flag}/source_index.npy       int64 (n,): row of each sampled image in the MedMNIST+ split

This folder is the organizer's private copy (it holds labels): it never goes into a bundle as it is.
Pure numpy and the standard library; no medmnistc here.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import List, Sequence, Tuple, Union

import numpy as np

from .. import registry
from ..errors import Problem, ReferenceDataError

PathLike = Union[str, os.PathLike]
FORMAT = "big-c-corrupted/1"
MANIFEST = "manifest.json"
SPLITS = ("val", "test")
SEVERITIES = (1, 3, 5)
#: MedMNIST-C defines 5 severities per corruption
ALL_SEVERITIES = (1, 2, 3, 4, 5)
PER_DATASET = 500
DEV_PER_DATASET = 100
#: the Development sample's seed is public (the pages print it); the Test seed is the organizer's secret
PUBLIC_DEV_SEED = 0
CLEAN = "clean"
#: the one documented resize from the corrupted 224 px image to the smaller input sizes
RESIZE_RULE = ("PIL Image.resize((S, S), Image.Resampling.BICUBIC) of the 224 px image (Pillow's resampling "
               "filters antialias when they downscale: the kernel support grows with the scale factor)")
GENERATOR_MEDMNISTC = "medmnistc"
GENERATOR_STANDIN = "stand-in"
STANDIN_LABEL = ("STAND-IN corruptions (numpy noise, blur, contrast and brightness) for tests and demos: "
                 "NOT MedMNIST-C")


def images_name(size: int) -> str:
    return f"images_{int(size)}.npy"


# ---------------------------------------------------------------------------------------------
# the sample: seeded and stratified
# ---------------------------------------------------------------------------------------------

def strata(labels: np.ndarray, kind: str) -> np.ndarray:
    """One stratum per image: its class; for multi-label data the rarest label it has (-1: none)."""
    if kind != registry.MULTILABEL:
        return labels[:, 0].astype(np.int64)
    freq = labels.mean(axis=0)
    order = np.argsort(freq, kind="stable")  # rarest label first
    out = np.full(labels.shape[0], -1, dtype=np.int64)
    for j in order[::-1]:  # later (rarer) labels overwrite
        out[labels[:, j] == 1] = j
    return out


def stratified_sample(labels: np.ndarray, kind: str, n_max: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted row indices of at most ``n_max`` images, every stratum in proportion to its size
    (largest remainder), each stratum at least once when ``n_max`` allows; all rows when fewer."""
    n = labels.shape[0]
    if n_max <= 0:
        raise ValueError("the sample size must be positive")
    if n <= n_max:
        return np.arange(n, dtype=np.int64)
    s = strata(labels, kind)
    values, counts = np.unique(s, return_counts=True)
    quota = n_max * counts / n
    alloc = np.floor(quota).astype(np.int64)
    if n_max >= values.size:
        alloc = np.maximum(alloc, 1)
    while alloc.sum() > n_max:  # the minimum of 1 overshot: take back from the largest strata
        alloc[int(np.argmax(alloc - quota))] -= 1
    rest = n_max - int(alloc.sum())
    if rest > 0:
        order = np.lexsort((values, -(quota - alloc)))  # largest remainder first, ties by stratum
        for k in order:
            if rest == 0:
                break
            if alloc[k] < counts[k]:
                alloc[k] += 1
                rest -= 1
    picks = [rng.choice(np.flatnonzero(s == v), size=int(a), replace=False) for v, a in zip(values, alloc) if a > 0]
    return np.sort(np.concatenate(picks)).astype(np.int64)


def sample_seed(seed: int, flag: str) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(seed), 1, registry.flags().index(flag)])


def image_seed(seed: int, flag: str, corruption_index: int, severity: int, source_index: int) -> np.random.SeedSequence:
    """The seed of one corrupted image: independent of the order (and process) it is made in."""
    return np.random.SeedSequence([int(seed), 2, registry.flags().index(flag), int(corruption_index), int(severity),
                                   int(source_index)])


def pool_seed(seed: int, flag: str) -> np.random.SeedSequence:
    """The seed of the shuffle that hides which pooled id is which image (private with a private seed)."""
    return np.random.SeedSequence([int(seed), 3, registry.flags().index(flag)])


def blocks(corruptions: Sequence[str], severities: Sequence[int]) -> List[Tuple[str, int]]:
    """(corruption, severity) of each block of n rows: the clean copy first (severity 0)."""
    return [(CLEAN, 0)] + [(c, int(s)) for c in corruptions for s in severities]


# ---------------------------------------------------------------------------------------------
# reading a corrupted set
# ---------------------------------------------------------------------------------------------

def sha256_file(path: PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class CorruptedSet:
    """One split's folder of a corrupted set, its manifest checked; arrays opened on demand."""

    def __init__(self, folder: PathLike):
        self.folder = Path(folder)
        path = self.folder / MANIFEST
        if not path.is_file():
            raise ReferenceDataError([Problem(f"no {MANIFEST}: not a corrupted set written by `big corrupt`",
                                              file=str(self.folder))])
        try:
            m = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ReferenceDataError([Problem(f"{MANIFEST} is not valid JSON ({exc})", file=str(path))]) from None
        if not isinstance(m, dict) or m.get("format") != FORMAT:
            found = m.get("format") if isinstance(m, dict) else type(m).__name__
            raise ReferenceDataError([Problem(f"unknown format {found!r}, expected {FORMAT} (write the set with "
                                              "`big corrupt`)", file=str(path))])
        self.manifest = m
        problems = []
        for key in ("split", "generator", "label", "seed", "severities", "sizes", "datasets"):
            if key not in m:
                problems.append(Problem(f"{MANIFEST} lacks {key!r}", file=str(path)))
        if problems:
            raise ReferenceDataError(problems)
        self.split: str = m["split"]
        self.generator: str = m["generator"]
        self.label: str = m["label"]
        self.seed: int = int(m["seed"])
        self.severities: List[int] = [int(s) for s in m["severities"]]
        self.sizes: List[int] = [int(s) for s in m["sizes"]]
        self.synthetic_source: bool = bool(m.get("synthetic_source"))
        unknown = [f for f in m["datasets"] if f not in registry.flags()]
        if unknown:
            raise ReferenceDataError([Problem(f"unknown dataset(s) {', '.join(unknown)}", file=str(path))])

    @property
    def flags(self) -> List[str]:
        return [f for f in registry.flags() if f in self.manifest["datasets"]]

    def entry(self, flag: str) -> dict:
        try:
            return self.manifest["datasets"][flag]
        except KeyError:
            raise ReferenceDataError([Problem(f"the corrupted set has no {flag}", file=str(self.folder))]) from None

    def blocks(self, flag: str) -> List[Tuple[str, int]]:
        return [(str(c), int(s)) for c, s in self.entry(flag)["blocks"]]

    def n(self, flag: str) -> int:
        return int(self.entry(flag)["n"])

    def rows(self, flag: str) -> int:
        return self.n(flag) * len(self.blocks(flag))

    def images(self, flag: str, size: int) -> np.ndarray:
        path = self.folder / flag / images_name(size)
        if not path.is_file():
            raise ReferenceDataError([Problem(f"no images at {size} px (the set has {', '.join(map(str, self.sizes))})",
                                              file=str(path))])
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        want = (self.rows(flag), *registry.get(flag).image_shape(size))
        if arr.dtype != np.uint8 or tuple(arr.shape) != want:
            raise ReferenceDataError([Problem(f"{arr.dtype} {arr.shape}, expected uint8 {want}", file=str(path))])
        return arr

    def labels(self, flag: str) -> np.ndarray:
        path = self.folder / flag / "labels.npy"
        lab = np.load(path, allow_pickle=False)
        ds = registry.get(flag)
        if lab.dtype != np.uint8 or lab.shape != (self.n(flag), ds.label_width):
            raise ReferenceDataError([Problem(f"labels are {lab.dtype} {lab.shape}, expected uint8 "
                                              f"({self.n(flag)}, {ds.label_width})", file=str(path))])
        return lab

    def source_index(self, flag: str) -> np.ndarray:
        path = self.folder / flag / "source_index.npy"
        idx = np.load(path, allow_pickle=False)
        if idx.shape != (self.n(flag),) or idx.dtype.kind not in "iu":
            raise ReferenceDataError([Problem(f"source_index is {idx.dtype} {idx.shape}, expected ({self.n(flag)},)",
                                              file=str(path))])
        return idx.astype(np.int64)

    def verify(self, progress=None) -> None:
        """Recompute every file's sha256 against the manifest; raise listing every difference."""
        problems = []
        for flag in self.flags:
            for name, meta in (self.entry(flag).get("files") or {}).items():
                path = self.folder / flag / name
                if progress:
                    progress(f"verifying {flag}/{name}")
                if not path.is_file():
                    problems.append(Problem("listed in the manifest but missing", file=str(path)))
                elif sha256_file(path) != meta.get("sha256"):
                    problems.append(Problem("sha256 differs from the manifest: the file changed after `big corrupt`",
                                            file=str(path)))
        if problems:
            raise ReferenceDataError(problems)


def find_split(cdir: PathLike, split: str) -> CorruptedSet:
    """``CDIR/{split}`` as a :class:`CorruptedSet`, with a message saying how to make a missing one."""
    folder = Path(cdir) / split
    if not (folder / MANIFEST).is_file():
        raise ReferenceDataError([Problem(f"no corrupted {split} sample here (expected {split}/{MANIFEST}); write it "
                                          f"with `big corrupt --splits {split} ...`", file=str(cdir))])
    cs = CorruptedSet(folder)
    if cs.split != split:
        raise ReferenceDataError([Problem(f"holds the {cs.split} split, not {split}", file=str(folder))])
    return cs
