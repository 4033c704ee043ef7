"""``big corrupt``: the robustness benchmark's data generation (parsing only; nothing heavy imported here)."""
from __future__ import annotations

import argparse

from ..cli import sizes_arg


def _names(text: str):
    return [t.strip() for t in text.split(",") if t.strip()]


def _ints(text: str):
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 1,3,5, got {text!r}") from None


def _corrupt(args) -> int:
    from .corrupt import CorruptOptions, corrupt

    opts = CorruptOptions(data_root=args.data_root, out=args.out, seed=args.seed, splits=args.splits,
                          per_dataset=args.per_dataset, dev_per_dataset=args.dev_per_dataset, dev_seed=args.dev_seed,
                          severities=args.severities, sizes=args.sizes, flags=args.flags, corruptions=args.corruptions,
                          stand_in=args.stand_in, allow_synthetic=args.allow_synthetic)
    corrupt(opts, log=lambda m: print(m, flush=True))
    return 0


def register(sub) -> None:
    from . import layout

    p = sub.add_parser(
        "corrupt", help="write the robustness benchmark's corrupted set (MedMNIST-C; run in .venv-robustness)",
        description="Corrupt a seeded, stratified sample of each dataset's 224 px images with every MedMNIST-C "
                    "corruption of that dataset (medmnistc, in the venv of `make robustness-env`), derive the smaller "
                    "sizes by one resize (PIL bicubic, antialiased), and write CDIR/val (Development sample, public "
                    "seed) and CDIR/test (Test sample, private seed) with a manifest. --stand-in writes the same "
                    "layout with numpy corruptions for tests and demos (never labelled MedMNIST-C).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-root", required=True, help="folder with the MedMNIST+ {flag}_224.npz files")
    p.add_argument("--out", required=True, help="corrupted-set folder CDIR (CDIR/val, CDIR/test are written)")
    p.add_argument("--seed", type=int, help="the Test sample's private seed (required with the test split)")
    p.add_argument("--splits", type=_names, default=list(layout.SPLITS), help="val (Development), test or both")
    p.add_argument("--per-dataset", type=int, default=layout.PER_DATASET, help="Test sample: at most N images per dataset")
    p.add_argument("--dev-per-dataset", type=int, default=layout.DEV_PER_DATASET,
                   help="Development sample: at most N images per dataset")
    p.add_argument("--dev-seed", type=int, default=layout.PUBLIC_DEV_SEED, help="the Development sample's public seed")
    p.add_argument("--severities", type=_ints, default=list(layout.SEVERITIES), help="MedMNIST-C severities (1..5)")
    p.add_argument("--sizes", type=sizes_arg, default=[28, 64], help="image sizes to write (the bundle's input sizes)")
    p.add_argument("--flags", type=_names, help="only these datasets (tests; a bundle needs all 12)")
    p.add_argument("--corruptions", type=_names, help="only these corruptions (tests and try-outs; the manifest records "
                                                      "the set as incomplete)")
    p.add_argument("--stand-in", action="store_true", help="numpy stand-in corruptions instead of medmnistc (tests, "
                                                           "demos; stamped STAND-IN, never MedMNIST-C)")
    p.add_argument("--allow-synthetic", action="store_true", help="accept source files whose MD5 differs from medmnist "
                                                                  "INFO (stamped synthetic)")
    p.set_defaults(func=_corrupt)
