"""uint8 batches from the memory-mapped .npy cache, read ahead by one thread.

No per-image work on the CPU: a batch is one coalesced ``pread`` per run of rows into a uint8
array, handed to the training loop, moved to the device and normalised/padded there
(``model.Preprocess``). Peak RSS is a few batches whatever the dataset size.
"""
from __future__ import annotations

import queue
import threading
import zipfile
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .. import data, registry
from ..errors import ReferenceDataError, UsageError


class SplitData:
    """Images (row reader on the cache) and labels (in RAM, tiny) of one dataset split."""

    def __init__(self, flag: str, split: str, images: data.RowReader, labels: Optional[np.ndarray]):
        self.flag, self.split, self.images, self.labels = flag, split, images, labels

    def __len__(self) -> int:
        return len(self.images)


def open_split(data_root, flag: str, size: int, split: str, cache_dir, *, labels: bool = True, log=None) -> SplitData:
    ds = registry.get(flag)
    npz = data.npz_path(data_root, flag, size)
    if not npz.is_file():
        raise UsageError([f"{npz} not found: the {flag} file at {size} px is needed "
                          f"(download it from {ds.url(size)} or run `big synth --out {data_root} --sizes {size}`)"])
    try:
        md5 = data.source_md5(npz, cache_dir)
        img_path = data.cached_member(npz, f"{split}_images", cache_dir, md5=md5, log=log)
        reader = data.RowReader(img_path)
        lab = np.asarray(np.load(data.cached_member(npz, f"{split}_labels", cache_dir, md5=md5, log=log))) if labels else None
    except PermissionError as exc:
        raise UsageError([f"cannot write the .npy cache ({exc}); choose a writable folder with --cache_dir"]) from None
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise ReferenceDataError([f"{npz}: {exc}"]) from None
    want = ds.image_shape(size)
    if reader.dtype != np.uint8 or reader.row_shape != tuple(want):
        raise ReferenceDataError([f"{npz}: {split}_images is {reader.dtype} {reader.shape}, expected uint8 (N, "
                                  f"{', '.join(map(str, want))})"])
    if lab is not None and (lab.ndim != 2 or lab.shape != (len(reader), ds.label_width)):
        raise ReferenceDataError([f"{npz}: {split}_labels has shape {lab.shape}, expected ({len(reader)}, {ds.label_width})"])
    return SplitData(flag, split, reader, lab)


def open_splits(cfg: Mapping, split: str, *, labels: bool = True, log=None) -> Dict[str, SplitData]:
    return {f: open_split(cfg["data_root"], f, cfg["img_size"], split, cfg["cache_dir"], labels=labels, log=log)
            for f in cfg["datasets"]}


def read_batch(sd: SplitData, rows: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    return sd.images.take(rows), (sd.labels[rows] if sd.labels is not None else None)


class Prefetcher:
    """Iterate over ``plan`` = [(flag, rows)] yielding (flag, rows, images uint8, labels), reading
    ``depth`` batches ahead in a daemon thread (pread releases the GIL)."""

    _END = object()

    def __init__(self, splits: Mapping[str, SplitData], plan: Sequence[Tuple[str, np.ndarray]], depth: int = 4):
        self.splits, self.plan, self.depth = splits, list(plan), max(0, int(depth))

    def __len__(self) -> int:
        return len(self.plan)

    def _produce(self, q: "queue.Queue", stop: threading.Event) -> None:
        try:
            for flag, rows in self.plan:
                if stop.is_set():
                    return
                q.put((flag, rows, *read_batch(self.splits[flag], rows)))
            q.put(self._END)
        except BaseException as exc:  # surfaced in the consumer
            q.put(exc)

    def __iter__(self) -> Iterator[tuple]:
        if self.depth == 0:
            for flag, rows in self.plan:
                yield (flag, rows, *read_batch(self.splits[flag], rows))
            return
        q: "queue.Queue" = queue.Queue(maxsize=self.depth)
        stop = threading.Event()
        t = threading.Thread(target=self._produce, args=(q, stop), daemon=True)
        t.start()
        try:
            while True:
                item = q.get()
                if item is self._END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while t.is_alive():
                try:
                    q.get_nowait()
                except queue.Empty:
                    t.join(timeout=0.05)


def eval_plan(splits: Mapping[str, SplitData], batch_size: int, max_batches: Optional[int] = None) -> List[Tuple[str, np.ndarray]]:
    """Sequential batches of every dataset in INFO order (no shuffling)."""
    plan = []
    for flag, sd in splits.items():
        n = len(sd)
        for k, a in enumerate(range(0, n, batch_size)):
            if max_batches is not None and k >= max_batches:
                break
            plan.append((flag, np.arange(a, min(n, a + batch_size))))
    return plan
