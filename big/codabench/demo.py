"""The CodaBench part of ``big demo``: bundle the synthetic data, lint it, run submissions locally.

``bundle_and_run`` is called by the lead's ``big demo`` (big/demo.py) with the synthetic data root
and the sample submissions it made; it returns the leaderboard rows the emulated worker produced.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Union

from .. import registry

PathLike = Union[str, os.PathLike]
DEMO_ORGANIZER = "BIG demo (local run)"
DEMO_EMAIL = "big-demo@example.org"


def _input_sizes(data_root: Path) -> Sequence[int]:
    """The small sizes (28, 64) present for all 12 datasets in the data root."""
    sizes = [s for s in (28, 64) if all((data_root / d.file_name(s)).is_file() for d in registry.datasets())]
    if not sizes:
        from ..errors import Problem, UsageError

        raise UsageError([Problem("no complete set of 28 or 64 px files for the 12 datasets", file=str(data_root))])
    return sizes


def bundle_and_run(work_dir: PathLike, data_root: PathLike, submissions: Dict[str, PathLike], *,
                   log: Callable[[str], None] = print, phase: str = "development",
                   n_boot: Optional[int] = None, python: Optional[str] = None) -> dict:
    """Build the bundle (synthetic data allowed, small input sizes), lint it, run each submission.

    Returns ``{"bundle": zip path, "folder": unzipped bundle, "bundle_bytes": int, "lint": [lines],
    "rows": {name: {"status", "message", "scores", "row", "work_dir", "logs", "detailed_results"}}}``
    where ``scores`` maps the leaderboard column keys to values (None = n/a on the leaderboard).
    """
    import sys

    from . import bundle as B
    from .lint import ERROR, lint_bundle
    from .worker import RunLocalOptions, print_result, run_local

    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    root = Path(data_root)
    sizes = _input_sizes(root)
    log(f"[bundle] building the CodaBench bundle from {root} (input images at {', '.join(map(str, sizes))} px)")
    res = B.build_bundle(B.BundleOptions(
        data_root=root, out=work / "big_bundle.zip", input_sizes=sizes, allow_synthetic=True,
        organizer=DEMO_ORGANIZER, contact_email=DEMO_EMAIL, keep_folder=work / "big_bundle", n_boot=n_boot),
        log=lambda m: None)
    B.print_result(res, log=lambda m: log(f"[bundle] {m}"))
    findings = lint_bundle(res.zip_path)
    lines = [str(f) for f in findings]
    errors = [f for f in findings if f.level == ERROR]
    log(f"[lint] {res.zip_path.name}: {len(errors)} error(s), {len(findings) - len(errors)} warning(s)")
    for line in lines:
        log(f"[lint] {line}")
    rows = {}
    for name, sub in submissions.items():
        log(f"[run-local] {name}: {sub} ({phase} phase)")
        r = run_local(RunLocalOptions(bundle=res.zip_path, submission=sub, phase=phase,
                                      work_dir=work / "runs" / name, python=python or sys.executable),
                      log=lambda m: log(f"[run-local] {m}"))
        print_result(r, log=lambda m: log(f"[run-local] {m}"))
        rows[name] = {
            "status": r.status, "message": r.message,
            "scores": {key: value for _, key, value, _ in r.row},
            "row": r.row_text(), "work_dir": str(r.work_dir), "logs": str(r.logs),
            "detailed_results": str(r.detailed_results) if r.detailed_results else None,
        }
    return {"bundle": str(res.zip_path), "folder": str(res.folder), "bundle_bytes": res.zip_bytes,
            "lint": lines, "lint_errors": len(errors), "rows": rows}
