"""Draw logo.png: a montage of twelve MedMNIST-style tiles (one per BIG dataset) and the benchmark name.

The tiles are synthetic: each is drawn procedurally in the look of its modality (H&E pathology,
chest X-ray, dermatoscopy, retinal OCT, fundus, ultrasound, blood smear, kidney microscopy, CT in
three planes) and down-sampled to 28 px then shown enlarged, like MedMNIST's 28 px images. No
MedMNIST image is used. Deterministic (fixed seed).

    python scripts/make_logo.py [--out logo.png] [--size 800]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from big import registry  # noqa: E402

N = 112  # drawing resolution of a tile before the 28 px reduction


def _grid():
    y, x = np.mgrid[0:N, 0:N] / (N - 1) * 2 - 1
    return x, y


def _smooth_noise(rng, scale=8, ch=1):
    """Value noise: a coarse random grid upsampled bilinearly, in [0, 1]."""
    g = rng.random((scale + 1, scale + 1, ch))
    t = np.linspace(0, scale, N)
    i = np.minimum(t.astype(int), scale - 1)
    f = (t - i)[:, None]
    rows = g[i] * (1 - f[..., None]) + g[i + 1] * f[..., None]          # (N, scale+1, ch)
    cols = rows[:, i] * (1 - f.T[..., None]) + rows[:, i + 1] * f.T[..., None]
    return cols


def _blobs(rng, n, rmin, rmax):
    x, y = _grid()
    m = np.zeros((N, N))
    for _ in range(n):
        cx, cy, r = rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(rmin, rmax)
        m = np.maximum(m, np.clip(1 - ((x - cx) ** 2 + (y - cy) ** 2) / r ** 2, 0, 1))
    return m


def tile(flag: str, rng) -> np.ndarray:
    """An (N, N, 3) float image in [0, 1] in the look of the dataset's modality."""
    x, y = _grid()
    r = np.sqrt(x ** 2 + y ** 2)
    nz = _smooth_noise(rng, 10)[..., 0]
    fine = rng.random((N, N))
    if flag == "pathmnist":  # H&E: pink stroma, purple nuclei
        nuclei = _blobs(rng, 60, 0.04, 0.09)
        pink = np.stack([0.93, 0.70, 0.82])
        purple = np.stack([0.35, 0.18, 0.55])
        a = np.clip(nuclei * 1.6, 0, 1)[..., None]
        img = pink * (0.85 + 0.15 * nz[..., None]) * (1 - a) + purple * a
    elif flag in ("chestmnist", "pneumoniamnist"):  # chest X-ray: dark lungs, bright mediastinum/ribs
        lungs = np.exp(-(((np.abs(x) - 0.42) / 0.28) ** 2 + ((y + 0.05) / 0.55) ** 2))
        ribs = 0.12 * (np.sin((y + 0.2 * x ** 2) * 18) > 0.6) * lungs
        g = 0.82 - 0.55 * lungs + ribs + 0.08 * nz + (0.15 if flag == "pneumoniamnist" else 0) * _blobs(rng, 3, 0.2, 0.35)
        g = g * np.clip(1.3 - 0.5 * r, 0, 1)
        img = np.repeat(g[..., None], 3, axis=2)
    elif flag == "dermamnist":  # skin with a pigmented lesion
        skin = np.stack([0.86, 0.63, 0.52])
        les = np.clip(1 - (((x + 0.1) / 0.55) ** 2 + ((y - 0.05) / 0.45) ** 2) - 0.3 * nz, 0, 1) ** 0.5
        img = skin * (0.9 + 0.1 * nz[..., None]) * (1 - les[..., None]) + np.stack([0.35, 0.2, 0.15]) * les[..., None]
    elif flag == "octmnist":  # retinal layers with a foveal pit
        surf = 0.35 * np.exp(-(x / 0.25) ** 2) - 0.1
        d = y - surf
        layers = sum(w * np.exp(-((d - o) / 0.035) ** 2) for o, w in ((0.0, 1.0), (0.12, 0.5), (0.3, 0.8), (0.38, 0.9)))
        g = np.clip(layers * (0.7 + 0.6 * fine), 0, 1) * 0.9
        img = np.repeat(g[..., None], 3, axis=2)
    elif flag == "retinamnist":  # fundus: orange disc, optic disc, vessels
        disc = (r < 0.95).astype(float)
        od = np.exp(-(((x - 0.4) / 0.16) ** 2 + (y / 0.16) ** 2))
        ang = np.arctan2(y, x - 0.4)
        vessels = np.exp(-((np.sin(ang * 3 + 3 * np.hypot(x - 0.4, y)) ) / 0.12) ** 2) * (np.hypot(x - 0.4, y) > 0.15)
        base = np.stack([0.85, 0.42, 0.15]) * (0.8 + 0.2 * nz[..., None] - 0.35 * r[..., None] ** 2)
        img = (base * (1 - 0.5 * vessels[..., None]) + np.stack([1.0, 0.9, 0.6]) * od[..., None]) * disc[..., None]
    elif flag == "breastmnist":  # ultrasound fan with speckle and a dark mass
        fan = ((y + 1.1) > 0) & (np.abs(np.arctan2(x, y + 1.1)) < 0.6) & (np.hypot(x, y + 1.1) < 2.0)
        mass = np.exp(-(((x - 0.05) / 0.3) ** 2 + ((y - 0.2) / 0.2) ** 2))
        g = (0.25 + 0.45 * fine * (0.6 + 0.4 * nz)) * (1 - 0.85 * mass) * fan
        img = np.repeat(g[..., None], 3, axis=2)
    elif flag == "bloodmnist":  # smear: pale red cells, one stained leucocyte
        cells = _blobs(rng, 14, 0.18, 0.26)
        ring = np.clip(cells * 3, 0, 1) - 0.5 * np.clip(cells * 3 - 1.5, 0, 1)
        wbc = np.exp(-((x / 0.28) ** 2 + (y / 0.28) ** 2))
        bg = np.stack([0.95, 0.90, 0.86])
        img = bg * (1 - ring[..., None] * 0.25) + (np.stack([0.9, 0.55, 0.55]) - bg) * ring[..., None] * 0.6
        img = img * (1 - wbc[..., None]) + np.stack([0.45, 0.3, 0.65]) * wbc[..., None]
    elif flag == "tissuemnist":  # kidney cortex microscopy (grey)
        tub = _blobs(rng, 25, 0.12, 0.22)
        g = 0.25 + 0.5 * np.clip(tub * 2, 0, 1) * (1 - np.clip(tub * 4 - 3, 0, 1)) + 0.15 * nz
        img = np.repeat(g[..., None], 3, axis=2)
    else:  # CT: body ellipse with organs; axial / coronal / sagittal
        if flag == "organamnist":
            body = ((x / 0.92) ** 2 + (y / 0.72) ** 2) < 1
            organs = np.exp(-(((x + 0.35) / 0.3) ** 2 + ((y + 0.1) / 0.25) ** 2)) * 0.5 + \
                np.exp(-(((x - 0.4) / 0.12) ** 2 + ((y - 0.1) / 0.12) ** 2)) * 0.7 + \
                np.exp(-((x / 0.08) ** 2 + ((y - 0.45) / 0.08) ** 2)) * 1.0
        elif flag == "organcmnist":
            body = ((x / 0.7) ** 2 + (y / 0.98) ** 2) < 1
            organs = np.exp(-(((x + 0.3) / 0.3) ** 2 + ((y + 0.3) / 0.25) ** 2)) * 0.5 + \
                0.9 * (np.abs(x) < 0.07) * (np.sin(y * 22) > -0.2)
        else:
            body = ((x / 0.6) ** 2 + (y / 0.98) ** 2) < 1
            organs = 0.9 * (np.abs(x - 0.3) < 0.09) * (np.sin(y * 20) > -0.3) + \
                np.exp(-(((x + 0.1) / 0.25) ** 2 + ((y + 0.2) / 0.3) ** 2)) * 0.45
        g = body * (0.38 + 0.5 * organs + 0.06 * nz)
        img = np.repeat(g[..., None], 3, axis=2)
    return np.clip(img, 0, 1)


