"""Scoring: a validated submission and the reference labels in, scores.json (+ details) out.

Failure semantics (decided once, the same on CodaBench and locally):

* a bad submission: every problem printed, the summary as the last stderr line, no scores.json, a
  short detailed_results.html saying why, exit code 1;
* bad reference data or options: the same for the organizer, exit code 2;
* success: scores.json is written first and atomically (flat, finite numbers, the leaderboard keys);
  then details.json, detailed_results.html and the PNGs. A failure in that second part is logged
  and does not change the exit code 0.

Only numpy, pyyaml and the standard library are imported before scores.json exists.
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, TextIO, Union

import numpy as np

from . import __version__, metrics, registry
from .errors import BigError, Problem, ReferenceDataError, SubmissionError
from .fsutil import write_json_atomic
from .reference import Reference
from .submission import Submission, read_submission

PathLike = Union[str, os.PathLike]
SCORES_FILE = "scores.json"
DETAILS_FILE = "details.json"
HTML_FILE = "detailed_results.html"
EXIT_OK, EXIT_SUBMISSION, EXIT_REFERENCE = 0, 1, 2


@dataclass
class ScoringConfig:
    """Options of a scoring run (``scoring_program/config.yaml`` on CodaBench, flags of ``big score``)."""

    resolutions: Sequence[int] = registry.SIZES
    n_boot: int = 1000
    seed: int = 0
    level: float = 0.95
    report: bool = True

    @classmethod
    def from_mapping(cls, m: dict) -> "ScoringConfig":
        known = {k: m[k] for k in ("resolutions", "n_boot", "seed", "level", "report") if k in m}
        unknown = sorted(set(m) - set(known) - {"time_budget_s"})
        if unknown:
            raise ReferenceDataError([Problem(f"unknown scoring option(s) {', '.join(unknown)}")])
        cfg = cls(**known)
        cfg.resolutions = checked_resolutions(cfg.resolutions)
        return cfg


def checked_resolutions(values: Sequence) -> tuple:
    """A config's ``resolutions`` as ints, each a MedMNIST+ size (else an organizer error)."""
    bad = [r for r in values if int(r) not in registry.SIZES]
    if bad:
        raise ReferenceDataError([Problem(f"resolutions {bad} are not MedMNIST+ sizes {registry.SIZES}")])
    return tuple(int(r) for r in values)


def read_options(path: Optional[PathLike]) -> Optional[dict]:
    """A scoring program's ``config.yaml`` as a mapping; None when there is none. Invalid YAML or
    anything but a mapping is an organizer error, never a traceback."""
    if path is None or not Path(path).is_file():
        return None
    import yaml

    with open(path, encoding="utf-8") as fh:
        try:
            m = yaml.safe_load(fh) or {}
        except yaml.YAMLError as exc:
            raise ReferenceDataError([Problem(f"not valid YAML ({exc})", file=str(path))]) from None
    if not isinstance(m, dict):
        raise ReferenceDataError([Problem("expected a mapping of options", file=str(path))])
    return m


def load_config(path: Optional[PathLike]) -> ScoringConfig:
    m = read_options(path)
    return ScoringConfig() if m is None else ScoringConfig.from_mapping(m)


def program_main(argv: Sequence[str], *, here: str, t0: float, load=load_config, score=None) -> int:
    """The scoring program's entry point (``score.py [INPUT OUTPUT]``, CodaBench's /app/input and
    /app/output by default): ``load`` reads ``config.yaml`` beside it, ``score`` (default :func:`run`)
    scores ``INPUT/res`` against ``INPUT/ref``. Shared by BIG's and BIG-C's thin score.py."""
    for stream in (sys.stdout, sys.stderr):  # a message quoting a participant's bytes never stops the run
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    if len(argv) not in (0, 2):
        print("usage: score.py [INPUT_DIR OUTPUT_DIR]  (INPUT_DIR holds ref/ and res/)", file=sys.stderr)
        return 2
    inp, out = argv if argv else ("/app/input", "/app/output")
    try:
        config = load(os.path.join(here, "config.yaml"))
    except ReferenceDataError as exc:
        print(f"scoring configuration error: {exc.summary}", file=sys.stderr)
        return 2
    return (score or run)(os.path.join(inp, "res"), os.path.join(inp, "ref"), out, config=config, t0=t0)


# ---------------------------------------------------------------------------------------------
# pure part: submission + reference -> numbers
# ---------------------------------------------------------------------------------------------

def dataset_metrics(sub: Submission, ref: Reference) -> Dict[str, Dict[str, float]]:
    out = {}
    for ds in registry.datasets():
        vals = metrics.score_dataset(ref.labels(ds.flag), sub.predictions[ds.flag], kind=ds.kind)
        bad = [k for k, v in vals.items() if not math.isfinite(v)]
        if bad:  # cannot happen with reference data that passed check_labels; never emit NaN
            raise ReferenceDataError([Problem(f"{', '.join(bad)} undefined for {ds.flag} with these reference labels")])
        out[ds.flag] = vals
    return out


