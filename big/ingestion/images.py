"""The images a model predicts: locate ``{flag}_{size}.npy``, check them, stream batches (memory-map
windows, or a medmnist npz member decompressed batch by batch)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .. import data, registry
from ..errors import Problem, ReferenceDataError
from ..inputdata import MANIFEST as INPUT_MANIFEST
from ..inputdata import file_name as npy_name
from .config import PathLike


def image_dirs(input_data: PathLike, data_dir: Optional[PathLike]) -> List[Path]:
    """Where to look, in order: the task's input data, then ``data_dir/{split}`` and ``data_dir``
    (the split comes from the input data's manifest when there is one)."""
    dirs = [Path(input_data)]
    if data_dir:
        split = None
        manifest = Path(input_data) / INPUT_MANIFEST
        if manifest.is_file():
            try:
                split = json.loads(manifest.read_text(encoding="utf-8")).get("split")
            except (OSError, ValueError, AttributeError):
                split = None
        if split in registry.SPLITS:
            dirs.append(Path(data_dir) / split)
        dirs.append(Path(data_dir))
    out: List[Path] = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def locate_images(dirs: Sequence[Path], size: int) -> Tuple[Dict[str, Path], List[Problem]]:
    """Path of every dataset's ``{flag}_{size}.npy`` (first folder that has it), or the problems."""
    found: Dict[str, Path] = {}
    missing: List[str] = []
    for flag in registry.flags():
        for d in dirs:
            p = d / npy_name(flag, size)
            if p.is_file():
                found[flag] = p
                break
        else:
            missing.append(flag)
    if not missing:
        return found, []
    where = " or ".join(str(d) for d in dirs)
    if found:  # some datasets have this size, others not: the input data is incomplete
        return found, [Problem(f"no images at {size} px for {', '.join(missing)} in {where} (the input data is "
                               "incomplete; organizer: rebuild it with `big input-data`)")]

    def has(s: int, f: str) -> bool:
        return any((d / npy_name(f, s)).is_file() for d in dirs)

    complete = [s for s in registry.SIZES if all(has(s, f) for f in registry.flags())]
    partial = [s for s in registry.SIZES if any(has(s, f) for f in registry.flags())]
    if complete or partial:
        msg = (f"resolution {size} is not available here; the sizes present are "
               f"{', '.join(map(str, complete or partial))}. Set Model.resolution to one of them")
    else:
        msg = (f"resolution {size} is not available here; no input images were found in {where} (organizer: "
               "check the task's input data)")
    return found, [Problem(msg)]


def _npy_layout(path: Path) -> Tuple[Tuple[int, ...], np.dtype, int]:
    with open(path, "rb") as fh:
        shape, fortran, dtype = data.read_npy_header(fh, with_order=True)
        offset = fh.tell()
    if fortran:
        raise ReferenceDataError([Problem("Fortran-ordered array; expected C order", file=str(path))])
    return tuple(shape), dtype, offset


def check_images(path: Path, flag: str, size: int) -> int:
    """Number of images in ``path`` after checking dtype and shape against the registry."""
    try:
        shape, dtype, offset = _npy_layout(path)
    except (ValueError, OSError) as exc:
        raise ReferenceDataError([Problem(f"cannot read the images: {exc}", file=str(path))]) from None
    want = registry.get(flag).image_shape(size)
    if dtype != np.uint8 or len(shape) != len(want) + 1 or tuple(shape[1:]) != want:
        raise ReferenceDataError([Problem(f"images have dtype {dtype} shape {shape}, expected uint8 "
                                          f"(N, {', '.join(map(str, want))})", file=str(path))])
    expected = offset + int(np.prod(shape, dtype=np.int64))
    actual = path.stat().st_size
    if actual < expected:
        raise ReferenceDataError([Problem(f"file is truncated ({actual} of {expected} bytes)", file=str(path))])
    return int(shape[0])


def iter_batches(path: PathLike, batch_size: int, *, window_bytes: int = 64 << 20
                 ) -> Iterator[Tuple[int, np.ndarray]]:
    """(start row, uint8 batch) for consecutive batches of the .npy at ``path``.

    Rows are read through a read-only memory map of one window (a whole number of batches, about
    ``window_bytes``) at a time; the window is unmapped before the next one, so resident memory does
    not grow with the file. Each batch is a fresh C-contiguous array the model may keep or modify.
    """
    path = Path(path)
    shape, dtype, offset = _npy_layout(path)
    n, row_shape = shape[0], tuple(shape[1:])
    row_bytes = int(np.prod(row_shape, dtype=np.int64)) * dtype.itemsize
    per_window = max(1, int(window_bytes) // max(1, row_bytes * batch_size)) * batch_size
    for w0 in range(0, n, per_window):
        rows = min(per_window, n - w0)
        window = np.memmap(path, dtype=dtype, mode="r", offset=offset + w0 * row_bytes, shape=(rows, *row_shape))
        try:
            for b0 in range(0, rows, batch_size):
                yield w0 + b0, np.array(window[b0:b0 + batch_size])
        finally:
            del window


def iter_npz_batches(npz: PathLike, split: str, batch_size: int) -> Iterator[Tuple[int, np.ndarray]]:
    """(start row, uint8 batch) streamed from the ``{split}_images`` member of a medmnist npz file
    (decompressed batch by batch, never the whole array)."""
    import zipfile

    npz = Path(npz)
    with zipfile.ZipFile(npz) as zf:
        member = f"{split}_images.npy"
        if member not in zf.namelist():
            raise ReferenceDataError([Problem(f"no member {member}", file=str(npz))])
        with zf.open(member) as fh:
            major, _ = np.lib.format.read_magic(fh)
            reader = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = reader(fh)
            if fortran or dtype != np.uint8:
                raise ReferenceDataError([Problem(f"{member} is {dtype}{' Fortran' if fortran else ''}; expected "
                                                  "C-ordered uint8", file=str(npz))])
            row = int(np.prod(shape[1:], dtype=np.int64))
            for a in range(0, shape[0], batch_size):
                k = min(batch_size, shape[0] - a)
                buf = fh.read(k * row)
                if len(buf) != k * row:
                    raise ReferenceDataError([Problem(f"{member} is truncated at row {a}", file=str(npz))])
                yield a, np.frombuffer(buf, dtype=np.uint8).reshape((k, *shape[1:])).copy()
