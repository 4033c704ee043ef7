"""The robustness detailed results page: ``detailed_results.html`` (self-contained) + PNGs beside it.

Shows, from details.json: a STAND-IN / SYNTHETIC banner when it applies; the run (split, resolution,
corruption generator, severities); the per-dataset table (clean AUC, corrupted AUC / balanced
accuracy / kappa, relative AUC drop); a dataset x corruption heat map of the corrupted AUC (mean over
the severities); severity curves (AUC of each dataset from the clean copy through the severities,
mean over its corruptions); per dataset, the corruption x severity table; and MedMNIST-C's
normalized error at 224 px only, labelled as computed on this sample. Images are embedded (base64).
"""
from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Dict, List, Union

import numpy as np

from .. import registry
from ..plots import _figure, _save
from .layout import GENERATOR_STANDIN

PathLike = Union[str, os.PathLike]
HTML_FILE = "detailed_results.html"
_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em auto;max-width:1250px;color:#222;padding:0 1em}
h2{margin-top:1.6em;border-bottom:2px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.28em .55em;text-align:right;white-space:nowrap}
th{background:#f2f2f2}td.l,th.l{text-align:left}tr.mean td{font-weight:bold;background:#eef5ff}
.banner{background:#b00020;color:#fff;padding:.7em 1em;font-weight:bold;border-radius:4px;margin:.4em 0}
.note{color:#555;font-size:.9em;max-width:70em}img{max-width:100%;border:1px solid #e2e2e2}
.tw{overflow-x:auto;max-width:100%}
"""


def _esc(x) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v, digits: int = 4) -> str:
    try:
        return f"{float(v):.{digits}f}"
    except (TypeError, ValueError):
        return "&mdash;"


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_esc(alt)}" title="{_esc(alt)}">'


def corruption_order(details: dict) -> List[str]:
    seen: List[str] = []
    for flag in registry.flags():
        for c in details["datasets"][flag]["by_corruption"]:
            if c not in seen:
                seen.append(c)
    return seen


def heatmap(details: dict, path: PathLike) -> Path:
    flags = registry.flags()
    cols = corruption_order(details)
    grid = np.full((len(flags), len(cols)), np.nan)
    for i, f in enumerate(flags):
        for j, c in enumerate(cols):
            v = details["datasets"][f]["by_corruption"].get(c)
            if v is not None:
                grid[i, j] = v["auc"]
    fig = _figure(max(6.0, 0.55 * len(cols) + 3.0), 0.42 * len(flags) + 2.2, layout="constrained")
    ax = fig.add_subplot(111)
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", vmin=0.5, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(cols)), [c.replace("_", " ") for c in cols], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(flags)), [registry.get(f).python_class for f in flags], fontsize=8)
    for i in range(len(flags)):
        for j in range(len(cols)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=6.5,
                        color="white" if grid[i, j] < 0.75 else "black")
    fig.colorbar(im, ax=ax, label="AUC (mean over severities)")
    ax.set_title("Corrupted AUC per dataset and corruption (blank: not a corruption of that dataset)", fontsize=9)
    return _save(fig, path)


def severity_curves(details: dict, path: PathLike) -> Path:
    from ..plots import series_colours

    flags = registry.flags()
    sevs = [int(s) for s in details["severities"]]
    fig = _figure(8.5, 5.0, layout="constrained")
    ax = fig.add_subplot(111)
    colours = series_colours(len(flags))
    for k, f in enumerate(flags):
        d = details["datasets"][f]
        ys = [d["clean"]["auc"]] + [d["by_severity"][str(s)]["auc"] for s in sevs]
        ax.plot([0] + sevs, ys, marker="o", color=colours[k], label=registry.get(f).python_class)
    mean = [details["mean"]["clean"]["auc"]] + [
        float(np.mean([details["datasets"][f]["by_severity"][str(s)]["auc"] for f in flags])) for s in sevs]
    ax.plot([0] + sevs, mean, color="black", linewidth=3, label="mean (12 datasets)")
    ax.set_xticks([0] + sevs, ["clean"] + [str(s) for s in sevs])
    ax.set_xlabel("severity")
    ax.set_ylabel("AUC (mean over the dataset's corruptions)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def _summary_table(details: dict) -> str:
    rows = ["<tr><th class='l'>Dataset</th><th>n</th><th>pooled ids</th><th>clean AUC</th><th>corrupted AUC</th>"
            "<th>corrupted bal. acc.</th><th>corrupted kappa</th><th>relative AUC drop</th></tr>"]
    for f in registry.flags():
        d = details["datasets"][f]
        rows.append(f"<tr><td class='l'>{_esc(registry.get(f).python_class)}</td><td>{d['n']}</td><td>{d['rows']}</td>"
                    f"<td>{_fmt(d['clean']['auc'])}</td><td>{_fmt(d['corrupted']['auc'])}</td>"
                    f"<td>{_fmt(d['corrupted']['balacc'])}</td><td>{_fmt(d['corrupted']['kappa'])}</td>"
                    f"<td>{_fmt(d['auc_drop'])}</td></tr>")
    s = details["scores"]
    rows.append(f"<tr class='mean'><td class='l'>Mean (12 datasets)</td><td></td><td></td><td>{_fmt(s['auc_clean'])}</td>"
                f"<td>{_fmt(s['auc_c'])}</td><td>{_fmt(s['balacc_c'])}</td><td>{_fmt(s['kappa_c'])}</td>"
                f"<td>{_fmt(s['auc_drop'])}</td></tr>")
    return "<div class='tw'><table>" + "".join(rows) + "</table></div>"


def _dataset_tables(details: dict) -> str:
    parts = []
    sevs = [str(s) for s in details["severities"]]
    for f in registry.flags():
        d = details["datasets"][f]
        head = "".join(f"<th>AUC s{s}</th>" for s in sevs)
        rows = [f"<tr><th class='l'>corruption</th>{head}<th>AUC mean</th><th>bal. acc. mean</th>"
                "<th>kappa mean</th></tr>"]
        for c, by_s in d["corruptions"].items():
            cells = "".join(f"<td>{_fmt(by_s.get(s, {}).get('auc'))}</td>" for s in sevs)
            m = d["by_corruption"][c]
            rows.append(f"<tr><td class='l'>{_esc(c)}</td>{cells}<td>{_fmt(m['auc'])}</td><td>{_fmt(m['balacc'])}</td>"
                        f"<td>{_fmt(m['kappa'])}</td></tr>")
        parts.append(f"<h3>{_esc(registry.get(f).python_class)}</h3><div class='tw'><table>{''.join(rows)}</table></div>")
    return "\n".join(parts)


def _normalized_error(details: dict) -> str:
    ne = details.get("normalized_error")
    note = _esc(details.get("normalized_error_note") or "")
    if not ne:
        return f"<p class='note'>MedMNIST-C normalized error: {note}.</p>"
    rows = ["<tr><th class='l'>Dataset</th><th>normalized balanced error (AlexNet = 1)</th>"
            "<th>relative balanced error</th></tr>"]
    for f, v in ne["datasets"].items():
        rows.append(f"<tr><td class='l'>{_esc(registry.get(f).python_class)}</td><td>{_fmt(v['be'])}</td>"
                    f"<td>{_fmt(v['rbe'])}</td></tr>")
    rows.append(f"<tr class='mean'><td class='l'>Mean</td><td>{_fmt(ne['mean_be'])}</td><td>{_fmt(ne['mean_rbe'])}</td></tr>")
    return (f"<p class='note'>MedMNIST-C's normalized error (lower is better), {note}. It is not a leaderboard "
            f"column.</p><table>{''.join(rows)}</table>")


def write_report(output_dir: PathLike, details: dict) -> Path:
    out = Path(output_dir)
    figs: Dict[str, str] = {}
    for name, fn, alt in (("robustness_heatmap.png", heatmap, "dataset x corruption heat map"),
                          ("robustness_severity.png", severity_curves, "severity curves")):
        try:
            figs[name] = _img(fn(details, out / name), alt)
        except Exception as exc:  # noqa: BLE001 - one broken figure must not cost the page
            figs[name] = f"<p class='note'>{_esc(alt)} could not be drawn ({_esc(repr(exc))}).</p>"
    banners = []
    if details.get("generator") == GENERATOR_STANDIN:
        banners.append(f"STAND-IN CORRUPTIONS: {details.get('generator_label')}. These scores are not MedMNIST-C "
                       "results.")
    if details.get("reference_synthetic"):
        banners.append("SYNTHETIC SOURCE IMAGES — a test bundle: these scores mean nothing.")
    if not details.get("complete"):
        banners.append("INCOMPLETE corrupted set (not every dataset's corruptions): a test bundle.")
    meta = [("benchmark", "BIG-C (robustness)"), ("split", details["split"]), ("resolution", f"{details['resolution']} px"),
            ("corruptions", details.get("generator_label")),
            ("severities", ", ".join(map(str, details["severities"]))), ("resize", details.get("resize")),
            ("scorer", details.get("scorer_version")), ("reference sha256", details.get("reference_sha256"))]
    page = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>BIG-C detailed results</title>",
        f"<style>{_CSS}</style></head><body><h1>BIG-C: robustness to corruptions</h1>",
        "".join(f"<div class='banner'>{_esc(b)}</div>" for b in banners),
        "<table class='meta'>" + "".join(f"<tr><th class='l'>{_esc(k)}</th><td class='l'>{_esc(v)}</td></tr>"
                                         for k, v in meta) + "</table>",
        "<p class='note'>Corrupted metrics: per dataset, the mean over its corruptions and severities; the "
        "leaderboard's means are over the 12 datasets. Clean: the clean copy of the same sample, pooled with the "
        "corrupted images. Relative AUC drop: (clean - corrupted) / clean.</p>",
        "<h2>Per dataset</h2>", _summary_table(details),
        "<h2>Dataset x corruption</h2>", figs["robustness_heatmap.png"],
        "<h2>Severity curves</h2>", figs["robustness_severity.png"],
        "<h2>MedMNIST-C normalized error</h2>", _normalized_error(details),
        "<h2>Every corruption and severity</h2>", _dataset_tables(details),
        "</body></html>",
    ]
    tmp = out / (HTML_FILE + ".partial")
    tmp.write_text("\n".join(page), encoding="utf-8")
    os.replace(tmp, out / HTML_FILE)
    return out / HTML_FILE