def scores_from_metrics(per_dataset: Dict[str, Dict[str, float]], resolution: int) -> Dict[str, float]:
    """The flat scores.json mapping, keys in leaderboard order (registry.score_keys())."""
    means = metrics.mean_over_datasets(per_dataset)
    flat: Dict[str, float] = {}
    for key in registry.score_keys():
        if key in means:
            flat[key] = means[key]
        elif key == "resolution":
            flat[key] = int(resolution)
        else:
            flag, m = key.rsplit("_", 1)
            flat[key] = per_dataset[flag][m]
    return flat


def check_scores(scores: Dict[str, float], keys: Optional[List[str]] = None) -> None:
    """scores.json must be flat, finite and within CodaBench's Decimal(20, 10) range, with exactly the
    leaderboard's ``keys`` in order (default BIG's, :func:`big.registry.score_keys`)."""
    keys = registry.score_keys() if keys is None else keys
    if list(scores) != keys:
        raise AssertionError(f"scores keys {list(scores)} differ from the leaderboard keys {keys}")
    for k, v in scores.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or abs(v) >= 1e10:
            raise AssertionError(f"score {k}={v!r} is not a finite number")


def bootstrap_details(sub: Submission, ref: Reference, *, n_boot: int, seed: int, level: float) -> dict:
    """Per-dataset percentile intervals and the interval of the 12-dataset mean from the same replicates.

    Dataset i uses its own stream ``SeedSequence(seed).spawn(12)[i]``, so its interval does not
    depend on the other datasets. Replicates where a metric is undefined are dropped and counted.
    """
    streams = np.random.SeedSequence(seed).spawn(len(registry.datasets()))
    reps: Dict[str, Dict[str, np.ndarray]] = {}
    out: Dict[str, dict] = {}
    for ds, ss in zip(registry.datasets(), streams):
        r = metrics.bootstrap_replicates(ref.labels(ds.flag), [sub.predictions[ds.flag]], kind=ds.kind,
                                         n_boot=n_boot, rng=np.random.default_rng(ss))[0]
        reps[ds.flag] = r
        out[ds.flag] = {
            "ci": {m: metrics.percentile_interval(v, level) for m, v in r.items()},
            "bootstrap_undefined": {m: int((~np.isfinite(v)).sum()) for m, v in r.items()},
        }
    mean_ci = {}
    for m in metrics.METRIC_FUNCTIONS:
        stack = np.stack([reps[f][m] for f in reps])  # (12, B)
        mean_ci[m] = metrics.percentile_interval(stack.mean(axis=0), level)  # NaN columns drop out
    return {"datasets": out, "mean_ci": mean_ci}


def build_details(sub: Submission, ref: Reference, per_dataset, scores, config: ScoringConfig,
                  timing: Dict[str, float]) -> dict:
    boot = bootstrap_details(sub, ref, n_boot=config.n_boot, seed=config.seed, level=config.level) \
        if config.n_boot > 0 else {"datasets": {}, "mean_ci": {}}
    datasets = {}
    for ds in registry.datasets():
        lab = ref.labels(ds.flag)
        skipped = metrics.skipped_classes(lab, kind=ds.kind, n_classes=ds.n_labels)
        entry = {"n": int(lab.shape[0]), "task": ds.task, "kind": ds.kind, "n_labels": ds.n_labels,
                 **per_dataset[ds.flag],
                 "skipped_classes": [{"index": c, "name": ds.labels[c]} for c in skipped]}
        entry.update(boot["datasets"].get(ds.flag, {}))
        datasets[ds.flag] = entry
    return {
        "scorer_version": __version__,
        "split": ref.split,
        "resolution": sub.size,
        "reference_sha256": ref.sha256(),
        "reference_synthetic": ref.synthetic,
        "seed": config.seed,
        "n_boot": config.n_boot,
        "level": config.level,
        "scores": scores,
        "mean": {**{m: scores[m] for m in metrics.METRIC_FUNCTIONS}, "ci": boot["mean_ci"]},
        "datasets": datasets,
        "submission": {"source": sub.source, "files": sub.files, "ignored": sub.ignored},
        "timing_s": timing,
    }


# ---------------------------------------------------------------------------------------------
# I/O
# ---------------------------------------------------------------------------------------------

