"""The ``big`` command: one verb per job. Parsing only; the work happens in the package modules.

Each area registers its verbs with a ``register(subparsers)`` function in its own ``cli`` module
(listed in ``AREAS``); those modules import nothing heavy at import time, so ``big score`` starts fast.
Every verb's handler returns an exit code; participant/organizer problems (``BigError``) are printed
as messages with the summary last on stderr, never as tracebacks.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
from typing import List, Optional

from . import __version__
from .errors import BigError

#: modules with a register(subparsers) function, one per area of the project
AREAS: List[str] = ["big.analysis.cli", "big.mmpt.cli", "big.codabench.cli", "big.ingestion_cli", "big.baselines",
                    "big.robustness.cli"]


def sizes_arg(text: str) -> List[int]:
    """argparse type for comma-separated MedMNIST+ sizes (shared by every area's verbs)."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated sizes like 28,64, got {text!r}") from None


# ---------------------------------------------------------------------------------------------
# core verbs: synth, build-reference, score, validate, demo
# ---------------------------------------------------------------------------------------------

def _synth(args) -> int:
    from . import data

    paths = data.synthesize(args.out, sizes=args.sizes, n_per_split=args.n_per_split, seed=args.seed,
                            flags=args.flags.split(",") if args.flags else None, signal=args.signal,
                            progress=lambda p: print(f"wrote {p}"))
    from .codabench.kit import mark_synthetic

    mark_synthetic(args.out)  # the participant-side commands accept this folder's files (stamped synthetic)
    print(f"{len(paths)} synthetic MedMNIST+ file(s) in {args.out} (seed {args.seed})")
    return 0


def _build_reference(args) -> int:
    from .codabench.kit import is_marked_synthetic
    from .reference import build_reference

    allow = args.allow_synthetic
    if not allow and is_marked_synthetic(args.data_root):
        print(f"note: {args.data_root} holds synthetic files (`big synth`): accepted as with --allow-synthetic")
        allow = True
    out = build_reference(args.data_root, args.split, args.out, allow_synthetic=allow,
                          download_missing=args.download, progress=print)
    from .reference import Reference

    ref = Reference(out)
    stamp = " (SYNTHETIC)" if ref.synthetic else ""
    print(f"reference data for the {ref.split} split{stamp} in {out}: "
          + ", ".join(f"{f} {n}" for f, n in ref.expected_n.items()))
    return 0


def _score(args) -> int:
    from . import scoring

    config = scoring.load_config(args.config)
    if args.resolutions:
        config.resolutions = tuple(args.resolutions)
    if args.bootstrap is not None:
        config.n_boot = args.bootstrap
    if args.seed is not None:
        config.seed = args.seed
    if args.no_report:
        config.report = False
    return scoring.run(args.submission, args.reference, args.output, config=config, t0=args._t0)


def _validate(args) -> int:
    from . import registry
    from .submission import read_submission

    expected = None
    split = args.split
    source = "the official split sizes (medmnist INFO)"
    if args.reference and args.data_root:
        raise BigError(["give --reference DIR or --data-root DIR, not both"])
    if args.reference:
        from .reference import Reference

        ref = Reference(args.reference)
        if split is not None and split != ref.split:
            raise BigError([f"--split {split}, but the reference {args.reference} is for the {ref.split} split"])
        expected, split = ref.expected_n, ref.split
        source = f"the reference {args.reference}" + (" (synthetic)" if ref.synthetic else "")
    if split is None:
        raise BigError(["give --split val|test (or --reference DIR)"])
    if args.data_root:
        from .codabench.kit import split_counts

        expected = split_counts(args.data_root, split)
        source = f"the files in {args.data_root}"
    sub = read_submission(args.submission, split=split, expected_n=expected,
                          resolutions=args.resolutions or registry.SIZES, log=print)
    rows = sum(a.shape[0] for a in sub.predictions.values())
    print(f"OK: {args.submission} is a valid {split} submission at resolution {sub.size} "
          f"(12 files, {rows} rows; row counts from {source})")
    if expected is not None:
        official = {f: registry.get(f).n_samples[split] for f in registry.flags()}
        if any(expected[f] != official[f] for f in official):
            print(f"note: these row counts are not the official {split} split's: the platform would reject this zip "
                  "(fine for a try-out on synthetic or partial files)")
    return 0


def _demo(args) -> int:
    from .demo import run_demo

    return run_demo(args.out, seed=args.seed, n_per_split=args.n_per_split, n_boot=args.bootstrap, signal=args.signal)


def _register_core(sub) -> None:
    p = sub.add_parser("synth", help="write synthetic MedMNIST+ npz files (exact medmnist layout)")
    p.add_argument("--out", required=True, help="folder for the npz files")
    p.add_argument("--sizes", type=sizes_arg, default=[28], help="comma-separated sizes (default 28)")
    p.add_argument("--n-per-split", default="64", help="N, or train=N,val=N,test=N ('full' = real size)")
    p.add_argument("--flags", help="comma-separated dataset flags (default all 12)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--signal", type=float, default=0.9,
                   help="strength of the class patterns against unit pixel noise (0.9 easy, 0.1 hard)")
    p.set_defaults(func=_synth)

    p = sub.add_parser("build-reference", help="hidden labels of one split + manifest, for the scoring program")
    p.add_argument("--data-root", required=True, help="folder with the MedMNIST+ npz files")
    p.add_argument("--split", required=True, choices=["val", "test"])
    p.add_argument("--out", required=True, help="reference folder to write")
    p.add_argument("--download", action="store_true", help="fetch missing files (MD5-checked)")
    p.add_argument("--allow-synthetic", action="store_true", help="accept files whose MD5 differs (stamped synthetic)")
    p.set_defaults(func=_build_reference)

    p = sub.add_parser("score", help="score a result submission (zip or folder) like the CodaBench scorer")
    p.add_argument("submission", help="result zip or folder of {flag}_{size}.csv files")
    p.add_argument("--reference", required=True, help="reference folder (big build-reference)")
    p.add_argument("--output", required=True, help="output folder: scores.json, details.json, detailed_results.html")
    p.add_argument("--config", help="scoring config YAML (as scoring_program/config.yaml)")
    p.add_argument("--resolutions", type=sizes_arg, help="accepted sizes (default all four)")
    p.add_argument("--bootstrap", type=int, help="bootstrap replicates B (default 1000; 0 = none)")
    p.add_argument("--seed", type=int, help="bootstrap seed (default 0)")
    p.add_argument("--no-report", action="store_true", help="skip detailed_results.html and the plots")
    p.set_defaults(func=_score)

    p = sub.add_parser("validate", help="check a result submission without the labels")
    p.add_argument("submission")
    p.add_argument("--split", choices=["val", "test"], help="which split the predictions are for")
    p.add_argument("--reference", help="a reference folder (takes the sample counts from its manifest)")
    p.add_argument("--data-root", help="the MedMNIST+ files the predictions were made from (takes the sample "
                                       "counts from them: synthetic or partial files)")
    p.add_argument("--resolutions", type=sizes_arg, help="accepted sizes (default all four)")
    p.set_defaults(func=_validate)

    p = sub.add_parser("demo", help="the whole pipeline offline on synthetic data")
    p.add_argument("--out", default="demo_output", help="working folder (default ./demo_output)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-per-split", default="train=300,val=120,test=160")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates for the demo's reports")
    p.add_argument("--signal", type=float, default=0.15, help="class-signal strength of the synthetic data")
    p.set_defaults(func=_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="big", description="BIG benchmark: MedMNIST+ CodaBench bundle tools")
    parser.add_argument("--version", action="version", version=f"big {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    _register_core(sub)
    for mod in AREAS:
        importlib.import_module(mod).register(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    t0 = time.perf_counter()
    args = build_parser().parse_args(argv)
    args._t0 = t0
    try:
        return int(args.func(args) or 0)
    except BigError as exc:
        for line in exc.report():
            print(line, file=sys.stderr)
        print(f"error: {exc.summary}", file=sys.stderr)
        return 2 if exc.audience == "organizer" else 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
