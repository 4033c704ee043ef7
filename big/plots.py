"""Plots of the BIG benchmark as PNG files: plain dicts and arrays in, a PNG path out.

Shared by the detailed results page (:mod:`big.report`) and ``big compare`` so both have the same
look. matplotlib is imported lazily, inside the functions, and only through its object API
(``matplotlib.figure.Figure`` + the Agg canvas): no pyplot, no global backend switch, nothing
shown on screen. Works with matplotlib 3.8 and 3.9 (the CodaBench images) and newer.

Stable signatures (keyword arguments after ``path`` may be added, never removed):

``metric_line_plot(series, metric, path, baselines=None, *, title=None, flags=None)``
    The thesis website's line plot: x = the 12 datasets (registry order), y = the metric, one line
    with markers per series.
``metric_box_plot(series, metric, path, baselines=None, *, title=None, flags=None)``
    The website's box plot: the distribution of a series' per-dataset values, one box per series,
    the 12 points drawn over it.
``website_plots(series, out_dir, baselines=None, *, prefix="") -> {name: Path}``
    All six (line and box plot of each of auc, balacc, kappa): ``{prefix}{metric}_lineplot.png`` and
    ``{prefix}{metric}_boxplot.png``.
``roc_curves(y_true, y_score, *, kind, path, class_names=None, title=None)``
    ROC curves of one dataset: binary = column 1; multiclass = one-vs-rest per class; multilabel =
    one curve per label; legend with each curve's AUC.
``confusion_matrix_plot(y_true, y_score, *, kind, path, class_names=None, title=None)``
    Confusion matrix of the BIG hard predictions (argmax / ``> 0.5``); multilabel: a per-label 2x2
    summary (TN, FP, FN, TP per label).

Arguments:

* ``series``: ``{name: {flag: value}}``, or a sequence of ``(name, {flag: value})`` pairs when
  names may repeat. Every series gets its own colour, by position, even when names are equal
  (a repeated name is shown as ``name (2)``). Missing datasets are gaps, never zeros.
* ``baselines``: ``{label: {flag: value}}`` (per-dataset values: dashed line / grey box) or
  ``{label: float}`` (only a 12-dataset mean is known: a dotted horizontal line); for
  :func:`website_plots` one such mapping per metric key, ``{metric: {label: ...}}``.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import registry

PathLike = Union[str, os.PathLike]
SeriesArg = Union[Mapping[str, Mapping[str, float]], Sequence[Tuple[str, Mapping[str, float]]]]
BaselineArg = Optional[Mapping[str, Union[float, Mapping[str, float]]]]

DPI = 100
#: qualitative palette for submissions (tab10 order), extended by evenly spaced hues when needed
_SERIES_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                   "#17becf", "#bcbd22", "#7f7f7f"]
#: colours for baselines (ColorBrewer Dark2): drawn thinner and dashed/dotted, so a submission
#: (solid, thick, round markers) always stands out from them
_BASELINE_COLOURS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d",
                     "#666666"]


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def _figure(w: float, h: float, layout: Optional[str] = None):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: PathLike) -> Path:
    """Write the PNG atomically (temp name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    fig.savefig(tmp, format="png", dpi=DPI)
    os.replace(tmp, path)
    return path


def series_colours(n: int) -> List[str]:
    """``n`` distinct colours for submissions (tab10 first, then evenly spaced hues)."""
    if n <= len(_SERIES_COLOURS):
        return _SERIES_COLOURS[:n]
    import colorsys

    extra = n - len(_SERIES_COLOURS)
    hues = [(0.03 + i / extra) % 1.0 for i in range(extra)]
    more = ["#%02x%02x%02x" % tuple(int(255 * c) for c in colorsys.hls_to_rgb(h, 0.45, 0.75)) for h in hues]
    return _SERIES_COLOURS + more


def _series_list(series: SeriesArg) -> List[Tuple[str, Dict[str, float]]]:
    """Normalise ``series`` to a list of (unique display name, {flag: value})."""
    items = list(series.items()) if isinstance(series, Mapping) else [tuple(x) for x in series]
    seen: Dict[str, int] = {}
    out = []
    for name, values in items:
        name = str(name)
        seen[name] = seen.get(name, 0) + 1
        shown = name if seen[name] == 1 else f"{name} ({seen[name]})"
        out.append((shown, {str(k): float(v) for k, v in dict(values).items() if v is not None}))
    return out


def _baseline_split(baselines: BaselineArg):
    """(per-dataset [(label, {flag: v}, colour)], mean-only [(label, v, colour)]); a baseline's colour
    follows its position in ``baselines``, so it is the same in every metric's plots."""
    per, means = [], []
    for i, (label, v) in enumerate((baselines or {}).items()):
        colour = _BASELINE_COLOURS[i % len(_BASELINE_COLOURS)]
        if isinstance(v, Mapping):
            per.append((str(label), {str(k): float(x) for k, x in v.items() if x is not None}, colour))
        elif v is not None and math.isfinite(float(v)):
            means.append((str(label), float(v), colour))
    return per, means


def _wrap(label: str, width: int = 20) -> str:
    """Break long tick labels over a few lines at spaces (a timm name stays whole)."""
    import textwrap

    lines = []
    for part in label.split("\n"):
        lines += textwrap.wrap(part, width, break_long_words=False, break_on_hyphens=False) or [""]
    return "\n".join(lines)


def _values(d: Mapping[str, float], flags: Sequence[str]) -> np.ndarray:
    return np.array([d.get(f, np.nan) for f in flags], dtype=float)


def _metric_title(metric: str) -> str:
    return registry.METRIC_TITLES.get(metric, metric)


def _y_limits(ax, arrays: Sequence[np.ndarray], extra: Sequence[float] = ()) -> None:
    vals = np.concatenate([a[np.isfinite(a)] for a in arrays] + [np.asarray(extra, float)]) if arrays or extra else np.array([])
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        ax.set_ylim(0, 1)
        return
    lo, hi = float(vals.min()), float(vals.max())
    pad = max(0.02, 0.06 * (hi - lo))
    ax.set_ylim(max(-1.0, lo - pad), min(1.0, hi + pad) + 0.01)


# ---------------------------------------------------------------------------------------------
# the website's plots
# ---------------------------------------------------------------------------------------------

def metric_line_plot(series: SeriesArg, metric: str, path: PathLike, baselines: BaselineArg = None, *,
                     title: Optional[str] = None, flags: Optional[Sequence[str]] = None) -> Path:
    """Line plot of ``metric`` across the datasets, one line per series; baselines overlaid."""
    flags = list(flags or registry.flags())
    items = _series_list(series)
    per, means = _baseline_split(baselines)
    n_leg = len(items) + len(per) + len(means)
    fig = _figure(12, 6.2 + 0.22 * math.ceil(n_leg / 2), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(flags))
    arrays = []
    for label, vals, colour in per:
        y = _values(vals, flags)
        arrays.append(y)
        ax.plot(x, y, linestyle="--", marker="s", markersize=4, linewidth=1.2, color=colour, alpha=0.8,
                label=f"{label} (baseline)", zorder=2)
    for i, (label, v, colour) in enumerate(means):
        ax.axhline(v, linestyle=(":", "-.")[i % 2], linewidth=1.4, color=colour, alpha=0.9,
                   label=f"{label} (baseline mean {v:.3f})", zorder=1)
    for (label, vals), colour in zip(items, series_colours(len(items))):
        y = _values(vals, flags)
        arrays.append(y)
        ax.plot(x, y, marker="o", markersize=6, linewidth=2.0, color=colour, label=label, zorder=3)
    _y_limits(ax, arrays, [v for _, v, _ in means])
    ax.set_xticks(x)
    ax.set_xticklabels(flags, rotation=40, ha="right")
    ax.set_xlim(-0.5, len(flags) - 0.5)
    ax.set_ylabel(_metric_title(metric))
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title(title or f"Comparison of {_metric_title(metric)} across datasets")
    if n_leg:
        fig.legend(loc="outside lower center", ncols=min(2, n_leg), fontsize=9, frameon=False)
    return _save(fig, path)


def metric_box_plot(series: SeriesArg, metric: str, path: PathLike, baselines: BaselineArg = None, *,
                    title: Optional[str] = None, flags: Optional[Sequence[str]] = None) -> Path:
    """Box plot of each series' per-dataset ``metric`` values (points drawn over the boxes)."""
    flags = list(flags or registry.flags())
    items = _series_list(series)
    per, means = _baseline_split(baselines)
    boxes = [(label, _values(v, flags), c, False) for (label, v), c in zip(items, series_colours(len(items)))]
    boxes += [(f"{label}\n(baseline)", _values(v, flags), c, True) for label, v, c in per]
    width = max(8.0, 1.2 * len(boxes) + 2.0)
    fig = _figure(width, 6.6 + 0.22 * math.ceil(len(means) / 2), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    data = [b[1][np.isfinite(b[1])] for b in boxes]
    positions = np.arange(1, len(boxes) + 1)
    if boxes:
        bp = ax.boxplot([d if d.size else np.array([np.nan]) for d in data], positions=positions, widths=0.55,
                        patch_artist=True, showfliers=False, medianprops={"color": "black"})
        rng = np.random.default_rng(0)
        for patch, (label, vals, colour, is_base), d, pos in zip(bp["boxes"], boxes, data, positions):
            patch.set_facecolor(colour)
            patch.set_alpha(0.35 if is_base else 0.55)
            if is_base:
                patch.set_hatch("//")
            jitter = rng.uniform(-0.12, 0.12, size=d.size)
            ax.scatter(pos + jitter, d, s=14, color=colour, edgecolor="black", linewidth=0.4, zorder=3)
    for i, (label, v, colour) in enumerate(means):
        ax.axhline(v, linestyle=(":", "-.")[i % 2], linewidth=1.4, color=colour, label=f"{label} (baseline mean {v:.3f})")
    _y_limits(ax, data, [v for _, v, _ in means])
    ax.set_xticks(positions)
    ax.set_xticklabels([_wrap(b[0]) for b in boxes], fontsize=8 if len(boxes) > 3 else 9)
    ax.set_xlim(0.4, len(boxes) + 0.6)
    ax.set_ylabel(_metric_title(metric))
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title(title or f"Boxplot of {_metric_title(metric)} over the {len(flags)} datasets")
    if means:
        fig.legend(loc="outside lower center", ncols=min(2, len(means)), fontsize=8, frameon=False)
    return _save(fig, path)


def website_plots(series: SeriesArg, out_dir: PathLike, baselines: Optional[Mapping[str, BaselineArg]] = None, *,
                  prefix: str = "", metrics: Sequence[str] = registry.METRIC_KEYS) -> Dict[str, Path]:
    """The website's six plots; returns ``{"{metric}_lineplot": path, "{metric}_boxplot": path}``.

    ``series`` values are per metric: ``{name: {metric: {flag: value}}}`` (or pairs) — or, for a
    single metric view, pass it to the two functions above directly.
    """
    items = list(series.items()) if isinstance(series, Mapping) else [tuple(x) for x in series]
    out_dir = Path(out_dir)
    paths: Dict[str, Path] = {}
    for m in metrics:
        per_metric = [(name, dict(vals.get(m, {}))) for name, vals in items]
        base = (baselines or {}).get(m)
        paths[f"{m}_lineplot"] = metric_line_plot(per_metric, m, out_dir / f"{prefix}{m}_lineplot.png", base)
        paths[f"{m}_boxplot"] = metric_box_plot(per_metric, m, out_dir / f"{prefix}{m}_boxplot.png", base)
    return paths


# ---------------------------------------------------------------------------------------------
# per-dataset plots
# ---------------------------------------------------------------------------------------------

def roc_points(y: np.ndarray, s: np.ndarray, max_points: int = 400) -> Tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) of binary labels ``y`` and scores ``s`` at every distinct threshold (thinned to
    about ``max_points`` vertices for drawing; the curve keeps its ends). Empty arrays if a class
    is absent."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, dtype=float)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return np.array([]), np.array([])
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.flatnonzero(s_sorted[1:] != s_sorted[:-1]), s_sorted.size - 1]  # end of each tie group
    tp = np.cumsum(y_sorted)[last]
    fp = (last + 1) - tp
    tpr = np.r_[0.0, tp / n_pos]
    fpr = np.r_[0.0, fp / n_neg]
    if tpr.size > max_points:
        keep = np.unique(np.r_[np.linspace(0, tpr.size - 1, max_points).astype(int), tpr.size - 1])
        tpr, fpr = tpr[keep], fpr[keep]
    return fpr, tpr


