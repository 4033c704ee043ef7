"""Paired bootstrap over test samples: is submission A really better than submission B?

Both prediction sets are scored on the *same* resamples of the test samples
(:func:`big.metrics.bootstrap_replicates` is paired), so the sampling noise they share cancels
out of the difference. Dataset *i* uses the stream ``SeedSequence(seed).spawn(12)[i]`` exactly as
the scorer's intervals do; the 12-dataset mean uses, in each replicate, the mean over datasets of
the per-dataset replicates (replicates where a metric is undefined on some dataset are dropped and
counted).

For each metric and dataset (and the mean) we report A, B, the difference A - B, its percentile
interval at ``level``, and the share of resamples in which A beats B (strictly; exact ties are
counted apart). A pair whose interval covers 0 is reported as **tied**.
"""
from __future__ import annotations

import csv
import html
import io
import json
import math
from pathlib import Path
from typing import Dict, List, Mapping, Optional

import numpy as np

from .. import metrics, registry
from ..errors import Problem, UsageError

A_BETTER, B_BETTER, TIED, UNDEFINED = "A better", "B better", "tied", "undefined"


def verdict(ci) -> str:
    if ci is None:
        return UNDEFINED
    lo, hi = ci
    if lo > 0:
        return A_BETTER
    if hi < 0:
        return B_BETTER
    return TIED


def _summary(a: float, b: float, diffs: np.ndarray, level: float) -> dict:
    finite = diffs[np.isfinite(diffs)]
    ci = metrics.percentile_interval(finite, level)
    n = int(finite.size)
    return {
        "a": float(a), "b": float(b), "diff": float(a - b),
        "ci": list(ci) if ci is not None else None,
        "p_a_better": float((finite > 0).mean()) if n else None,
        "p_equal": float((finite == 0).mean()) if n else None,
        "n_valid": n,
        "verdict": verdict(ci),
    }


def paired_bootstrap(labels: Mapping[str, np.ndarray], preds_a: Mapping[str, np.ndarray],
                     preds_b: Mapping[str, np.ndarray], *, n_boot: int = 1000, seed: int = 0,
                     level: float = 0.95, name_a: str = "A", name_b: str = "B", progress=None) -> dict:
    """The paired comparison of two prediction sets ({flag: (n, C) scores}) on reference ``labels``.

    Returns ``{"a", "b", "n_boot", "seed", "level", "datasets": {flag: {metric: summary}},
    "mean": {metric: summary}}`` where a summary is ``{a, b, diff, ci, p_a_better, p_equal,
    n_valid, verdict}``.
    """
    if n_boot < 1:
        raise UsageError([Problem(f"the paired bootstrap needs at least 1 replicate (got {n_boot}); try 1000")])
    if not 0 < level < 1:
        raise UsageError([Problem(f"the interval level must lie between 0 and 1 (got {level})")])
    streams = np.random.SeedSequence(seed).spawn(len(registry.datasets()))
    datasets: Dict[str, dict] = {}
    reps_a: Dict[str, Dict[str, np.ndarray]] = {}
    reps_b: Dict[str, Dict[str, np.ndarray]] = {}
    point_a: Dict[str, Dict[str, float]] = {}
    point_b: Dict[str, Dict[str, float]] = {}
    for ds, ss in zip(registry.datasets(), streams):
        y = labels[ds.flag]
        sa, sb = preds_a[ds.flag], preds_b[ds.flag]
        point_a[ds.flag] = metrics.score_dataset(y, sa, kind=ds.kind)
        point_b[ds.flag] = metrics.score_dataset(y, sb, kind=ds.kind)
        ra, rb = metrics.bootstrap_replicates(y, [sa, sb], kind=ds.kind, n_boot=n_boot,
                                              rng=np.random.default_rng(ss))
        reps_a[ds.flag], reps_b[ds.flag] = ra, rb
        datasets[ds.flag] = {m: _summary(point_a[ds.flag][m], point_b[ds.flag][m], ra[m] - rb[m], level)
                             for m in metrics.METRIC_FUNCTIONS}
        if progress:
            progress(ds.flag)
    mean = {}
    for m in metrics.METRIC_FUNCTIONS:
        da = np.stack([reps_a[f][m] for f in reps_a]).mean(axis=0)  # NaN where any dataset is undefined
        db = np.stack([reps_b[f][m] for f in reps_b]).mean(axis=0)
        a = float(np.mean([point_a[f][m] for f in point_a]))
        b = float(np.mean([point_b[f][m] for f in point_b]))
        mean[m] = _summary(a, b, da - db, level)
    return {"a": name_a, "b": name_b, "n_boot": int(n_boot), "seed": int(seed), "level": float(level),
            "datasets": datasets, "mean": mean}


def compare_submissions(reference, sub_a, sub_b, **kw) -> dict:
    """:func:`paired_bootstrap` on two validated :class:`big.submission.Submission` objects."""
    if sub_a.size != sub_b.size:
        raise UsageError([Problem(f"the two submissions are for different resolutions ({kw.get('name_a', 'A')}: "
                                  f"{sub_a.size} px, {kw.get('name_b', 'B')}: {sub_b.size} px); a paired comparison "
                                  "needs predictions at one resolution")])
    labels = {f: reference.labels(f) for f in registry.flags()}
    out = paired_bootstrap(labels, sub_a.predictions, sub_b.predictions, **kw)
    out.update({"resolution": sub_a.size, "split": reference.split, "reference_sha256": reference.sha256(),
                "reference_synthetic": reference.synthetic})
    return out


