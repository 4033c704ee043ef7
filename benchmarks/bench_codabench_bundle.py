"""Bundle size per --input-sizes choice: measured on synthetic data, estimated for the genuine data.

    .venv/bin/python benchmarks/bench_codabench_bundle.py [--n 200] [--repeats 3] [--shared DIR]

Measured: `big bundle` on synthetic MedMNIST+ files with --n images per val/test split and dataset
(code track, so input_data holds the images), median build time over --repeats, zip size.
Estimated for the genuine data: the images of val+test at those sizes (registry n_samples x S x S x C,
uncompressed, what the input_data .npy files hold) times the deflate ratio measured on the genuine
files available (`--shared`, default ../shared/data/medmnist); reference data and programs add
about 2 MB. Synthetic images are mostly noise and compress worse than real ones, so the synthetic
zip ratio is not used for the estimate.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from big import data, registry  # noqa: E402
from big.codabench import bundle as B  # noqa: E402

CHOICES = ([28], [28, 64], [28, 64, 128], [28, 64, 128, 224])


def genuine_ratio(shared: Path) -> float:
    """Deflate (level 1, as the bundle zips .npy) compressed/raw over the genuine val+test images."""
    raw = comp = 0
    for ds in registry.datasets():
        for size in registry.SIZES:
            p = shared / ds.file_name(size)
            if not p.is_file() or data.md5sum(p) != ds.md5(size):
                continue
            for split in ("val", "test"):
                b = data.read_images(p, split).tobytes()
                raw += len(b)
                comp += len(zlib.compress(b, 1))
    if not raw:
        raise SystemExit(f"no genuine files in {shared}")
    return comp / raw


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="synthetic images per val/test split and dataset")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "data" / "medmnist"))
    args = ap.parse_args(argv)
    ratio = genuine_ratio(Path(args.shared))
    print(f"deflate ratio on the genuine val+test images available: {ratio:.3f}")
    print(f"\n{'input sizes':<16}{'synthetic zip':>14}{'build s (median)':>18}"
          f"{'real images raw':>17}{'real zip (est.)':>17}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data.synthesize(tmp / "data", sizes=registry.SIZES, n_per_split=f"train=8,val={args.n},test={args.n}", seed=0)
        for sizes in CHOICES:
            times, zbytes = [], 0
            for r in range(args.repeats):
                out = tmp / f"b{r}.zip"
                t0 = time.perf_counter()
                res = B.build_bundle(B.BundleOptions(data_root=tmp / "data", out=out, input_sizes=sizes,
                                                     allow_synthetic=True, organizer="bench",
                                                     contact_email="bench@example.org"), log=lambda m: None)
                times.append(time.perf_counter() - t0)
                zbytes = res.zip_bytes
                out.unlink()
            raw = B.estimate_input_bytes(sizes)
            est = raw * ratio + 2e6
            print(f"{','.join(map(str, sizes)):<16}{zbytes / 1e6:>11.2f} MB{statistics.median(times):>18.2f}"
                  f"{raw / 1e9:>14.2f} GB{est / 1e9:>14.2f} GB")
    print("\nCodaBench limits: 15 GB upload quota per user, 10 GB worker cache for input_data/reference_data.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