def _trapezoid(y, x) -> float:
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


def _curves(y_true, y_score, kind: str, class_names: Optional[Sequence[str]]):
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=float)
    names = list(class_names) if class_names is not None else [str(i) for i in range(s.shape[1])]
    if kind == registry.BINARY:
        yy = y.reshape(-1).astype(int)
        return [(f"{names[1] if len(names) > 1 else 'positive'} (column 1)", yy == 1, s[:, 1])]
    if kind == registry.MULTILABEL:
        return [(names[j], y[:, j] == 1, s[:, j]) for j in range(s.shape[1])]
    yy = y.reshape(-1).astype(int)
    return [(names[c], yy == c, s[:, c]) for c in range(s.shape[1])]


def _short(name: str, n: int = 28) -> str:
    return name if len(name) <= n else name[: n - 1] + "\u2026"


def roc_curves(y_true, y_score, *, kind: str, path: PathLike, class_names: Optional[Sequence[str]] = None,
               title: Optional[str] = None) -> Path:
    """ROC curves of one dataset (see the module docstring); classes absent from ``y_true`` are
    listed in the legend as skipped."""
    curves = _curves(y_true, y_score, kind, class_names)
    fig = _figure(6.4, 5.2 if len(curves) <= 8 else 6.0)
    ax = fig.add_subplot(1, 1, 1)
    colours = series_colours(len(curves))
    for (name, yy, ss), colour in zip(curves, colours):
        fpr, tpr = roc_points(yy, ss, max_points=100_000)
        if fpr.size == 0:
            ax.plot([], [], color=colour, label=f"{_short(name)}: skipped (one class only)")
            continue
        auc = _trapezoid(tpr, fpr)  # exact for the full curve (= Mann-Whitney with ties halved)
        if fpr.size > 400:
            keep = np.unique(np.r_[np.linspace(0, fpr.size - 1, 400).astype(int), fpr.size - 1])
            fpr, tpr = fpr[keep], tpr[keep]
        ax.plot(fpr, tpr, color=colour, linewidth=1.5, label=f"{_short(name)} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=0.8)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title or "ROC curves", fontsize=11)
    ax.legend(loc="lower right", fontsize=7 if len(curves) > 6 else 8, framealpha=0.85)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.1, top=0.93)  # fixed: cheaper than tight_layout
    return _save(fig, path)


