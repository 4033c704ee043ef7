"""The BatchNorm ablation of mm-PT (issue 13): shared vs shared + recalibrate-bn vs per_dataset,
each with both selection criteria, over several seeds; test metrics as a table and a plot.

Runs (per seed): one ``bn_mode shared`` and one ``bn_mode per_dataset`` training with a fixed
epoch count (early stopping off), each keeping ``best_val_loss.pt`` and ``best_mean_auc.pt``
(``save_best``). With early stopping off the training does not depend on the criterion, so one
run gives both selections exactly as two runs with ``select_by`` val_loss / mean_auc would. The
shared checkpoints are then recalibrated (``big recalibrate-bn``; the selection was made on the
shared model's validation metrics). All six checkpoints are evaluated on the test split with
``big evaluate``. Nothing is tuned: the settings are the published config's (thesis) except the
overrides listed in ``overrides``.

Every step is skipped when its output exists (an interrupted ablation continues where it stopped;
a partly trained run resumes from its last.pt); ``--report-only`` only re-aggregates. The runner
writes only below ``--out``. Entry point: ``baselines/experiments/bn_ablation.py``.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from .. import registry
from ..errors import BigError, UsageError
from ..fsutil import write_json_atomic

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "baselines" / "configs" / "mmpt_resnet18_28_weighted.yaml"
SEEDS = (9930641, 9930642, 9930643)
DATASETS = ("pneumoniamnist", "retinamnist", "breastmnist")  # the genuine files here (INFO order)
CRITERIA = ("val_loss", "mean_auc")
#: (variant name, training bn_mode, recalibrated)
VARIANTS = (("shared", "shared", False), ("shared + recalibrate-bn", "shared", True), ("per_dataset", "per_dataset", False))
SMOKE = {"model": "resnet10t", "epochs": 2, "batch_size": 16, "eval_batch_size": 32, "max_steps_per_epoch": 4}


def overrides(*, data_root, cache_dir, output, seed: int, bn_mode: str, epochs: int, datasets: Sequence[str],
              threads: Optional[int], device: str, smoke: bool) -> Dict[str, Any]:
    """The settings that differ from the published config (everything else: the thesis' values)."""
    o = {"data_root": str(data_root), "cache_dir": str(cache_dir), "output": str(output), "seed": int(seed),
         "bn_mode": bn_mode, "epochs": int(epochs), "early_stopping": 0, "datasets": list(datasets),
         "pretrained": False, "native_resolution": True, "select_by": "val_loss", "save_best": list(CRITERIA),
         "progress": False, "threads": threads, "device": device}
    if smoke:
        o.update({k: v for k, v in SMOKE.items() if k != "epochs"})
    return o


def run_name(bn_mode: str, seed: int) -> str:
    return f"{bn_mode}_seed{seed}"


def checkpoint_of(out: Path, variant: str, criterion: str, seed: int) -> Path:
    _, mode, recal = next(v for v in VARIANTS if v[0] == variant)
    run = out / "runs" / run_name(mode, seed)
    return run / (f"recalibrated_best_{criterion}.pt" if recal else f"best_{criterion}.pt")


def eval_dir(out: Path, variant: str, criterion: str, seed: int) -> Path:
    slug = variant.replace(" + ", "_plus_").replace("-", "_").replace(" ", "_")
    return out / "eval" / f"{slug}__{criterion}__seed{seed}"


# ---------------------------------------------------------------------------------------------
# aggregation (pure)
# ---------------------------------------------------------------------------------------------

def aggregate(evals: Mapping[tuple, Mapping[str, Any]], datasets: Sequence[str]) -> List[Dict[str, Any]]:
    """evals[(variant, criterion, seed)] = evaluation.json -> rows with mean and sample std (ddof 1)
    over the seeds of every test metric, per dataset and for the mean over the datasets."""
    rows = []
    for variant, _, _ in VARIANTS:
        for crit in CRITERIA:
            seeds = sorted(s for (v, c, s) in evals if v == variant and c == crit)
            if not seeds:
                continue
            for flag in list(datasets) + ["mean"]:
                row: Dict[str, Any] = {"variant": variant, "select_by": crit, "dataset": flag, "seeds": len(seeds)}
                for k in registry.METRIC_KEYS:
                    vals = [_value(evals[(variant, crit, s)], flag, k) for s in seeds]
                    row[f"{k}_mean"] = float(np.mean(vals))
                    row[f"{k}_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else float("nan")
                    row[f"{k}_values"] = vals
                row["epochs_selected"] = [evals[(variant, crit, s)]["epoch"] for s in seeds]
                rows.append(row)
    return rows


def _value(evaluation: Mapping[str, Any], flag: str, key: str) -> float:
    v = evaluation["mean"][key] if flag == "mean" else evaluation["datasets"][flag][key]
    return float("nan") if v is None else float(v)


def _strict(obj):
    """NaN (a std over one seed, an undefined metric) -> null: ablation.json is strict JSON."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    return obj


def rows_from_json(obj: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The rows of an ablation.json (null -> NaN), e.g. to redraw the table of a committed result."""
    def back(v):
        if v is None:
            return float("nan")
        return [back(x) for x in v] if isinstance(v, list) else v

    return [{k: (v if k in ("variant", "select_by", "dataset", "seeds", "epochs_selected") else back(v))
             for k, v in r.items()} for r in obj["rows"]]


def _pm(mean: float, std: float) -> str:
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.3f} ± {std:.3f}" if np.isfinite(std) else f"{mean:.3f}"


def markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = ["| dataset | BN statistics | selected by | AUC | balanced accuracy | kappa | epochs selected |",
             "|---|---|---|---:|---:|---:|---|"]
    order = {f: i for i, f in enumerate(dict.fromkeys(r["dataset"] for r in rows))}
    for r in sorted(rows, key=lambda r: order[r["dataset"]]):
        name = f"mean ({len(order) - 1})" if r["dataset"] == "mean" else r["dataset"]
        lines.append(f"| {name} | {r['variant']} | {r['select_by']} | "
                     + " | ".join(_pm(r[f"{k}_mean"], r[f"{k}_std"]) for k in registry.METRIC_KEYS)
                     + f" | {', '.join(map(str, r['epochs_selected']))} |")
    return "\n".join(lines)


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    keys = ["dataset", "variant", "select_by", "seeds"] + [f"{k}_{s}" for k in registry.METRIC_KEYS
                                                           for s in ("mean", "std")] + ["epochs_selected"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({**r, "epochs_selected": " ".join(map(str, r["epochs_selected"]))})
    return buf.getvalue()


def plot(rows: Sequence[Mapping[str, Any]], path: Path, *, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    flags = list(dict.fromkeys(r["dataset"] for r in rows))
    combos = list(dict.fromkeys((r["variant"], r["select_by"]) for r in rows))
    fig, axes = plt.subplots(1, len(registry.METRIC_KEYS), figsize=(5.5 * len(registry.METRIC_KEYS), 4.2))
    width = 0.8 / len(combos)
    for ax, k in zip(axes, registry.METRIC_KEYS):
        for j, combo in enumerate(combos):
            sel = {r["dataset"]: r for r in rows if (r["variant"], r["select_by"]) == combo}
            x = np.arange(len(flags)) + (j - (len(combos) - 1) / 2) * width
            ax.bar(x, [sel[f][f"{k}_mean"] for f in flags], width,
                   yerr=[np.nan_to_num(sel[f][f"{k}_std"]) for f in flags], capsize=2,
                   label=f"{combo[0]}, {combo[1]}", hatch="//" if combo[1] == "mean_auc" else None,
                   color=f"C{[v[0] for v in VARIANTS].index(combo[0])}", alpha=0.9 if combo[1] == "val_loss" else 0.6)
        ax.set_xticks(np.arange(len(flags)))
        ax.set_xticklabels([f.replace("mnist", "") for f in flags])
        ax.set_title(registry.METRIC_TITLES[k])
        low = np.nanmin([r[f"{k}_mean"] - np.nan_to_num(r[f"{k}_std"]) for r in rows])
        ax.set_ylim(min(0.0, np.floor(low * 10) / 10), 1)
        ax.axhline(0, color="black", lw=0.6)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=len(combos))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".partial.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------------------
# the runner (I/O)
# ---------------------------------------------------------------------------------------------

class Timer:
    """Wall times of the steps, kept in OUT/timings.json across restarts."""

    def __init__(self, path: Path):
        self.path = path
        self.times: Dict[str, float] = json.loads(path.read_text()) if path.is_file() else {}

    def record(self, key: str, seconds: float) -> None:
        self.times[key] = round(float(seconds), 2)
        write_json_atomic(self.path, self.times)


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(args) -> int:
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    smoke = args.smoke
    datasets = [f for f in registry.flags() if f in args.datasets]
    if smoke:
        data_root = out / "smoke_data"
        if not data_root.is_dir():
            from .. import data

            data.synthesize(data_root, sizes=(28,), n_per_split="train=48,val=32,test=32", seed=5, flags=datasets)
    elif args.data_root:
        data_root = Path(args.data_root).resolve()
    elif not args.report_only:
        raise UsageError(["give --data-root DIR (the MedMNIST+ npz files), or --smoke for synthetic data"])
    seeds = list(args.seeds)
    if not args.report_only:
        import torch

        from . import config as mcfg
        from .evaluate import evaluate, file_sha256, recalibrate_bn
        from .train import load_checkpoint, train

        if args.threads:
            torch.set_num_threads(args.threads)
        timer = Timer(out / "timings.json")
        for seed in seeds:
            for mode in ("shared", "per_dataset"):
                name = run_name(mode, seed)
                run_dir = out / "runs" / name
                cfg = mcfg.resolve(mcfg.load_yaml(args.config), overrides(data_root=data_root, cache_dir=out / "npy_cache", output=run_dir,
                                                  seed=seed, bn_mode=mode, epochs=args.epochs, datasets=datasets,
                                                  threads=args.threads, device=args.device, smoke=smoke),
                                   config_path=args.config)
                last = run_dir / "last.pt"
                done = last.is_file() and load_checkpoint(last)["epoch"] >= cfg["epochs"]
                if done:
                    _log(f"{name}: trained already")
                    continue
                _log(f"{name}: training {cfg['epochs']} epochs")
                t0 = time.perf_counter()
                train(cfg, resume=last if last.is_file() else None, log=lambda m, n=name: _log(f"{n}: {m}"))
                timer.record(f"train/{name}", time.perf_counter() - t0 + timer.times.get(f"train/{name}", 0.0))
            for crit in CRITERIA:
                src = checkpoint_of(out, "shared", crit, seed)
                dst = checkpoint_of(out, "shared + recalibrate-bn", crit, seed)
                if dst.is_file() and load_checkpoint(dst)["recalibrated"]["from_sha256"] == file_sha256(src):
                    continue
                t0 = time.perf_counter()
                recalibrate_bn(src, data_root, dst, cache_dir=out / "npy_cache", device=args.device,
                               log=lambda m: _log(f"recalibrate {src.parent.name}/{src.name}: {m}"))
                timer.record(f"recalibrate/{run_name('shared', seed)}/{crit}", time.perf_counter() - t0)
            for variant, _, _ in VARIANTS:
                for crit in CRITERIA:
                    ck = checkpoint_of(out, variant, crit, seed)
                    ev = eval_dir(out, variant, crit, seed)
                    if (ev / "evaluation.json").is_file() and \
                            json.loads((ev / "evaluation.json").read_text())["checkpoint_sha256"] == file_sha256(ck):
                        continue
                    t0 = time.perf_counter()
                    evaluate(ck, "test", data_root, out=ev, cache_dir=out / "npy_cache", device=args.device,
                             log=lambda m: None)
                    timer.record(f"evaluate/{ev.name}", time.perf_counter() - t0)
                    _log(f"evaluated {variant} / {crit} / seed {seed} on test")
    return report(out, seeds, datasets, smoke=smoke, config_path=args.config, epochs=args.epochs)


def report(out: Path, seeds: Sequence[int], datasets: Sequence[str], *, smoke: bool, config_path, epochs: int) -> int:
    evals = {}
    missing = []
    for variant, _, _ in VARIANTS:
        for crit in CRITERIA:
            for seed in seeds:
                p = eval_dir(out, variant, crit, seed) / "evaluation.json"
                if p.is_file():
                    evals[(variant, crit, seed)] = json.loads(p.read_text())
                else:
                    missing.append(str(p))
    if not evals:
        raise UsageError([f"no evaluation in {out / 'eval'} yet: run the ablation first (without --report-only)"])
    rows = aggregate(evals, datasets)
    first = next(iter(evals.values()))
    genuine = all(first["datasets"][f]["genuine"] for f in datasets)
    timings = json.loads((out / "timings.json").read_text()) if (out / "timings.json").is_file() else {}
    epochs_s = {}  # from the training logs (kept across an interrupted and resumed run)
    for log in sorted((out / "runs").glob("*/log.json")):
        t = [float(r["time_s"]) for r in json.loads(log.read_text())["epochs"]]
        epochs_s[log.parent.name] = {"epochs": len(t), "total_s": round(sum(t), 1),
                                     "mean_epoch_s": round(sum(t) / len(t), 1) if t else None}
    meta = {
        "what": "mm-PT BatchNorm ablation (issue 13)", "smoke": smoke, "genuine_data": genuine,
        "config": str(Path(config_path).resolve().relative_to(REPO)) if Path(config_path).resolve().is_relative_to(REPO)
        else str(config_path),
        "epochs": epochs, "seeds": list(seeds), "datasets": list(datasets), "split": "test",
        "model": first["model"], "img_size": first["img_size"], "native_resolution": first["native_resolution"],
        "evaluations": len(evals), "missing": missing, "std": "sample standard deviation over seeds (ddof 1)",
        "timings_s": timings, "train_epochs_s": epochs_s,
        "train_s_total": round(sum(v["total_s"] for v in epochs_s.values()), 1),
        "recalibrate_s_total": round(sum(v for k, v in timings.items() if k.startswith("recalibrate/")), 1),
        "evaluate_s_total": round(sum(v for k, v in timings.items() if k.startswith("evaluate/")), 1),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
    }
    try:
        import torch

        meta["machine"]["torch"] = torch.__version__
    except ImportError:
        pass
    table = markdown(rows)
    write_json_atomic(out / "ablation.json", _strict({"meta": meta, "rows": rows}))
    for name, text in (("ablation.md", table + "\n"), ("ablation.csv", to_csv(rows))):
        tmp = out / (name + ".partial")
        tmp.write_text(text)
        os.replace(tmp, out / name)
    title = (f"{meta['model']} {meta['img_size']} px native, {epochs} epochs, {len(seeds)} seed(s), test split"
             + ("" if genuine else " — SYNTHETIC DATA (smoke run)"))
    plot(rows, out / "ablation.png", title=title)
    print(table)
    print(f"\n{len(evals)} evaluation(s), {len(missing)} missing; training {meta['train_s_total']} s (epochs: train + "
          f"validation), "
          f"recalibration {meta['recalibrate_s_total']} s, evaluation {meta['evaluate_s_total']} s")
    print(f"wrote {out / 'ablation.md'}, ablation.csv, ablation.json, ablation.png")
    return 0 if not missing else 3


def _seeds(text: str) -> List[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError("give at least one seed")
    return seeds


def _flags(text: str) -> List[str]:
    flags = [s.strip() for s in text.split(",") if s.strip()]
    bad = [f for f in flags if f not in registry.flags()]
    if bad or not flags:
        raise argparse.ArgumentTypeError(f"unknown dataset flag(s) {bad}; expected some of {', '.join(registry.flags())}")
    return flags


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bn_ablation.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", help="folder with the genuine MedMNIST+ npz files of --datasets")
    p.add_argument("--out", required=True, help="working folder (runs, evaluations, table, plot); keep it out of git")
    p.add_argument("--config", default=str(CONFIG), help="the published config the runs start from")
    p.add_argument("--seeds", type=_seeds, default=list(SEEDS))
    p.add_argument("--epochs", type=int, help="fixed epoch count (default 10; --smoke: 2)")
    p.add_argument("--datasets", type=_flags, default=list(DATASETS))
    p.add_argument("--threads", type=int, default=2, help="torch threads (CPU)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--smoke", action="store_true", help="seconds: synthetic data, tiny model, few steps (CI)")
    p.add_argument("--report-only", action="store_true", help="only re-aggregate the evaluations in --out")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.epochs is None:
        args.epochs = SMOKE["epochs"] if args.smoke else 10
    if args.epochs < 1:
        print("error: --epochs must be at least 1", file=sys.stderr)
        return 2
    try:
        return run(args)
    except BigError as exc:
        for line in exc.report():
            print(line, file=sys.stderr)
        print(f"error: {exc.summary}", file=sys.stderr)
        return 2 if exc.audience == "organizer" else 1
