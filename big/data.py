"""MedMNIST+ npz files: reading, checking and a synthetic generator with the exact layout.

Layout (medmnist 3.x, verified on genuine files): one ``np.savez_compressed`` zip per dataset and
size (``{flag}.npz`` for 28, ``{flag}_{64|128|224}.npz``) holding ``{train,val,test}_{images,labels}``;
images uint8 ``(N,S,S)`` grey or ``(N,S,S,3)`` RGB; labels uint8 ``(N,1)``, ``(N,14)`` multi-hot for
chestmnist. Synthetic files follow it exactly and carry a learnable class signal, so every code
path (reference building, bundling, training, ingestion) runs on them and on genuine files alike.
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import registry
from .registry import MULTILABEL, SPLITS, Dataset

PathLike = Union[str, os.PathLike]

#: member order of the genuine files: v2-era 28-size files list images first, MedMNIST+ interleave
KEY_ORDER_28 = ("train_images", "val_images", "test_images", "train_labels", "val_labels", "test_labels")
KEY_ORDER_PLUS = ("train_images", "train_labels", "val_images", "val_labels", "test_images", "test_labels")


def npz_path(root: PathLike, flag: str, size: int) -> Path:
    return Path(root) / registry.get(flag).file_name(size)


def file_digest(path: PathLike, algorithm: str = "md5", chunk: int = 1 << 20) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def md5sum(path: PathLike) -> str:
    return file_digest(path, "md5")


def check_source_md5(path: Path, ds: Dataset, size: int, *, allow_synthetic: bool):
    """(md5, genuine, problem): problem is set when the file is not the genuine MedMNIST+ file and
    synthetic data is not allowed."""
    md5 = md5sum(path)
    genuine = md5 == ds.md5(size)
    problem = None
    if not genuine and not allow_synthetic:
        from .errors import Problem

        problem = Problem(f"MD5 {md5} differs from medmnist INFO {ds.md5(size)}: not the genuine MedMNIST+ file "
                          "(pass --allow-synthetic for synthetic data)", file=path.name)
    return md5, genuine, problem


def read_array(path: PathLike, key: str) -> np.ndarray:
    """Read one member (``test_labels``, ``val_images`` …) of an npz file."""
    with np.load(path) as npz:
        if key not in npz.files:
            raise KeyError(f"{path}: no member {key!r} (found {', '.join(npz.files)})")
        return npz[key]


def read_labels(path: PathLike, split: str) -> np.ndarray:
    return read_array(path, f"{split}_labels")


def read_images(path: PathLike, split: str) -> np.ndarray:
    return read_array(path, f"{split}_images")


def read_npy_header(fh, *, with_order: bool = False):
    """(shape, dtype) — or (shape, fortran_order, dtype) with ``with_order`` — from an open .npy
    stream, leaving it at the start of the data."""
    major, _ = np.lib.format.read_magic(fh)
    reader = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = reader(fh)
    return (tuple(shape), bool(fortran), dtype) if with_order else (tuple(shape), dtype)


def check_layout(path: PathLike, ds: Dataset, size: int, *, splits: Sequence[str] = SPLITS) -> List[str]:
    """Problems with an npz file's keys, dtypes and shapes (empty list when it is well formed)."""
    problems = []
    with np.load(path) as npz:
        for split in splits:
            for what in ("images", "labels"):
                key = f"{split}_{what}"
                if key not in npz.files:
                    problems.append(f"{path}: member {key} is missing")
                    continue
            if any(p.endswith("is missing") for p in problems):
                continue
            lab = npz[f"{split}_labels"]
            if lab.dtype != np.uint8 or lab.ndim != 2 or lab.shape[1] != ds.label_width:
                problems.append(f"{path}: {split}_labels has dtype {lab.dtype} shape {lab.shape}, "
                                f"expected uint8 (N, {ds.label_width})")
            # images: read only the header, not the data
            with npz.zip.open(f"{split}_images.npy") as fh:
                shape, dtype = read_npy_header(fh)
            want = ds.image_shape(size)
            if dtype != np.uint8 or tuple(shape[1:]) != want or shape[0] != lab.shape[0]:
                problems.append(f"{path}: {split}_images has dtype {dtype} shape {shape}, "
                                f"expected uint8 ({lab.shape[0]}, {', '.join(map(str, want))})")
    return problems


# ---------------------------------------------------------------------------------------------
# synthetic MedMNIST+ data
# ---------------------------------------------------------------------------------------------