def confusion_counts(y_true, y_score, *, kind: str) -> np.ndarray:
    """Counts of the BIG hard predictions: (k, k) rows = truth, columns = prediction; multilabel:
    (L, 4) per label [TN, FP, FN, TP]."""
    from .metrics import hard_predictions

    y = np.asarray(y_true)
    pred = hard_predictions(y_score, kind)
    if kind == registry.MULTILABEL:
        y = y.astype(int)
        tn = ((y == 0) & (pred == 0)).sum(axis=0)
        fp = ((y == 0) & (pred == 1)).sum(axis=0)
        fn = ((y == 1) & (pred == 0)).sum(axis=0)
        tp = ((y == 1) & (pred == 1)).sum(axis=0)
        return np.stack([tn, fp, fn, tp], axis=1)
    k = np.asarray(y_score).shape[1] if kind == registry.MULTICLASS else 2
    yy = y.reshape(-1).astype(int)
    return np.bincount(yy * k + pred, minlength=k * k).reshape(k, k)


def confusion_matrix_plot(y_true, y_score, *, kind: str, path: PathLike, class_names: Optional[Sequence[str]] = None,
                          title: Optional[str] = None) -> Path:
    """Confusion matrix (colour = row-normalised share, text = count) of the BIG hard predictions."""
    cm = confusion_counts(y_true, y_score, kind=kind)
    names = list(class_names) if class_names is not None else [str(i) for i in range(cm.shape[0])]
    if kind == registry.MULTILABEL:
        row_names = [_short(n, 24) for n in names]
        col_names = ["TN", "FP", "FN", "TP"]
        # share within the label's truth: TN, FP of the negatives; FN, TP of the positives
        neg = np.maximum(cm[:, 0] + cm[:, 1], 1)[:, None]
        pos = np.maximum(cm[:, 2] + cm[:, 3], 1)[:, None]
        share = np.hstack([cm[:, :2] / neg, cm[:, 2:] / pos])
        xlabel, ylabel = "outcome at score > 0.5 (share within the label's negatives / positives)", "label"
    else:
        row_names = [_short(n, 24) for n in names] if kind == registry.MULTICLASS else \
            [f"{_short(names[0], 18)} (0)", f"{_short(names[1], 18)} (1)"] if len(names) >= 2 else ["0", "1"]
        col_names = row_names
        share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        xlabel, ylabel = "predicted" + (" (column 1 > 0.5)" if kind == registry.BINARY else " (argmax)"), "true"
    r, c = cm.shape
    if kind == registry.MULTILABEL:
        w, h = 6.8, max(3.8, 1.6 + 0.36 * r)
    else:
        w, h = max(5.6, 3.6 + 0.5 * c), max(4.2, 2.0 + 0.45 * r)
    fig = _figure(w, h)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    fs = 8 if max(r, c) <= 8 else 6.5
    for i in range(r):
        for j in range(c):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=fs,
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(np.arange(c))
    ax.set_xticklabels(col_names, rotation=45 if kind == registry.MULTICLASS else 0,
                       ha="right" if kind == registry.MULTICLASS else "center", fontsize=fs)
    ax.set_yticks(np.arange(r))
    ax.set_yticklabels(row_names, fontsize=fs)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title or "Confusion matrix", fontsize=11)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true row")
    fig.tight_layout()
    return _save(fig, path)
