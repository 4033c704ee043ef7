"""Per-dataset BatchNorm statistics (``bn_mode: per_dataset``) and their re-estimation.

Under mm-PT every dataset's batches pass through one backbone. With ``bn_mode: shared`` (the
thesis) each BatchNorm layer keeps one running mean/variance, updated by whichever dataset was
drawn last, and evaluation of every dataset uses that mixture. ``per_dataset`` replaces each
BatchNorm layer by :class:`DomainBatchNorm`: the affine weight and bias stay shared (same parameter
names, so timm's keys are unchanged), the running statistics get one row per dataset
(``running_mean``/``running_var`` of shape (D, C), ``num_batches_tracked`` of shape (D,), rows in
the order of the config's ``datasets``).

* Training batches are single-dataset: a batch is normalised with its own statistics exactly as
  ``nn.BatchNorm2d`` does (same kernel) and updates only its dataset's row.
* Evaluation, prediction and export normalise with the row of the dataset being predicted.
* Under DDP (``sync=True``) the batch statistics are those of the global batch: the ranks' counts,
  means and centred sums of squares are combined with autograd-aware all-reduces (SyncBatchNorm's
  semantics, on any backend, gloo included), so every rank normalises, back-propagates and updates
  its running statistics exactly like a single process with the whole batch.

``recalibrate`` re-estimates every dataset's row from that dataset's training images (forward
passes only, no labels, no gradient): cumulative averages of the batch statistics, like
``torch.optim.swa_utils.update_bn``.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError

_STATS = ("running_mean", "running_var", "num_batches_tracked")
_PLAIN_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class DomainBatchNorm(nn.Module):
    """BatchNorm with shared affine parameters and one set of running statistics per domain."""

    def __init__(self, num_features: int, domains: Sequence[str], *, eps: float = 1e-5,
                 momentum: Optional[float] = 0.1, affine: bool = True):
        super().__init__()
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), momentum
        self.domains = tuple(domains)
        self.index = {d: i for i, d in enumerate(self.domains)}
        self.domain = 0
        self.sync = False  # set by the trainer under DDP; only used in training mode
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        d = len(self.domains)
        self.register_buffer("running_mean", torch.zeros(d, num_features))
        self.register_buffer("running_var", torch.ones(d, num_features))
        self.register_buffer("num_batches_tracked", torch.zeros(d, dtype=torch.long))

    @classmethod
    def from_batchnorm(cls, bn: nn.modules.batchnorm._BatchNorm, domains: Sequence[str]) -> "DomainBatchNorm":
        """Same affine parameters; every domain's statistics start as ``bn``'s."""
        m = cls(bn.num_features, domains, eps=bn.eps, momentum=bn.momentum, affine=bn.affine)
        with torch.no_grad():
            if bn.affine:
                m.weight.copy_(bn.weight)
                m.bias.copy_(bn.bias)
            m.running_mean.copy_(bn.running_mean.expand_as(m.running_mean))
            m.running_var.copy_(bn.running_var.expand_as(m.running_var))
            m.num_batches_tracked.fill_(int(bn.num_batches_tracked))
        return m.to(bn.weight.device if bn.affine else bn.running_mean.device)

    def extra_repr(self) -> str:
        return f"{self.num_features}, domains={len(self.domains)}, eps={self.eps}, momentum={self.momentum}"

    def reset_running_stats(self) -> None:
        self.running_mean.zero_()
        self.running_var.fill_(1.0)
        self.num_batches_tracked.zero_()

    def _factor(self) -> float:
        """The running-average factor of this update (``momentum=None``: cumulative average)."""
        self.num_batches_tracked[self.domain] += 1
        if self.momentum is None:
            return 1.0 / float(self.num_batches_tracked[self.domain])
        return float(self.momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.domain
        rm, rv = self.running_mean[d], self.running_var[d]  # views: updates land in row d
        if not self.training:
            return F.batch_norm(x, rm, rv, self.weight, self.bias, False, 0.0, self.eps)
        factor = self._factor()
        if self.sync and torch.distributed.is_available() and torch.distributed.is_initialized():
            return _sync_batch_norm(x, rm, rv, self.weight, self.bias, factor, self.eps)
        return F.batch_norm(x, rm, rv, self.weight, self.bias, True, factor, self.eps)


def _sync_batch_norm(x, running_mean, running_var, weight, bias, factor: float, eps: float) -> torch.Tensor:
    """Batch norm over the global batch of all ranks (differentiable, any backend).

    Each rank contributes its row count n_r, mean m_r and centred sum of squares; the global mean
    is sum(n_r m_r) / N and the variance sum(n_r (v_r + (m_r - M)^2)) / N (numerically stable).
    ``torch.distributed.nn.functional.all_reduce`` all-reduces the gradients in the backward pass,
    which is what SyncBatchNorm's backward does.
    """
    from torch.distributed.nn.functional import all_reduce

    dims = [0] + list(range(2, x.dim()))
    shape = [1, -1] + [1] * (x.dim() - 2)
    xf = x.float()
    n = float(xf.numel() // xf.shape[1])
    var_l, mean_l = torch.var_mean(xf, dim=dims, correction=0)
    s = all_reduce(torch.cat([mean_l * n, mean_l.new_tensor([n])]))
    total = s[-1].detach()
    mean = s[:-1] / total
    var = all_reduce((var_l + (mean_l - mean) ** 2) * n) / total
    with torch.no_grad():
        unbiased = var * (total / (total - 1)) if float(total) > 1 else var
        running_mean.mul_(1.0 - factor).add_(mean.detach() * factor)
        running_var.mul_(1.0 - factor).add_(unbiased.detach() * factor)
    y = (xf - mean.view(shape)) * torch.rsqrt(var + eps).view(shape)
    if weight is not None:
        y = y * weight.float().view(shape) + bias.float().view(shape)
    return y.to(x.dtype)


# ---------------------------------------------------------------------------------------------
# converting a backbone, choosing the domain
# ---------------------------------------------------------------------------------------------

def batchnorm_layers(module: nn.Module) -> List[str]:
    """Names of the BatchNorm layers that keep running statistics."""
    return [n for n, m in module.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def convert(backbone: nn.Module, domains: Sequence[str], *, model_name: str = "the backbone") -> nn.Module:
    """Replace every BatchNorm layer of ``backbone`` (in place) by a :class:`DomainBatchNorm`."""
    names = batchnorm_layers(backbone)
    if not names:
        raise UsageError([f"bn_mode per_dataset: {model_name} has no BatchNorm layer with running statistics, so "
                          f"there is nothing to keep per dataset; use bn_mode shared"])
    odd = sorted({type(backbone.get_submodule(n)).__name__ for n in names
                  if type(backbone.get_submodule(n)) not in _PLAIN_BN + (nn.SyncBatchNorm,)})
    if odd:
        raise UsageError([f"bn_mode per_dataset supports torch.nn.BatchNorm1d/2d/3d layers; {model_name} uses "
                          f"{', '.join(odd)}; use bn_mode shared for it"])
    for name in names:
        parent_name, _, attr = name.rpartition(".")
        parent = backbone.get_submodule(parent_name) if parent_name else backbone
        setattr(parent, attr, DomainBatchNorm.from_batchnorm(getattr(parent, attr), domains))
    return backbone


def domain_layers(module: nn.Module) -> List[DomainBatchNorm]:
    return [m for m in module.modules() if isinstance(m, DomainBatchNorm)]


def set_domain(layers: Iterable[DomainBatchNorm], flag: str, *, sync: Optional[bool] = None) -> None:
    for m in layers:
        try:
            m.domain = m.index[flag]
        except KeyError:
            raise KeyError(f"no BatchNorm statistics for dataset {flag!r} (has {', '.join(m.domains)})") from None
        if sync is not None:
            m.sync = bool(sync)


def expand_shared_state(state: Mapping[str, torch.Tensor], net: nn.Module) -> Dict[str, torch.Tensor]:
    """A ``shared`` state dict made loadable into a ``per_dataset`` net: every BatchNorm layer's
    running statistics are copied into every dataset's row."""
    out = dict(state)
    for name, m in net.named_modules():
        if not isinstance(m, DomainBatchNorm):
            continue
        for key in _STATS:
            k = f"{name}.{key}"
            if k in out and out[k].dim() == getattr(m, key).dim() - 1:
                out[k] = out[k].unsqueeze(0).expand_as(getattr(m, key)).clone()
    return out


