"""``big predict``: a checkpoint + a split's images -> a result submission (full float precision)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from .. import registry
from ..errors import UsageError
from ..submission import write_submission
from . import loader, model as mmodel
from .train import load_checkpoint, pick_device


def require_all_datasets(cfg, checkpoint) -> None:
    """A submission needs all 12 datasets: a subset checkpoint is refused, pointing to big evaluate."""
    missing = [f for f in registry.flags() if f not in cfg["datasets"]]
    if missing:
        raise UsageError([f"the checkpoint has no head for {f}" for f in missing],
                         summary=f"a submission needs all 12 datasets; {checkpoint} was trained on "
                                 f"{len(cfg['datasets'])} ({', '.join(cfg['datasets'])}). For per-dataset metrics of "
                                 f"a subset use: big evaluate --checkpoint {checkpoint} --split val|test --data-root DIR")


def load_model(checkpoint: os.PathLike, device: Optional[str] = None, *, ckpt=None):
    ckpt = load_checkpoint(checkpoint) if ckpt is None else ckpt
    cfg = dict(ckpt["config"])
    net, pre = mmodel.build(cfg, pretrained=False)
    net.load_state_dict(ckpt["model"])
    dev = pick_device({"device": device or "auto"})
    net.to(dev).eval()
    pre.to(dev)
    return cfg, net, pre, dev


@torch.no_grad()
def predict_arrays(net, pre, dev, flag: str, images, batch_size: int = 64) -> np.ndarray:
    out = []
    for a in range(0, len(images), batch_size):
        rows = np.arange(a, min(len(images), a + batch_size))
        x = images.take(rows) if hasattr(images, "take") and not isinstance(images, np.ndarray) else images[rows]
        logits = net(pre(torch.from_numpy(np.ascontiguousarray(x)).to(dev)), flag)
        out.append(mmodel.scores(flag, logits).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, registry.get(flag).n_labels))


def predict(checkpoint: os.PathLike, split: str, data_root: os.PathLike, out: os.PathLike, *,
            cache_dir: Optional[os.PathLike] = None, device: Optional[str] = None, batch_size: int = 64,
            log=print) -> Path:
    cfg, net, pre, dev = load_model(checkpoint, device)
    require_all_datasets(cfg, checkpoint)
    cache = cache_dir or Path(data_root) / ".npy_cache"
    preds: Dict[str, np.ndarray] = {}
    for flag in registry.flags():
        sd = loader.open_split(data_root, flag, cfg["img_size"], split, cache, labels=False)
        preds[flag] = predict_arrays(net, pre, dev, flag, sd.images, batch_size)
        log(f"{flag}: {preds[flag].shape[0]} {split} predictions")
    path = write_submission(out, preds, cfg["img_size"])
    log(f"wrote {path} ({split} split, {cfg['img_size']} px)")
    return path
