"""The mm-PT training loop (thesis Algorithm 1) with the thesis bugs fixed.

One run = one backbone, one resolution, one seed, all configured datasets at once. Each epoch
interleaves every training batch of every dataset exactly once (``sampler.epoch_plan``); a step
updates the backbone and the drawn dataset's head only (the other heads have no gradient, so AdamW
gives them no update, no momentum and no weight decay). After each epoch: validation over all val
batches, the criterion sum(w_val_d * batch loss) / #val batches, checkpoints (``last.pt`` every
epoch, ``best.pt`` on improvement), ``log.csv``/``log.json``, ``loss_curves.png``.

Fixed thesis bugs: training without the LR scheduler works; epoch e uses the cosine value at t=e
(no one-epoch lag); checkpoints are written with portable paths; the last checkpoint is written
before early stopping ends the run; per-epoch randomness is derived from (seed, epoch), so workers
and resumed runs get proper, distinct seeds.

DDP (torchrun): every rank draws the same dataset at each step (the plan depends only on the seed),
validation batches are shared out across ranks and gathered in order,
the global batch is split across ranks, the backbone is wrapped in DistributedDataParallel and the
drawn head's gradient is all-reduced explicitly (idle heads stay untouched on every rank).
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .. import metrics as bigmetrics
from .. import registry
from ..errors import UsageError
from . import config as mcfg
from . import bn, loader, model as mmodel, sampler

CKPT_FORMAT = "big-mmpt-1"
#: settings that may differ between the interrupted run and ``--resume`` (they do not change results)
RESUME_FREE = {"progress", "device", "threads", "prefetch", "plots", "data_root", "cache_dir", "output",
               "epochs", "early_stopping", "name", "save_best"}


# ---------------------------------------------------------------------------------------------
# environment
# ---------------------------------------------------------------------------------------------

class Dist:
    """rank/world of a torchrun launch (world 1 without one)."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world > 1
        self.owned = False

    def init(self, device: torch.device) -> None:
        if self.enabled and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
            self.owned = True

    def close(self) -> None:
        if self.owned and dist.is_initialized():
            dist.destroy_process_group()

    @property
    def main(self) -> bool:
        return self.rank == 0


def pick_device(cfg: Mapping, local_rank: int = 0) -> torch.device:
    want = cfg["device"]
    if want == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(want)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError([f"device {want!r} requested but CUDA is not available"])
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{local_rank}")
    return dev


def set_determinism(cfg: Mapping) -> None:
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    if cfg["deterministic"]:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=False)


def seed_everything(seed: int, epoch: int = -1) -> None:
    """Seeds random, numpy and torch from (seed, epoch) (epoch -1 = model initialisation)."""
    import random

    s = int(np.random.SeedSequence([int(seed), int(epoch) + 1, 99]).generate_state(1)[0])
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def lr_at(cfg: Mapping, epoch: int) -> float:
    """Learning rate of epoch ``epoch`` (0-based): cosine at t=epoch without warm-up (no lag)."""
    if cfg["lr_scheduler"] == "none":
        return cfg["lr"]
    t = min(epoch, cfg["cosine_epochs"])
    return cfg["lr_min"] + 0.5 * (cfg["lr"] - cfg["lr_min"]) * (1.0 + math.cos(math.pi * t / cfg["cosine_epochs"]))


def _autocast(cfg: Mapping, device: torch.device):
    if not cfg["amp"]:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".partial")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    os.replace(tmp, path)


def load_checkpoint(path: os.PathLike) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UsageError([f"checkpoint {path} does not exist"])
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # corrupt or not a torch file
        raise UsageError([f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})"]) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CKPT_FORMAT:
        raise UsageError([f"{path}: not a `big train` checkpoint (format {CKPT_FORMAT} expected)"])
    ckpt["config"] = mcfg.with_defaults(ckpt["config"])
    return ckpt


def select_best(history: List[Mapping[str, Any]], select_by: str) -> Optional[Dict[str, Any]]:
    """The selected epoch of a run's validation log under a criterion (``config.SELECT_BY``).

    The first epoch whose value is strictly better than every earlier one wins; an undefined
    (NaN) value never beats a defined one, and the first epoch stands when none is defined.
    """
    key, larger = mcfg.SELECT_BY[select_by]
    best = None
    for row in history:
        v = row.get(key)
        v = float(v) if v is not None else math.nan
        if best is None or (math.isfinite(v) and (not math.isfinite(best["value"])
                                                  or (v > best["value"] if larger else v < best["value"]))):
            best = {"select_by": select_by, "epoch": int(row["epoch"]), "value": v}
    return best


