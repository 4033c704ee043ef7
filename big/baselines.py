"""Published baseline results (thesis Tables 5 and 6, Doerrich et al. 2024) as one table, one naming.

The numbers live in ``baselines/tables/`` (``means.csv``: 12-dataset means; ``per_dataset.csv``:
per-dataset values; sources in ``SOURCES.md``). This module only reads them. Models carry their timm
names (``resnet18``, ``vit_base_patch16_224``, ``vit_base_patch16_224.dino``, ...); ``training`` is
one of :data:`TRAININGS`; ``weighted`` is the mm-PT loss weighting (always ``no`` elsewhere).

The tables are found at ``Path(big.__file__).resolve().parent.parent / "baselines" / "tables"``:
``baselines/tables`` in the repository, ``scoring_program/baselines/tables`` in a bundle where
``big/`` sits beside ``score.py``. ``BIG_BASELINE_TABLES`` overrides the folder. When the folder is
absent, :func:`tables_dir` returns None and callers say "no baseline tables available".

Only the standard library is used (no pandas): the report may run in a bare CodaBench image.
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from . import registry
from .errors import Problem, ReferenceDataError

PathLike = Union[str, os.PathLike]
MEANS_FILE = "means.csv"
PER_DATASET_FILE = "per_dataset.csv"
TRAININGS: Tuple[str, ...] = ("mm-PT", "end-to-end", "linear-probing", "kNN")
#: mean sources in order of preference for the same (model, training, weighted, resolution, metric)
MEAN_TABLES: Tuple[str, ...] = ("thesis-T5", "thesis-T6", "doerrich-average")
#: what the detailed results page overlays by default: the thesis' own baselines (mm-PT ResNet-18
#: and ViT-B/16, weighted and not) and the same two backbones trained end-to-end (Doerrich et al.)
DEFAULT_OVERLAY: Tuple[Tuple[str, str, bool], ...] = (
    ("resnet18", "mm-PT", False),
    ("resnet18", "mm-PT", True),
    ("vit_base_patch16_224", "mm-PT", False),
    ("vit_base_patch16_224", "mm-PT", True),
    ("resnet18", "end-to-end", False),
    ("vit_base_patch16_224", "end-to-end", False),
)

_MEANS_COLUMNS = ("table", "model", "training", "weighted", "resolution", "auc", "auc_std", "balacc",
                  "balacc_std", "kappa", "kappa_std", "source")
_PER_DATASET_COLUMNS = ("model", "training", "weighted", "resolution", "dataset", "auc", "balacc", "kappa", "source")


def default_tables_dir() -> Path:
    env = os.environ.get("BIG_BASELINE_TABLES")
    if env:
        return Path(env)
    import big

    return Path(big.__file__).resolve().parent.parent / "baselines" / "tables"


def tables_dir(folder: Optional[PathLike] = None) -> Optional[Path]:
    """The tables folder if it holds both CSV files, else None."""
    d = Path(folder) if folder is not None else default_tables_dir()
    if (d / MEANS_FILE).is_file() and (d / PER_DATASET_FILE).is_file():
        return d
    return None


# ---------------------------------------------------------------------------------------------
# reading (strict: a malformed table names file, row and column)
# ---------------------------------------------------------------------------------------------

def _read_csv(path: Path, columns: Sequence[str]) -> List[dict]:
    problems: List[Problem] = []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        if list(header) != list(columns):
            raise ReferenceDataError([Problem(f"header is {','.join(header)}; expected {','.join(columns)}",
                                              file=str(path), row=1)], "a baseline table has the wrong header")
        rows = []
        for i, r in enumerate(reader, start=2):
            for key, value in r.items():
                if key is None or value is None:
                    problems.append(Problem(f"expected {len(columns)} fields", file=str(path), row=i))
                    break
            else:
                r["_row"] = i
                rows.append(r)
    if problems:
        raise ReferenceDataError(problems, f"{len(problems)} malformed row(s) in a baseline table")
    return rows


def _number(r: dict, col: str, path: Path, problems: List[Problem], *, lo: float = 0.0, hi: float = 1.0) -> Optional[float]:
    text = (r.get(col) or "").strip()
    if not text:
        return None
    try:
        v = float(text)
    except ValueError:
        problems.append(Problem(f"not a number: {text!r}", file=str(path), row=r["_row"], column=col))
        return None
    if not (math.isfinite(v) and lo <= v <= hi):
        problems.append(Problem(f"{v} outside [{lo}, {hi}]", file=str(path), row=r["_row"], column=col))
        return None
    return v


def _key_fields(r: dict, path: Path, problems: List[Problem]) -> Optional[Tuple[str, str, bool, int]]:
    ok = True
    if r["training"] not in TRAININGS:
        problems.append(Problem(f"training {r['training']!r} is not one of {', '.join(TRAININGS)}",
                                file=str(path), row=r["_row"], column="training"))
        ok = False
    if r["weighted"] not in ("yes", "no"):
        problems.append(Problem(f"weighted must be yes or no, found {r['weighted']!r}", file=str(path),
                                row=r["_row"], column="weighted"))
        ok = False
    try:
        res = int(r["resolution"])
        if res not in registry.SIZES:
            raise ValueError
    except ValueError:
        problems.append(Problem(f"resolution {r['resolution']!r} is not one of {registry.SIZES}", file=str(path),
                                row=r["_row"], column="resolution"))
        ok = False
    if not r["model"].strip():
        problems.append(Problem("empty model name", file=str(path), row=r["_row"], column="model"))
        ok = False
    if not r["source"].strip():
        problems.append(Problem("every row needs its source", file=str(path), row=r["_row"], column="source"))
        ok = False
    return (r["model"].strip(), r["training"], r["weighted"] == "yes", res) if ok else None


def load_means(folder: Optional[PathLike] = None) -> List[dict]:
    """Rows of means.csv as dicts with typed values (None where a table has no number)."""
    d = tables_dir(folder)
    if d is None:
        return []
    path = d / MEANS_FILE
    problems: List[Problem] = []
    out = []
    for r in _read_csv(path, _MEANS_COLUMNS):
        key = _key_fields(r, path, problems)
        if r["table"] not in MEAN_TABLES:
            problems.append(Problem(f"table {r['table']!r} is not one of {', '.join(MEAN_TABLES)}", file=str(path),
                                    row=r["_row"], column="table"))
        vals = {c: _number(r, c, path, problems, lo=-1.0 if c == "kappa" else 0.0)
                for c in ("auc", "auc_std", "balacc", "balacc_std", "kappa", "kappa_std")}
        if key is not None:
            model, training, weighted, res = key
            out.append({"table": r["table"], "model": model, "training": training, "weighted": weighted,
                        "resolution": res, **vals, "source": r["source"].strip(), "row": r["_row"]})
    if problems:
        raise ReferenceDataError(problems, f"{len(problems)} bad value(s) in {path}")
    return out


def load_per_dataset(folder: Optional[PathLike] = None) -> List[dict]:
    """Rows of per_dataset.csv as dicts with typed values (None where a table has no number)."""
    d = tables_dir(folder)
    if d is None:
        return []
    path = d / PER_DATASET_FILE
    problems: List[Problem] = []
    flags = set(registry.flags())
    out = []
    for r in _read_csv(path, _PER_DATASET_COLUMNS):
        key = _key_fields(r, path, problems)
        if r["dataset"] not in flags:
            problems.append(Problem(f"dataset {r['dataset']!r} is not a BIG dataset", file=str(path),
                                    row=r["_row"], column="dataset"))
            continue
        vals = {c: _number(r, c, path, problems, lo=-1.0 if c == "kappa" else 0.0) for c in registry.METRIC_KEYS}
        if key is not None:
            model, training, weighted, res = key
            out.append({"model": model, "training": training, "weighted": weighted, "resolution": res,
                        "dataset": r["dataset"], **vals, "source": r["source"].strip(), "row": r["_row"]})
    if problems:
        raise ReferenceDataError(problems, f"{len(problems)} bad value(s) in {path}")
    return out


# ---------------------------------------------------------------------------------------------
# one baseline = one (model, training, weighted) at one resolution
# ---------------------------------------------------------------------------------------------

@dataclass
class Baseline:
    model: str
    training: str
    weighted: bool
    resolution: int
    #: metric -> {flag: value}, only where a table gives per-dataset values
    per_dataset: Dict[str, Dict[str, float]] = field(default_factory=dict)
    #: metric -> 12-dataset mean (from a means table; else the mean of complete per-dataset values)
    mean: Dict[str, float] = field(default_factory=dict)
    #: metric -> std as published (thesis Table 6: the mean of per-dataset seed stds)
    std: Dict[str, float] = field(default_factory=dict)
    #: metric -> where the number(s) come from
    sources: Dict[str, str] = field(default_factory=dict)
    #: short names of the tables used: thesis-T5, thesis-T6, doerrich-average, doerrich-per-dataset
    tables: List[str] = field(default_factory=list)

    @property
    def key(self) -> Tuple[str, str, bool]:
        return (self.model, self.training, self.weighted)

    @property
    def label(self) -> str:
        return f"{self.model} {self.training}" + (" weighted" if self.weighted else "")

    def value(self, metric: str) -> Union[Dict[str, float], float, None]:
        """Per-dataset values where the tables have all 12, the mean otherwise, None if neither."""
        per = self.per_dataset.get(metric)
        if per and len(per) == len(registry.flags()):
            return dict(per)
        return self.mean.get(metric)


def baselines_for(resolution: int, *, folder: Optional[PathLike] = None,
                  only: Optional[Iterable[Tuple[str, str, bool]]] = None) -> List[Baseline]:
    """All baselines at ``resolution`` (optionally only the given (model, training, weighted) keys,
    in that order); [] when the tables are absent. Per-dataset values where they exist, means
    otherwise (see :meth:`Baseline.value`)."""
    resolution = int(resolution)
    found: Dict[Tuple[str, str, bool], Baseline] = {}

    def get(model, training, weighted) -> Baseline:
        k = (model, training, weighted)
        if k not in found:
            found[k] = Baseline(model, training, weighted, resolution)
        return found[k]

    rank = {t: i for i, t in enumerate(MEAN_TABLES)}
    for r in sorted(load_means(folder), key=lambda r: rank[r["table"]]):
        if r["resolution"] != resolution:
            continue
        b = get(r["model"], r["training"], r["weighted"])
        for m in registry.METRIC_KEYS:
            if r[m] is not None and m not in b.mean:
                b.mean[m] = r[m]
                b.sources[m] = r["source"]
                if r["table"] not in b.tables:
                    b.tables.append(r["table"])
                if r[f"{m}_std"] is not None:
                    b.std[m] = r[f"{m}_std"]
    for r in load_per_dataset(folder):
        if r["resolution"] != resolution:
            continue
        b = get(r["model"], r["training"], r["weighted"])
        for m in registry.METRIC_KEYS:
            if r[m] is not None:
                b.per_dataset.setdefault(m, {})[r["dataset"]] = r[m]
                if "doerrich-per-dataset" not in b.tables:
                    b.tables.append("doerrich-per-dataset")
                src = b.sources.get(m, "")
                if "per-dataset" not in src:
                    b.sources[m] = ("per-dataset: " + _source_family(r["source"])) + (f"; mean: {src}" if src else "")
    for b in found.values():  # means computed from complete per-dataset values when no table gives one
        for m, per in b.per_dataset.items():
            if m not in b.mean and len(per) == len(registry.flags()):
                b.mean[m] = sum(per.values()) / len(per)
    if only is None:
        order = {t: i for i, t in enumerate(TRAININGS)}
        return sorted(found.values(), key=lambda b: (order[b.training], b.model, b.weighted))
    return [found[k] for k in only if k in found]


def _source_family(source: str) -> str:
    """'Doerrich et al. 2024, repo@commit:assets/benchmark_results_x.png' -> without the file name."""
    head, _, tail = source.rpartition(":")
    return head if head and "benchmark_results_" in tail else source


def overlay(baselines: Sequence[Baseline], metric: str) -> Dict[str, Union[Dict[str, float], float]]:
    """``{label: {flag: value} | mean}`` for :mod:`big.plots` (baselines without the metric left out)."""
    out: Dict[str, Union[Dict[str, float], float]] = {}
    for b in baselines:
        v = b.value(metric)
        if v is not None:
            out[b.label] = v
    return out


def overlays(baselines: Sequence[Baseline], metrics: Sequence[str] = registry.METRIC_KEYS) -> Dict[str, dict]:
    """``{metric: overlay(...)}`` for :func:`big.plots.website_plots`."""
    return {m: overlay(baselines, m) for m in metrics}


# ---------------------------------------------------------------------------------------------
# command line: `big baselines` and `big report` (this module is import-light, so the report
# area registers its verbs here; the handlers import the heavy parts lazily)
# ---------------------------------------------------------------------------------------------

def format_table(bs: Sequence[Baseline], *, fmt: str = "md") -> str:
    """The 12-dataset means of ``bs`` as a Markdown or CSV table (per-dataset values marked *)."""
    head = ["model", "training", "weighted", "resolution"] + [m for m in registry.METRIC_KEYS] + ["tables"]
    rows = []
    for b in bs:
        cells = [b.model, b.training, "yes" if b.weighted else "no", str(b.resolution)]
        for m in registry.METRIC_KEYS:
            v = b.mean.get(m)
            txt = "" if v is None else f"{v:.4f}"
            if v is not None and m in b.std:
                txt += f" ± {b.std[m]:.4f}" if fmt == "md" else ""
            if isinstance(b.value(m), dict) and fmt == "md":
                txt += " *"
            cells.append(txt)
        cells.append(" ".join(b.tables))
        rows.append(cells)
    if fmt == "csv":
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(head)
        w.writerows(rows)
        return buf.getvalue()
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    out.append("")
    out.append("* per-dataset values exist (Doerrich et al. 2024, AUC); ± = published spread over seeds. "
               "Sources: baselines/tables/SOURCES.md")
    return "\n".join(out) + "\n"


def _cmd_baselines(args) -> int:
    if tables_dir() is None:
        print(f"no baseline tables available (looked in {default_tables_dir()})")
        return 1
    sizes = [args.resolution] if args.resolution else list(registry.SIZES)
    bs = [b for r in sizes for b in baselines_for(r)
          if (args.training is None or b.training == args.training) and (args.model is None or b.model == args.model)]
    if not bs:
        print("no baseline matches these filters")
        return 1
    print(format_table(bs, fmt=args.format), end="")
    return 0


def _cmd_report(args) -> int:
    import json

    from .errors import UsageError

    out = Path(args.output)
    path = out / "details.json"
    if not path.is_file():
        raise UsageError([Problem(f"no details.json in {out}: give a scoring output folder (big score --output)",
                                  file=str(out))])
    details = json.loads(path.read_text(encoding="utf-8"))
    sub = ref = None
    if (args.submission is None) != (args.reference is None):
        raise UsageError([Problem("give both --submission and --reference (for the ROC curves and confusion "
                                  "matrices), or neither")])
    if args.reference:
        from .reference import Reference
        from .submission import read_submission

        ref = Reference(args.reference)
        if ref.sha256() != details.get("reference_sha256"):
            raise UsageError([Problem(f"reference sha256 {ref.sha256()} differs from the one these scores were "
                                      f"computed with ({details.get('reference_sha256')})", file=str(args.reference))])
        sub = read_submission(args.submission, split=ref.split, expected_n=ref.expected_n,
                              resolutions=[details["resolution"]])
    from .report import write_report

    page = write_report(out, details, sub, ref)
    print(f"detailed results: {page}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("baselines", help="print the published baseline results (thesis, Doerrich et al.)")
    p.add_argument("--resolution", type=int, choices=registry.SIZES, help="only this resolution (default all four)")
    p.add_argument("--training", choices=TRAININGS, help="only this training scheme")
    p.add_argument("--model", help="only this model (timm name, e.g. resnet18)")
    p.add_argument("--format", choices=["md", "csv"], default="md", help="Markdown (default) or CSV")
    p.set_defaults(func=_cmd_baselines)

    p = subparsers.add_parser("report", help="redraw detailed_results.html (and its PNGs) in a scoring output folder")
    p.add_argument("output", help="scoring output folder holding details.json")
    p.add_argument("--submission", help="the scored submission (zip or folder): adds ROC curves and confusion matrices")
    p.add_argument("--reference", help="the reference folder it was scored against (with --submission)")
    p.set_defaults(func=_cmd_report)
