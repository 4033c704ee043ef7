#!/usr/bin/env python3
"""Generate big/registry.json from ``medmnist.INFO`` (the single source of the dataset table).

Run with medmnist installed (``pip install --no-deps medmnist``; importing INFO needs no torch):

    python scripts/gen_registry.py            # rewrite big/registry.json
    python scripts/gen_registry.py --check    # exit 1 when the committed file differs

Everything else in the project reads registry.json through :mod:`big.registry` and never imports
medmnist (it is in no CodaBench image, and importing it creates ~/.medmnist).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

FLAGS_2D = 12  # the first 12 INFO entries are the 2D datasets, in the order the thesis uses
SIZES = (28, 64, 128, 224)
OUT = Path(__file__).resolve().parent.parent / "big" / "registry.json"


def build(info: dict, version: str) -> dict:
    datasets = []
    for flag in list(info)[:FLAGS_2D]:
        d = info[flag]
        files = {}
        for size in SIZES:
            suffix = "" if size == 28 else f"_{size}"
            files[str(size)] = {
                "file": f"{flag}{suffix}.npz",
                "md5": d["MD5" + suffix],
                "url": d["url" + suffix],
            }
        labels = [d["label"][str(i)] for i in range(len(d["label"]))]
        datasets.append({
            "flag": flag,
            "python_class": d["python_class"],
            "task": d["task"],
            "n_labels": len(labels),
            "labels": labels,
            "n_channels": d["n_channels"],
            "n_samples": {k: d["n_samples"][k] for k in ("train", "val", "test")},
            "license": d["license"],
            "description": d["description"],
            "files": files,
        })
    return {
        "generated_by": "scripts/gen_registry.py from medmnist.INFO",
        "medmnist_version": version,
        "sizes": list(SIZES),
        "splits": ["train", "val", "test"],
        "datasets": datasets,
    }


def render(info: dict, version: str) -> str:
    return json.dumps(build(info, version), indent=1, ensure_ascii=False) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed file instead of writing")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    import medmnist
    from medmnist import INFO

    text = render(INFO, medmnist.__version__)
    if args.check:
        same = args.out.exists() and args.out.read_text(encoding="utf-8") == text
        print(f"{args.out}: {'up to date' if same else 'DIFFERS from medmnist ' + medmnist.__version__}")
        return 0 if same else 1
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(build(INFO, medmnist.__version__)['datasets'])} datasets, medmnist {medmnist.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