def parse_n_per_split(spec: Union[int, str, Mapping[str, Union[int, str]]]) -> Dict[str, Union[int, str]]:
    """``200`` -> every split 200; ``"train=500,val=100,test=full"``; ``full`` = the real split size."""
    if isinstance(spec, Mapping):
        out = dict(spec)
    elif isinstance(spec, int) or (isinstance(spec, str) and "=" not in spec):
        out = {s: spec for s in SPLITS}
    else:
        out = {}
        for part in str(spec).split(","):
            key, _, val = part.partition("=")
            out[key.strip()] = val.strip()
    result: Dict[str, Union[int, str]] = {}
    for split in SPLITS:
        val = out.get(split, 0)
        if isinstance(val, str) and val != "full":
            if not val.isdigit():
                raise ValueError(f"n per split for {split}: expected an integer or 'full', found {val!r}")
            val = int(val)
        result[split] = val
    unknown = set(out) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split(s) {sorted(unknown)}; expected train, val, test")
    return result


def _rng(seed: int, *parts: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), *map(int, parts)]))


def synthetic_labels(ds: Dataset, n: int, *, seed: int, split: str) -> np.ndarray:
    """Labels for one split, identical for every image size. Every class (label) occurs when n allows."""
    fi, si = registry.flags().index(ds.flag), SPLITS.index(split)
    prior_rng = _rng(seed, fi, 1000)
    rng = _rng(seed, fi, si, 1)
    if ds.kind == MULTILABEL:
        p = prior_rng.uniform(0.05, 0.3, size=ds.n_labels)
        lab = (rng.random((n, ds.n_labels)) < p).astype(np.uint8)
        if n >= 2:  # each label both present and absent in the split
            for j in range(ds.n_labels):
                a, b = rng.choice(n, size=2, replace=False)
                lab[a, j], lab[b, j] = 1, 0
        return lab
    prior = prior_rng.dirichlet(np.full(ds.n_labels, 2.0))
    y = rng.choice(ds.n_labels, size=n, p=prior)
    if n >= ds.n_labels:  # each class at least once
        pos = rng.choice(n, size=ds.n_labels, replace=False)
        y[pos] = np.arange(ds.n_labels)
    return y.astype(np.uint8).reshape(n, 1)


def _templates(ds: Dataset, *, seed: int) -> np.ndarray:
    """One low-resolution (6x6xch) signal pattern per class/label, in [-1, 1]."""
    fi = registry.flags().index(ds.flag)
    rng = _rng(seed, fi, 2000)
    return rng.uniform(-1.0, 1.0, size=(ds.n_labels, 6, 6, ds.n_channels))


