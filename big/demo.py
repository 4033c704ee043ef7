"""``big demo``: the whole BIG pipeline offline on synthetic data, through the same commands a user runs.

1. synthesize MedMNIST+ files (28 and 64 px; a weak class signal, so the model's scores resemble real
   ones rather than 1.0) and build the val and test reference data;
2. write two result submissions for the test split — a class-prior submission (each row = the
   training class frequencies) and one from a quick real model (the starting kit's numpy MLP,
   trained here and run locally over the test images) — and score both with ``big score``;
3. build the CodaBench bundle, lint it, and run the result submissions and the model as a code
   submission through ``run-local`` (the compute-worker emulator: ingestion, then scoring);
4. compare the two submissions (plots, difference table, paired bootstrap) and re-rank the folder of
   submissions offline with ``big leaderboard``;
5. BIG-C, the robustness benchmark: corrupt synthetic 224 px files (MedMNIST-C in the robustness venv
   when it exists, else the numpy stand-in), build and lint its bundle, and run the same code
   submission through it (:mod:`big.robustness.demo`).

Each step prints what it ran; the last lines are the leaderboard rows and where the pages are.
"""
from __future__ import annotations

import shlex
import shutil
import zipfile
from pathlib import Path
from typing import Dict, List, Union

import numpy as np

from . import data, registry
from .submission import write_submission


def class_prior_predictions(data_root: Path, size: int, split: str) -> Dict[str, np.ndarray]:
    """Every row = the class (label) frequencies of the training split: AUC 0.5 by construction."""
    out = {}
    for ds in registry.datasets():
        path = data_root / ds.file_name(size)
        train = data.read_labels(path, "train")
        n = data.read_labels(path, split).shape[0]
        if ds.kind == registry.MULTILABEL:
            prior = train.mean(axis=0)
        else:
            prior = np.bincount(train[:, 0], minlength=ds.n_labels) / train.shape[0]
        out[ds.flag] = np.tile(prior, (n, 1))
    return out


def _run(argv: List[str]) -> None:
    from .cli import main

    print(f"\n$ big {' '.join(shlex.quote(a) for a in argv)}", flush=True)
    code = main(argv)
    if code != 0:
        raise SystemExit(f"demo step failed (exit {code}): big {' '.join(argv)}")


def run_demo(out: Union[str, Path] = "demo_output", *, seed: int = 0, n_per_split: str = "train=300,val=120,test=160",
             n_boot: int = 200, signal: float = 0.15) -> int:
    work = Path(out).resolve()
    if work.exists():
        shutil.rmtree(work)
    data_root, refs, subs, scores = work / "data", work / "reference", work / "submissions", work / "scores"
    subs.mkdir(parents=True)

    print("== 1. synthetic MedMNIST+ data and reference labels")
    _run(["synth", "--out", str(data_root), "--sizes", "28,64", "--n-per-split", n_per_split, "--seed", str(seed),
          "--signal", str(signal)])
    for split in ("val", "test"):
        _run(["build-reference", "--data-root", str(data_root), "--split", split, "--out", str(refs / split),
              "--allow-synthetic"])

    print("\n== 2. two result submissions for the test split, scored like CodaBench")
    prior_zip = write_submission(subs / "class_prior.zip", class_prior_predictions(data_root, 28, "test"), 28)
    print(f"wrote {prior_zip} (class priors of the training split)")
    code_zip = subs.parent / "code" / "sample_model_code.zip"
    _run(["sample-submission", "--data-root", str(data_root), "--size", "28", "--out", str(code_zip),
          "--seed", str(seed)])
    model_dir = work / "code" / "sample_model"
    with zipfile.ZipFile(code_zip) as zf:
        zf.extractall(model_dir)
    model_zip = subs / "sample_model.zip"
    _run(["result-zip", "--model", str(model_dir / "model.py"), "--data-root", str(data_root), "--split", "test",
          "--out", str(model_zip)])
    for name in ("class_prior", "sample_model"):
        _run(["score", str(subs / f"{name}.zip"), "--reference", str(refs / "test"), "--output", str(scores / name),
              "--bootstrap", str(n_boot), "--seed", str(seed)])

    print("\n== 3. the CodaBench bundle: build, lint, run-local (development phase = val split)")
    from .codabench.demo import bundle_and_run

    val_prior = write_submission(work / "code" / "class_prior_val.zip",
                                 class_prior_predictions(data_root, 28, "val"), 28)
    val_model = work / "code" / "sample_model_val.zip"
    _run(["result-zip", "--model", str(model_dir / "model.py"), "--data-root", str(data_root), "--split", "val",
          "--out", str(val_model)])
    platform = bundle_and_run(work / "codabench", data_root, {"class_prior (result)": val_prior,
                                                              "sample_model (result)": val_model,
                                                              "sample_model (code)": code_zip}, n_boot=n_boot)

    print("\n== 4. offline analysis: compare and re-rank")
    _run(["compare", f"class_prior={scores / 'class_prior'}", f"sample_model={scores / 'sample_model'}",
          "--out", str(work / "compare")])
    _run(["compare", "--predictions", str(prior_zip), str(model_zip), "--reference", str(refs / "test"),
          "--out", str(work / "compare_paired"), "--bootstrap", str(n_boot), "--no-plots"])
    _run(["leaderboard", str(subs), "--reference", str(refs / "test"), "--out", str(work / "leaderboard"),
          "--bootstrap", str(n_boot), "--no-progress"])

    print("\n== 5. BIG-C (robustness benchmark): corrupt, bundle, lint, run-local of the same code submission")
    from .robustness.demo import bundle_and_run as robustness_run

    big_c = robustness_run(work / "big_c", code_zip, seed=seed, signal=signal)

    print("\n== leaderboard rows (test split, big score)")
    import json

    print(f"{'submission':16s} {'AUC':>7s} {'BalAcc':>7s} {'kappa':>7s} {'res':>4s}")
    for name in ("sample_model", "class_prior"):
        s = json.loads((scores / name / "scores.json").read_text())
        print(f"{name:16s} {s['auc']:7.4f} {s['balacc']:7.4f} {s['kappa']:7.4f} {s['resolution']:4d}")
    print("\n== CodaBench emulation (development phase, val split)")
    for name, row in platform["rows"].items():
        sc = row.get("scores") or {}
        if row.get("status") == "Finished" and sc:
            print(f"{name:22s} {row['status']:9s} AUC {sc['auc']:.4f}  BalAcc {sc['balacc']:.4f}  kappa {sc['kappa']:.4f}")
        else:
            print(f"{name:22s} {row.get('status')}: {row.get('message')}")
    sc = big_c.get("scores") or {}
    what = "MedMNIST-C" if big_c["generator"] == "medmnistc" else "STAND-IN corruptions, not MedMNIST-C"
    if big_c["status"] == "Finished" and sc:
        print(f"BIG-C sample_model (code) {big_c['status']}: corrupted AUC {sc['auc_c']:.4f}  clean AUC "
              f"{sc['auc_clean']:.4f}  drop {sc['auc_drop']:.4f}  ({what})")
    else:
        print(f"BIG-C sample_model (code) {big_c['status']} ({what})")
    print(f"\ndetailed results: {scores / 'sample_model' / 'detailed_results.html'}")
    print(f"comparison:       {work / 'compare'}")
    print(f"leaderboards:     {work / 'leaderboard'}")
    print(f"bundle:           {platform['bundle']}")
    print(f"BIG-C bundle:     {big_c['bundle']}")
    print(f"BIG-C results:    {big_c['detailed_results']}")
    return 0
