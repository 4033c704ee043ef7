"""The BIG-C part of ``big demo``: corrupt, bundle, lint and run a code submission, offline.

Synthetic 224 px files (the same seed and signal as the BIG demo's, so the BIG demo's sample model,
trained at 28 px, sees the same class patterns) are corrupted by ``big corrupt``: with MedMNIST-C in
the robustness venv when it exists (``make robustness-env``), else with the numpy stand-in (stamped
STAND-IN everywhere). Then ``big bundle --benchmark robustness``, ``big lint`` and ``big run-local``
of the code submission in the Development phase.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Optional, Union

from .. import data

PathLike = Union[str, os.PathLike]
ROBUST_PY = Path(__file__).resolve().parents[2] / ".venv-robustness" / "bin" / "python"


def bundle_and_run(work_dir: PathLike, code_zip: PathLike, *, seed: int = 0, signal: float = 0.15,
                   n_per_split: str = "train=2,val=12,test=16", per_dataset: int = 4, dev_per_dataset: int = 3,
                   robust_python: Optional[PathLike] = None, log: Callable[[str], None] = print) -> dict:
    """Returns {"generator", "bundle", "lint_errors", "status", "scores", "detailed_results"}."""
    from ..codabench.lint import ERROR, lint_bundle
    from ..codabench.worker import RunLocalOptions, print_result, run_local
    from .bundle import RobustnessBundleOptions, build, print_result as print_bundle
    from .corrupt import CorruptOptions, corrupt

    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    root, cdir = work / "data224", work / "corrupted"
    log(f"[big-c] synthetic 224 px MedMNIST+ files ({n_per_split}) in {root}")
    data.synthesize(root, sizes=(224,), n_per_split=n_per_split, seed=seed, signal=signal)
    py = Path(robust_python) if robust_python else ROBUST_PY
    args = ["--data-root", str(root), "--out", str(cdir), "--seed", str(seed + 1001), "--per-dataset",
            str(per_dataset), "--dev-per-dataset", str(dev_per_dataset), "--allow-synthetic"]
    if py.exists():
        log(f"[big-c] big corrupt with MedMNIST-C (medmnistc) in {py.parent.parent.name}")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        r = subprocess.run([str(py), "-m", "big", "corrupt", *args], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"big corrupt failed in {py}:\n{r.stderr[-3000:]}")
        generator = "medmnistc"
    else:
        log(f"[big-c] no robustness venv ({py}; `make robustness-env`): big corrupt --stand-in (numpy corruptions, "
            "NOT MedMNIST-C)")
        corrupt(CorruptOptions(data_root=root, out=cdir, seed=seed + 1001, per_dataset=per_dataset,
                               dev_per_dataset=dev_per_dataset, stand_in=True, allow_synthetic=True),
                log=lambda m: log(f"[big-c] {m}"))
        generator = "stand-in"
    res = build(RobustnessBundleOptions(corrupted=cdir, out=work / "big_c_bundle.zip", allow_synthetic=True,
                                        organizer="BIG demo (local run)", contact_email="big-demo@example.org",
                                        keep_folder=work / "big_c_bundle"), log=lambda m: None)
    print_bundle(res, log=lambda m: log(f"[big-c bundle] {m}"))
    findings = lint_bundle(res.zip_path)
    errors = [f for f in findings if f.level == ERROR]
    log(f"[big-c lint] {res.zip_path.name}: {len(errors)} error(s), {len(findings) - len(errors)} warning(s)")
    r = run_local(RunLocalOptions(bundle=res.zip_path, submission=code_zip, phase="development",
                                  work_dir=work / "runs" / "sample_model", python=sys.executable),
                  log=lambda m: log(f"[big-c run-local] {m}"))
    print_result(r, log=lambda m: log(f"[big-c run-local] {m}"))
    return {"generator": generator, "bundle": str(res.zip_path), "lint_errors": len(errors), "status": r.status,
            "scores": r.scores, "detailed_results": str(r.detailed_results) if r.detailed_results else None}
