"""Backbone + one Linear head per dataset, on-device preprocessing and the thesis' losses."""
from __future__ import annotations

from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .. import registry
from ..registry import MULTILABEL


def create_backbone(name: str, *, pretrained: bool, model_kwargs: Optional[Mapping] = None) -> nn.Module:
    """A timm model by name with its classifier removed (``num_classes=0`` = ``reset_classifier(0)``)."""
    import timm

    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=0, **dict(model_kwargs or {}))
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            from ..errors import UsageError

            raise UsageError([f"timm has no model {name!r} (see timm.list_models())"]) from None
        raise


def norm_stats(backbone: nn.Module) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """The backbone's timm mean/std (its pretrained config; ImageNet defaults when it has none)."""
    cfg = getattr(backbone, "pretrained_cfg", None) or getattr(backbone, "default_cfg", None) or {}
    mean = tuple(float(x) for x in cfg.get("mean", (0.485, 0.456, 0.406)))
    std = tuple(float(x) for x in cfg.get("std", (0.229, 0.224, 0.225)))
    return mean, std


class Preprocess(nn.Module):
    """uint8 (B,S,S) or (B,S,S,3) on the device -> float (B,3,P,P): /255, grey -> 3 channels,
    normalise with mean/std, then zero-pad to P (pad after normalising, as the thesis' transforms:
    ToTensor, Normalize, Pad(fill=0) with left/top = floor((P-S)/2)).

    With ``ring`` > 0 the result is written into the centre of one of ``ring`` preallocated
    zero-bordered canvases per batch shape, used in turn: no 38 MB allocation and zero fill per
    batch at 224 px (page faults dominate that on a CPU). A returned batch therefore stays valid
    only until ``ring`` more batches have been preprocessed; the training and prediction loops use
    each batch before the next one (on CUDA the stream orders the writes after earlier reads).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], out_size: Optional[int], ring: int = 0):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.out_size = out_size
        self.ring = int(ring)
        self._canvases: Dict[tuple, list] = {}
        self._turn: Dict[tuple, int] = {}

    def _canvas(self, b: int, p: int, device) -> torch.Tensor:
        key = (b, p, str(device))
        bufs = self._canvases.setdefault(key, [])
        if len(self._canvases) > 8:  # a handful of shapes at most (full and last batches)
            for k in [k for k in self._canvases if k != key][:-4]:
                del self._canvases[k]
        i = self._turn.get(key, 0)
        self._turn[key] = (i + 1) % self.ring
        if len(bufs) <= i:
            bufs.append(torch.zeros((b, 3, p, p), dtype=torch.float32, device=device))
        return bufs[i]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(-1)
        x = x.permute(0, 3, 1, 2)
        b, s = x.shape[0], x.shape[-1]
        p = self.out_size if self.out_size is not None else s
        if self.ring > 0:
            a = (p - s) // 2
            out = self._canvas(b, p, x.device)
            centre = out[:, :, a:a + s, a:a + s]
            centre.copy_(x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x)
            centre.div_(255.0).sub_(self.mean).div_(self.std)
            return out
        x = x.to(torch.float32).div_(255.0)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = (x - self.mean) / self.std
        if p != s:
            a = (p - s) // 2
            x = F.pad(x, (a, p - s - a, a, p - s - a), value=0.0)
        return x.contiguous()


class MultiNet(nn.Module):
    """One shared backbone and ``heads[flag]`` = Linear(num_features, C_flag) with default init.

    Binary datasets get 2 outputs (softmax/CE), chestmnist 14 (sigmoid/BCE), as in the thesis.
    ``bn_mode="per_dataset"``: the backbone's BatchNorm layers keep one set of running statistics
    per dataset (``bn.DomainBatchNorm``); ``use_dataset(flag)`` picks the set, and ``forward``
    calls it. Code that calls ``backbone`` directly (the training loop) calls it first.
    """

    def __init__(self, backbone: nn.Module, flags: Iterable[str], *, bn_mode: str = "shared", model_name: str = ""):
        super().__init__()
        from . import bn
        from .config import BN_MODES

        flags = list(flags)
        self.bn_mode = bn_mode
        if bn_mode == "per_dataset":
            bn.convert(backbone, flags, model_name=model_name or type(backbone).__name__)
        elif bn_mode != "shared":
            raise ValueError(f"bn_mode: expected one of {BN_MODES}, found {bn_mode!r}")
        self.backbone = backbone
        self._domain_layers = bn.domain_layers(backbone)
        nf = int(backbone.num_features)
        self.heads = nn.ModuleDict({f: nn.Linear(nf, registry.get(f).n_labels) for f in flags})

    def use_dataset(self, flag: str, *, sync: Optional[bool] = None) -> None:
        """Normalise with ``flag``'s BatchNorm statistics (per_dataset; a no-op for shared)."""
        if self._domain_layers:
            from .bn import set_domain

            set_domain(self._domain_layers, flag, sync=sync)

    def forward(self, x: torch.Tensor, flag: str) -> torch.Tensor:
        self.use_dataset(flag)
        return self.heads[flag](self.backbone(x))


def build(cfg: Mapping, *, pretrained: Optional[bool] = None, ring: int = 2) -> Tuple[MultiNet, Preprocess]:
    from .config import pad_size

    backbone = create_backbone(cfg["model"], pretrained=cfg["pretrained"] if pretrained is None else pretrained,
                               model_kwargs=cfg.get("model_kwargs"))
    net = MultiNet(backbone, cfg["datasets"], bn_mode=cfg["bn_mode"], model_name=cfg["model"])
    mean, std = norm_stats(backbone)
    size, _ = pad_size(cfg)
    return net, Preprocess(mean, std, None if cfg["native_resolution"] else size, ring=ring)


def loss_fn(flag: str, logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """BCE-with-logits for multi-label (chestmnist), cross-entropy otherwise (binary, retina included)."""
    if registry.get(flag).kind == MULTILABEL:
        return F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction=reduction)
    return F.cross_entropy(logits.float(), target.reshape(-1).long(), reduction=reduction)


def scores(flag: str, logits: torch.Tensor) -> torch.Tensor:
    """Scores in [0, 1]: sigmoid for multi-label, softmax otherwise."""
    if registry.get(flag).kind == MULTILABEL:
        return torch.sigmoid(logits.float())
    return torch.softmax(logits.float(), dim=1)

