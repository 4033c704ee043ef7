"""BIG sample code submission: one small numpy classifier per dataset (no torch needed).

Features: each image is average-pooled to a GRID x GRID grid per channel (so any resolution works),
scaled to [0, 1], plus per-channel mean and standard deviation; a one-hidden-layer MLP per dataset
(softmax over the classes, or independent sigmoids for the multi-label ChestMNIST) maps them to
scores. ``weights.npz`` beside this file is written by ``train_sample_model.py`` (the starting kit's
training script); it records the resolution the model was trained for.

The ingestion program imports this file, creates ``Model()`` once, and calls
``predict(dataset, images)`` with uint8 batches exactly as in the medmnist npz files.
"""
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent  # weights are found relative to this file, never the cwd
WEIGHTS = HERE / "weights.npz"
GRID = 8


def features(images: np.ndarray, grid: int = GRID) -> np.ndarray:
    """(B, S, S) or (B, S, S, 3) uint8 -> (B, grid*grid*ch + 2*ch) float32."""
    x = np.asarray(images, dtype=np.float32) / 255.0
    if x.ndim == 3:
        x = x[..., None]
    b, s = x.shape[0], x.shape[1]
    edges = (np.arange(grid) * s) // grid
    counts = np.diff(np.append(edges, s)).astype(np.float32)
    pooled = np.add.reduceat(np.add.reduceat(x, edges, axis=1), edges, axis=2)
    pooled /= counts[None, :, None, None] * counts[None, None, :, None]
    mean = x.mean(axis=(1, 2))
    std = x.std(axis=(1, 2))
    return np.concatenate([pooled.reshape(b, -1), mean, std], axis=1)


def forward(params: dict, feats: np.ndarray) -> np.ndarray:
    """Logits of the MLP: standardise, hidden ReLU layer, linear output."""
    z = (feats - params["mu"]) / params["sigma"]
    h = np.maximum(z @ params["w1"] + params["b1"], 0.0)
    return h @ params["w2"] + params["b2"]


def scores(logits: np.ndarray, multilabel: bool) -> np.ndarray:
    """Probabilities in [0, 1]: sigmoid per label, or a softmax over the classes."""
    if multilabel:
        return 1.0 / (1.0 + np.exp(-np.clip(logits, -50.0, 50.0)))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class Model:
    batch_size = 512

    def __init__(self):
        with np.load(WEIGHTS, allow_pickle=False) as w:
            self.resolution = int(w["resolution"])
            self.grid = int(w["grid"])
            self.params = {}
            for key in w.files:
                if "/" in key:
                    flag, name = key.split("/", 1)
                    self.params.setdefault(flag, {})[name] = w[key]

    def predict(self, dataset: str, images: np.ndarray) -> np.ndarray:
        p = self.params[dataset]
        logits = forward(p, features(images, self.grid))
        return scores(logits, bool(p["multilabel"]))