def stats_fingerprint(net: nn.Module) -> torch.Tensor:
    """float64 (2,) sums of all running means and variances: equal on ranks that agree."""
    layers = domain_layers(net)
    if not layers:
        return torch.zeros(2, dtype=torch.float64)
    return torch.stack([sum(m.running_mean.double().sum() for m in layers),
                        sum(m.running_var.double().sum() for m in layers)]).cpu()


# ---------------------------------------------------------------------------------------------
# re-estimation on training images
# ---------------------------------------------------------------------------------------------

def recalibration_plan(sizes: Mapping[str, int], batch_size: int, seed: int) -> List[tuple]:
    """[(flag, rows)]: each dataset's training rows once, in a seeded random order, split into
    ceil(n / batch_size) batches whose sizes differ by at most one (no 1-row last batch: a batch
    of one image has no variance at a 1x1 feature map)."""
    plan = []
    for i, (flag, n) in enumerate(sizes.items()):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 77, i]))
        k = max(1, -(-int(n) // int(batch_size)))
        plan += [(flag, np.sort(rows)) for rows in np.array_split(rng.permutation(int(n)), k) if len(rows)]
    return plan


@torch.no_grad()
def recalibrate(net, pre, splits: Mapping, *, batch_size: int, seed: int, device, prefetch: int = 4,
                log=None) -> Dict[str, int]:
    """Re-estimate every dataset's BatchNorm statistics of ``net`` (a per_dataset MultiNet) from
    ``splits`` (training images; labels are not read). Returns images used per dataset."""
    from . import loader

    layers = domain_layers(net)
    momenta = [m.momentum for m in layers]
    was_training = net.training
    net.eval()
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
        m.train()
    sizes = {f: len(sd) for f, sd in splits.items()}
    plan = recalibration_plan(sizes, batch_size, seed)
    try:
        for flag, _rows, imgs, _labs in loader.Prefetcher(splits, plan, depth=prefetch):
            net.use_dataset(flag)
            net.backbone(pre(torch.from_numpy(imgs).to(device)))
    finally:
        for m, mom in zip(layers, momenta):
            m.momentum = mom
        net.train(was_training)
    if log:
        log("re-estimated BatchNorm statistics: " + ", ".join(f"{f} {n} images" for f, n in sizes.items()))
    return sizes
