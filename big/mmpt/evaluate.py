"""``big evaluate`` and ``big recalibrate-bn``: research on a checkpoint, subsets of datasets included.

``evaluate`` scores a checkpoint on the val or test split of the datasets it has, with the BIG
metrics (``big.metrics.score_dataset``: AUC, balanced accuracy, Cohen's kappa), as a table and
JSON. Unlike ``big predict``/``big export`` it does not need all 12 datasets: it is not a
submission. ``recalibrate_bn`` re-estimates per-dataset BatchNorm statistics of a trained model on
training images only and writes a ``per_dataset`` checkpoint.
"""
from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import numpy as np

from .. import data, metrics as bigmetrics, registry
from ..errors import UsageError
from ..fsutil import write_json_atomic
from . import bn, loader, model as mmodel
from .predict import load_model, predict_arrays
from .train import _atomic_torch_save, load_checkpoint, pick_device


def _finite_or_none(v: float) -> Optional[float]:
    return float(v) if v is not None and math.isfinite(v) else None


def file_sha256(path: os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def evaluate(checkpoint: os.PathLike, split: str, data_root: os.PathLike, *, out: Optional[os.PathLike] = None,
             cache_dir: Optional[os.PathLike] = None, device: Optional[str] = None, batch_size: int = 64,
             log=print) -> Dict[str, Any]:
    """Per-dataset AUC, balanced accuracy and kappa of ``checkpoint`` on ``split`` (val or test)."""
    if split not in ("val", "test"):
        raise UsageError([f"--split: expected val or test, found {split!r}"])
    ckpt = load_checkpoint(checkpoint)
    cfg, net, pre, dev = load_model(checkpoint, device, ckpt=ckpt)
    cache = Path(cache_dir) if cache_dir else Path(data_root) / ".npy_cache"
    per: Dict[str, Dict[str, Any]] = {}
    for flag in cfg["datasets"]:
        ds = registry.get(flag)
        sd = loader.open_split(data_root, flag, cfg["img_size"], split, cache, labels=True)
        scores = predict_arrays(net, pre, dev, flag, sd.images, batch_size)
        with np.errstate(all="ignore"):
            m = bigmetrics.score_dataset(sd.labels, scores, kind=ds.kind)
        md5 = data.source_md5(data.npz_path(data_root, flag, cfg["img_size"]), cache)
        per[flag] = {**{k: _finite_or_none(m[k]) for k in registry.METRIC_KEYS}, "n": int(len(sd)),
                     "source_md5": md5, "genuine": md5 == ds.md5(cfg["img_size"])}
    mean = {k: _finite_or_none(float(np.mean([per[f][k] for f in per]))) if all(per[f][k] is not None for f in per)
            else None for k in registry.METRIC_KEYS}
    result = {
        "checkpoint": str(checkpoint), "checkpoint_sha256": file_sha256(checkpoint), "split": split,
        "model": cfg["model"], "img_size": cfg["img_size"], "native_resolution": cfg["native_resolution"],
        "bn_mode": cfg["bn_mode"], "selected_by": ckpt.get("selected_by"), "epoch": ckpt.get("epoch"),
        "recalibrated": ckpt.get("recalibrated"), "datasets": per,
        "mean": mean, "mean_note": f"unweighted mean over the {len(per)} dataset(s) evaluated, not the 12-dataset "
                                  f"benchmark score" if len(per) != len(registry.flags()) else
                                  "unweighted mean over the 12 datasets",
    }
    table = markdown_table(result)
    log(table)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "evaluation.json", result)
        tmp = out / "evaluation.md.partial"
        tmp.write_text(table + "\n")
        os.replace(tmp, out / "evaluation.md")
        log(f"wrote {out / 'evaluation.json'} and {out / 'evaluation.md'}")
    return result


def markdown_table(result: Mapping[str, Any]) -> str:
    def fmt(v):
        return "n/a" if v is None else f"{v:.4f}"

    head = (f"{result['model']} {result['img_size']} px, bn_mode {result['bn_mode']}, selected by "
            f"{result['selected_by']} (epoch {result['epoch']}), {result['split']} split")
    lines = [head, "", "| dataset | n | AUC | balanced accuracy | kappa |", "|---|---:|---:|---:|---:|"]
    for flag, m in result["datasets"].items():
        tag = "" if m["genuine"] else " (not the genuine file)"
        lines.append(f"| {flag}{tag} | {m['n']} | " + " | ".join(fmt(m[k]) for k in registry.METRIC_KEYS) + " |")
    lines.append(f"| mean ({len(result['datasets'])}) | | " + " | ".join(fmt(result["mean"][k]) for k in registry.METRIC_KEYS)
                 + " |")
    return "\n".join(lines)


def recalibrate_bn(checkpoint: os.PathLike, data_root: os.PathLike, out: os.PathLike, *,
                   cache_dir: Optional[os.PathLike] = None, device: Optional[str] = None,
                   batch_size: Optional[int] = None, log=print) -> Path:
    """Re-estimate per-dataset BatchNorm statistics of a trained checkpoint on each dataset's
    training images (no labels, no val/test, no gradient) and write a ``per_dataset`` checkpoint."""
    out = Path(out)
    if out.resolve() == Path(checkpoint).resolve():
        raise UsageError([f"--out {out} is the input checkpoint; write the recalibrated one beside it"])
    ckpt = load_checkpoint(checkpoint)
    cfg = {**ckpt["config"], "bn_mode": "per_dataset"}
    net, pre = mmodel.build(cfg, pretrained=False)
    state = ckpt["model"] if ckpt["config"]["bn_mode"] == "per_dataset" else bn.expand_shared_state(ckpt["model"], net)
    net.load_state_dict(state)
    dev = pick_device({"device": device or "auto"})
    net.to(dev)
    pre.to(dev)
    cache = Path(cache_dir) if cache_dir else Path(data_root) / ".npy_cache"
    splits = {f: loader.open_split(data_root, f, cfg["img_size"], "train", cache, labels=False) for f in cfg["datasets"]}
    bs = int(batch_size or cfg["batch_size"])
    if bs < 2:
        raise UsageError([f"--batch-size {bs}: BatchNorm statistics need batches of at least 2 images"])
    used = bn.recalibrate(net, pre, splits, batch_size=bs, seed=cfg["seed"], device=dev, log=log)
    new = {k: v for k, v in ckpt.items() if k not in ("optimizer", "scaler")}
    new.update({"config": cfg, "model": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                "optimizer": None, "scaler": None, "made_by": "big recalibrate-bn",
                "recalibrated": {"from": str(checkpoint), "from_sha256": file_sha256(checkpoint),
                                 "from_bn_mode": ckpt["config"]["bn_mode"], "split": "train", "batch_size": bs,
                                 "images": used}})
    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_torch_save(new, out)
    log(f"wrote {out}: bn_mode per_dataset, statistics of {len(used)} dataset(s) from their training images")
    return out

