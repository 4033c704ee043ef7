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
    ToTensor, Normalize, Pad(fill=0) with left/top = floor((P-S)/2))."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], out_size: Optional[int]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.out_size = out_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(-1)
        x = x.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = (x - self.mean) / self.std
        s = x.shape[-1]
        if self.out_size is not None and self.out_size != s:
            a = (self.out_size - s) // 2
            b = self.out_size - s - a
            x = F.pad(x, (a, b, a, b), value=0.0)
        return x.contiguous()


class MultiNet(nn.Module):
    """One shared backbone and ``heads[flag]`` = Linear(num_features, C_flag) with default init.

    Binary datasets get 2 outputs (softmax/CE), chestmnist 14 (sigmoid/BCE), as in the thesis.
    """

    def __init__(self, backbone: nn.Module, flags: Iterable[str]):
        super().__init__()
        self.backbone = backbone
        nf = int(backbone.num_features)
        self.heads = nn.ModuleDict({f: nn.Linear(nf, registry.get(f).n_labels) for f in flags})

    def forward(self, x: torch.Tensor, flag: str) -> torch.Tensor:
        return self.heads[flag](self.backbone(x))


def build(cfg: Mapping, *, pretrained: Optional[bool] = None) -> Tuple[MultiNet, Preprocess]:
    from .config import pad_size

    backbone = create_backbone(cfg["model"], pretrained=cfg["pretrained"] if pretrained is None else pretrained,
                               model_kwargs=cfg.get("model_kwargs"))
    net = MultiNet(backbone, cfg["datasets"])
    mean, std = norm_stats(backbone)
    size, _ = pad_size(cfg)
    return net, Preprocess(mean, std, None if cfg["native_resolution"] else size)


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


def head_parameters(net: MultiNet) -> Dict[str, Sequence[nn.Parameter]]:
    return {f: list(h.parameters()) for f, h in net.heads.items()}
