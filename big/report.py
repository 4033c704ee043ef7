"""The detailed results page: ``detailed_results.html`` (self-contained) plus the PNGs beside it.

Called by :func:`big.scoring.run` after scores.json and details.json exist; a failure here is
logged by the caller and never changes the score. The page shows, for one scored submission:

* a SYNTHETIC banner when the reference labels are synthetic;
* the run: split, resolution, scorer version, bootstrap seed and B, confidence level, reference sha256;
* the per-dataset table (n, task, AUC / balanced accuracy / Cohen's kappa, each with its bootstrap
  percentile interval; skipped classes) and the 12-dataset mean row with its interval;
* the thesis website's six plots (line and box plot of each metric across the 12 datasets) with the
  baselines at the submission's resolution overlaid (per-dataset values where the project has them,
  mean lines otherwise), and a table of every baseline mean at that resolution;
* per dataset: ROC curves (binary: column 1; multiclass: one-vs-rest per class; multilabel: per
  label) and the confusion matrix of the hard predictions (multilabel: per-label 2x2 summary).

Images are embedded as base64 data URIs (CodaBench shows the page in an iframe and serves no other
files); the same PNGs are also written beside the page for download. Needs matplotlib (lazily
imported by :mod:`big.plots`), numpy and the standard library.
"""
from __future__ import annotations

import base64
import html
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from . import baselines as baselines_mod
from . import plots, registry

