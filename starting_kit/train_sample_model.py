"""Train the sample code submission and package it as a zip for CodaBench.

    python train_sample_model.py --data-root ~/.medmnist --size 28 [--zip sample_code_submission.zip]

Reads the train split of the 12 MedMNIST+ npz files (``python -m medmnist download --size 28``,
or ``big synth`` for synthetic ones), streaming at most --max-train images per dataset from each
file (never a whole array in memory), trains one small MLP per dataset on the pooled-pixel
features of ``sample_code_submission/model.py`` and writes ``sample_code_submission/weights.npz``.
With --zip it also writes the code submission: model.py and weights.npz at the zip root.
Only numpy is needed (plus the ``big`` package of the starting kit for the dataset table).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
import zipfile
from pathlib import Path
from typing import Dict, Iterator, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
SUBMISSION = HERE / "sample_code_submission"
sys.path[:0] = [str(HERE), str(HERE.parent)]  # the big package: beside this file in the kit, one up in the repo

from big import data, registry  # noqa: E402


def load_model_module(folder: Path = SUBMISSION):
    spec = importlib.util.spec_from_file_location("sample_model", folder / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def iter_rows(npz: Path, key: str, chunk_rows: int = 1024, limit: Optional[int] = None) -> Iterator[np.ndarray]:
    """Consecutive row chunks of one npz member, streamed from the (compressed) zip member."""
    with zipfile.ZipFile(npz) as zf, zf.open(key + ".npy") as fh:
        shape, fortran, dtype = data.read_npy_header(fh, with_order=True)
        if fortran:
            raise ValueError(f"{npz}:{key} is Fortran-ordered")
        n = shape[0] if limit is None else min(shape[0], limit)
        row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        for a in range(0, n, chunk_rows):
            k = min(chunk_rows, n - a)
            buf = fh.read(k * row)
            if len(buf) != k * row:
                raise ValueError(f"{npz}:{key} is truncated")
            yield np.frombuffer(buf, dtype=dtype).reshape((k, *shape[1:]))


def load_split(npz: Path, split: str, feature_fn, limit: Optional[int]):
    feats = [feature_fn(chunk) for chunk in iter_rows(npz, f"{split}_images", limit=limit)]
    labels = np.concatenate(list(iter_rows(npz, f"{split}_labels", chunk_rows=1 << 16, limit=limit)))
    return np.concatenate(feats).astype(np.float32), labels


def train_mlp(x: np.ndarray, y: np.ndarray, n_out: int, multilabel: bool, *, hidden: int = 64, epochs: int = 30,
              lr: float = 3e-3, weight_decay: float = 1e-4, batch: int = 128, seed: int = 0, model=None) -> Dict[str, np.ndarray]:
    """A one-hidden-layer MLP trained with Adam on softmax cross-entropy (or per-label BCE)."""
    rng = np.random.default_rng(seed)
    mu = x.mean(axis=0)
    sigma = x.std(axis=0) + 1e-3
    z_all = (x - mu) / sigma
    d = x.shape[1]
    p = {"w1": rng.normal(0, np.sqrt(2.0 / d), (d, hidden)).astype(np.float32), "b1": np.zeros(hidden, np.float32),
         "w2": rng.normal(0, np.sqrt(1.0 / hidden), (hidden, n_out)).astype(np.float32), "b2": np.zeros(n_out, np.float32)}
    if multilabel:
        target_all = y.astype(np.float32)
        prior = target_all.mean(axis=0).clip(1e-3, 1 - 1e-3)
        p["b2"] = np.log(prior / (1 - prior)).astype(np.float32)
    else:
        target_all = np.eye(n_out, dtype=np.float32)[y[:, 0].astype(np.int64)]
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v2 = {k: np.zeros_like(v) for k, v in p.items()}
    step = 0
    n = x.shape[0]
    for _ in range(epochs):
        order = rng.permutation(n)
        for a in range(0, n, batch):
            idx = order[a:a + batch]
            z, t = z_all[idx], target_all[idx]
            h_pre = z @ p["w1"] + p["b1"]
            h = np.maximum(h_pre, 0.0)
            logits = h @ p["w2"] + p["b2"]
            if multilabel:
                prob = 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))
            else:
                e = np.exp(logits - logits.max(axis=1, keepdims=True))
                prob = e / e.sum(axis=1, keepdims=True)
            g_logits = (prob - t) / len(idx)
            grads = {"w2": h.T @ g_logits, "b2": g_logits.sum(axis=0)}
            g_h = (g_logits @ p["w2"].T) * (h_pre > 0)
            grads["w1"], grads["b1"] = z.T @ g_h, g_h.sum(axis=0)
            step += 1
            for k in p:
                g = grads[k] + (weight_decay * p[k] if k.startswith("w") else 0.0)
                m[k] = 0.9 * m[k] + 0.1 * g
                v2[k] = 0.999 * v2[k] + 0.001 * g * g
                mhat, vhat = m[k] / (1 - 0.9 ** step), v2[k] / (1 - 0.999 ** step)
                p[k] = (p[k] - lr * mhat / (np.sqrt(vhat) + 1e-8)).astype(np.float32)
    return {"mu": mu.astype(np.float32), "sigma": sigma.astype(np.float32), **p,
            "multilabel": np.array(multilabel)}


def train(data_root, size: int, out: Path = SUBMISSION / "weights.npz", *, max_train: Optional[int] = 20000,
          epochs: int = 30, hidden: int = 64, seed: int = 0, log=print) -> Path:
    """Train on every dataset's train split at ``size`` px; write the weights atomically."""
    module = load_model_module()
    root = Path(data_root)
    missing = [ds.file_name(size) for ds in registry.datasets() if not (root / ds.file_name(size)).is_file()]
    if missing:
        raise FileNotFoundError(f"{root}: missing {', '.join(missing)} (python -m medmnist download --size {size})")
    arrays = {"resolution": np.array(size), "grid": np.array(module.GRID)}
    for i, ds in enumerate(registry.datasets()):
        t0 = time.perf_counter()
        x, y = load_split(root / ds.file_name(size), "train", module.features, max_train)
        params = train_mlp(x, y, ds.n_labels, ds.kind == registry.MULTILABEL, hidden=hidden, epochs=epochs,
                           seed=seed + i)
        arrays.update({f"{ds.flag}/{k}": v for k, v in params.items()})
        if log:
            log(f"{ds.flag}: trained on {x.shape[0]} images, {x.shape[1]} features ({time.perf_counter() - t0:.1f} s)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, out)
    return out


def package(zip_path, weights: Path = SUBMISSION / "weights.npz", folder: Path = SUBMISSION) -> Path:
    """The code submission: model.py and weights.npz at the zip root (no metadata file)."""
    zip_path = Path(zip_path)
    tmp = zip_path.with_name(zip_path.name + ".partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(folder / "model.py", "model.py")
        zf.write(weights, "weights.npz")
    os.replace(tmp, zip_path)
    return zip_path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", required=True, help="folder with the MedMNIST+ npz files")
    ap.add_argument("--size", type=int, default=28, choices=registry.SIZES)
    ap.add_argument("--out", default=str(SUBMISSION / "weights.npz"), help="weights file to write")
    ap.add_argument("--zip", help="also write the code submission zip here")
    ap.add_argument("--max-train", type=int, default=20000, help="training images per dataset (0 = all)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        weights = train(args.data_root, args.size, Path(args.out), max_train=args.max_train or None,
                        epochs=args.epochs, seed=args.seed)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {weights}")
    if args.zip:
        print(f"wrote {package(args.zip, weights)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