def to_28(img: np.ndarray) -> np.ndarray:
    """Average-pool N x N down to 28 x 28 (MedMNIST's smallest size)."""
    k = N // 28
    return img.reshape(28, k, 28, k, 3).mean(axis=(1, 3))


def draw(out: Path, size: int = 800, seed: int = 7) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    rng = np.random.default_rng(seed)
    flags = registry.flags()
    dpi = 100
    fig = plt.figure(figsize=(size / dpi, size / dpi), dpi=dpi)
    fig.patch.set_facecolor("#0f1b2d")
    cols, rows = 4, 3
    left, right, top, gap = 0.06, 0.94, 0.95, 0.018
    w = (right - left - gap * (cols - 1)) / cols
    for i, flag in enumerate(flags):
        r, c = divmod(i, cols)
        ax = fig.add_axes([left + c * (w + gap), top - (r + 1) * w - r * gap, w, w])
        ax.imshow(to_28(tile(flag, rng)), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        for s in ax.spines.values():
            s.set_color("#2c4a6e")
            s.set_linewidth(1.5)
    base = top - rows * w - (rows - 1) * gap
    fig.text(0.5, base - 0.10, "BIG", ha="center", va="center", color="white", fontsize=size * 0.092,
             fontweight="bold", family="DejaVu Sans")
    fig.text(0.5, base - 0.19, "Biomedical Image Generalization", ha="center", va="center", color="#9fd3ff",
             fontsize=size * 0.034, family="DejaVu Sans")
    fig.text(0.5, base - 0.245, "12 MedMNIST+ datasets  ·  28 / 64 / 128 / 224 px  ·  AUC · BalAcc · κ",
             ha="center", va="center", color="#c8d6e5", fontsize=size * 0.0172, family="DejaVu Sans")
    fig.patches.append(FancyBboxPatch((0.03, 0.02), 0.94, 0.96, boxstyle="round,pad=0,rounding_size=0.03",
                                      transform=fig.transFigure, fill=False, edgecolor="#2c4a6e", linewidth=2))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.png")
    fig.savefig(tmp, dpi=dpi, facecolor=fig.get_facecolor())
    plt.close(fig)
    os.replace(tmp, out)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "logo.png"))
    ap.add_argument("--size", type=int, default=800, help="width and height in pixels")
    args = ap.parse_args(argv)
    print(f"wrote {draw(Path(args.out), args.size)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