def make_optimizer(net: nn.Module, cfg: Mapping) -> torch.optim.Optimizer:
    """The thesis' AdamW (foreach off: idle heads get no update, no moments, no weight decay)."""
    return torch.optim.AdamW(net.parameters(), lr=cfg["lr"], betas=tuple(cfg["betas"]), eps=cfg["eps"],
                             weight_decay=cfg["weight_decay"], foreach=False)


def make_scaler(cfg: Mapping, device: torch.device):
    """fp16 gradient scaling for AMP on CUDA (bf16 on CPU needs none)."""
    return torch.amp.GradScaler("cuda") if (cfg["amp"] and device.type == "cuda") else None


def model_checkpoint(cfg: Mapping, net: nn.Module, pre: nn.Module) -> Dict[str, Any]:
    """What ``big predict``/``big export``/``big evaluate`` need of a checkpoint: the config, the
    weights, the input normalisation (training adds optimiser state, history and selection)."""
    mean, std = pre.mean.flatten().tolist(), pre.std.flatten().tolist()
    return {"format": CKPT_FORMAT, "config": dict(cfg), "epoch": 0, "model": net.state_dict(),
            "norm": {"mean": mean, "std": std}, "timm_version": _timm_version(), "torch_version": torch.__version__}


def train_step(net, backbone, pre, opt, scaler, cfg: Mapping, device: torch.device, flag: str, imgs: np.ndarray,
               labs: np.ndarray, *, scale: float = 1.0, sync: Optional[bool] = None, after_backward=None):
    """One mm-PT step on one dataset's batch: forward through ``backbone`` (the DDP wrapper under
    torchrun) and the dataset's head, loss * ``scale``, backward, optimiser step. Returns the
    unscaled loss and the logits (both attached to nothing that is kept)."""
    x = pre(torch.from_numpy(imgs).to(device, non_blocking=True))
    y = torch.from_numpy(labs).to(device, non_blocking=True)
    net.use_dataset(flag, sync=sync)
    with _autocast(cfg, device):
        logits = net.heads[flag](backbone(x))
    loss = mmodel.loss_fn(flag, logits, y)
    total = loss * scale
    if scaler:
        scaler.scale(total).backward()
    else:
        total.backward()
    if after_backward is not None:
        after_backward(flag)
    if scaler:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.detach(), logits.detach()


# ---------------------------------------------------------------------------------------------
# the trainer
# ---------------------------------------------------------------------------------------------