def check_advice(kind: Optional[str]) -> str:
    """How to check a submission of this kind locally (the failure page's last paragraph)."""
    if kind == "code":
        return ("Run your code submission locally before submitting: <code>big result-zip --model DIR/model.py "
                "--data-root DATA --split val --out result.zip</code> writes the result zip the platform would "
                "score, and <code>big validate result.zip --split val</code> checks it; <code>big ingest INPUT_DATA "
                "OUTPUT DIR</code> runs it exactly as the ingestion program does.")
    if kind == "result":
        return ("Check your files locally with <code>big validate SUBMISSION.zip --split val|test</code> "
                "before submitting.")
    return ("Check a result submission locally with <code>big validate SUBMISSION.zip --split val|test</code>, a code "
            "submission with <code>big result-zip</code> or <code>big ingest</code>, before submitting.")


def _failure_html(output: Path, title: str, lines: List[str], summary: str, kind: Optional[str] = None) -> None:
    import html

    def esc(text: str) -> str:
        return html.escape(text.encode("utf-8", "backslashreplace").decode("utf-8"))

    items = "\n".join(f"<li><code>{esc(x)}</code></li>" for x in lines)
    advice = check_advice(kind) if title.startswith("Submission") else ""
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}li{margin:.3em 0}"
            "h1{color:#a40000}</style></head><body>"
            f"<h1>{esc(title)}</h1><p><b>{esc(summary)}</b></p><ul>{items}</ul>"
            f"<p>{advice} No score was recorded.</p></body></html>")
    tmp = output / (HTML_FILE + ".partial")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, output / HTML_FILE)


def run(submission: PathLike, reference: PathLike, output: PathLike, *, config: Optional[ScoringConfig] = None,
        out: Optional[TextIO] = None, err: Optional[TextIO] = None, t0: Optional[float] = None) -> int:
    """Score ``submission`` (zip or folder) against ``reference`` into ``output``; return the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    t0 = time.perf_counter() if t0 is None else t0
    config = config or ScoringConfig()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    stale = output / SCORES_FILE
    if stale.exists():  # never leave an old score next to a failed run
        stale.unlink()

    def log(msg: str) -> None:
        print(msg, file=out, flush=True)

    try:
        ref = Reference(reference)
        ref.check_complete()
        log(f"reference: {ref.split} split{' (SYNTHETIC)' if ref.synthetic else ''}, "
            f"{sum(ref.expected_n.values())} samples in 12 datasets")
        sub = read_submission(submission, split=ref.split, expected_n=ref.expected_n,
                              resolutions=config.resolutions, log=log)
        log(f"submission: resolution {sub.size}, 12 prediction files read")
        per_dataset = dataset_metrics(sub, ref)
        scores = scores_from_metrics(per_dataset, sub.size)
        check_scores(scores)
        write_json_atomic(output / SCORES_FILE, scores)
    except SubmissionError as exc:
        return _fail(exc, output, err, "Submission rejected", EXIT_SUBMISSION)
    except ReferenceDataError as exc:
        return _fail(exc, output, err, "Scoring could not run (reference data or configuration)", EXIT_REFERENCE)
    t_scores = time.perf_counter() - t0
    log(f"scores.json written after {t_scores:.2f} s")
    for key in ("auc", "balacc", "kappa"):
        log(f"  {key:7s} {scores[key]:.4f}")
    for ds in registry.datasets():
        log(f"  {ds.flag:15s} " + "  ".join(f"{m} {per_dataset[ds.flag][m]:.4f}" for m in metrics.METRIC_FUNCTIONS))
    try:
        details = build_details(sub, ref, per_dataset, scores, config, {"scores": round(t_scores, 3)})
        details["timing_s"]["details"] = round(time.perf_counter() - t0, 3)
        write_json_atomic(output / DETAILS_FILE, details)
        if config.report:
            from . import report

            page = report.write_report(output, details, sub, ref)
            log(f"detailed results: {page}")
    except Exception as exc:  # the score stands; the extras are best effort and logged
        import traceback

        print(f"warning: scores.json is written, but the detailed results failed: {exc!r}", file=err)
        traceback.print_exc(file=err)
    log(f"done in {time.perf_counter() - t0:.1f} s")
    return EXIT_OK


def report_failure(exc: BigError, output: Path, err: TextIO, title: str, code: int,
                   write_page: Callable[[Path, str, List[str], str], None]) -> int:
    """A failed scoring run (BIG and BIG-C): every problem on stderr, the failure page (best effort),
    the summary last; returns ``code``."""
    lines = exc.report()
    for line in lines:
        print(line, file=err)
    try:
        write_page(output, title, lines, exc.summary)
    except OSError:
        pass
    print(f"{title}: {exc.summary}", file=err, flush=True)
    return code


def _fail(exc: BigError, output: Path, err: TextIO, title: str, code: int) -> int:
    kind = getattr(exc, "kind", None)
    return report_failure(exc, output, err, title, code,
                          lambda o, t, lines, summary: _failure_html(o, t, lines, summary, kind))