# ---------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------

def rows(result: dict) -> List[dict]:
    out = []
    for m in registry.METRIC_KEYS:
        for flag in list(registry.flags()) + ["mean"]:
            s = result["mean"][m] if flag == "mean" else result["datasets"][flag][m]
            out.append({"metric": m, "dataset": flag, **s})
    return out


def _verdict_text(v: str, result: dict) -> str:
    if v == A_BETTER:
        return f"{result['a']} better"
    if v == B_BETTER:
        return f"{result['b']} better"
    return v


def significance_csv(result: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["metric", "dataset", "a", "b", "diff", "ci_low", "ci_high", "p_a_better", "p_equal", "n_valid",
                "verdict"])
    for r in rows(result):
        ci = r["ci"] or (None, None)
        w.writerow([r["metric"], r["dataset"], f"{r['a']:.10f}", f"{r['b']:.10f}", f"{r['diff']:.10f}",
                    "" if ci[0] is None else f"{ci[0]:.10f}", "" if ci[1] is None else f"{ci[1]:.10f}",
                    "" if r["p_a_better"] is None else f"{r['p_a_better']:.4f}",
                    "" if r["p_equal"] is None else f"{r['p_equal']:.4f}", r["n_valid"],
                    _verdict_text(r["verdict"], result)])
    return buf.getvalue()


def _f(x: Optional[float], spec: str) -> str:
    return "" if x is None or not math.isfinite(x) else format(x, spec)


def significance_markdown(result: dict, heading: str = "#") -> str:
    pct = int(round(result["level"] * 100))
    a, b = result["a"], result["b"]
    lines = [f"{heading} Paired bootstrap: {a} (A) vs {b} (B)", "",
             f"B = {result['n_boot']} resamples of the {result.get('split', 'test')} samples (seed {result['seed']}), "
             f"the same resamples for "
             f"both. Difference = A - B with its {pct}% percentile interval; P(A>B) = share of resamples in which "
             f"A scores strictly higher. A pair whose interval covers 0 is **tied**."]
    if result.get("reference_synthetic"):
        lines += ["", "**Scored against SYNTHETIC reference labels.**"]
    for m in registry.METRIC_KEYS:
        lines += ["", f"{heading}# {registry.METRIC_TITLES[m]}", "",
                  f"| Dataset | A | B | A - B | {pct}% interval | P(A>B) | Verdict |",
                  "|---|---:|---:|---:|---|---:|---|"]
        for r in (r for r in rows(result) if r["metric"] == m):
            label = "**Mean (12 datasets)**" if r["dataset"] == "mean" else registry.get(r["dataset"]).python_class
            ci = "" if r["ci"] is None else f"[{r['ci'][0]:+.4f}, {r['ci'][1]:+.4f}]"
            v = _verdict_text(r["verdict"], result)
            lines.append(f"| {label} | {r['a']:.4f} | {r['b']:.4f} | {r['diff']:+.4f} | {ci} | "
                         f"{_f(r['p_a_better'], '.3f')} | {'**' + v + '**' if r['verdict'] in (A_BETTER, B_BETTER) else v} |")
    return "\n".join(lines) + "\n"


def significance_html(result: dict) -> str:
    pct = int(round(result["level"] * 100))
    a, b = html.escape(result["a"]), html.escape(result["b"])
    parts = [f"<h2>Paired bootstrap: {a} (A) vs {b} (B)</h2><p>B = {result['n_boot']} resamples of the "
             f"{html.escape(str(result.get('split', 'test')))} samples (seed {result['seed']}), the same for both. A &minus; B with its {pct}% percentile interval; "
             "P(A&gt;B) = share of resamples where A scores strictly higher; an interval covering 0 means "
             "<i>tied</i>.</p>"]
    for m in registry.METRIC_KEYS:
        parts.append(f"<h3>{html.escape(registry.METRIC_TITLES[m])}</h3><table><tr><th>Dataset</th><th>A</th>"
                     f"<th>B</th><th>A &minus; B</th><th>{pct}% interval</th><th>P(A&gt;B)</th><th>Verdict</th></tr>")
        for r in (r for r in rows(result) if r["metric"] == m):
            label = "Mean (12 datasets)" if r["dataset"] == "mean" else registry.get(r["dataset"]).python_class
            ci = "" if r["ci"] is None else f"[{r['ci'][0]:+.4f}, {r['ci'][1]:+.4f}]"
            cls = {A_BETTER: "better", B_BETTER: "worse"}.get(r["verdict"], "tied")
            parts.append(f"<tr{' class=mean' if r['dataset'] == 'mean' else ''}><th>{html.escape(label)}</th>"
                         f"<td>{r['a']:.4f}</td><td>{r['b']:.4f}</td><td>{r['diff']:+.4f}</td><td>{ci}</td>"
                         f"<td>{_f(r['p_a_better'], '.3f')}</td><td class='{cls}'>"
                         f"{html.escape(_verdict_text(r['verdict'], result))}</td></tr>")
        parts.append("</table>")
    return "\n".join(parts)


def write_significance(result: dict, out: Path) -> Dict[str, Path]:
    from .compare import write_text_atomic

    out = Path(out)
    return {
        "significance.csv": write_text_atomic(out / "significance.csv", significance_csv(result)),
        "significance.md": write_text_atomic(out / "significance.md", significance_markdown(result)),
        "significance.json": write_text_atomic(out / "significance.json",
                                               json.dumps(result, indent=1, allow_nan=False) + "\n"),
    }
