"""``big compare``: scored results side by side, as plots and a per-dataset difference table.

A *result* is what the scorer writes: a scoring output folder with ``details.json`` (or the
details.json file itself). :class:`Result` holds the part of it the comparison needs; it can also
be built from a submission (zip or folder of CSVs) and a reference folder by running the scorer's
own functions (:func:`score_path`), so numbers here are the numbers the CodaBench scorer reports.

Results are comparable only when they were scored on the same split, at the same resolution, against
the same reference labels (``reference_sha256``); anything else is refused with a message that names
each result and what it holds.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from .. import registry
from ..errors import BigError, Problem, UsageError

PathLike = Union[str, os.PathLike]
Interval = Optional[Tuple[float, float]]
METRICS: Tuple[str, ...] = registry.METRIC_KEYS
DETAILS_FILE = "details.json"
MEAN_ROW = "mean"


def fmt(value: Optional[float], digits: int = 4) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def fmt_diff(value: Optional[float], digits: int = 4) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:+.{digits}f}"


def fmt_ci(ci: Interval, digits: int = 4) -> str:
    return "" if ci is None else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def dataset_title(flag: str) -> str:
    return registry.get(flag).python_class if flag != MEAN_ROW else "Mean (12 datasets)"


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------

@dataclass
class Result:
    """One scored submission: the per-dataset metrics, their mean and the bootstrap intervals."""

    name: str
    source: str
    split: str
    resolution: int
    reference_sha256: str
    reference_synthetic: bool
    values: Dict[str, Dict[str, float]]  # flag -> metric -> value, flags in registry order
    mean: Dict[str, float]  # metric -> unweighted mean over the 12 datasets
    mean_ci: Dict[str, Interval] = field(default_factory=dict)
    ci: Dict[str, Dict[str, Interval]] = field(default_factory=dict)  # flag -> metric -> interval
    n_boot: int = 0
    seed: int = 0
    level: float = 0.95
    #: "big", or "robustness" (BIG-C: every value is the corrupted metric, the mean over corruptions and severities)
    benchmark: str = "big"

    @classmethod
    def from_details(cls, name: str, details: dict, source: str) -> "Result":
        """Build from a details.json mapping; every problem is collected into one :class:`UsageError`.
        A BIG-C scoring output (``"benchmark": "robustness"``) gives its corrupted metrics per dataset."""
        if isinstance(details, dict) and details.get("benchmark") == "robustness":
            return _from_robustness(cls, name, details, source)
        problems: List[Problem] = []

        def bad(msg: str) -> None:
            problems.append(Problem(msg, file=source))

        if not isinstance(details, dict):
            raise UsageError([Problem("details.json does not hold a JSON object", file=source)])
        for key in ("split", "resolution", "reference_sha256", "datasets"):
            if key not in details:
                bad(f"details.json lacks {key!r}; is this the details.json written by `big score`?")
        if problems:
            raise UsageError(problems)
        split, resolution = details["split"], details["resolution"]
        if split not in ("val", "test"):
            bad(f"split {split!r} is neither val nor test")
        if resolution not in registry.SIZES:
            bad(f"resolution {resolution!r} is not a MedMNIST+ size {registry.SIZES}")
        values: Dict[str, Dict[str, float]] = {}
        cis: Dict[str, Dict[str, Interval]] = {}
        ds_map = details["datasets"] if isinstance(details["datasets"], dict) else {}
        missing = [f for f in registry.flags() if f not in ds_map]
        if missing:
            bad(f"no results for {', '.join(missing)} (all 12 datasets are needed)")
        for flag in registry.flags():
            entry = ds_map.get(flag)
            if not isinstance(entry, dict):
                continue
            values[flag] = {}
            for m in METRICS:
                v = entry.get(m)
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    bad(f"{flag}: {m} is {v!r}, expected a finite number")
                else:
                    values[flag][m] = float(v)
            cis[flag] = {m: _interval(entry.get("ci", {}).get(m) if isinstance(entry.get("ci"), dict) else None)
                         for m in METRICS}
        if problems:
            raise UsageError(problems)
        mean = {m: sum(values[f][m] for f in registry.flags()) / len(values) for m in METRICS}
        given = details.get("mean") if isinstance(details.get("mean"), dict) else {}
        for m in METRICS:
            if isinstance(given.get(m), (int, float)) and abs(given[m] - mean[m]) > 1e-9:
                bad(f"mean {m} {given[m]} differs from the mean of the 12 dataset values {mean[m]:.10f}; "
                    "the file was edited or is corrupt")
        if problems:
            raise UsageError(problems)
        for m in METRICS:  # the scorer's own mean (np.mean) where given, so numbers match scores.json exactly
            if isinstance(given.get(m), (int, float)) and not isinstance(given.get(m), bool):
                mean[m] = float(given[m])
        mean_ci_src = given.get("ci") if isinstance(given.get("ci"), dict) else {}
        return cls(name=name, source=source, split=split, resolution=int(resolution),
                   reference_sha256=str(details["reference_sha256"]),
                   reference_synthetic=bool(details.get("reference_synthetic", False)),
                   values=values, mean=mean, mean_ci={m: _interval(mean_ci_src.get(m)) for m in METRICS},
                   ci=cis, n_boot=int(details.get("n_boot") or 0), seed=int(details.get("seed") or 0),
                   level=float(details.get("level") or 0.95))


def _from_robustness(cls, name: str, details: dict, source: str) -> "Result":
    """A BIG-C details.json (big.robustness.scoring) as a Result of its corrupted metrics."""
    try:
        ds = details["datasets"]
        shaped = {"split": details["split"], "resolution": details["resolution"],
                  "reference_sha256": details["reference_sha256"],
                  "reference_synthetic": details.get("reference_synthetic", False),
                  "datasets": {f: dict(ds[f]["corrupted"]) for f in registry.flags()},
                  "mean": {m: details["mean"][m] for m in METRICS}}
    except (KeyError, TypeError) as exc:
        raise UsageError([Problem(f"a BIG-C details.json without {exc}: is it the file the robustness scorer "
                                  "wrote?", file=source)]) from None
    res = cls.from_details(name, shaped, source)
    res.benchmark = "robustness"
    return res


def _interval(x) -> Interval:
    if isinstance(x, (list, tuple)) and len(x) == 2 and all(isinstance(v, (int, float)) for v in x):
        return float(x[0]), float(x[1])
    return None


def parse_spec(spec: str) -> Tuple[Optional[str], Path]:
    """``name=path`` or ``path``. A path that exists as written wins over a ``name=`` reading."""
    if "=" in spec and not Path(spec).exists():
        name, _, rest = spec.partition("=")
        if name.strip() and rest and "/" not in name and os.sep not in name:
            return name.strip(), Path(rest)
    return None, Path(spec)


def default_name(path: Path) -> str:
    p = Path(path)
    if p.name == DETAILS_FILE:
        p = p.parent
    p = Path(os.path.abspath(p))
    return p.stem if p.suffix.lower() == ".zip" else p.name


def unique_names(specs: Sequence[Tuple[Optional[str], Path]]) -> List[str]:
    """Names for each (explicit name or None, path): explicit ones must be unique; default names
    (folder or zip name) that collide get their parent folder prefixed, then a counter."""
    explicit = [n for n, _ in specs if n]
    dup = sorted({n for n in explicit if explicit.count(n) > 1})
    if dup:
        raise UsageError([Problem(f"the name {n!r} is given to more than one result; names must be unique")
                          for n in dup])
    defaults = [n or default_name(p) for n, p in specs]
    names = list(defaults)
    for i, (n, p) in enumerate(specs):
        if n is None and (defaults.count(defaults[i]) > 1 or defaults[i] in explicit):
            parent = Path(os.path.abspath(p if p.name != DETAILS_FILE else p.parent)).parent.name
            names[i] = f"{parent}/{names[i]}" if parent else names[i]
    seen: Dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 and names.count(n) == 1 else f"{n}#{seen[n]}")
    return out


def read_details(path: PathLike) -> Tuple[dict, Path]:
    """The details.json of a scoring output folder (or the file itself), with clear errors."""
    p = Path(path)
    if not p.exists():
        raise UsageError([Problem(f"{p} does not exist")])
    if p.is_dir():
        if not (p / DETAILS_FILE).is_file():
            why = ("it holds scores.json but no details.json (scored with an older scorer?); re-score it with "
                   "`big score`" if (p / "scores.json").is_file() else
                   "it is not a scoring output folder (those hold details.json, written by `big score`)")
            raise UsageError([Problem(f"no {DETAILS_FILE} in {p}: {why}")])
        p = p / DETAILS_FILE
    elif p.suffix.lower() == ".zip":
        raise UsageError([Problem(f"{p} is a submission, not a scoring result: score it with `big score`, or "
                                  "compare submissions with `big compare --predictions A.zip B.zip --reference DIR`")])
    try:
        return json.loads(p.read_text(encoding="utf-8")), p
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError([Problem(f"cannot read it as JSON ({exc})", file=str(p))]) from None


def load_results(specs: Sequence[str]) -> List[Result]:
    """Load ``name=path`` / ``path`` result specs; every unreadable one is reported at once."""
    parsed = [parse_spec(s) for s in specs]
    names = unique_names(parsed)
    results, problems = [], []
    for name, (_, path) in zip(names, parsed):
        try:
            details, file = read_details(path)
            results.append(Result.from_details(name, details, str(file)))
        except BigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise UsageError(problems)
    return results


def check_compatible(results: Sequence[Result]) -> None:
    """Refuse results from different splits, resolutions or reference labels."""
    if not results:
        raise UsageError([Problem("no results to compare")])

    def listing(attr: Callable[[Result], str]) -> str:
        return "; ".join(f"{r.name}: {attr(r)}" for r in results)

    problems = []
    if len({r.benchmark for r in results}) > 1:
        raise UsageError([Problem("the results mix BIG and BIG-C (robustness) scoring outputs (" +
                                  listing(lambda r: r.benchmark) + "); compare one benchmark at a time")])
    if len({r.split for r in results}) > 1:
        problems.append(Problem("the results are for different splits (" + listing(lambda r: r.split) +
                                "); val and test scores are not comparable"))
    if len({r.resolution for r in results}) > 1:
        problems.append(Problem("the results are for different resolutions (" +
                                listing(lambda r: f"{r.resolution} px") + "); compare one resolution at a time "
                                "(leaderboards and baselines are per resolution)"))
    if not problems and len({r.reference_sha256 for r in results}) > 1:
        problems.append(Problem("the results were scored against different reference labels (" +
                                listing(lambda r: f"reference {r.reference_sha256[:12]}"
                                        + (" synthetic" if r.reference_synthetic else "")) +
                                "); re-score them against one reference folder"))
    if problems:
        raise UsageError(problems, summary="these results cannot be compared: " + problems[0].message.split(" (")[0])


# ---------------------------------------------------------------------------------------------
# scoring a submission with the scorer's own functions
# ---------------------------------------------------------------------------------------------

class _Clock:
    """Wall (``perf_counter``) and CPU (``process_time``) seconds of consecutive stages: ``laps`` maps
    each stage to its wall seconds and ``cpu_<stage>`` to its CPU seconds."""

    def __init__(self):
        self.laps: Dict[str, float] = {}
        self._w, self._c = time.perf_counter(), time.process_time()

    def lap(self, stage: str) -> None:
        w, c = time.perf_counter(), time.process_time()
        self.laps[stage], self.laps["cpu_" + stage] = w - self._w, c - self._c
        self._w, self._c = w, c


def score_path(path: PathLike, reference, *, name: Optional[str] = None, n_boot: int = 0, seed: int = 0,
               level: float = 0.95, resolutions: Sequence[int] = registry.SIZES):
    """Read, validate and score one submission (zip or prediction folder) exactly as ``big score``
    does (without writing files). Returns (Result, Submission, timings: wall seconds of read,
    metrics and bootstrap, and CPU seconds as cpu_read, cpu_metrics, cpu_bootstrap). Raises :class:`big.errors.SubmissionError` for a bad submission."""
    from .. import scoring
    from ..submission import read_submission

    clock = _Clock()
    sub = read_submission(path, split=reference.split, expected_n=reference.expected_n, resolutions=resolutions)
    clock.lap("read")
    per_dataset = scoring.dataset_metrics(sub, reference)
    scores = scoring.scores_from_metrics(per_dataset, sub.size)
    scoring.check_scores(scores)
    clock.lap("metrics")
    config = scoring.ScoringConfig(resolutions=tuple(resolutions), n_boot=n_boot, seed=seed, level=level, report=False)
    details = scoring.build_details(sub, reference, per_dataset, scores, config, {})
    clock.lap("bootstrap")
    result = Result.from_details(name or default_name(Path(path)), details, str(path))
    return result, sub, clock.laps


# ---------------------------------------------------------------------------------------------
# the difference table
# ---------------------------------------------------------------------------------------------

def difference_rows(results: Sequence[Result]) -> List[dict]:
    """One row per metric and dataset (then the mean): each result's value and each result's
    difference to the first one (the reference for the comparison)."""
    rows = []
    for m in METRICS:
        for flag in list(registry.flags()) + [MEAN_ROW]:
            vals = [r.mean[m] if flag == MEAN_ROW else r.values[flag][m] for r in results]
            row = {"metric": m, "dataset": flag, "values": vals,
                   "diffs": [v - vals[0] for v in vals[1:]]}
            row["best"] = max(range(len(vals)), key=lambda i: vals[i]) if len(results) > 1 else None
            rows.append(row)
    return rows


def diff_header(results: Sequence[Result]) -> List[str]:
    return [f"{r.name} - {results[0].name}" for r in results[1:]]


def difference_csv(results: Sequence[Result]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["metric", "dataset"] + [r.name for r in results] + diff_header(results))
    for row in difference_rows(results):
        w.writerow([row["metric"], row["dataset"]] + [f"{v:.10f}" for v in row["values"]]
                   + [f"{d:.10f}" for d in row["diffs"]])
    return buf.getvalue()


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def difference_markdown(results: Sequence[Result]) -> str:
    first = results[0]
    lines = [f"# Comparison at {first.resolution} px ({first.split} split)", ""]
    lines.append("Results: " + ", ".join(f"**{_md_cell(r.name)}** (`{_md_cell(r.source)}`)" for r in results) + ".")
    if first.reference_synthetic:
        lines.append("")
        lines.append("**Scored against SYNTHETIC reference labels: these numbers say nothing about real models.**")
    if len(results) > 1:
        lines += ["", f"Differences are each result minus **{_md_cell(first.name)}**; the best value per row is "
                      "in bold."]
    rows = difference_rows(results)
    for m in METRICS:
        lines += ["", f"## {registry.METRIC_TITLES[m]}", ""]
        head = ["Dataset"] + [_md_cell(r.name) for r in results] + [_md_cell(h) for h in diff_header(results)]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|---|" + "---:|" * (len(head) - 1))
        for row in (r for r in rows if r["metric"] == m):
            cells = []
            for i, v in enumerate(row["values"]):
                cells.append(f"**{fmt(v)}**" if row["best"] == i else fmt(v))
            label = dataset_title(row["dataset"])
            if row["dataset"] == MEAN_ROW:
                label = f"**{label}**"
            lines.append("| " + " | ".join([label] + cells + [fmt_diff(d) for d in row["diffs"]]) + " |")
        with_ci = [r for r in results if r.mean_ci.get(m)]
        if with_ci:
            lines.append("")
            lines.append(f"{int(round(with_ci[0].level * 100))}% bootstrap interval of the mean: " + "; ".join(
                f"{_md_cell(r.name)} {fmt_ci(r.mean_ci[m])} (B={r.n_boot})" for r in with_ci) + ".")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# plots (big.plots: the same figures as detailed_results.html)
# ---------------------------------------------------------------------------------------------

def write_plots(results: Sequence[Result], out: Path, *, baselines: str = "default",
                log: Callable[[str], None] = print) -> List[Path]:
    """The website's six figures, drawn by :mod:`big.plots` with the titles of the detailed results
    page: a line and a box plot of each metric over the 12 datasets, one series per result, with the
    published baselines at the same resolution overlaid. ``baselines`` = "default" (those the
    detailed results page shows), "all" (every baseline at that resolution) or "none"."""
    from .. import baselines as bl
    from .. import plots

    if baselines not in ("default", "all", "none"):
        raise UsageError([Problem(f"--baselines must be default, all or none, not {baselines!r}")])
    res = results[0].resolution
    chosen = []
    if results[0].benchmark == "robustness":  # the published baselines are clean-test numbers
        baselines = "none"
    if baselines != "none":
        try:
            chosen = bl.baselines_for(res, only=bl.DEFAULT_OVERLAY if baselines == "default" else None)
        except BigError as exc:  # organizer-side tables: say what is wrong, draw the submissions anyway
            log(f"warning: the baseline tables could not be read ({exc.summary}); plots without baselines")
        if not chosen:
            log(f"note: no baseline results at {res}x{res} in the baseline tables; the plots show the results only")
    out = Path(out)
    paths = []
    for m in METRICS:
        series = [(r.name, {f: r.values[f][m] for f in registry.flags()}) for r in results]
        overlay = bl.overlay(chosen, m) if chosen else None
        title = registry.METRIC_TITLES[m]
        paths.append(plots.metric_line_plot(series, m, out / f"{m}_lineplot.png", overlay,
                                            title=f"{title} across the 12 datasets ({res}x{res})"))
        paths.append(plots.metric_box_plot(series, m, out / f"{m}_boxplot.png", overlay,
                                           title=f"{title} over the 12 datasets ({res}x{res})"))
    return paths


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------

def write_text_atomic(path: Path, text: str) -> Path:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _table_html(results: Sequence[Result]) -> str:
    parts = []
    rows = difference_rows(results)
    for m in METRICS:
        head = ["Dataset"] + [r.name for r in results] + diff_header(results)
        parts.append(f"<h3>{html.escape(registry.METRIC_TITLES[m])}</h3><table><tr>"
                     + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>")
        for row in (r for r in rows if r["metric"] == m):
            cls = " class='mean'" if row["dataset"] == MEAN_ROW else ""
            cells = [f"<td{' class=best' if row['best'] == i else ''}>{fmt(v)}</td>" for i, v in enumerate(row["values"])]
            cells += [f"<td class='{'pos' if d > 0 else 'neg' if d < 0 else ''}'>{fmt_diff(d)}</td>" for d in row["diffs"]]
            parts.append(f"<tr{cls}><th>{html.escape(dataset_title(row['dataset']))}</th>{''.join(cells)}</tr>")
        parts.append("</table>")
    return "\n".join(parts)


PAGE_STYLE = ("body{font-family:-apple-system,'Segoe UI',Roboto,sans-serif;max-width:75em;margin:1.5em auto;"
              "padding:0 1em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}"
              "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right;font-variant-numeric:tabular-nums}"
              "th{background:#f3f3f3}tr th:first-child{text-align:left}tr.mean{font-weight:bold}"
              "td.best{font-weight:bold;background:#eef6ee}td.pos{color:#1a7f37}td.neg{color:#b42318}"
              ".warn{background:#fff3cd;padding:.5em 1em;border-left:4px solid #e0a800}"
              "img{max-width:100%;border:1px solid #eee;margin:.3em 0}.tied{color:#555}"
              ".better{color:#1a7f37;font-weight:bold}.worse{color:#b42318;font-weight:bold}")


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<img alt='{html.escape(path.stem)}' src='data:image/png;base64,{data}'>"


def compare_html(results: Sequence[Result], plots: Sequence[Path], significance_html: str = "") -> str:
    first = results[0]
    title = f"BIG comparison at {first.resolution} px ({first.split} split)"
    warn = ("<p class='warn'>Scored against <b>synthetic</b> reference labels: the numbers only exercise "
            "the pipeline.</p>" if first.reference_synthetic else "")
    items = "".join(f"<li><b>{html.escape(r.name)}</b>: <code>{html.escape(r.source)}</code></li>" for r in results)
    figs = ""
    for m in METRICS:
        imgs = "".join(_img(p) for p in plots if p.stem.startswith(m + "_"))
        if imgs:
            figs += f"<h3>{html.escape(registry.METRIC_TITLES[m])}</h3>{imgs}"
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{PAGE_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{warn}<ul>{items}</ul>"
            + (f"<h2>Plots</h2>{figs}" if figs else "")
            + significance_html
            + (f"<h2>Per-dataset values</h2><p>Differences are each result minus <b>{html.escape(first.name)}</b>.</p>"
               if len(results) > 1 else "<h2>Per-dataset values</h2>")
            + _table_html(results) + "</body></html>")


def write_comparison(results: Sequence[Result], out: PathLike, *, plots: bool = True, baselines: str = "default",
                     significance=None, log: Callable[[str], None] = print) -> Dict[str, Path]:
    """Write plots, differences.{md,csv}, (significance.{md,csv,json}) and compare.html into ``out``."""
    check_compatible(results)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: Dict[str, Path] = {}
    written["differences.csv"] = write_text_atomic(out / "differences.csv", difference_csv(results))
    md = difference_markdown(results)
    sig_html = ""
    if significance is not None:
        from . import significance as sig

        written.update(sig.write_significance(significance, out))
        md += "\n" + sig.significance_markdown(significance, heading="##")
        sig_html = sig.significance_html(significance)
    written["differences.md"] = write_text_atomic(out / "differences.md", md)
    pngs: List[Path] = []
    if plots:
        pngs = write_plots(results, out, baselines=baselines, log=log)
        written.update({p.name: p for p in pngs})
    written["compare.html"] = write_text_atomic(out / "compare.html", compare_html(results, pngs, sig_html))
    for name in written:
        log(f"wrote {out / name}")
    return written
