"""The robustness scorer: pooled predictions of a code submission + the reference map in, scores out.

Failure semantics are BIG's (:mod:`big.scoring`): a bad submission exits 1 without scores.json and
with a short detailed_results.html saying why; bad reference data or options exit 2; scores.json is
written first and atomically, then details.json and the detailed results page (a failure there is
logged and does not change the exit code). The prediction files are read with BIG's own reader
(:func:`big.submission.read_submission`) against the pooled row counts, the metrics are BIG's
(:mod:`big.metrics`), computed per (corruption, severity) block of rows and on the clean copy.

BIG-C accepts code submissions only: without the ingestion program's ``ingestion_status.json``
("ok") the submission is refused (``require_code: false`` lets a reviewer score a folder of CSVs).
In the hidden phase (a reference made with a private seed; ``hide_messages`` forces it either way) a
failed code submission's own message (its exception text, which could carry image data out of the
hidden set) is cut to a few hundred characters.
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, TextIO, Union

import numpy as np

from .. import __version__, metrics, registry
from ..errors import Problem, ReferenceDataError, SubmissionError
from ..fsutil import write_json_atomic
from ..scoring import check_scores, checked_resolutions, read_options, report_failure
from ..submission import INGESTION_STATUS, read_ingestion_status, read_submission
from . import BENCHMARK, columns
from .layout import CLEAN, GENERATOR_MEDMNISTC
from .task import RobustnessReference

PathLike = Union[str, os.PathLike]
SCORES_FILE = "scores.json"
DETAILS_FILE = "details.json"
HTML_FILE = "detailed_results.html"
DETAILS_FORMAT = "big-c-details/1"
EXIT_OK, EXIT_SUBMISSION, EXIT_REFERENCE = 0, 1, 2
METRICS = registry.METRIC_KEYS
#: the size at which MedMNIST-C's baselines were measured: the normalized error is shown only there
NORMALIZED_ERROR_SIZE = 224
HIDDEN_MESSAGE_CHARS = 300


@dataclass
class RobustnessConfig:
    """``scoring_program/config.yaml`` of the robustness bundle."""

    resolutions: Sequence[int] = registry.SIZES
    report: bool = True
    require_code: bool = True
    hide_messages: Optional[bool] = None  # None: hide in the hidden phase (a reference with a private seed)
    benchmark: str = BENCHMARK

    @classmethod
    def from_mapping(cls, m: dict) -> "RobustnessConfig":
        known = {k: m[k] for k in ("resolutions", "report", "require_code", "hide_messages", "benchmark") if k in m}
        unknown = sorted(set(m) - set(known))
        if unknown:
            raise ReferenceDataError([Problem(f"unknown robustness scoring option(s) {', '.join(unknown)}")])
        cfg = cls(**known)
        if cfg.benchmark != BENCHMARK:
            raise ReferenceDataError([Problem(f"benchmark {cfg.benchmark!r}: this is the {BENCHMARK} scorer")])
        cfg.resolutions = checked_resolutions(cfg.resolutions)
        return cfg


def load_config(path: Optional[PathLike]) -> RobustnessConfig:
    m = read_options(path)
    return RobustnessConfig() if m is None else RobustnessConfig.from_mapping(m)


# ---------------------------------------------------------------------------------------------
# pure part: predictions + reference -> numbers
# ---------------------------------------------------------------------------------------------

def _mean(values: List[float]) -> float:
    return float(sum(values) / len(values))


def dataset_result(flag: str, pred: np.ndarray, labels: np.ndarray, id_map: np.ndarray,
                   blocks: List[tuple]) -> dict:
    """Metrics of one dataset: on the clean copy, per (corruption, severity) block, and their means."""
    ds = registry.get(flag)
    per_block = []
    for b, (name, sev) in enumerate(blocks):
        rows = np.flatnonzero(id_map[:, 0] == b)
        vals = metrics.score_dataset(labels[id_map[rows, 1]], pred[rows], kind=ds.kind)
        bad = [k for k, v in vals.items() if not math.isfinite(v)]
        if bad or rows.size == 0:
            raise ReferenceDataError([Problem(f"{', '.join(bad) or 'metrics'} undefined for {flag}, block {name} "
                                              f"severity {sev} ({rows.size} rows)")])
        per_block.append((name, sev, {k: float(v) for k, v in vals.items()}))
    clean = next(v for n, s, v in per_block if n == CLEAN)
    corrupted_blocks = [(n, s, v) for n, s, v in per_block if n != CLEAN]
    if not corrupted_blocks:
        raise ReferenceDataError([Problem(f"{flag} has no corrupted block in the reference")])
    corrupted = {m: _mean([v[m] for _, _, v in corrupted_blocks]) for m in METRICS}
    corruptions: Dict[str, Dict[str, dict]] = {}
    for n, s, v in corrupted_blocks:
        corruptions.setdefault(n, {})[str(s)] = v
    by_corruption = {n: {m: _mean([v[m] for v in sv.values()]) for m in METRICS} for n, sv in corruptions.items()}
    sevs = sorted({s for _, s, _ in corrupted_blocks})
    by_severity = {str(s): {m: _mean([v[m] for n, s2, v in corrupted_blocks if s2 == s]) for m in METRICS}
                   for s in sevs}
    drop = (clean["auc"] - corrupted["auc"]) / clean["auc"] if clean["auc"] > 0 else 0.0
    return {"n": int(labels.shape[0]), "rows": int(id_map.shape[0]), "task": ds.task, "kind": ds.kind,
            "clean": clean, "corrupted": corrupted, "auc_drop": float(drop),
            "by_corruption": by_corruption, "by_severity": by_severity, "corruptions": corruptions}


def normalized_error(per: dict, baselines: dict) -> Optional[dict]:
    """MedMNIST-C's normalized balanced error (AlexNet = 1) and relative error on this sample, per
    dataset and corruption, where the baselines cover it (eval.py of medmnistc: BE = E_c / E_c^AlexNet,
    RBE = (E_c - E_clean) / (E_c^AlexNet - E_clean^AlexNet), E = 1 - balanced accuracy, E_c = mean
    over the severities)."""
    out = {}
    for flag, r in per.items():
        base = (baselines or {}).get(flag)
        if not isinstance(base, dict) or not isinstance(base.get("raw_scores"), dict):
            continue
        clean_err = 1.0 - r["clean"]["balacc"]
        be, rbe = {}, {}
        for c, v in r["by_corruption"].items():
            a = base["raw_scores"].get(c)
            a_clean = base.get("clean_score")
            if not isinstance(a, (int, float)) or not isinstance(a_clean, (int, float)) or a <= 0 or a == a_clean:
                continue
            e = 1.0 - v["balacc"]
            be[c] = e / a
            rbe[c] = (e - clean_err) / (a - a_clean)
        if be:
            out[flag] = {"be": _mean(list(be.values())), "rbe": _mean(list(rbe.values())), "be_by_corruption": be,
                         "rbe_by_corruption": rbe}
    if not out:
        return None
    return {"datasets": out, "mean_be": _mean([v["be"] for v in out.values()]),
            "mean_rbe": _mean([v["rbe"] for v in out.values()])}


def scores_from(per: Dict[str, dict], resolution: int) -> Dict[str, float]:
    """The flat scores.json mapping in leaderboard order (:func:`big.robustness.columns.score_keys`)."""
    flags = registry.flags()
    flat: Dict[str, float] = {}
    for key in columns.score_keys():
        if key == "resolution":
            flat[key] = int(resolution)
        elif key == "auc_clean":
            flat[key] = _mean([per[f]["clean"]["auc"] for f in flags])
        elif key == "auc_drop":
            flat[key] = _mean([per[f]["auc_drop"] for f in flags])
        elif key in columns.CORRUPTED_KEYS.values():
            m = next(k for k, v in columns.CORRUPTED_KEYS.items() if v == key)
            flat[key] = _mean([per[f]["corrupted"][m] for f in flags])
        else:
            flag = key[: -len("_auc_c")]
            flat[key] = per[flag]["corrupted"]["auc"]
    return flat


def score_predictions(predictions: Dict[str, np.ndarray], ref: RobustnessReference) -> Dict[str, dict]:
    out = {}
    for flag in registry.flags():
        labels, m = ref.data(flag)
        out[flag] = dataset_result(flag, predictions[flag], labels, m, ref.blocks(flag))
    return out


def build_details(per: Dict[str, dict], scores: Dict[str, float], ref: RobustnessReference, resolution: int,
                  submission: dict, timing: Dict[str, float]) -> dict:
    man = ref.manifest
    ne = None
    ne_note = None
    if ref.generator != GENERATOR_MEDMNISTC or not man.get("baselines"):
        ne_note = "not shown: the corrupted set is not MedMNIST-C's (no AlexNet baselines)"
    elif resolution != NORMALIZED_ERROR_SIZE:
        ne_note = (f"not shown at {resolution} px: MedMNIST-C's AlexNet baselines were measured at "
                   f"{NORMALIZED_ERROR_SIZE} px only")
    else:
        ne = normalized_error(per, man["baselines"])
        sample = ", ".join(f"{f} {per[f]['n']}" for f in registry.flags())
        ne_note = (f"computed on this sample ({sample} images; "
                   f"severities {', '.join(map(str, ref.severities))}) against the AlexNet baselines of medmnistc, which "
                   "average severities 1-5 over the full test split")
    return {
        "format": DETAILS_FORMAT,
        "benchmark": BENCHMARK,
        "scorer_version": __version__,
        "split": ref.split,
        "resolution": int(resolution),
        "reference_sha256": ref.sha256(),
        "reference_synthetic": ref.synthetic,
        "generator": ref.generator,
        "generator_label": ref.label,
        "severities": ref.severities,
        "complete": bool(man.get("complete")),
        "resize": man.get("resize"),
        "scores": scores,
        "mean": {**{m: float(np.mean([per[f]["corrupted"][m] for f in registry.flags()])) for m in METRICS},
                 "clean": {m: float(np.mean([per[f]["clean"][m] for f in registry.flags()])) for m in METRICS},
                 "auc_drop": scores["auc_drop"]},
        "datasets": per,
        "normalized_error": ne,
        "normalized_error_note": ne_note,
        "submission": submission,
        "timing_s": timing,
    }


# ---------------------------------------------------------------------------------------------
# I/O
# ---------------------------------------------------------------------------------------------

CODE_ONLY = ("BIG-C accepts code submissions only: submit a zip holding model.py (class Model with `resolution` "
             "and `predict(dataset, images)`, the BIG API); its ingestion run writes the predictions. Check it "
             "locally with `big run-local --bundle BIG-C_BUNDLE.zip --submission YOUR.zip --phase development`.")


def _require_code(submission: Path) -> None:
    if not submission.is_dir():
        raise SubmissionError([Problem(CODE_ONLY)], summary="a code submission is required", kind="result")
    status = read_ingestion_status(submission)
    if status is None:
        raise SubmissionError([Problem(f"no {INGESTION_STATUS} from the ingestion program: this was not a code "
                                       f"submission (or the ingestion program did not run). {CODE_ONLY}")],
                              summary="a code submission is required", kind="result")


def _hide(exc: SubmissionError) -> SubmissionError:
    lines = []
    for p in exc.problems:
        text = str(p)
        if len(text) > HIDDEN_MESSAGE_CHARS:
            text = (text[:HIDDEN_MESSAGE_CHARS] + f" ... ({len(text) - HIDDEN_MESSAGE_CHARS} more characters are not "
                    "shown in this phase: run your model on the Development phase or locally to see the whole message)")
        lines.append(Problem(text))
    summary = exc.summary if len(exc.summary) <= HIDDEN_MESSAGE_CHARS else exc.summary[:HIDDEN_MESSAGE_CHARS] + " ..."
    return SubmissionError(lines, summary=summary, kind=exc.kind)


def _failure_html(output: Path, title: str, lines: List[str], summary: str) -> None:
    import html

    def esc(text: str) -> str:
        return html.escape(text.encode("utf-8", "backslashreplace").decode("utf-8"))

    items = "\n".join(f"<li><code>{esc(x)}</code></li>" for x in lines)
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}li{margin:.3em 0}"
            "h1{color:#a40000}</style></head><body>"
            f"<h1>{esc(title)}</h1><p><b>{esc(summary)}</b></p><ul>{items}</ul>"
            f"<p>{esc(CODE_ONLY) if title.startswith('Submission') else ''} No score was recorded.</p></body></html>")
    tmp = output / (HTML_FILE + ".partial")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, output / HTML_FILE)


def run(submission: PathLike, reference: PathLike, output: PathLike, *, config: Optional[RobustnessConfig] = None,
        out: Optional[TextIO] = None, err: Optional[TextIO] = None, t0: Optional[float] = None) -> int:
    """Score a code submission's predictions (folder) against a robustness reference; return the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    t0 = time.perf_counter() if t0 is None else t0
    config = config or RobustnessConfig()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    stale = output / SCORES_FILE
    if stale.exists():
        stale.unlink()

    def log(msg: str) -> None:
        print(msg, file=out, flush=True)

    try:
        ref = RobustnessReference(reference)
        stamp = " (SYNTHETIC source images)" if ref.synthetic else ""
        log(f"reference: BIG-C {ref.split} sample{stamp}, {ref.label}; {sum(ref.expected_n.values()):,} pooled images "
            f"in 12 datasets")
        try:
            if config.require_code:
                _require_code(Path(submission))
            sub = read_submission(submission, split=ref.split, expected_n=ref.expected_n,
                                  resolutions=config.resolutions, log=log)
        except SubmissionError as exc:
            hide = config.hide_messages
            if hide is None:
                hide = not ref.manifest.get("seed_is_public", False)
            raise (_hide(exc) if hide else exc) from None
        log(f"submission: resolution {sub.size}, 12 prediction files read")
        per = score_predictions(sub.predictions, ref)
        scores = scores_from(per, sub.size)
        check_scores(scores, columns.score_keys())
        write_json_atomic(output / SCORES_FILE, scores)
    except SubmissionError as exc:
        return report_failure(exc, output, err, "Submission rejected", EXIT_SUBMISSION, _failure_html)
    except ReferenceDataError as exc:
        return report_failure(exc, output, err, "Scoring could not run (reference data or configuration)",
                              EXIT_REFERENCE, _failure_html)
    t_scores = time.perf_counter() - t0
    log(f"scores.json written after {t_scores:.2f} s")
    for key in ("auc_c", "balacc_c", "kappa_c", "auc_clean", "auc_drop"):
        log(f"  {key:10s} {scores[key]:.4f}")
    try:
        details = build_details(per, scores, ref, sub.size,
                                {"source": sub.source, "files": sub.files, "ignored": sub.ignored},
                                {"scores": round(t_scores, 3)})
        write_json_atomic(output / DETAILS_FILE, details)
        if config.report:
            from .report import write_report

            page = write_report(output, details)
            log(f"detailed results: {page}")
    except Exception as exc:  # the score stands; the extras are best effort and logged
        import traceback

        print(f"warning: scores.json is written, but the detailed results failed: {exc!r}", file=err)
        traceback.print_exc(file=err)
    log(f"done in {time.perf_counter() - t0:.1f} s")
    return EXIT_OK
