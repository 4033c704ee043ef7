"""``big leaderboard``: re-score a folder of submissions offline and rank them like the thesis website.

Input: a folder whose entries are result zips, prediction folders (the 12 ``{flag}_{size}.csv``
files) or scoring output folders holding ``details.json``. Zips and prediction folders are read,
validated and scored with :mod:`big.submission` and :mod:`big.scoring` (bootstrap intervals
included, seeded as the scorer seeds them); scoring outputs are taken as they are after checking
that they were scored on the same split against the same reference labels. A bad entry is listed
with its validation messages and skipped; only bad *reference data* stops the run.

Output: one leaderboard per resolution and metric (AUC, balanced accuracy, Cohen's kappa), each
ranked by the 12-dataset mean and, beside it, by the average rank over the 12 datasets, as
Markdown, CSV and one self-contained HTML page (plus ``leaderboard.json`` and ``skipped.csv``).

Which ranking counts: the CodaBench leaderboard ranks by its primary column, the mean AUC (ties
broken by the next columns in order); the other boards and the average-rank column are analysis
views. Ties: scores are compared at CodaBench's 10 stored decimals; equal means share a rank
(1, 2, 2, 4); on each dataset tied submissions share the average of their ranks.
"""
from __future__ import annotations

import csv
import datetime as _dt
import html
import io
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .. import registry
from ..errors import BigError, Problem, ReferenceDataError, UsageError
from .compare import (DETAILS_FILE, METRICS, PAGE_STYLE, Result, _md_cell, fmt, fmt_ci, read_details,
                      score_path, write_text_atomic)

PathLike = Union[str, os.PathLike]
DECIMALS = 10  # CodaBench stores scores as Decimal(20, 10)
RANKING_NOTE = ("The competition (the CodaBench leaderboard) ranks by the **Mean AUC** column, its primary "
                "column; ties are broken by the following columns in order. The balanced-accuracy and kappa "
                "boards and the average-rank ranking are analysis views shown beside it.")
ROBUSTNESS_NOTE = ("**BIG-C (robustness)**: every value is the dataset's corrupted metric (the mean over its "
                   "corruptions and severities); the competition ranks by the mean corrupted AUC (`auc_c`). The "
                   "other boards and the average rank are analysis views.")
AVG_RANK_NOTE = ("Avg rank: each submission's rank on each of the 12 datasets (1 = best, tied submissions share "
                 "the average of their ranks), averaged over the datasets; lower is better.")
KIND_ZIP, KIND_FOLDER, KIND_SCORED, KIND_OTHER = "zip", "prediction folder", "scoring output", "other"


# ---------------------------------------------------------------------------------------------
# ranking (pure)
# ---------------------------------------------------------------------------------------------

def competition_ranks(scores: Sequence[float], *, higher_is_better: bool = True) -> List[int]:
    """Standard competition ranking ('1224'): equal scores (at 10 decimals) share the best rank."""
    keys = [round(s, DECIMALS) for s in scores]
    return [1 + sum(1 for o in keys if (o > k if higher_is_better else o < k)) for k in keys]


def average_ranks(scores: Sequence[float]) -> List[float]:
    """Rank 1 = highest score; tied scores (at 10 decimals) share the mean of the ranks they span."""
    keys = [round(s, DECIMALS) for s in scores]
    out = []
    for k in keys:
        better = sum(1 for o in keys if o > k)
        same = sum(1 for o in keys if o == k)
        out.append(better + (same + 1) / 2.0)
    return out


@dataclass
class Ranked:
    name: str
    mean: float
    values: Dict[str, float]
    dataset_ranks: Dict[str, float]
    avg_rank: float
    rank_by_mean: int
    rank_by_avg_rank: int