PathLike = Union[str, os.PathLike]
HTML_FILE = "detailed_results.html"

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em auto;max-width:1250px;color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:2px solid #ddd;padding-bottom:.2em}
h3{margin:.4em 0}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.28em .55em;text-align:right;white-space:nowrap}
th{background:#f2f2f2}td.l,th.l{text-align:left}
tr.mean td{font-weight:bold;background:#eef5ff;border-top:2px solid #888}
tr.sub td{font-weight:bold;background:#fff7e6}
.ci{color:#666;font-size:.85em}
.banner{background:#b00020;color:#fff;padding:.7em 1em;font-weight:bold;font-size:1.1em;border-radius:4px}
.meta td{text-align:left}.meta th{text-align:left}
.note{color:#555;font-size:.9em;max-width:70em}
.warn{color:#8a4b00}
.grid{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start}
.grid img{max-width:100%;border:1px solid #e2e2e2}
.ds{border:1px solid #ddd;border-radius:4px;padding:.6em;margin:.8em 0}
.ds img{max-width:600px;width:49%;min-width:320px}
code{background:#f5f5f5;padding:0 .25em}
nav a{margin-right:.8em}
.tw{overflow-x:auto;max-width:100%}
"""


_TABLE_TAGS = {"thesis-T5": "thesis T5", "thesis-T6": "thesis T6", "doerrich-average": "Doerrich avg.",
               "doerrich-per-dataset": "Doerrich per dataset"}
_TABLE_TEXT = {
    "thesis T5": "the thesis' Table 5: mm-PT ResNet-18 and ViT-B/16, one seed",
    "thesis T6": "the thesis' Table 6: Doerrich et al. (2024) end-to-end checkpoints re-evaluated with the three "
                 "BIG metrics, mean \u00b1 std over 3 seeds",
    "Doerrich avg.": "Doerrich et al. (2024), 'Average' table (AUC only), github.com/sdoerrich97/"
                     "rethinking-model-prototyping-MedMNISTPlus @b67b772, assets/benchmark_results_average.png",
    "Doerrich per dataset": "Doerrich et al. (2024) per-dataset AUC tables (ResNet-18 and ViT-B/16), same "
                            "repository, assets/benchmark_results_{dataset}.png",
}


def _esc(x) -> str:
    return html.escape(str(x), quote=True)


def _img(path: Path, alt: str, style: str = "") -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    st = f' style="{style}"' if style else ""
    return f'<img src="data:image/png;base64,{data}" alt="{_esc(alt)}" title="{_esc(alt)}"{st}>'


def _fmt(v, digits: int = 4) -> str:
    try:
        return f"{float(v):.{digits}f}"
    except (TypeError, ValueError):
        return "&mdash;"


def _cell(value, ci) -> str:
    txt = _fmt(value)
    if ci:
        txt += f' <span class="ci">[{_fmt(ci[0])}, {_fmt(ci[1])}]</span>'
    return f"<td>{txt}</td>"


def _metric_cells(entry: dict) -> str:
    ci = entry.get("ci") or {}
    return "".join(_cell(entry.get(m), ci.get(m)) for m in registry.METRIC_KEYS)


class _Figures:
    """Writes PNGs, keeping going when one fails (the page then says which)."""

    def __init__(self, out: Path, err):
        self.out = out
        self.err = err
        self.failed: Dict[str, str] = {}
        self.paths: Dict[str, Path] = {}

    def make(self, name: str, fn, *args, **kwargs) -> Optional[Path]:
        try:
            p = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - one broken figure must not cost the whole page
            self.failed[name] = repr(exc)
            print(f"warning: figure {name} failed: {exc!r}", file=self.err)
            return None
        self.paths[name] = Path(p)
        return Path(p)

    def html(self, name: str, alt: str, style: str = "") -> str:
        if name in self.paths:
            return _img(self.paths[name], alt, style)
        if name in self.failed:
            return f'<p class="warn">{_esc(alt)}: the figure could not be drawn ({_esc(self.failed[name])}).</p>'
        return ""


def _baselines(resolution: int):
    """(overlay baselines, all baselines, message or None)."""
    try:
        folder = baselines_mod.tables_dir()
        if folder is None:
            return [], [], "no baseline tables available"
        every = baselines_mod.baselines_for(resolution)
        shown = baselines_mod.baselines_for(resolution, only=baselines_mod.DEFAULT_OVERLAY)
        if not every:
            return [], [], f"no baseline tables available at {resolution}x{resolution}"
        return shown, every, None
    except Exception as exc:  # noqa: BLE001 - organizer-side tables; the page says what is wrong
        msg = getattr(exc, "summary", None) or repr(exc)
        return [], [], f"the baseline tables could not be read: {msg}"


def _baseline_table(every, details: dict) -> str:
    mean = details.get("mean", {})
    rows = ['<tr class="sub"><td class="l">this submission</td><td class="l"></td><td class="l"></td>'
            + "".join(f"<td>{_fmt(mean.get(m))}</td>" for m in registry.METRIC_KEYS)
            + '<td class="l">this run</td></tr>']
    for b in every:
        cells = []
        for m in registry.METRIC_KEYS:
            v = b.mean.get(m)
            txt = _fmt(v) if v is not None else "&mdash;"
            if m in b.std:
                txt += f' <span class="ci">&plusmn; {_fmt(b.std[m])}</span>'
            if isinstance(b.value(m), dict):
                txt += ' <span class="ci" title="per-dataset values in the plots">&#9679;</span>'
            cells.append(f"<td>{txt}</td>")
        tags = ", ".join(_TABLE_TAGS.get(t, t) for t in b.tables)
        rows.append(f'<tr><td class="l">{_esc(b.model)}</td><td class="l">{_esc(b.training)}</td>'
                    f'<td class="l">{"yes" if b.weighted else "no"}</td>{"".join(cells)}'
                    f'<td class="l">{_esc(tags)}</td></tr>')
    head = ('<tr><th class="l">model (timm)</th><th class="l">training</th><th class="l">weighted</th>'
            + "".join(f"<th>{_esc(registry.METRIC_TITLES[m])}</th>" for m in registry.METRIC_KEYS)
            + '<th class="l">source</th></tr>')
    legend = "".join(f"<li><b>{_esc(tag)}</b>: {_esc(text)}</li>" for tag, text in _TABLE_TEXT.items())
    return f"<div class='tw'><table>{head}{''.join(rows)}</table></div><ul class='note'>{legend}</ul>"


def write_report(output_dir: PathLike, details: dict, submission, reference, *, err=None) -> Path:
    """Write ``detailed_results.html`` and its PNGs into ``output_dir``; return the page's path.

    ``details`` is the details.json mapping (:func:`big.scoring.build_details`); ``submission`` a
    :class:`big.submission.Submission` (its predictions draw the ROC curves and confusion matrices);
    ``reference`` a :class:`big.reference.Reference`. Either of the last two may be None: the page
    then has the tables and the website plots only.
    """
    t0 = time.perf_counter()
    err = err if err is not None else sys.stderr
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = _Figures(out, err)
    res = details.get("resolution")
    datasets = details.get("datasets", {})
    flags = [f for f in registry.flags() if f in datasets]

    # --- the website's six plots, baselines overlaid --------------------------------------
    shown, every, base_msg = _baselines(res) if res else ([], [], "no resolution in details")
    name = "this submission"
    for m in registry.METRIC_KEYS:
        vals = {f: datasets[f][m] for f in flags if datasets[f].get(m) is not None}
        ov = baselines_mod.overlay(shown, m)
        figs.make(f"{m}_lineplot", plots.metric_line_plot, {name: vals}, m, out / f"{m}_lineplot.png", ov,
                  title=f"{registry.METRIC_TITLES[m]} across the 12 datasets ({res}x{res})")
        figs.make(f"{m}_boxplot", plots.metric_box_plot, {name: vals}, m, out / f"{m}_boxplot.png", ov,
                  title=f"{registry.METRIC_TITLES[m]} over the 12 datasets ({res}x{res})")

    # --- per dataset: ROC curves and confusion matrices ----------------------------------
    have_preds = submission is not None and reference is not None
    if have_preds:
        for f in flags:
            ds = registry.get(f)
            try:
                y, s = reference.labels(f), submission.predictions[f]
            except Exception as exc:  # noqa: BLE001
                figs.failed[f"roc_{f}"] = figs.failed[f"confusion_{f}"] = repr(exc)
                continue
            figs.make(f"roc_{f}", plots.roc_curves, y, s, kind=ds.kind, path=out / f"roc_{f}.png",
                      class_names=ds.labels, title=f"{f}: ROC curves")
            figs.make(f"confusion_{f}", plots.confusion_matrix_plot, y, s, kind=ds.kind,
                      path=out / f"confusion_{f}.png", class_names=ds.labels, title=f"{f}: confusion matrix")

    page = _page(details, flags, figs, shown, every, base_msg, have_preds, time.perf_counter() - t0)
    tmp = out / (HTML_FILE + ".partial")
    tmp.write_text(page, encoding="utf-8")
    path = out / HTML_FILE
    os.replace(tmp, path)
    return path


def _page(details: dict, flags: Sequence[str], figs: _Figures, shown, every, base_msg, have_preds, t_figs) -> str:
    res = details.get("resolution")
    datasets = details.get("datasets", {})
    mean = details.get("mean", {})
    n_boot = details.get("n_boot", 0)
    level = details.get("level", 0.95)
    sub = details.get("submission", {})
    parts: List[str] = []
    parts.append("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
                 "<meta name='viewport' content='width=device-width,initial-scale=1'>"
                 f"<title>BIG benchmark: detailed results</title><style>{_CSS}</style></head><body>")
    if details.get("reference_synthetic"):
        parts.append('<div class="banner">SYNTHETIC REFERENCE DATA: these scores were computed against '
                     "synthetic labels (a test or demo run). They say nothing about real MedMNIST+ performance.</div>")
    parts.append(f"<h1>BIG benchmark &mdash; detailed results</h1>"
                 f"<p>{_esc(details.get('split', '?'))} split, resolution {_esc(res)}&times;{_esc(res)}, "
                 f"{len(flags)} datasets. Mean AUC <b>{_fmt(mean.get('auc'))}</b>, mean balanced accuracy "
                 f"<b>{_fmt(mean.get('balacc'))}</b>, mean Cohen's kappa <b>{_fmt(mean.get('kappa'))}</b>.</p>")
    parts.append('<nav><a href="#table">per-dataset table</a><a href="#plots">plots across datasets</a>'
                 '<a href="#baselines">baselines</a>' + ('<a href="#datasets">ROC and confusion matrices</a>' if have_preds else "")
                 + '<a href="#run">run details</a></nav>')

    # per-dataset table
    pct = f"{100 * float(level):g}%"
    if n_boot:
        ci_note = (f"Brackets: {pct} percentile bootstrap interval from B = {n_boot} resamples of the test samples "
                   f"within each dataset (seed {_esc(details.get('seed'))}); the mean row's interval comes from the "
                   "same replicates (the mean over the 12 datasets of each replicate).")
    else:
        ci_note = "The bootstrap was switched off for this run (B = 0): no intervals."
    rows = []
    for f in flags:
        e = datasets[f]
        skipped = e.get("skipped_classes") or []
        sk = ", ".join(f"{s['index']} ({s['name']})" for s in skipped) if skipped else ""
        undefined = {m: c for m, c in (e.get("bootstrap_undefined") or {}).items() if c}
        if undefined:
            sk += (" " if sk else "") + '<span class="warn">undefined in ' + ", ".join(
                f"{c} {m} replicates" for m, c in undefined.items()) + "</span>"
        rows.append(f'<tr><td class="l">{_esc(f)}</td><td class="l">{_esc(e.get("task", ""))}</td>'
                    f'<td>{_esc(e.get("n", ""))}</td>{_metric_cells(e)}'
                    f'<td class="l" style="white-space:normal">{sk if skipped or undefined else ""}</td></tr>')
    rows.append(f'<tr class="mean"><td class="l">mean of {len(flags)}</td><td class="l"></td>'
                f'<td>{sum(int(datasets[f].get("n", 0)) for f in flags)}</td>{_metric_cells(mean)}<td></td></tr>')
    head = ('<tr><th class="l">dataset</th><th class="l">task</th><th>n</th>'
            + "".join(f"<th>{_esc(registry.METRIC_TITLES[m])}</th>" for m in registry.METRIC_KEYS)
            + '<th class="l">skipped classes / notes</th></tr>')
    parts.append(f'<h2 id="table">Per-dataset scores</h2><div class="tw"><table>{head}{"".join(rows)}</table></div>'
                 f'<p class="note">{ci_note} AUC: binary = column 1, multi-class = mean one-vs-rest AUC over '
                 "classes, multi-label = mean over labels. Balanced accuracy and kappa use argmax (multi-class) "
                 "or score &gt; 0.5 (binary column 1, each multi-label column). A class absent from the "
                 "reference labels is skipped in the per-class mean and listed here. The benchmark score of "
                 "each metric is the unweighted mean over the 12 datasets.</p>")

    # website plots
    parts.append('<h2 id="plots">Across the 12 datasets</h2>')
    if base_msg:
        parts.append(f'<p class="note warn">Baselines: {_esc(base_msg)}.</p>')
    elif shown:
        parts.append('<p class="note">Overlaid baselines at this resolution: '
                     + ", ".join(_esc(b.label) for b in shown)
                     + ". Dashed lines / hatched boxes: per-dataset values (Doerrich et al. 2024, AUC only); dotted "
                       "lines: published 12-dataset means (thesis Tables 5 and 6).</p>")
    for m in registry.METRIC_KEYS:
        parts.append(f"<h3>{_esc(registry.METRIC_TITLES[m])}</h3><div class='grid'>"
                     + figs.html(f"{m}_lineplot", f"{registry.METRIC_TITLES[m]} line plot", "width:62%;min-width:520px")
                     + figs.html(f"{m}_boxplot", f"{registry.METRIC_TITLES[m]} box plot", "width:36%;min-width:320px")
                     + "</div>")

    # baselines table
    parts.append(f'<h2 id="baselines">Published baselines at {_esc(res)}&times;{_esc(res)}</h2>')
    if every:
        parts.append('<p class="note">12-dataset means as published (&plusmn;: the published spread over seeds; '
                     "&#9679;: per-dataset values are available and drawn in the plots). Models by timm name. "
                     "Different training schemes, data pipelines and seeds: read as context, not as a ranking.</p>"
                     + _baseline_table(every, details))
    else:
        parts.append(f'<p class="note warn">{_esc(base_msg or "no baseline tables available")}.</p>')

    # per-dataset figures
    if have_preds:
        parts.append('<h2 id="datasets">ROC curves and confusion matrices</h2>')
        for f in flags:
            e = datasets[f]
            ds = registry.get(f)
            parts.append(f'<div class="ds" id="ds-{_esc(f)}"><h3>{_esc(f)} <span class="ci">{_esc(ds.task)}, '
                         f'{_esc(e.get("n"))} samples, {ds.n_labels} score columns &mdash; AUC {_fmt(e.get("auc"))}, '
                         f'balanced accuracy {_fmt(e.get("balacc"))}, kappa {_fmt(e.get("kappa"))}</span></h3>'
                         + figs.html(f"roc_{f}", f"{f} ROC curves") + figs.html(f"confusion_{f}", f"{f} confusion matrix")
                         + "</div>")

    # run details
    files = sub.get("files") or {}
    ignored = sub.get("ignored") or []
    timing = details.get("timing_s") or {}
    meta = [
        ("scorer version", details.get("scorer_version")),
        ("split", details.get("split")),
        ("resolution", res),
        ("reference sha256", details.get("reference_sha256")),
        ("reference", "SYNTHETIC" if details.get("reference_synthetic") else "genuine MedMNIST+ labels"),
        ("bootstrap", f"B = {n_boot}, seed {details.get('seed')}, {pct} percentile intervals"
         if n_boot else "off (B = 0)"),
        ("submission", sub.get("source", "")),
        ("prediction files", ", ".join(str(files[f]) for f in registry.flags() if f in files)),
        ("ignored files", ", ".join(map(str, ignored)) if ignored else "none"),
        ("timing", ", ".join(f"{k} {v} s" for k, v in timing.items()) + f", figures {t_figs:.1f} s"),
    ]
    parts.append('<h2 id="run">Run details</h2><table class="meta">'
                 + "".join(f'<tr><th>{_esc(k)}</th><td class="l" style="white-space:normal;overflow-wrap:anywhere">{_esc(v)}</td></tr>'
                           for k, v in meta) + "</table>")
    if figs.failed:
        parts.append('<p class="warn">Figures that could not be drawn: ' + _esc(", ".join(sorted(figs.failed))) + "</p>")
    parts.append('<p class="note">The PNG files of every figure are also in the output folder beside this page.</p>'
                 "</body></html>")
    return "\n".join(parts)
