"""``big train``, ``big predict``, ``big export`` (mm-PT baselines). No torch import at import time."""
from __future__ import annotations

import argparse


def _need_torch() -> None:
    """torch and timm are optional dependencies (the scorer never needs them): say how to get them."""
    import importlib.util

    from ..errors import UsageError

    missing = [m for m in ("torch", "timm") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError([f"{', '.join(missing)} not installed: `pip install -e \".[train]\"` (torch, torchvision, "
                          f"timm) is needed for big train/predict/export"])


def _train(args) -> int:
    from . import config

    tokens = []
    for key in config.DEFAULTS:
        if hasattr(args, f"set_{key}"):
            tokens += [f"--{key}", getattr(args, f"set_{key}")]
    cfg = config.load(args.config, tokens)
    _need_torch()
    from .train import train

    resume = None
    if args.resume:
        from pathlib import Path

        resume = Path(cfg["output"]) / "last.pt" if args.resume == "auto" else Path(args.resume)
    res = train(cfg, resume=resume)
    best = res["best"]
    import os

    if os.environ.get("RANK", "0") != "0":
        return 0
    print(f"done: {res['epochs']} epoch(s); best epoch {best['epoch']} (val criterion {best['val_loss']:.5f}); "
          f"checkpoints, logs and plots in {res['output']}")
    return 0


def _predict(args) -> int:
    _need_torch()
    from .predict import predict

    predict(args.checkpoint, args.split, args.data_root, args.out, cache_dir=args.cache_dir, device=args.device,
            batch_size=args.batch_size)
    return 0


def _export(args) -> int:
    _need_torch()
    from .export import export

    export(args.checkpoint, args.out, dtype=args.dtype)
    return 0


def register(sub) -> None:
    p = sub.add_parser("train", help="train an mm-PT baseline (one backbone, one head per dataset)",
                       description="Train with a YAML config (baselines/configs/*.yaml); any setting can be "
                                   "overridden with --key value (e.g. --epochs 5 --pretrained false). "
                                   "Multi-GPU: torchrun --nproc_per_node N -m big train ...")
    p.add_argument("--config", help="YAML config (defaults = the thesis' mm-PT settings)")
    p.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="continue a run: from OUTPUT/last.pt, or from the checkpoint given")
    from .config import DEFAULTS

    g = p.add_argument_group("config overrides (YAML values: numbers, true/false, null; datasets: a,b,c)")
    for key, value in DEFAULTS.items():
        names = [f"--{key}"] + ([f"--{key.replace('_', '-')}"] if "_" in key else [])
        g.add_argument(*names, dest=f"set_{key}", metavar="V", default=argparse.SUPPRESS,
                       help=f"default {value!r}")
    p.set_defaults(func=_train)

    p = sub.add_parser("predict", help="predictions of a trained checkpoint as a result submission zip")
    p.add_argument("--checkpoint", required=True, help="best.pt / last.pt of `big train`")
    p.add_argument("--split", required=True, choices=["val", "test"])
    p.add_argument("--data-root", required=True, help="folder with the MedMNIST+ npz files")
    p.add_argument("--out", required=True, help="result submission (.zip, or a folder)")
    p.add_argument("--cache-dir", help="memory-mapped .npy cache (default DATA_ROOT/.npy_cache)")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda when available)")
    p.add_argument("--batch-size", type=int, default=64)
    p.set_defaults(func=_predict)

    p = sub.add_parser("export", help="a trained checkpoint as a code submission zip (model.py + weights)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True, help="code submission .zip")
    p.add_argument("--dtype", default="float16", choices=["float16", "float32"], help="stored weight precision")
    p.set_defaults(func=_export)