def rank(values: Mapping[str, Mapping[str, float]], means: Optional[Mapping[str, float]] = None) -> List[Ranked]:
    """Rank submissions given ``{name: {dataset: value}}`` of one metric (higher is better).

    ``means`` defaults to the unweighted mean over the datasets. Rows come back ordered by rank by
    mean, then average rank, then name.
    """
    names = list(values)
    if not names:
        return []
    flags = list(values[names[0]])
    for n in names:
        if list(values[n]) != flags:
            raise ValueError(f"{n} has datasets {list(values[n])}, expected {flags}")
    if means is None:
        means = {n: sum(values[n][f] for f in flags) / len(flags) for n in names}
    per_ds = {f: dict(zip(names, average_ranks([values[n][f] for n in names]))) for f in flags}
    avg = {n: sum(per_ds[f][n] for f in flags) / len(flags) for n in names}
    by_mean = dict(zip(names, competition_ranks([means[n] for n in names])))
    by_avg = dict(zip(names, competition_ranks([avg[n] for n in names], higher_is_better=False)))
    rows = [Ranked(n, float(means[n]), dict(values[n]), {f: per_ds[f][n] for f in flags}, avg[n], by_mean[n], by_avg[n])
            for n in names]
    rows.sort(key=lambda r: (r.rank_by_mean, r.avg_rank, r.name))
    return rows


# ---------------------------------------------------------------------------------------------
# entries: discovery and scoring (one per worker task)
# ---------------------------------------------------------------------------------------------

@dataclass
class Entry:
    name: str
    path: str
    kind: str
    result: Optional[Result] = None
    problems: List[str] = field(default_factory=list)
    summary: str = ""
    timings: Dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.result is not None