def _upsample(t: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour upsampling of (..., 6, 6, ch) patterns to (..., size, size, ch)."""
    idx = (np.arange(size) * t.shape[-2]) // size
    return t[..., idx, :, :][..., :, idx, :]


def synthetic_images(ds: Dataset, labels: np.ndarray, size: int, *, seed: int, split: str,
                     start: int = 0, signal: float = 0.9) -> np.ndarray:
    """uint8 images for ``labels`` (a slice starting at row ``start`` of the split)."""
    fi, si = registry.flags().index(ds.flag), SPLITS.index(split)
    tmpl = _upsample(_templates(ds, seed=seed), size)  # (C, S, S, ch)
    if ds.kind == MULTILABEL:
        onehot = labels.astype(np.float32)
    else:
        onehot = np.eye(ds.n_labels, dtype=np.float32)[labels[:, 0]]
    sig = np.einsum("nc,cxyk->nxyk", onehot, tmpl.astype(np.float32))
    rng = _rng(seed, fi, si, size, start)
    noise = rng.normal(0.0, 1.0, size=sig.shape).astype(np.float32)
    img = 128.0 + 40.0 * (signal * sig + noise)
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return img[..., 0] if ds.n_channels == 1 else img


def _write_member(zf: zipfile.ZipFile, key: str, shape: Tuple[int, ...], chunks: Iterable[np.ndarray]) -> None:
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False, "shape": shape}
    with zf.open(key + ".npy", "w", force_zip64=True) as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        for chunk in chunks:
            fh.write(np.ascontiguousarray(chunk, dtype=np.uint8).tobytes())


def write_npz(path: PathLike, ds: Dataset, size: int, labels: Mapping[str, np.ndarray],
              images: Mapping[str, Iterator[np.ndarray]]) -> Path:
    """Write an npz in medmnist's member order, streaming image chunks; atomic (tmp + rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    order = KEY_ORDER_28 if size == 28 else KEY_ORDER_PLUS
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for key in order:
                split, what = key.split("_")
                lab = labels[split]
                if what == "labels":
                    _write_member(zf, key, lab.shape, [lab])
                else:
                    _write_member(zf, key, (lab.shape[0], *ds.image_shape(size)), images[split])
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def synthesize(out_dir: PathLike, *, sizes: Sequence[int] = (28,), n_per_split: Union[int, str, Mapping] = 64,
               flags: Optional[Sequence[str]] = None, seed: int = 0, chunk: int = 2048, signal: float = 0.9,
               progress=None) -> List[Path]:
    """Write synthetic MedMNIST+ files for ``flags`` x ``sizes``; deterministic from ``seed``.

    Labels do not depend on the size (as in MedMNIST+). ``n_per_split`` as :func:`parse_n_per_split`.
    ``signal`` scales the class patterns against unit pixel noise: 0.9 is easy to learn, 0.1 hard.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = parse_n_per_split(n_per_split)
    written = []
    for flag in flags or registry.flags():
        ds = registry.get(flag)
        n = {s: (ds.n_samples[s] if counts[s] == "full" else int(counts[s])) for s in SPLITS}
        labels = {s: synthetic_labels(ds, n[s], seed=seed, split=s) for s in SPLITS}
        for size in sizes:
            if int(size) not in registry.SIZES:
                raise ValueError(f"size {size} is not a MedMNIST+ size; expected one of {registry.SIZES}")

            def chunks(split, size=int(size)):
                lab = labels[split]
                for a in range(0, lab.shape[0], chunk):
                    yield synthetic_images(ds, lab[a:a + chunk], size, seed=seed, split=split, start=a,
                                           signal=signal)

            target = out / ds.file_name(size)
            write_npz(target, ds, int(size), labels, {s: chunks(s) for s in SPLITS})
            written.append(target)
            if progress:
                progress(target)
    return written


# ---------------------------------------------------------------------------------------------
# memory-mapped .npy cache (mm-PT training, prediction, benchmarks)
# ---------------------------------------------------------------------------------------------
# ``np.load(npz)[key]`` decompresses a whole member into RAM (pathmnist_224 train: 12.6 GiB). The
# cache streams each member once: zip member -> npy header -> chunked copy into a file created by
# ``np.lib.format.open_memmap``, so peak memory is one chunk whatever the file size. Cached files
# live under ``{cache_dir}/{npz stem}-{md5 of the npz}/{member}.npy``: a changed source file gets a
# new folder, never a stale cache. The MD5 of a source is itself remembered (keyed by path, size and
# mtime) in ``{cache_dir}/md5.json`` so that opening a cached member does not re-hash 12 GiB.

CACHE_CHUNK_BYTES = 64 << 20


def _md5_index_path(cache_dir: Path) -> Path:
    return cache_dir / "md5.json"


def source_md5(path: PathLike, cache_dir: Optional[PathLike] = None) -> str:
    """MD5 of ``path``, remembered in ``cache_dir/md5.json`` under (resolved path, size, mtime)."""
    import json

    path = Path(path)
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    index_path = _md5_index_path(Path(cache_dir)) if cache_dir is not None else None
    index: Dict[str, str] = {}
    if index_path is not None and index_path.is_file():
        try:
            index = json.loads(index_path.read_text())
        except (OSError, ValueError):
            index = {}
        if key in index:
            return index[key]
    digest = md5sum(path)
    if index_path is not None:
        index[key] = digest
        index_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = index_path.with_name(f"{index_path.name}.{os.getpid()}.partial")
        tmp.write_text(json.dumps(index, indent=1, sort_keys=True))
        os.replace(tmp, index_path)
    return digest


def cache_path(npz: PathLike, key: str, cache_dir: PathLike, md5: Optional[str] = None) -> Path:
    npz = Path(npz)
    digest = md5 or source_md5(npz, cache_dir)
    return Path(cache_dir) / f"{npz.name[:-4] if npz.name.endswith('.npz') else npz.name}-{digest}" / f"{key}.npy"


def _member_name(zf: zipfile.ZipFile, npz: Path, key: str) -> str:
    name = key + ".npy"
    if name not in zf.namelist():
        found = ", ".join(n[:-4] for n in zf.namelist() if n.endswith(".npy"))
        raise KeyError(f"{npz}: no member {key!r} (found {found})")
    return name


def convert_member(npz: PathLike, key: str, dest: PathLike, *, chunk_bytes: int = CACHE_CHUNK_BYTES,
                   digest=None) -> Path:
    """Stream one npz member into the .npy file ``dest`` (atomic: ``dest.partial`` then rename).

    Memory stays at about ``chunk_bytes``: rows are read from the decompressing zip stream straight
    into a short-lived memory map of the destination window, which is flushed and unmapped per chunk.
    ``digest`` (a hashlib object), when given, is fed the bytes of the written file as they go.
    A member shorter or longer than its header says raises ValueError.
    """
    npz, dest = Path(npz), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.partial")
    try:
        with zipfile.ZipFile(npz) as zf, zf.open(_member_name(zf, npz, key)) as fh:
            shape, dtype = read_npy_header(fh)
            if dtype.hasobject:
                raise ValueError(f"{npz}: member {key} holds Python objects; refusing to convert it")
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
            offset = out.offset
            del out  # the file now exists with its header and full length; fill it window by window
            if digest is not None:
                with open(tmp, "rb") as head:
                    digest.update(head.read(offset))
            n = shape[0] if shape else 1
            row_shape = tuple(shape[1:])
            row_bytes = int(np.prod(row_shape, dtype=np.int64)) * dtype.itemsize if shape else dtype.itemsize
            rows_per_chunk = max(1, chunk_bytes // max(1, row_bytes))
            for start in range(0, n, rows_per_chunk):
                rows = min(rows_per_chunk, n - start)
                if rows * row_bytes == 0:
                    continue
                window = np.memmap(tmp, dtype=dtype, mode="r+", offset=offset + start * row_bytes,
                                   shape=(rows, *row_shape) if shape else (1,))
                view = memoryview(window.reshape(-1).view(np.uint8))
                got = 0
                while got < len(view):
                    k = fh.readinto(view[got:])
                    if not k:
                        raise ValueError(f"{npz}: member {key} ends after {start * row_bytes + got} data bytes, "
                                         f"its header promises {n * row_bytes}")
                    got += k
                if digest is not None:
                    digest.update(view)
                del view
                window.flush()
                del window
            if fh.read(1):
                raise ValueError(f"{npz}: member {key} holds more bytes than its header's shape {shape}")
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


def cached_member(npz: PathLike, key: str, cache_dir: PathLike, *, md5: Optional[str] = None,
                  log=None) -> Path:
    """Path of the cached .npy for ``npz[key]``, converting it the first time."""
    dest = cache_path(npz, key, cache_dir, md5)
    if not dest.is_file():
        if log:
            log(f"converting {Path(npz).name}:{key} -> {dest}")
        convert_member(npz, key, dest)
    return dest


class RowReader:
    """Rows of a cached .npy read with ``os.pread`` into a fresh array (no mapping kept).

    A memory map that is read end to end keeps every touched page in the process' RSS until the
    kernel needs it back; reading through the page cache instead keeps the resident set at one
    batch. Consecutive indices are coalesced into one read (sequential evaluation = one read per
    batch). Thread-safe: ``pread`` has no shared file position.
    """

    def __init__(self, path: PathLike):
        self.path = Path(path)
        with open(self.path, "rb") as fh:
            shape, dtype = read_npy_header(fh)
            self.offset = fh.tell()
        if not shape:
            raise ValueError(f"{path}: a 0-d array has no rows")
        self.shape, self.dtype = shape, dtype
        self.row_shape = tuple(shape[1:])
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * dtype.itemsize
        self._fd = os.open(self.path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def take(self, indices) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"{self.path}: row index out of range 0..{n - 1}")
        out = np.empty((idx.size, *self.row_shape), dtype=self.dtype)
        flat = out.reshape(-1).view(np.uint8)
        rb = self.row_bytes
        i = 0
        while i < idx.size:
            j = i + 1
            while j < idx.size and idx[j] == idx[j - 1] + 1:
                j += 1
            want = (j - i) * rb
            buf = os.pread(self._fd, want, self.offset + int(idx[i]) * rb)
            if len(buf) != want:
                raise ValueError(f"{self.path}: file is truncated at row {int(idx[i])}")
            flat[i * rb:j * rb] = np.frombuffer(buf, dtype=np.uint8)
            i = j
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    def __getstate__(self):
        return {"path": self.path}

    def __setstate__(self, state):
        self.__init__(state["path"])
