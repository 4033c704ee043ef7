"""Per-dataset train/val loss curves (as the thesis' Figs 21-22) and the selection criterion."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Dict, List, Sequence


def loss_curves(history: List[Dict[str, Any]], flags: Sequence[str], out: os.PathLike, *, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    out = Path(out)
    ep = [r["epoch"] for r in history]
    n = len(flags) + 1
    cols = 4
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    panels = [("weighted criterion", "train_loss", "val_loss")] + [(f, f"{f}_train_loss", f"{f}_val_loss") for f in flags]
    for ax, (name, tk, vk) in zip(axes.flat, panels):
        ax.plot(ep, [r.get(tk, float("nan")) for r in history], marker="o", ms=3, label="train")
        ax.plot(ep, [r.get(vk, float("nan")) for r in history], marker="o", ms=3, label="val")
        best = [r.get("best_epoch") for r in history][-1:] or [None]
        if best[0]:
            ax.axvline(best[0], color="grey", ls=":", lw=1)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("loss")
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    tmp = out.with_name(out.stem + ".partial.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, out)
    return out
