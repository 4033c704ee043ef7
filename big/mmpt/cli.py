"""``big train``, ``big predict``, ``big export``, ``big evaluate``, ``big recalibrate-bn`` (mm-PT baselines).
No torch import at import time."""
from __future__ import annotations

import argparse


def _need_torch() -> None:
    """torch and timm are optional dependencies (the scorer never needs them): say how to get them."""
    import importlib.util

    from ..errors import UsageError

    missing = [m for m in ("torch", "timm") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError([f"{', '.join(missing)} not installed: `pip install -e \".[train]\"` (torch, torchvision, "
                          f"timm) is needed for big train/predict/export/evaluate/recalibrate-bn"])


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
    print(f"done: {res['epochs']} epoch(s); best epoch {best['epoch']} by {best['select_by']} ({best['value']:.5f}); "
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


def _evaluate(args) -> int:
    _need_torch()
    from .evaluate import evaluate

    evaluate(args.checkpoint, args.split, args.data_root, out=args.out, cache_dir=args.cache_dir, device=args.device,
             batch_size=args.batch_size)
    return 0


def _recalibrate(args) -> int:
    _need_torch()
    from .evaluate import recalibrate_bn

    recalibrate_bn(args.checkpoint, args.data_root, args.out, cache_dir=args.cache_dir, device=args.device,
                   batch_size=args.batch_size)
    return 0


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return v


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
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.set_defaults(func=_predict)

    p = sub.add_parser("export", help="a trained checkpoint as a code submission zip (model.py + weights)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True, help="code submission .zip")
    p.add_argument("--dtype", default="float16", choices=["float16", "float32"], help="stored weight precision")
    p.set_defaults(func=_export)

    p = sub.add_parser("evaluate", help="per-dataset AUC, balanced accuracy, kappa of a checkpoint (subsets too)",
                       description="Scores a checkpoint on the val or test split of the datasets it was trained on "
                                   "(any subset of the 12) with the BIG metrics; prints a table, --out writes "
                                   "evaluation.json and evaluation.md. For research; a submission needs big predict.")
    p.add_argument("--checkpoint", required=True, help="a `big train` or `big recalibrate-bn` checkpoint")
    p.add_argument("--split", required=True, choices=["val", "test"])
    p.add_argument("--data-root", required=True, help="folder with the MedMNIST+ npz files (labels are read)")
    p.add_argument("--out", help="folder for evaluation.json and evaluation.md")
    p.add_argument("--cache-dir", help="memory-mapped .npy cache (default DATA_ROOT/.npy_cache)")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda when available)")
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("recalibrate-bn", help="re-estimate per-dataset BatchNorm statistics on training images",
                       description="Runs each dataset's training images (no labels, no val/test) through the "
                                   "trained backbone and stores one set of BatchNorm running statistics per dataset; "
                                   "writes a bn_mode per_dataset checkpoint. Weights are unchanged.")
    p.add_argument("--checkpoint", required=True, help="a trained checkpoint (bn_mode shared or per_dataset)")
    p.add_argument("--data-root", required=True, help="folder with the MedMNIST+ npz files")
    p.add_argument("--out", required=True, help="the per_dataset checkpoint to write")
    p.add_argument("--cache-dir", help="memory-mapped .npy cache (default DATA_ROOT/.npy_cache)")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda when available)")
    p.add_argument("--batch-size", type=_positive_int, help="images per forward pass (default: the run's batch_size)")
    p.set_defaults(func=_recalibrate)
