"""``big export``: a trained checkpoint -> a BIG code submission zip.

Zip contents (at its root): ``model.py`` (= ``big/mmpt/submission_model.py``, self-contained),
``weights.npz`` (the MultiNet state dict with timm's parameter names, fp16 floats by default) and
``model_config.json`` (backbone, resolution, normalisation, padding, heads, BatchNorm mode). A
``bn_mode: per_dataset`` checkpoint keeps its (D, C) per-dataset statistics in weights.npz. No ``metadata`` file:
the ingestion program imports model.py and calls ``Model().predict(dataset, images)``.
"""
from __future__ import annotations

import io
import json
import os
import re
import zipfile
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

from .. import registry
from ..errors import UsageError

TEMPLATE = Path(__file__).with_name("submission_model.py")
#: timm names with a plain-PyTorch implementation in model.py (runs in the stock gpu310 image)
_PLAIN = [(re.compile(r"^resnet(18|34)(\.[\w]+)?$"), "resnet"),
          (re.compile(r"^vit_(tiny|small|base|large)_patch16_(224|384)(\.[\w]+)?$"), "vit")]


def plain_arch(model_name: str, model_kwargs: Optional[Mapping] = None) -> Optional[str]:
    """'resnet' / 'vit' when model.py can rebuild the backbone without timm, else None."""
    if model_kwargs:
        extra = set(model_kwargs) - {"img_size"}
        if extra:
            return None
    for pat, arch in _PLAIN:
        if pat.match(model_name):
            return arch
    return None


def export_config(cfg: Mapping, norm: Mapping, *, arch: Optional[str], num_heads: Optional[int]) -> Dict:
    return {
        "format": "big-mmpt-export-1",
        "model": cfg["model"],
        "model_kwargs": dict(cfg.get("model_kwargs") or {}),
        "arch": arch or "timm",
        "num_heads": num_heads,
        "img_size": int(cfg["img_size"]),
        "pad_to": None if cfg["native_resolution"] else int(cfg["pad_to"]),
        "mean": list(norm["mean"]),
        "std": list(norm["std"]),
        "batch_size": int(cfg.get("eval_batch_size", 64)),
        "heads": {f: registry.get(f).n_labels for f in cfg["datasets"]},
        # per_dataset: every BatchNorm running_mean/var (num_batches_tracked) in weights.npz has one
        # row per dataset, in this order; model.py loads the predicted dataset's row before predicting
        "bn_mode": cfg["bn_mode"],
        "bn_datasets": list(cfg["datasets"]) if cfg["bn_mode"] == "per_dataset" else None,
        "multilabel": [f for f in cfg["datasets"] if registry.get(f).kind == registry.MULTILABEL],
    }


def _num_heads(cfg: Mapping) -> Optional[int]:
    import timm

    m = timm.create_model(cfg["model"], pretrained=False, num_classes=0, **dict(cfg.get("model_kwargs") or {}))
    blocks = getattr(m, "blocks", None)
    return int(blocks[0].attn.num_heads) if blocks is not None else None


def weights_npz(state: Mapping, dtype: str = "float16") -> bytes:
    buf = io.BytesIO()
    arrays = {}
    for k, v in state.items():
        a = v.detach().cpu().numpy()
        if a.dtype.kind == "f":
            a = a.astype(dtype)
        arrays[k] = a
    np.savez(buf, **arrays)
    return buf.getvalue()


def export(checkpoint: os.PathLike, out: os.PathLike, *, dtype: str = "float16", log=print) -> Tuple[Path, Dict]:
    from .predict import require_all_datasets
    from .train import load_checkpoint

    if dtype not in ("float16", "float32"):
        raise UsageError([f"--dtype: expected float16 or float32, found {dtype!r}"])
    out = Path(out)
    if out.suffix != ".zip":
        raise UsageError([f"--out {out}: a code submission is a .zip file"])
    ckpt = load_checkpoint(checkpoint)
    cfg = ckpt["config"]
    require_all_datasets(cfg, checkpoint)
    arch = plain_arch(cfg["model"], cfg.get("model_kwargs"))
    num_heads = _num_heads(cfg) if arch == "vit" else None
    mcfg = export_config(cfg, ckpt["norm"], arch=arch, num_heads=num_heads)
    files = {
        "model.py": TEMPLATE.read_bytes(),
        "weights.npz": weights_npz(ckpt["model"], dtype),
        "model_config.json": json.dumps(mcfg, indent=1).encode(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in files.items():
                # weights barely compress (and deflating 170 MB is slow): store them
                zf.writestr(name, data, compress_type=zipfile.ZIP_STORED if name.endswith(".npz") else zipfile.ZIP_DEFLATED)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    size = out.stat().st_size
    log(f"wrote {out} ({size / 2**20:.1f} MiB): {cfg['model']} at {cfg['img_size']} px, {dtype} weights")
    if arch is None:
        log(f"note: {cfg['model']} has no plain-PyTorch implementation in model.py; it imports timm, which the "
            f"stock CodaBench gpu310 image lacks: run it with the project's docker image (timm installed)")
    else:
        log("model.py is self-contained (numpy + torch >= 2.0, no timm/torchvision): runs in the stock gpu310 image")
    return out, mcfg
