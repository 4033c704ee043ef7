"""A CodaBench task of the robustness benchmark from one split of a corrupted set.

* ``input_data/`` (participant code reads it): per dataset and size ``{flag}_{size}.npy``, the clean
  copy and every corrupted image of the sample **pooled and shuffled**; row i is opaque id i. Its
  ``manifest.json`` is the BIG input-data manifest (format, sizes, n and sha256 per file): nothing in
  it says which id is which image.
* ``reference_data/`` (the scoring job only): per dataset ``{flag}_labels.npy`` (the sample's labels)
  and ``{flag}_map.npy`` (int64, one row per id: block, sample row, source row of the split), and a
  manifest with the blocks (clean, then corruption x severity), the generator and its label, and the
  AlexNet baselines when the set came from medmnistc.

The shuffle is seeded from the corrupted set's seed (:func:`big.robustness.layout.pool_seed`): the
Test sample's seed is the organizer's secret, so its map exists only in ``reference_data``.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import __version__, inputdata, registry
from ..errors import Problem, ReferenceDataError
from ..fsutil import atomic_folder, write_json_atomic
from ..reference import check_labels, labels_sha256
from . import BENCHMARK, layout

PathLike = Union[str, os.PathLike]
REFERENCE_FORMAT = "big-c-reference/1"
MANIFEST = "manifest.json"
#: rows permuted per step when the pooled images are written (bounded memory)
CHUNK_ROWS = 4096


def map_sha256(m: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(f"{m.dtype.str}{m.shape}".encode())
    h.update(np.ascontiguousarray(m).tobytes())
    return h.hexdigest()


def pool_order(cs: layout.CorruptedSet, flag: str) -> np.ndarray:
    """Canonical row of the corrupted set at each pooled id (a seeded permutation)."""
    rng = np.random.default_rng(layout.pool_seed(cs.seed, flag))
    return rng.permutation(cs.rows(flag)).astype(np.int64)


def id_map(cs: layout.CorruptedSet, flag: str, order: np.ndarray) -> np.ndarray:
    """(rows, 3) int64: block index, sample row and source row of the split, per pooled id."""
    n = cs.n(flag)
    src = cs.source_index(flag)
    block, sample = np.divmod(order, n)
    return np.stack([block, sample, src[sample]], axis=1).astype(np.int64)


def write_task(cs: layout.CorruptedSet, dest: PathLike, sizes: Sequence[int], *,
               log: Optional[Callable[[str], None]] = None) -> Dict[str, Path]:
    """Write ``dest/input_data`` and ``dest/reference_data`` for the 12 datasets at ``sizes``."""
    dest = Path(dest)
    missing = [f for f in registry.flags() if f not in cs.flags]
    if missing:
        raise ReferenceDataError([Problem(f"the corrupted {cs.split} sample lacks {', '.join(missing)}: a bundle needs "
                                          "all 12 datasets (`big corrupt` without --flags)", file=str(cs.folder))])
    absent = [s for s in sizes if s not in cs.sizes]
    if absent:
        raise ReferenceDataError([Problem(f"the corrupted {cs.split} sample has no images at {absent} px (it has "
                                          f"{', '.join(map(str, cs.sizes))}): write it with `big corrupt --sizes "
                                          f"{','.join(map(str, sorted(set(cs.sizes) | set(sizes))))}`",
                                          file=str(cs.folder))])
    problems: List[Problem] = []
    for flag in registry.flags():
        problems += check_labels(flag, cs.labels(flag), file=f"{cs.folder.name}/{flag}/labels.npy")
    if problems:
        raise ReferenceDataError(problems)
    input_dir, ref_dir = dest / "input_data", dest / "reference_data"
    with atomic_folder(input_dir) as inp, atomic_folder(ref_dir) as ref:
        in_manifest = {"format": inputdata.FORMAT, "split": cs.split, "benchmark": BENCHMARK, "sizes": list(sizes),
                       "datasets": list(registry.flags()), "synthetic": cs.synthetic_source,
                       "note": "pooled images under opaque ids (clean and corrupted, shuffled)",
                       "created_by": f"big {__version__}", "files": {}}
        ref_manifest = {"format": REFERENCE_FORMAT, "benchmark": BENCHMARK, "split": cs.split,
                        "generator": cs.generator, "label": cs.label, "severities": cs.severities,
                        "seed": cs.seed, "seed_is_public": bool(cs.manifest.get("seed_is_public")),
                        "synthetic": cs.synthetic_source, "complete": bool(cs.manifest.get("complete")),
                        "resize": cs.manifest.get("resize"), "sizes": list(sizes),
                        "packages": cs.manifest.get("packages"), "baselines": cs.manifest.get("baselines"),
                        "baselines_source": cs.manifest.get("baselines_source"),
                        "created_by": f"big {__version__}",
                        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "datasets": {}}
        for flag in registry.flags():
            order = pool_order(cs, flag)
            m = id_map(cs, flag, order)
            lab = cs.labels(flag)
            np.save(ref / f"{flag}_labels.npy", lab)
            np.save(ref / f"{flag}_map.npy", m)
            e = cs.entry(flag)
            ref_manifest["datasets"][flag] = {
                "n": cs.n(flag), "rows": int(order.size), "split_size": e.get("split_size"),
                "blocks": e["blocks"], "corruptions": e["corruptions"], "complete": bool(e.get("complete")),
                "labels_sha256": labels_sha256(lab), "map_sha256": map_sha256(m),
                "source": e.get("source")}
            for size in sizes:
                name = inputdata.file_name(flag, size)
                src = cs.images(flag, size)
                out = np.lib.format.open_memmap(inp / name, mode="w+", dtype=np.uint8, shape=src.shape)
                for a in range(0, order.size, CHUNK_ROWS):
                    idx = order[a:a + CHUNK_ROWS]
                    srt = np.argsort(idx, kind="stable")
                    out[a:a + idx.size][srt] = src[idx[srt]]  # read the source in increasing row order
                out.flush()
                del out, src
                in_manifest["files"][name] = {
                    "flag": flag, "size": int(size), "n": int(order.size), "shape": [int(order.size),
                                                                                      *registry.get(flag).image_shape(size)],
                    "dtype": "uint8", "sha256": inputdata.file_sha256(inp / name),
                    "source": {"benchmark": BENCHMARK, "generator": cs.generator}}
            if log:
                log(f"{cs.split} {flag}: {order.size} pooled images ({len(e['blocks']) - 1} corrupted versions + the "
                    f"clean copy of {cs.n(flag)} images) at {', '.join(map(str, sizes))} px")
        write_json_atomic(inp / MANIFEST, in_manifest)
        write_json_atomic(ref / MANIFEST, ref_manifest)
    return {"input_data": input_dir, "reference_data": ref_dir}


# ---------------------------------------------------------------------------------------------
# reading the reference (the scorer)
# ---------------------------------------------------------------------------------------------

class RobustnessReference:
    """A robustness task's reference_data folder, every file checked against its manifest."""

    def __init__(self, folder: PathLike):
        self.folder = Path(folder)
        path = self.folder / MANIFEST
        if not path.is_file():
            raise ReferenceDataError([Problem(f"no {MANIFEST} in the reference folder (a robustness task's "
                                              "reference_data is written by `big bundle --benchmark robustness`)",
                                              file=str(self.folder))])
        try:
            self.manifest = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ReferenceDataError([Problem(f"{MANIFEST} is not valid JSON ({exc})", file=str(path))]) from None
        if not isinstance(self.manifest, dict) or self.manifest.get("format") != REFERENCE_FORMAT:
            found = self.manifest.get("format") if isinstance(self.manifest, dict) else None
            raise ReferenceDataError([Problem(f"unknown format {found!r}, expected {REFERENCE_FORMAT}"
                                              + (" (this is BIG's reference data: score it with the BIG scorer)"
                                                 if str(found).startswith("big-reference") else ""), file=str(path))])
        m = self.manifest
        self.split: str = m["split"]
        self.generator: str = m["generator"]
        self.label: str = m["label"]
        self.synthetic: bool = bool(m.get("synthetic"))
        self.severities: List[int] = [int(s) for s in m["severities"]]
        missing = [f for f in registry.flags() if f not in m.get("datasets", {})]
        if missing:
            raise ReferenceDataError([Problem(f"the reference lacks {', '.join(missing)}", file=str(path))])
        self._cache: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}

    @property
    def expected_n(self) -> Dict[str, int]:
        """Rows (pooled ids) per dataset: what each prediction file must hold."""
        return {f: int(self.manifest["datasets"][f]["rows"]) for f in registry.flags()}

    def blocks(self, flag: str) -> List[Tuple[str, int]]:
        return [(str(c), int(s)) for c, s in self.manifest["datasets"][flag]["blocks"]]

    def corruptions(self, flag: str) -> List[str]:
        return list(self.manifest["datasets"][flag]["corruptions"])

    def sha256(self) -> str:
        h = hashlib.sha256()
        for flag in registry.flags():
            e = self.manifest["datasets"][flag]
            h.update(e["labels_sha256"].encode())
            h.update(e["map_sha256"].encode())
        return h.hexdigest()

    def data(self, flag: str) -> Tuple[np.ndarray, np.ndarray]:
        """(labels (n, L) uint8, map (rows, 3) int64), checked against the manifest."""
        if flag not in self._cache:
            e = self.manifest["datasets"][flag]
            lp, mp = self.folder / f"{flag}_labels.npy", self.folder / f"{flag}_map.npy"
            try:
                lab = np.load(lp, allow_pickle=False)
                m = np.load(mp, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise ReferenceDataError([Problem(f"cannot read the reference of {flag}: {exc}",
                                                  file=str(self.folder))]) from None
            problems = []
            if labels_sha256(lab) != e["labels_sha256"]:
                problems.append(Problem("labels do not match the sha256 in the manifest", file=str(lp)))
            if map_sha256(m) != e["map_sha256"]:
                problems.append(Problem("the id map does not match the sha256 in the manifest", file=str(mp)))
            if not problems:
                problems += check_labels(flag, lab, file=str(lp))
            if not problems and (m.shape != (int(e["rows"]), 3) or m[:, 0].max() >= len(e["blocks"])
                                 or m[:, 1].max() >= lab.shape[0]):
                problems.append(Problem(f"the id map {m.shape} does not fit {e['rows']} rows, {len(e['blocks'])} "
                                        f"blocks and {lab.shape[0]} labels", file=str(mp)))
            if problems:
                raise ReferenceDataError(problems)
            self._cache[flag] = (lab, m)
        return self._cache[flag]
