"""``big compare`` and ``big leaderboard`` (parsing only; nothing heavy is imported here)."""
from __future__ import annotations

import argparse
import os

from ..errors import Problem, UsageError
from ..cli import sizes_arg


def _level(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number like 0.95, got {text!r}") from None
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"the interval level must lie strictly between 0 and 1, got {v}")
    return v


def _compare(args) -> int:
    from . import compare

    if args.predictions and args.results:
        raise UsageError([Problem("give either scoring results (RESULT ...) or --predictions A B with --reference, "
                                  "not both")])
    if args.predictions:
        if not args.reference:
            raise UsageError([Problem("--predictions needs --reference DIR (the reference folder the predictions are "
                                      "scored against)")])
        return _compare_predictions(args)
    if not args.results:
        raise UsageError([Problem("nothing to compare: give one or more scoring output folders (RESULT or "
                                  "name=RESULT), or --predictions A.zip B.zip --reference DIR")])
    if args.reference:
        raise UsageError([Problem("--reference is only used with --predictions; scoring results carry their scores")])
    results = compare.load_results(args.results)
    compare.write_comparison(results, args.out, plots=not args.no_plots, baselines=args.baselines)
    _print_means(results)
    return 0


def _print_means(results) -> None:
    from ..registry import METRIC_KEYS

    width = max(len(r.name) for r in results)
    print(f"{'':{width}s}  " + "  ".join(f"{m:>7s}" for m in METRIC_KEYS))
    for r in results:
        print(f"{r.name:{width}s}  " + "  ".join(f"{r.mean[m]:7.4f}" for m in METRIC_KEYS))


def _compare_predictions(args) -> int:
    from ..errors import SubmissionError
    from ..reference import Reference
    from . import compare, significance

    ref = Reference(args.reference)
    ref.check_complete()
    parsed = [compare.parse_spec(s) for s in args.predictions]
    names = compare.unique_names(parsed)
    results, subs, problems = [], [], []
    for name, (_, path) in zip(names, parsed):
        try:
            res, sub, _ = compare.score_path(path, ref, name=name)
            results.append(res)
            subs.append(sub)
        except SubmissionError as exc:
            problems += [Problem(f"{name}: {p}") for p in exc.problems]
    if problems:
        raise SubmissionError(problems, summary="the predictions cannot be compared: " +
                              ("one submission is invalid" if len(problems) == 1 else "invalid submission(s)"))
    compare.check_compatible(results)
    print(f"paired bootstrap, B={args.bootstrap}, seed {args.seed} ...", flush=True)
    sig = significance.compare_submissions(ref, subs[0], subs[1], n_boot=args.bootstrap, seed=args.seed,
                                           level=args.level, name_a=names[0], name_b=names[1])
    compare.write_comparison(results, args.out, plots=not args.no_plots, baselines=args.baselines, significance=sig)
    _print_means(results)
    for m, s in sig["mean"].items():
        ci = "undefined" if s["ci"] is None else f"[{s['ci'][0]:+.4f}, {s['ci'][1]:+.4f}]"
        print(f"mean {m}: {names[0]} - {names[1]} = {s['diff']:+.4f} {ci}, P(A>B) = {s['p_a_better']}: "
              f"{significance._verdict_text(s['verdict'], sig)}")
    return 0


def _leaderboard(args) -> int:
    from . import leaderboard

    lb = leaderboard.run(args.submissions, args.reference, args.out, n_boot=args.bootstrap, seed=args.seed,
                         level=args.level, jobs=args.jobs, resolutions=args.resolutions or (28, 64, 128, 224),
                         progress=not args.no_progress)
    return 0 if len(lb.skipped) < len(lb.entries) else 1


def register(sub) -> None:
    p = sub.add_parser(
        "compare", help="compare scored results (plots + difference table), or two prediction sets (paired bootstrap)",
        description="Compare scoring outputs of `big score` (folders with details.json; label them as name=PATH): "
                    "the website's line and box plots of AUC, balanced accuracy and kappa with the baselines at the same "
                    "resolution, and a per-dataset difference table (Markdown and CSV). With --predictions A B "
                    "--reference DIR, scores two submissions and adds a paired bootstrap over the test samples.")
    p.add_argument("results", nargs="*", metavar="RESULT", help="scoring output folder (or its details.json), "
                   "optionally name=PATH")
    p.add_argument("--predictions", nargs=2, metavar=("A", "B"), help="two result submissions (zip or folder, "
                   "optionally name=PATH) for the paired bootstrap")
    p.add_argument("--reference", help="reference folder (with --predictions)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap replicates (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--level", type=_level, default=0.95, help="interval level (default 0.95)")
    p.add_argument("--baselines", choices=["default", "all", "none"], default="default",
                   help="baselines overlaid on the plots (default: those of the detailed results page)")
    p.add_argument("--no-plots", action="store_true", help="tables only")
    p.set_defaults(func=_compare)

    p = sub.add_parser(
        "leaderboard", help="re-score a folder of submissions; leaderboards per resolution and metric",
        description="Re-score every result zip, prediction folder or scoring output folder in SUBMISSIONS and write "
                    "one leaderboard per resolution and metric, ranked by the mean over the 12 datasets (the "
                    "competition ranks by mean AUC) and by average rank, with bootstrap intervals, as Markdown, CSV "
                    "and HTML. Bad submissions are listed with their validation messages and skipped.")
    p.add_argument("submissions", metavar="SUBMISSIONS", help="folder of submissions")
    p.add_argument("--reference", required=True, help="reference folder (big build-reference)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates B (default 1000; 0 = none)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0, as the scorer)")
    p.add_argument("--level", type=_level, default=0.95, help="interval level (default 0.95)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: all cores)")
    p.add_argument("--resolutions", type=sizes_arg, help="accepted sizes (default all four)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_leaderboard)
