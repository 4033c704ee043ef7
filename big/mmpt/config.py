"""Training configuration: defaults = the thesis' mm-PT settings, YAML files, ``--key value`` overrides.

A config is a flat dict (timm-style YAML). ``resolve`` checks every key and value and returns a new
dict; the resolved config is saved as ``config.yaml`` beside the run's outputs and inside every
checkpoint, so ``big predict``/``big export`` rebuild the exact model.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..errors import UsageError
from .. import registry

#: the thesis' mm-PT settings (reference_implementation.md §2.1, §2.5-2.8); comments say what each does
DEFAULTS: Dict[str, Any] = {
    "model": "resnet18",            # any timm model name; its classifier is removed
    "pretrained": True,             # timm ImageNet weights (downloaded once by timm)
    "model_kwargs": {},             # extra timm.create_model keyword arguments
    "img_size": 28,                 # MedMNIST+ size: 28, 64, 128 or 224
    "pad_to": 224,                  # zero-pad (after normalising) to this size; native_resolution skips it
    "native_resolution": False,     # feed img_size x img_size images (no padding)
    "datasets": "all",              # "all" or a list of flags (INFO order is kept)
    "data_root": "data/medmnist",   # folder with the {flag}[_{size}].npz files
    "cache_dir": None,              # memory-mapped .npy cache (default {data_root}/.npy_cache)
    "output": None,                 # run folder (default runs/{name})
    "name": None,                   # run name (default: the config file's stem)
    "epochs": 100,
    "early_stopping": 10,           # epochs without val-criterion improvement before stopping; 0 = off
    "lr": 1.0e-4,
    "weight_decay": 0.01,
    "betas": [0.9, 0.999],
    "eps": 1.0e-8,
    "lr_scheduler": "cosine",       # cosine | none
    "cosine_epochs": 100,           # cosine horizon t_initial (thesis: 100, no warm-up)
    "lr_min": 0.0,
    "batch_size": 64,               # global batch (split across DDP ranks)
    "eval_batch_size": 64,
    "weighted_loss": True,          # w_d = min train batches / train batches of d (val: same on val counts)
    "seed": 9930641,
    "deterministic": True,
    "sync_bn": True,                # DDP: SyncBatchNorm, so BN sees the global batch as one process would
    "bn_mode": "shared",            # shared (thesis) | per_dataset: one set of BN running statistics per dataset
    "select_by": "val_loss",        # best.pt and early stopping: val_loss (thesis) | mean_auc (mean val AUC)
    "save_best": [],                # also keep best_{criterion}.pt for these criteria (e.g. [val_loss, mean_auc])
    "amp": False,                   # mixed precision (bf16 on CPU, fp16 + grad scaling on CUDA)
    "device": "auto",               # auto | cpu | cuda | cuda:N
    "threads": None,                # torch.set_num_threads (CPU)
    "max_steps_per_epoch": None,    # smoke tests: stop each epoch after this many steps
    "max_eval_batches": None,       # smoke tests: evaluate at most this many batches per dataset
    "train_metrics": True,          # AUC/BalAcc/kappa of the outputs recorded during training
    "progress": True,               # tqdm progress bars (on a terminal)
    "prefetch": 4,                  # batches read ahead by the loader thread
    "plots": True,                  # loss-curve PNGs after each epoch
}

_TYPES = {
    "model": str, "pretrained": bool, "model_kwargs": dict, "img_size": int, "pad_to": int,
    "native_resolution": bool, "data_root": str, "epochs": int, "early_stopping": int, "lr": float,
    "weight_decay": float, "eps": float, "lr_scheduler": str, "cosine_epochs": int, "lr_min": float,
    "batch_size": int, "eval_batch_size": int, "weighted_loss": bool, "seed": int,
    "deterministic": bool, "sync_bn": bool, "bn_mode": str, "select_by": str, "amp": bool, "device": str, "train_metrics": bool, "progress": bool,
    "prefetch": int, "plots": bool,
}
_OPTIONAL_INT = ("threads", "max_steps_per_epoch", "max_eval_batches")
_OPTIONAL_STR = ("cache_dir", "output", "name")
_LISTS = ("datasets", "save_best")  # --key a,b,c on the command line
BN_MODES = ("shared", "per_dataset")
#: model-selection criteria: the validation-log column and whether larger is better
SELECT_BY = {"val_loss": ("val_loss", False), "mean_auc": ("mean_val_auc", True)}


def load_yaml(path: os.PathLike) -> Dict[str, Any]:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UsageError([f"config file {path} does not exist"])
    try:
        obj = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UsageError([f"{path}: not valid YAML: {exc}"]) from None
    if not isinstance(obj, dict):
        raise UsageError([f"{path}: expected a mapping of settings, found {type(obj).__name__}"])
    return obj


def parse_overrides(tokens: Sequence[str]) -> Dict[str, Any]:
    """``["--lr", "3e-4", "--pretrained", "false", "--datasets", "breastmnist,retinamnist"]``.

    Values are parsed as YAML scalars (numbers, true/false, null); ``--key=value`` works too; a
    key with dashes is the same as with underscores.
    """
    import yaml

    out: Dict[str, Any] = {}
    i = 0
    tokens = list(tokens)
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--") or len(tok) < 3:
            raise UsageError([f"override {tok!r}: expected --key value"])
        key, eq, val = tok[2:].partition("=")
        if not eq:
            if i + 1 >= len(tokens) or tokens[i + 1].startswith("--"):
                raise UsageError([f"override --{key}: missing its value"])
            val = tokens[i + 1]
            i += 1
        i += 1
        key = key.replace("-", "_")
        try:
            parsed = yaml.safe_load(val) if val != "" else ""
        except yaml.YAMLError:
            parsed = val
        if isinstance(parsed, str):  # YAML 1.1 reads 3e-4 as a string
            try:
                parsed = float(parsed) if any(c in parsed for c in ".eE") else int(parsed)
            except ValueError:
                pass
        if key in _LISTS and isinstance(parsed, str) and parsed != "all":
            parsed = [s.strip() for s in parsed.split(",") if s.strip()]
        out[key] = parsed
    return out


def _check_type(key: str, value: Any, problems: List[str]) -> Any:
    want = _TYPES.get(key)
    if key in _OPTIONAL_INT:
        if value is None:
            return None
        want = int
    if key in _OPTIONAL_STR:
        return None if value is None else str(value)
    if want is None:
        return value
    if want is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if want is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if want is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if want is bool and isinstance(value, bool):
        return value
    if want in (str, dict) and isinstance(value, want):
        return value
    problems.append(f"setting {key}: expected {want.__name__}, found {value!r}")
    return value


def resolve(*layers: Mapping[str, Any], config_path: Optional[os.PathLike] = None) -> Dict[str, Any]:
    """Defaults <- each layer (YAML file, CLI overrides); every key and value checked."""
    cfg = copy.deepcopy(DEFAULTS)
    problems: List[str] = []
    for layer in layers:
        for key, value in layer.items():
            if key not in DEFAULTS:
                close = [k for k in DEFAULTS if k.startswith(key[:3])]
                problems.append(f"unknown setting {key!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
                continue
            cfg[key] = copy.deepcopy(value)
    for key in list(cfg):
        if key in ("datasets", "betas", "save_best"):
            continue
        cfg[key] = _check_type(key, cfg[key], problems)
    if cfg["img_size"] not in registry.SIZES:
        problems.append(f"setting img_size: expected one of {registry.SIZES}, found {cfg['img_size']}")
    if not cfg["native_resolution"] and cfg["pad_to"] < cfg["img_size"]:
        problems.append(f"setting pad_to ({cfg['pad_to']}) is smaller than img_size ({cfg['img_size']})")
    if cfg["bn_mode"] not in BN_MODES:
        problems.append(f"setting bn_mode: expected one of {', '.join(BN_MODES)}, found {cfg['bn_mode']!r}")
    if cfg["select_by"] not in SELECT_BY:
        problems.append(f"setting select_by: expected one of {', '.join(SELECT_BY)}, found {cfg['select_by']!r}")
    keep = cfg["save_best"]
    if keep is None or keep == "":
        cfg["save_best"] = []
    elif isinstance(keep, (list, tuple)) and all(k in SELECT_BY for k in keep):
        cfg["save_best"] = [k for k in SELECT_BY if k in keep]
    else:
        problems.append(f"setting save_best: expected a list of {', '.join(SELECT_BY)}, found {keep!r}")
    if cfg["lr_scheduler"] not in ("cosine", "none"):
        problems.append(f"setting lr_scheduler: expected cosine or none, found {cfg['lr_scheduler']!r}")
    for key in ("batch_size", "eval_batch_size", "epochs", "cosine_epochs"):
        if isinstance(cfg[key], int) and cfg[key] < 1:
            problems.append(f"setting {key}: must be at least 1, found {cfg[key]}")
    betas = cfg["betas"]
    if not (isinstance(betas, (list, tuple)) and len(betas) == 2 and all(isinstance(b, (int, float)) for b in betas)):
        problems.append(f"setting betas: expected two numbers, found {betas!r}")
    else:
        cfg["betas"] = [float(b) for b in betas]
    ds = cfg["datasets"]
    if ds == "all" or ds is None:
        cfg["datasets"] = list(registry.flags())
    elif isinstance(ds, (list, tuple)) and ds:
        unknown = [f for f in ds if f not in registry.flags()]
        if unknown:
            problems.append(f"setting datasets: unknown flag(s) {unknown}; expected some of {list(registry.flags())}")
        cfg["datasets"] = [f for f in registry.flags() if f in ds]  # INFO order
    else:
        problems.append(f"setting datasets: expected 'all' or a list of flags, found {ds!r}")
    if problems:
        raise UsageError(problems, summary=f"invalid training config ({len(problems)} problem(s))")
    if cfg["name"] is None:
        cfg["name"] = Path(config_path).stem if config_path else f"{cfg['model']}_{cfg['img_size']}"
    if cfg["output"] is None:
        cfg["output"] = str(Path("runs") / cfg["name"])
    if cfg["cache_dir"] is None:
        cfg["cache_dir"] = str(Path(cfg["data_root"]) / ".npy_cache")
    return cfg


def with_defaults(saved: Mapping[str, Any]) -> Dict[str, Any]:
    """A config saved by an older version: settings it lacks take their defaults (which are the
    behaviour that version had)."""
    return {**copy.deepcopy(DEFAULTS), **dict(saved)}


def load(path: Optional[os.PathLike] = None, overrides: Sequence[str] = ()) -> Dict[str, Any]:
    layers = [load_yaml(path)] if path else []
    layers.append(parse_overrides(overrides))
    return resolve(*layers, config_path=path)


def dump(cfg: Mapping[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(dict(cfg), sort_keys=False, default_flow_style=None)


def save(cfg: Mapping[str, Any], path: os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text("# resolved mm-PT training config (big train); rerun with: big train --config this_file\n" + dump(cfg))
    os.replace(tmp, path)
    return path


def pad_size(cfg: Mapping[str, Any]) -> Tuple[int, int]:
    """(input size the backbone sees, image size)."""
    return (cfg["img_size"] if cfg["native_resolution"] else cfg["pad_to"]), cfg["img_size"]