class Trainer:
    def __init__(self, cfg: Mapping, *, log=print):
        self.cfg = dict(cfg)
        self.dist = Dist()
        self.device = pick_device(self.cfg, self.dist.local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.dist.init(self.device)
        self._log = log
        set_determinism(self.cfg)
        seed_everything(self.cfg["seed"], -1)
        self.net, self.pre = mmodel.build(self.cfg)
        has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.net.modules())
        self.sync_domains = self.dist.enabled and self.cfg["bn_mode"] == "per_dataset"
        if self.sync_domains and not self.cfg["sync_bn"]:
            raise UsageError(["bn_mode per_dataset under DDP synchronises BatchNorm across ranks (so every "
                              "dataset's running statistics agree on all ranks); drop sync_bn false"])
        if self.dist.enabled and self.cfg["sync_bn"] and has_bn:
            if self.device.type == "cuda":
                self.net.backbone = nn.SyncBatchNorm.convert_sync_batchnorm(self.net.backbone)
            else:
                self.log("warning: SyncBatchNorm needs CUDA; on CPU each rank's BatchNorm sees only its part "
                         "of the global batch (running statistics are broadcast from rank 0)")
        self.net.to(self.device)
        self.pre.to(self.device)
        self.backbone = self.net.backbone
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.backbone = DDP(self.net.backbone, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.opt = make_optimizer(self.net, self.cfg)
        self.scaler = make_scaler(self.cfg, self.device)
        self.out = Path(self.cfg["output"])
        self.train_data = loader.open_splits(self.cfg, "train", log=self.log)
        self.val_data = loader.open_splits(self.cfg, "val", log=self.log)
        bs, ebs = self.cfg["batch_size"], self.cfg["eval_batch_size"]
        self.train_counts = {f: sampler.n_batches(len(d), bs) for f, d in self.train_data.items()}
        self.val_counts = {f: sampler.n_batches(len(d), ebs) for f, d in self.val_data.items()}
        for split, counts in (("train", self.train_counts), ("val", self.val_counts)):
            empty = [f for f, c in counts.items() if c == 0]
            if empty:
                raise UsageError([f"{f}: the {split} split is empty" for f in empty])
        ones = {f: 1.0 for f in self.train_counts}
        self.w_train = sampler.loss_weights(self.train_counts) if self.cfg["weighted_loss"] else ones
        self.w_val = sampler.loss_weights(self.val_counts) if self.cfg["weighted_loss"] else ones
        self.epoch = 0  # completed epochs
        self.best: Dict[str, Any] = {"select_by": self.cfg["select_by"], "epoch": None, "value": math.nan}
        self.bad_epochs = 0
        self.history: List[Dict[str, Any]] = []
        self.stopped = None

    def log(self, msg: str) -> None:
        if self.dist.main and self._log:
            self._log(msg)

    # -- state -------------------------------------------------------------------------------
    def state(self) -> Dict[str, Any]:
        return {**model_checkpoint(self.cfg, self.net, self.pre), "epoch": self.epoch, "selected_by": "last",
                "optimizer": self.opt.state_dict(), "scaler": self.scaler.state_dict() if self.scaler else None,
                "best": dict(self.best), "bad_epochs": self.bad_epochs, "history": self.history,
                "stopped": self.stopped}

    def load_state(self, ckpt: Mapping[str, Any]) -> None:
        old = ckpt["config"]
        diff = [k for k in self.cfg if k not in RESUME_FREE and old.get(k) != self.cfg[k]]
        if diff:
            raise UsageError([f"setting {k}: checkpoint has {old.get(k)!r}, this run {self.cfg[k]!r}" for k in diff],
                             summary="--resume needs the same training settings as the interrupted run")
        if not ckpt.get("optimizer"):
            raise UsageError([f"this checkpoint has no optimiser state ({ckpt.get('made_by', 'not written by big train')}"
                              f"); resume from the run's last.pt"])
        self.net.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        if self.scaler and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch = int(ckpt["epoch"])
        self.history = list(ckpt["history"])
        self.best = select_best(self.history, self.cfg["select_by"]) or self.best
        self.bad_epochs = self.epoch - self.best["epoch"] if self.best["epoch"] else 0
        self.stopped = ckpt.get("stopped")

    # -- one epoch ---------------------------------------------------------------------------
    def _all_reduce_head(self, flag: str) -> None:
        grads = [p.grad for p in self.net.heads[flag].parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.dist.world
        k = 0
        for g in grads:
            g.copy_(flat[k:k + g.numel()].view_as(g))
            k += g.numel()

    def train_epoch(self, epoch: int) -> Dict[str, Any]:
        cfg = self.cfg
        seed_everything(cfg["seed"], epoch)
        lr = lr_at(cfg, epoch)
        for g in self.opt.param_groups:
            g["lr"] = lr
        sizes = {f: len(d) for f, d in self.train_data.items()}
        plan = sampler.epoch_plan(sizes, cfg["batch_size"], cfg["seed"], epoch)
        if cfg["max_steps_per_epoch"]:
            plan = plan[:cfg["max_steps_per_epoch"]]
        world, rank = self.dist.world, self.dist.rank
        # a global batch with fewer rows than ranks (organamnist's last batch has 1 row) is given
        # whole to every rank instead: identical per-rank gradients, so the average is unchanged
        local = [(f, rows if len(rows) < world else sampler.shard(rows, rank, world), len(rows)) for f, rows in plan]
        glob_n = [n for _, _, n in local]
        self.net.train()
        loss_sum = {f: 0.0 for f in sizes}
        n_batches = {f: 0 for f in sizes}
        crit_sum = 0.0
        outs: Dict[str, list] = {f: [] for f in sizes}
        ys: Dict[str, list] = {f: [] for f in sizes}
        bar = _bar(cfg, self.dist.main, len(local), f"epoch {epoch + 1}/{cfg['epochs']} train")
        feed = loader.Prefetcher(self.train_data, [(f, r) for f, r, _ in local], depth=cfg["prefetch"])
        for step, (flag, rows, imgs, labs) in enumerate(feed):
            # global-batch mean: DDP averages over ranks, so scale each rank's mean by its share;
            # a replicated batch is the same on every rank: BatchNorm needs no synchronisation
            replicated = glob_n[step] < world
            share = 1.0 if replicated else len(rows) * world / glob_n[step]
            loss, logits = train_step(self.net, self.backbone, self.pre, self.opt, self.scaler, cfg, self.device, flag,
                                      imgs, labs, scale=self.w_train[flag] * share,
                                      sync=(self.sync_domains and not replicated) if self.sync_domains else None,
                                      after_backward=self._all_reduce_head if self.dist.enabled else None)
            # this rank's part of the global-batch mean loss (summed over ranks below)
            loss_sum[flag] += float(loss) * (1.0 / world if replicated else len(rows) / glob_n[step])
            n_batches[flag] += 1
            if cfg["train_metrics"] and (rank == 0 or not replicated):
                outs[flag].append(mmodel.scores(flag, logits).cpu().numpy())
                ys[flag].append(labs)
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"{flag} loss {float(loss):.4f}")
        if bar is not None:
            bar.close()
        if self.dist.enabled:
            t = torch.tensor([loss_sum[f] for f in sizes], dtype=torch.float64)
            dist.all_reduce(t)
            loss_sum = dict(zip(sizes, t.tolist()))
            if cfg["train_metrics"]:
                gathered: List[Any] = [None] * world
                dist.all_gather_object(gathered, (outs, ys))
                outs = {f: [a for g in gathered for a in g[0][f]] for f in sizes}
                ys = {f: [a for g in gathered for a in g[1][f]] for f in sizes}
        for f in sizes:
            crit_sum += self.w_train[f] * loss_sum[f]
        row: Dict[str, Any] = {"epoch": epoch + 1, "lr": lr, "steps": len(plan),
                               "train_loss": crit_sum / max(1, len(plan))}
        if self.sync_domains:  # every rank must hold the same per-dataset statistics
            prints: List[Any] = [None] * world
            dist.all_gather_object(prints, bn.stats_fingerprint(self.net))
            spread = torch.stack(prints)
            row["bn_stats_rank_diff"] = float((spread.max(dim=0).values - spread.min(dim=0).values).max())
        for f in sizes:
            row[f"{f}_train_loss"] = loss_sum[f] / n_batches[f] if n_batches[f] else float("nan")
            if cfg["train_metrics"]:
                m = _metrics(f, outs[f], ys[f])
                for k, v in m.items():
                    row[f"{f}_train_{k}"] = v
        return row

    @torch.no_grad()
    def evaluate(self, splits, counts_w: Mapping[str, float], prefix: str) -> Dict[str, Any]:
        cfg = self.cfg
        self.net.eval()
        plan = loader.eval_plan(splits, cfg["eval_batch_size"], cfg["max_eval_batches"])
        # DDP: rank r evaluates batches r, r + world, ...; the results are gathered and replayed in
        # plan order, so every rank ends with exactly the numbers of a single-process run
        world, rank = self.dist.world, self.dist.rank
        mine = list(range(rank, len(plan), world))
        results = []
        bar = _bar(cfg, self.dist.main, len(mine), f"{prefix}")
        feed = loader.Prefetcher(splits, [plan[i] for i in mine], depth=cfg["prefetch"])
        for i, (flag, rows, imgs, labs) in zip(mine, feed):
            x = self.pre(torch.from_numpy(imgs).to(self.device))
            self.net.use_dataset(flag)
            with _autocast(cfg, self.device):
                logits = self.net.heads[flag](self.net.backbone(x))
            y = torch.from_numpy(labs).to(self.device)
            loss = float(mmodel.loss_fn(flag, logits, y))
            results.append((i, flag, loss, mmodel.scores(flag, logits).cpu().numpy(), labs))
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        if self.dist.enabled:
            gathered: List[Any] = [None] * world
            dist.all_gather_object(gathered, results)
            results = sorted((r for g in gathered for r in g), key=lambda r: r[0])
        loss_sum = {f: 0.0 for f in splits}
        nb = {f: 0 for f in splits}
        outs: Dict[str, list] = {f: [] for f in splits}
        ys: Dict[str, list] = {f: [] for f in splits}
        for _i, flag, loss, sc, labs in results:
            loss_sum[flag] += loss
            nb[flag] += 1
            outs[flag].append(sc)
            ys[flag].append(labs)
        row: Dict[str, Any] = {f"{prefix}_loss": sum(counts_w[f] * loss_sum[f] for f in splits) / max(1, len(plan))}
        per = {}
        for f in splits:
            row[f"{f}_{prefix}_loss"] = loss_sum[f] / nb[f] if nb[f] else float("nan")
            per[f] = _metrics(f, outs[f], ys[f])
            for k, v in per[f].items():
                row[f"{f}_{prefix}_{k}"] = v
        for k in registry.METRIC_KEYS:
            row[f"mean_{prefix}_{k}"] = float(np.nanmean([per[f][k] for f in per]))
        return row

    # -- outputs -------------------------------------------------------------------------------
    def write_logs(self) -> None:
        keys: List[str] = []
        for r in self.history:
            keys += [k for k in r if k not in keys]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys, restval="")
        w.writeheader()
        for r in self.history:
            w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})
        _atomic_text(self.out / "log.csv", buf.getvalue())
        _atomic_text(self.out / "log.json", json.dumps({"config": self.cfg, "best": self.best, "stopped": self.stopped,
                                                        "epochs": self.history}, indent=1, default=_json_default))
        if self.cfg["plots"]:
            from .plots import loss_curves

            loss_curves(self.history, list(self.train_data), self.out / "loss_curves.png",
                        title=f"{self.cfg['name']}: {self.cfg['model']} {self.cfg['img_size']} px")

    def run(self, *, resume: Optional[os.PathLike] = None) -> Dict[str, Any]:
        cfg = self.cfg
        last = self.out / "last.pt"
        if resume:
            self.load_state(load_checkpoint(resume))
            self.log(f"resumed from {resume} after epoch {self.epoch}")
        elif last.exists():
            raise UsageError([f"{self.out} already holds a run ({last}); add --resume to continue it, "
                              f"or choose another --output"])
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            mcfg.save(cfg, self.out / "config.yaml")
        if self.dist.enabled:
            dist.barrier()
        self.log(f"mm-PT {cfg['model']} at {cfg['img_size']} px on {self.device} (world {self.dist.world}); "
                 f"{sum(self.train_counts.values())} train batches/epoch over {len(self.train_counts)} datasets; "
                 f"outputs in {self.out}")
        while self.epoch < cfg["epochs"] and not self.stopped:
            e = self.epoch
            t0 = time.perf_counter()
            row = self.train_epoch(e)
            row.update(self.evaluate(self.val_data, self.w_val, "val"))
            row["time_s"] = time.perf_counter() - t0
            self.epoch = e + 1
            self.history.append(row)
            bests = {c: select_best(self.history, c) for c in mcfg.SELECT_BY}
            self.best = bests[cfg["select_by"]]
            improved = self.best["epoch"] == e + 1
            self.bad_epochs = e + 1 - self.best["epoch"]
            row["best_epoch"] = self.best["epoch"]
            for c, b in bests.items():
                row[f"best_epoch_{c}"] = b["epoch"]
            if cfg["early_stopping"] and self.bad_epochs >= cfg["early_stopping"]:
                self.stopped = f"early stopping: no improvement of {cfg['select_by']} for {self.bad_epochs} epochs"
            if self.dist.main:
                state = self.state()
                _atomic_torch_save(state, last)  # written before stopping (thesis bug fixed)
                if improved:
                    _atomic_torch_save({**state, "selected_by": cfg["select_by"]}, self.out / "best.pt")
                for c in cfg["save_best"]:
                    if bests[c]["epoch"] == e + 1:
                        _atomic_torch_save({**state, "selected_by": c, "best": bests[c]}, self.out / f"best_{c}.pt")
                self.write_logs()
            if self.dist.enabled:
                dist.barrier()
            self.log(f"epoch {e + 1}: lr {row['lr']:.3g} train {row['train_loss']:.4f} val {row['val_loss']:.4f} "
                     f"AUC {row['mean_val_auc']:.4f} BalAcc {row['mean_val_balacc']:.4f} kappa {row['mean_val_kappa']:.4f}"
                     + (" *best" if improved else "") + f" ({row['time_s']:.1f} s)")
        if self.stopped:
            self.log(self.stopped)
        return {"epochs": self.epoch, "best": self.best, "stopped": self.stopped, "output": str(self.out),
                "history": self.history}


def _metrics(flag: str, outs: list, ys: list) -> Dict[str, float]:
    if not outs:
        return {k: float("nan") for k in registry.METRIC_KEYS}
    s = np.concatenate(outs).astype(np.float64)
    y = np.concatenate(ys)
    with np.errstate(all="ignore"):
        return bigmetrics.score_dataset(y, s, kind=registry.get(flag).kind)


def _bar(cfg: Mapping, main: bool, total: int, desc: str):
    if not (cfg["progress"] and main):
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, file=sys.stderr, disable=None)


def _timm_version() -> str:
    import timm

    return timm.__version__


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)


def train(cfg: Mapping, *, resume: Optional[os.PathLike] = None, log=print) -> Dict[str, Any]:
    trainer = Trainer(cfg, log=log)
    try:
        return trainer.run(resume=resume)
    finally:
        trainer.dist.close()