def discover(folder: PathLike, *, exclude: Sequence[PathLike] = ()) -> List[Tuple[str, Path, str]]:
    """(name, path, kind) of each entry of ``folder``, sorted by name; hidden entries are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError([Problem(f"{folder} is not a folder; give the folder that holds the submissions")])
    skip = {Path(os.path.abspath(p)) for p in exclude}
    found = []
    for p in sorted(folder.iterdir(), key=lambda q: q.name):
        if p.name.startswith(".") or Path(os.path.abspath(p)) in skip or p.name.endswith(".partial"):
            continue
        if p.is_dir():
            kind = KIND_SCORED if (p / DETAILS_FILE).is_file() else KIND_FOLDER
        elif p.suffix.lower() == ".zip":
            kind = KIND_ZIP
        else:
            kind = KIND_OTHER
        found.append([p.stem if kind == KIND_ZIP else p.name, p, kind])
    names = [f[0] for f in found]
    for f in found:  # a.zip beside a folder a/: keep the full names
        if names.count(f[0]) > 1:
            f[0] = f[1].name
    return [tuple(f) for f in found]


_REF_CACHE: Dict[str, object] = {}
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _reference(folder: str):
    from ..reference import Reference

    if folder not in _REF_CACHE:
        try:
            fmt = json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8")).get("format")
        except (OSError, ValueError, AttributeError):
            fmt = None
        if isinstance(fmt, str) and fmt.startswith("big-c-reference"):  # BIG-C: a robustness task's reference
            from ..robustness.task import RobustnessReference

            _REF_CACHE[folder] = RobustnessReference(folder)
            return _REF_CACHE[folder]
        ref = Reference(folder)
        ref.check_complete()
        for flag in registry.flags():  # load (and check) every label file once per process
            ref.labels(flag)
        _REF_CACHE[folder] = ref
    return _REF_CACHE[folder]


def evaluate(name: str, path: str, kind: str, reference_folder: str, n_boot: int, seed: int, level: float,
             resolutions: Sequence[int] = registry.SIZES) -> Entry:
    """Score one entry; never raises for a bad entry (its problems are recorded), only for bad
    reference data (:class:`ReferenceDataError`)."""
    entry = Entry(name, path, kind)
    t0 = time.perf_counter()
    ref = _reference(reference_folder)
    try:
        if kind == KIND_OTHER:
            raise UsageError([Problem("not a submission: expected a result .zip, a folder of prediction CSV files "
                                      "or a scoring output folder with details.json")])
        if kind == KIND_SCORED:
            details, file = read_details(path)
            result = Result.from_details(name, details, str(file))
            problems = []
            if result.split != ref.split:
                problems.append(Problem(f"scored on the {result.split} split; this leaderboard is for the {ref.split} "
                                        "split", file=str(file)))
            elif result.reference_sha256 != ref.sha256():
                problems.append(Problem(f"scored against other reference labels (sha256 {result.reference_sha256[:12]}, "
                                        f"this reference {ref.sha256()[:12]}); re-score the submission itself",
                                        file=str(file)))
            if result.resolution not in resolutions:
                problems.append(Problem(f"scored at {result.resolution} px; this leaderboard accepts "
                                        f"{', '.join(map(str, resolutions))} px", file=str(file)))
            if problems:
                raise UsageError(problems)
            entry.timings = {"read": time.perf_counter() - t0}
        elif _is_robustness(ref):
            result = _score_robustness(name, path, kind, ref, resolutions)
            entry.timings = {"score": time.perf_counter() - t0}
        else:
            result, _, entry.timings = score_path(path, ref, name=name, n_boot=n_boot, seed=seed, level=level,
                                                  resolutions=resolutions)
        entry.result = result
    except ReferenceDataError:
        raise
    except BigError as exc:
        entry.problems = exc.report(limit=50)
        entry.summary = exc.summary
    except Exception as exc:  # an unreadable file or a bug must not stop the other submissions
        entry.problems = [f"could not be scored: {type(exc).__name__}: {exc}"]
        entry.summary = entry.problems[0]
    return entry


def _is_robustness(ref) -> bool:
    return type(ref).__name__ == "RobustnessReference"


def _score_robustness(name: str, path: str, kind: str, ref, resolutions) -> Result:
    """A BIG-C prediction folder (the ingestion program's output) scored by the robustness scorer's functions."""
    from ..robustness import scoring as rs
    from ..submission import read_submission

    if kind != KIND_FOLDER:
        raise UsageError([Problem("BIG-C takes code submissions only: rank their scoring outputs (folders with "
                                  "details.json) or their prediction folders (the ingestion program's output)")])
    sub = read_submission(path, split=ref.split, expected_n=ref.expected_n, resolutions=resolutions)
    per = rs.score_predictions(sub.predictions, ref)
    scores = rs.scores_from(per, sub.size)
    details = rs.build_details(per, scores, ref, sub.size, {"source": sub.source}, {})
    return Result.from_details(name, details, path)


def _evaluate_task(task) -> Entry:
    return evaluate(*task)


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------

@dataclass
class Board:
    resolution: int
    metric: str
    rows: List[Ranked]
    results: Dict[str, Result]


@dataclass
class LeaderboardRun:
    entries: List[Entry]
    boards: List[Board]
    files: Dict[str, Path]
    wall_s: float
    n_boot: int
    seed: int
    level: float
    split: str
    reference_sha256: str
    reference_synthetic: bool
    #: wall seconds of the run's phases: setup (reference, discovery), scoring (all entries), output
    phase_s: Dict[str, float] = field(default_factory=dict)
    benchmark: str = "big"  # or "robustness" (BIG-C): from the reference folder

    @property
    def skipped(self) -> List[Entry]:
        return [e for e in self.entries if not e.ok]

    def stage_seconds(self, cpu: bool = False) -> Dict[str, float]:
        """Per-entry seconds of reading (unzip, parse, validate), metrics and bootstrap, summed over
        all entries and worker processes: wall seconds, or CPU seconds with ``cpu=True``."""
        out = {"read": 0.0, "metrics": 0.0, "bootstrap": 0.0}
        for e in self.entries:
            for k in out:
                out[k] += e.timings.get("cpu_" + k if cpu else k, 0.0)
        return out


def build_boards(entries: Sequence[Entry]) -> List[Board]:
    by_res: Dict[int, Dict[str, Result]] = {}
    for e in entries:
        if e.ok:
            by_res.setdefault(e.result.resolution, {})[e.name] = e.result
    boards = []
    for res in sorted(by_res):
        results = by_res[res]
        for m in METRICS:
            vals = {n: {f: r.values[f][m] for f in registry.flags()} for n, r in results.items()}
            boards.append(Board(res, m, rank(vals, {n: r.mean[m] for n, r in results.items()}), results))
    return boards


class _PlainProgress:
    """Stand-in for tqdm where it is not installed (e.g. a bare CodaBench image): a line per 10%."""

    def __init__(self, total: int, enabled: bool):
        import sys

        self.total, self.n, self.enabled, self.err, self._last = total, 0, enabled, sys.stderr, -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def set_postfix_str(self, *a, **k) -> None:
        pass

    def update(self, k: int = 1) -> None:
        self.n += k
        step = 10 * self.n // max(self.total, 1)
        if self.enabled and step != self._last:
            self._last = step
            print(f"scoring: {self.n}/{self.total}", file=self.err, flush=True)


def _progress_bar(total: int, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:
        return _PlainProgress(total, enabled)
    return tqdm(total=total, desc="scoring", unit="sub", disable=not enabled, dynamic_ncols=True)


def run(submissions: PathLike, reference: PathLike, out: PathLike, *, n_boot: int = 1000, seed: int = 0,
        level: float = 0.95, jobs: int = 1, resolutions: Sequence[int] = registry.SIZES, progress: bool = True,
        log: Callable[[str], None] = print) -> LeaderboardRun:
    """Re-score every entry of ``submissions`` and write the leaderboards into ``out``."""
    t0 = time.perf_counter()
    if n_boot < 0:
        raise UsageError([Problem(f"--bootstrap must be 0 (no intervals) or more, got {n_boot}")])
    out = Path(out)
    ref_folder = str(Path(reference).resolve())
    ref = _reference(ref_folder)
    found = discover(submissions, exclude=[out])
    if not found:
        raise UsageError([Problem(f"{submissions} holds no submissions (result zips, prediction folders or scoring "
                                  "output folders)")])
    tasks = [(n, str(p), k, ref_folder, n_boot, seed, level, tuple(resolutions)) for n, p, k in found]
    jobs = max(1, min(int(jobs or 1), len(tasks)))
    log(f"re-scoring {len(tasks)} entr{'y' if len(tasks) == 1 else 'ies'} of {submissions} against the "
        f"{ref.split} reference{' (SYNTHETIC)' if ref.synthetic else ''}"
        + (f", bootstrap B={n_boot}" if n_boot else ", no bootstrap") + f", {jobs} process(es)")
    t_setup = time.perf_counter()
    entries: Dict[str, Entry] = {}
    with _progress_bar(len(tasks), progress) as bar:
        if jobs == 1:
            for task in tasks:
                bar.set_postfix_str(task[0][:30], refresh=False)
                entries[task[0]] = evaluate(*task)
                bar.update()
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            # one BLAS thread per worker: the workers already use every core, more threads only contend
            saved = {k: os.environ.get(k) for k in _THREAD_VARS}
            os.environ.update({k: "1" for k in _THREAD_VARS if saved[k] is None})
            try:
                pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))
                futures = {pool.submit(_evaluate_task, t): t[0] for t in tasks}
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
            with pool:
                try:
                    for fut in as_completed(futures):
                        entries[futures[fut]] = fut.result()
                        bar.update()
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
    ordered = [entries[t[0]] for t in tasks]
    t_scored = time.perf_counter()
    boards = build_boards(ordered)
    lb = LeaderboardRun(ordered, boards, {}, 0.0, n_boot, seed, level, ref.split, ref.sha256(), ref.synthetic,
                        benchmark="robustness" if _is_robustness(ref) else "big")
    for e in lb.skipped:
        log(f"skipped {e.name} ({e.kind}): {e.summary}")
    lb.files = write_outputs(lb, out, source=str(submissions))
    lb.wall_s = time.perf_counter() - t0
    lb.phase_s = {"setup": t_setup - t0, "scoring": t_scored - t_setup, "output": t0 + lb.wall_s - t_scored}
    ok = len(ordered) - len(lb.skipped)
    log(f"{ok} submission(s) ranked, {len(lb.skipped)} skipped; leaderboards in {out} "
        f"({lb.wall_s:.1f} s)")
    return lb


# ---------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------

def board_csv(board: Board) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    flags = registry.flags()
    w.writerow(["rank_by_mean", "rank_by_avg_rank", "submission", f"mean_{board.metric}", "ci_low", "ci_high",
                "avg_rank"] + list(flags) + [f"{f}_rank" for f in flags]
               + [f"{f}_ci_{s}" for f in flags for s in ("low", "high")] + ["n_boot", "source"])
    for r in board.rows:
        res = board.results[r.name]
        ci = res.mean_ci.get(board.metric)
        cis = []
        for f in flags:
            c = res.ci.get(f, {}).get(board.metric)
            cis += ["", ""] if c is None else [f"{c[0]:.10f}", f"{c[1]:.10f}"]
        w.writerow([r.rank_by_mean, r.rank_by_avg_rank, r.name, f"{r.mean:.10f}",
                    "" if ci is None else f"{ci[0]:.10f}", "" if ci is None else f"{ci[1]:.10f}", f"{r.avg_rank:.4f}"]
                   + [f"{r.values[f]:.10f}" for f in flags] + [f"{r.dataset_ranks[f]:g}" for f in flags]
                   + cis + [res.n_boot if ci is not None else 0, res.source])
    return buf.getvalue()


def _title(metric: str) -> str:
    return registry.METRIC_TITLES[metric]


def _intro_lines(lb: LeaderboardRun, source: str) -> List[str]:
    ok = len(lb.entries) - len(lb.skipped)
    pct = int(round(lb.level * 100))
    lines = [f"Re-scored {len(lb.entries)} entr{'y' if len(lb.entries) == 1 else 'ies'} of `{source}` on the "
             f"{lb.split} split (reference sha256 {lb.reference_sha256[:12]}): {ok} ranked, {len(lb.skipped)} skipped.",
             "", RANKING_NOTE if lb.benchmark != "robustness" else ROBUSTNESS_NOTE, "", AVG_RANK_NOTE, ""]
    if lb.n_boot:
        lines.append(f"Intervals: {pct}% percentile bootstrap over the {lb.split} samples (B={lb.n_boot}, seed {lb.seed}, "
                     "as the scorer computes them); for scoring output folders, the intervals in their details.json.")
    else:
        lines.append("No bootstrap intervals (run with --bootstrap B to add them).")
    if lb.reference_synthetic:
        lines += ["", "**SYNTHETIC reference labels: these rankings only exercise the pipeline.**"]
    return lines


def leaderboard_markdown(lb: LeaderboardRun, source: str) -> str:
    flags = registry.flags()
    lines = [f"# BIG leaderboards ({lb.split} split)", ""] + _intro_lines(lb, source)
    pct = int(round(lb.level * 100))
    current = None
    for b in lb.boards:
        if b.resolution != current:
            current = b.resolution
            lines += ["", f"## {b.resolution} px"]
        t = _title(b.metric)
        lines += ["", f"### {t}" + (" (the competition's ranking)" if b.metric == "auc" else ""), ""]
        head = ["Rank (mean)", "Submission", f"Mean {t}", f"{pct}% CI", "Rank (avg rank)", "Avg rank"] + \
               [registry.get(f).python_class for f in flags]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|---:|---|---:|---|---:|---:|" + "---:|" * len(flags))
        for r in b.rows:
            res = b.results[r.name]
            lines.append("| " + " | ".join([str(r.rank_by_mean), _md_cell(r.name), fmt(r.mean),
                                            fmt_ci(res.mean_ci.get(b.metric)), str(r.rank_by_avg_rank),
                                            f"{r.avg_rank:.2f}"] + [fmt(r.values[f]) for f in flags]) + " |")
    if not lb.boards:
        lines += ["", "No submission could be ranked."]
    lines += ["", "## Skipped entries", ""]
    if lb.skipped:
        lines += ["| Entry | Kind | Why |", "|---|---|---|"]
        for e in lb.skipped:
            why = "<br>".join(_md_cell(p) for p in e.problems[:10]) + ("<br>..." if len(e.problems) > 10 else "")
            lines.append(f"| {_md_cell(e.name)} | {e.kind} | {why} |")
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"


LB_STYLE = PAGE_STYLE + (".tabs button{margin:.15em;padding:.3em .8em;border:1px solid #999;background:#fff;"
                         "cursor:pointer;border-radius:3px}.tabs button.on{background:#234;color:#fff}"
                         "td.name{text-align:left}.ci{color:#666;font-size:.9em}td.ci{white-space:nowrap}td.r1{font-weight:bold}"
                         ".wrap{overflow-x:auto}.bad td{text-align:left;vertical-align:top}"
                         ".bad ul{margin:0;padding-left:1.2em}.bad th{text-align:left}")

LB_SCRIPT = """
var cur={res:null,metric:'auc'};
function show(k,v){cur[k]=v;document.querySelectorAll('section.board').forEach(function(s){
 s.style.display=(s.dataset.res==cur.res&&s.dataset.metric==cur.metric)?'':'none';});
 document.querySelectorAll('.tabs button').forEach(function(b){
 b.className=(cur[b.dataset.k]==b.dataset.v)?'on':'';});}
document.addEventListener('DOMContentLoaded',function(){var b=document.querySelector('section.board');
 if(b){show('res',b.dataset.res);}});
"""


def leaderboard_html(lb: LeaderboardRun, source: str) -> str:
    flags = registry.flags()
    pct = int(round(lb.level * 100))
    title = f"BIG leaderboards ({lb.split} split)"

    def md_inline(s: str) -> str:
        s = html.escape(s)
        s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", s)

    intro = "".join(f"<p>{md_inline(x)}</p>" for x in _intro_lines(lb, source) if x)
    resolutions = sorted({b.resolution for b in lb.boards})
    tabs = ""
    if lb.boards:
        tabs = ("<div class='tabs'>Resolution: " + "".join(
            f"<button data-k='res' data-v='{r}' onclick=\"show('res','{r}')\">{r} px</button>" for r in resolutions)
            + "<br>Metric: " + "".join(
            f"<button data-k='metric' data-v='{m}' onclick=\"show('metric','{m}')\">{html.escape(_title(m))}</button>"
            for m in METRICS) + "</div>")
    sections = []
    for b in lb.boards:
        t = html.escape(_title(b.metric))
        head = ["Rank (mean)", "Submission", f"Mean {t}", f"{pct}% CI", "Rank (avg rank)", "Avg rank"] + \
               [registry.get(f).python_class for f in flags]
        rows = []
        for r in b.rows:
            res = b.results[r.name]
            cells = [f"<td class='r{r.rank_by_mean}'>{r.rank_by_mean}</td>",
                     f"<td class='name' title='{html.escape(res.source)}'>{html.escape(r.name)}</td>",
                     f"<td>{fmt(r.mean)}</td>", f"<td class='ci'>{fmt_ci(res.mean_ci.get(b.metric))}</td>",
                     f"<td class='r{r.rank_by_avg_rank}'>{r.rank_by_avg_rank}</td>", f"<td>{r.avg_rank:.2f}</td>"]
            for f in flags:
                ci = res.ci.get(f, {}).get(b.metric)
                tip = f"rank {r.dataset_ranks[f]:g}" + (f"; {pct}% CI {fmt_ci(ci)}" if ci else "")
                cells.append(f"<td title='{tip}'>{fmt(r.values[f])}</td>")
            rows.append("<tr>" + "".join(cells) + "</tr>")
        note = " &mdash; the competition's ranking" if b.metric == "auc" else ""
        sections.append(f"<section class='board' data-res='{b.resolution}' data-metric='{b.metric}'>"
                        f"<h2>{b.resolution} px &middot; {t}{note}</h2><div class='wrap'><table><tr>"
                        + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(rows) + "</table></div></section>")
    if not lb.boards:
        sections.append("<p><b>No submission could be ranked.</b></p>")
    if lb.skipped:
        bad = "".join(f"<tr><td>{html.escape(e.name)}</td><td>{html.escape(e.kind)}</td><td><ul>"
                      + "".join(f"<li><code>{html.escape(p)}</code></li>" for p in e.problems) + "</ul></td></tr>"
                      for e in lb.skipped)
        skipped = f"<h2>Skipped entries</h2><table class='bad'><tr><th>Entry</th><th>Kind</th><th>Why</th></tr>{bad}</table>"
    else:
        skipped = "<h2>Skipped entries</h2><p>None.</p>"
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{LB_STYLE}</style><script>{LB_SCRIPT}</script></head><body><h1>{html.escape(title)}</h1>"
            f"{intro}{tabs}{''.join(sections)}{skipped}<p class='ci'>Written {stamp} by big leaderboard.</p>"
            "</body></html>")


def leaderboard_json(lb: LeaderboardRun, source: str) -> dict:
    boards = {}
    for b in lb.boards:
        boards.setdefault(str(b.resolution), {})[b.metric] = [
            {"rank_by_mean": r.rank_by_mean, "rank_by_avg_rank": r.rank_by_avg_rank, "submission": r.name,
             "mean": r.mean, "ci": list(b.results[r.name].mean_ci.get(b.metric) or []) or None,
             "avg_rank": r.avg_rank, "values": r.values, "dataset_ranks": r.dataset_ranks,
             "source": b.results[r.name].source} for r in b.rows]
    return {"source": source, "split": lb.split, "reference_sha256": lb.reference_sha256,
            "reference_synthetic": lb.reference_synthetic, "n_boot": lb.n_boot, "seed": lb.seed, "level": lb.level,
            "benchmark": lb.benchmark,
            "competition_ranking": ("mean AUC (CodaBench primary column)" if lb.benchmark != "robustness" else
                                    "mean corrupted AUC, auc_c (CodaBench primary column)"), "boards": boards,
            "skipped": [{"name": e.name, "path": e.path, "kind": e.kind, "summary": e.summary, "problems": e.problems}
                        for e in lb.skipped]}


def skipped_csv(lb: LeaderboardRun) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["entry", "kind", "path", "summary", "problems"])
    for e in lb.skipped:
        w.writerow([e.name, e.kind, e.path, e.summary, " | ".join(e.problems)])
    return buf.getvalue()


CSV_RE = re.compile(r"^leaderboard_\d+px_[a-z]+\.csv$")


def write_outputs(lb: LeaderboardRun, out: PathLike, *, source: str) -> Dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: Dict[str, Path] = {}
    for b in lb.boards:
        name = f"leaderboard_{b.resolution}px_{b.metric}.csv"
        files[name] = write_text_atomic(out / name, board_csv(b))
    for stale in out.iterdir():  # boards of an earlier run that this run has not rewritten
        if CSV_RE.match(stale.name) and stale.name not in files:
            stale.unlink()
    files["skipped.csv"] = write_text_atomic(out / "skipped.csv", skipped_csv(lb))
    files["leaderboard.json"] = write_text_atomic(out / "leaderboard.json",
                                                  json.dumps(leaderboard_json(lb, source), indent=1, allow_nan=False) + "\n")
    files["leaderboard.md"] = write_text_atomic(out / "leaderboard.md", leaderboard_markdown(lb, source))
    files["leaderboard.html"] = write_text_atomic(out / "leaderboard.html", leaderboard_html(lb, source))
    return files
