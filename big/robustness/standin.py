"""``big corrupt --stand-in``: numpy corruptions that write the same layout as MedMNIST-C's, for tests
and the offline demo where the robustness environment (medmnistc) is absent.

They are **not** MedMNIST-C: their names start with ``standin_``, the manifest says
``"generator": "stand-in"`` with :data:`big.robustness.layout.STANDIN_LABEL`, carries no AlexNet
baselines, and the bundle's pages and title say STAND-IN. Four corruptions, the same for every
dataset, with 5 severities each (as MedMNIST-C's), applied to the 224 px image.
"""
from __future__ import annotations

from typing import Callable, Dict, Tuple

import numpy as np

#: severity 1..5 -> parameter
_PARAMS: Dict[str, Tuple[float, ...]] = {
    "standin_gaussian_noise": (0.03, 0.06, 0.09, 0.13, 0.18),  # noise std, image in [0, 1]
    "standin_box_blur": (3, 5, 7, 9, 13),  # square kernel width (pixels at 224 px)
    "standin_contrast_down": (0.8, 0.65, 0.5, 0.4, 0.3),  # contrast factor around the image mean
    "standin_brightness_up": (1.1, 1.2, 1.3, 1.45, 1.6),  # brightness factor
}
NAMES = tuple(_PARAMS)


def _box_blur(x: np.ndarray, k: int) -> np.ndarray:
    """Separable k x k mean filter with edge padding (x float, (H, W, C))."""
    pad = k // 2
    xp = np.pad(x, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    c = np.cumsum(xp, axis=0)
    c = np.concatenate([np.zeros_like(c[:1]), c], axis=0)
    rows = (c[k:] - c[:-k]) / k
    c = np.cumsum(rows, axis=1)
    c = np.concatenate([np.zeros_like(c[:, :1]), c], axis=1)
    return (c[:, k:] - c[:, :-k]) / k


def _apply(name: str, x: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    if name == "standin_gaussian_noise":
        return x + rng.normal(0.0, p, size=x.shape)
    if name == "standin_box_blur":
        return _box_blur(x, int(p))
    if name == "standin_contrast_down":
        mean = x.mean(axis=(0, 1), keepdims=True)
        return mean + (x - mean) * p
    if name == "standin_brightness_up":
        return x * p
    raise KeyError(name)


def corruptors(flag: str) -> Dict[str, Callable[[np.ndarray, int, np.random.SeedSequence], np.ndarray]]:
    """name -> apply(image uint8 (S, S) or (S, S, 3), severity 1..5, seed) -> uint8 image of the same shape."""
    def make(name: str):
        def apply(img: np.ndarray, severity: int, seed: np.random.SeedSequence) -> np.ndarray:
            rng = np.random.default_rng(seed)
            x = img.astype(np.float64) / 255.0
            x3 = x[..., None] if x.ndim == 2 else x
            y = _apply(name, x3, _PARAMS[name][int(severity) - 1], rng)
            y = y[..., 0] if x.ndim == 2 else y
            return np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8)

        return apply

    return {name: make(name) for name in NAMES}


def packages() -> Dict[str, str]:
    return {"numpy": np.__version__}
