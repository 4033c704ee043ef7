"""mm-PT loader benchmark: throughput vs a thesis-style pipeline, and peak RSS vs file size.

    .venv/bin/python benchmarks/bench_loader.py [--sizes 28,64] [--n 6000] [--batches 60] [--repeats 3]
                                                [--workers 2] [--gb 2.0] [--skip-rss] [--skip-throughput]

1. Throughput (CPU). Both pipelines produce the same thing: shuffled batches of 64 float32
   (64, 3, 224, 224) tensors, normalised with the ResNet-18 timm mean/std and zero-padded to 224
   after normalising, with the uint8 labels.
   - ours: ``big.mmpt.loader.Prefetcher`` reading uint8 rows from the memory-mapped .npy cache
     (read-ahead thread), then ``big.mmpt.model.Preprocess`` on the device (here: the CPU);
   - thesis-style: the medmnist way, the whole split in RAM (``np.load(npz)[key]``), a Dataset
     returning ``PIL.Image.fromarray(img).convert('RGB')`` per image, ``ToTensor``, ``Normalize``,
     ``Pad`` in ``--workers`` DataLoader worker processes (shuffle, batch 64, default collate).
   Reported: images/s (median over --repeats) and the speed-up. Target >= 5x.
2. Peak RSS (flat). A synthetic npz whose train_images member is --gb GB (224 px RGB; deflated),
   then, in a fresh process each: convert the member into the cache and iterate over every row once
   in shuffled batches of 64 through the Prefetcher and Preprocess. Reported: the process' peak RSS
   (VmHWM) for that file and for a file 1/16 of its size. Target: the same (flat), far below the
   array size that ``np.load(npz)[key]`` would allocate.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # resnet18 (timm) normalisation


# ---------------------------------------------------------------------------------------------
# throughput
# ---------------------------------------------------------------------------------------------

def bench_ours(root: Path, cache: Path, size: int, batches: int) -> float:
    import torch

    from big.mmpt import loader, sampler
    from big.mmpt.model import Preprocess

    sd = loader.open_split(root, "pathmnist", size, "train", cache)
    pre = Preprocess(MEAN, STD, 224, ring=2)
    plan = [("pathmnist", rows) for rows in sampler.shuffled_batches(len(sd), 64, np.random.default_rng(0))][:batches]
    t0 = time.perf_counter()
    n = 0
    for _flag, _rows, imgs, labs in loader.Prefetcher({"pathmnist": sd}, plan, depth=4):
        x = pre(torch.from_numpy(imgs))
        y = torch.from_numpy(labs)
        n += x.shape[0]
        assert x.shape[1:] == (3, 224, 224) and y.shape[0] == x.shape[0]
    return n / (time.perf_counter() - t0)


class ThesisDataset:
    """medmnist's Dataset: arrays in RAM, per-image PIL conversion and torchvision transforms."""

    def __init__(self, npz: Path, size: int):
        from torchvision import transforms

        with np.load(npz) as z:
            self.imgs = z["train_images"]
            self.labels = z["train_labels"]
        pad = 224 - size
        self.tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD),
                                      transforms.Pad((pad // 2, pad // 2, pad - pad // 2, pad - pad // 2), fill=0)])

    def __len__(self):
        return len(self.imgs)

    def __getitem__(self, i):
        from PIL import Image

        return self.tf(Image.fromarray(self.imgs[i]).convert("RGB")), self.labels[i]


def _seed_worker(worker_id):
    import random

    import torch

    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def bench_thesis(root: Path, size: int, batches: int, workers: int) -> float:
    import torch
    from torch.utils.data import DataLoader

    from big import data

    ds = ThesisDataset(data.npz_path(root, "pathmnist", size), size)
    g = torch.Generator().manual_seed(0)
    dl = DataLoader(ds, batch_size=64, shuffle=True, num_workers=workers, worker_init_fn=_seed_worker, generator=g,
                    persistent_workers=False)
    t0 = time.perf_counter()
    n = 0
    for k, (x, y) in enumerate(dl):
        n += x.shape[0]
        assert x.shape[1:] == (3, 224, 224)
        if k + 1 >= batches:
            break
    return n / (time.perf_counter() - t0)


def throughput(args) -> dict:
    import torch

    from big import data

    # ours: one main thread for the (vectorised) preprocessing + the read-ahead thread; the thesis
    # pipeline gets --workers processes. Tiny element-wise ops with 2 intra-op threads on a busy
    # 2-core machine spend their time in thread hand-offs, so ours runs with --threads (default 1).
    torch.set_num_threads(args.threads)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for size in args.sizes:
            data.synthesize(root, sizes=(size,), n_per_split=f"train={args.n},val=8,test=8", flags=["pathmnist"])
            cache = root / "cache"
            bench_ours(root, cache, size, 2)  # convert once + warm the page cache (not timed)
            ours, thesis = [], []
            for _ in range(args.repeats):
                ours.append(bench_ours(root, cache, size, args.batches))
                thesis.append(bench_thesis(root, size, args.batches, args.workers))
            o, t = statistics.median(ours), statistics.median(thesis)
            out[size] = {"ours_img_s": round(o, 1), "thesis_img_s": round(t, 1), "speedup": round(o / t, 2),
                         "ours_runs": [round(v, 1) for v in ours], "thesis_runs": [round(v, 1) for v in thesis]}
            print(f"{size:>3} px: ours {o:8.1f} img/s   thesis-style ({args.workers} workers) {t:8.1f} img/s   "
                  f"speed-up {o / t:5.2f}x", flush=True)
    return out


# ---------------------------------------------------------------------------------------------
# peak RSS
# ---------------------------------------------------------------------------------------------

def write_big_npz(path: Path, n: int, size: int = 224) -> int:
    """pathmnist-layout npz with an n-row (n, size, size, 3) train_images member, streamed (cheap content)."""
    from big import data, registry

    ds = registry.get("pathmnist")
    rng = np.random.default_rng(0)
    tile = rng.integers(0, 256, size=(256, size, size, 3), dtype=np.uint8)
    labels = {s: (np.arange(m) % 9).astype(np.uint8).reshape(-1, 1) for s, m in (("train", n), ("val", 8), ("test", 8))}

    def chunks(m):
        for a in range(0, m, 256):
            yield tile[: min(256, m - a)]

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for key in data.KEY_ORDER_PLUS:
            split, what = key.split("_")
            if what == "labels":
                data._write_member(zf, key, labels[split].shape, [labels[split]])
            else:
                data._write_member(zf, key, (len(labels[split]), *ds.image_shape(size)), chunks(len(labels[split])))
    return n * size * size * 3


RSS_CHILD = r"""
import sys, time, numpy as np, torch
sys.path.insert(0, sys.argv[1])
from big.mmpt import loader, sampler
from big.mmpt.model import Preprocess
torch.set_num_threads(1)
root, cache = sys.argv[2], sys.argv[3]
t0 = time.perf_counter()
sd = loader.open_split(root, "pathmnist", 224, "train", cache)
t1 = time.perf_counter()
pre = Preprocess((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 224, ring=2)
plan = [("pathmnist", r) for r in sampler.shuffled_batches(len(sd), 64, np.random.default_rng(0))]
s = 0.0
for _f, _r, imgs, labs in loader.Prefetcher({"pathmnist": sd}, plan, depth=4):
    s += float(pre(torch.from_numpy(imgs))[:, :, 112, 112].sum())
t2 = time.perf_counter()
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(f"{int(hwm) / 1024:.1f} {t1 - t0:.2f} {t2 - t1:.2f} {len(sd)}")
"""


def rss(args) -> dict:
    out = {}
    per_row = 224 * 224 * 3
    big_n = int(args.gb * 1e9 // per_row)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for label, n in (("small", max(64, big_n // 16)), ("big", big_n)):
            root = Path(tmp) / label
            root.mkdir()
            t0 = time.perf_counter()
            nbytes = write_big_npz(root / "pathmnist_224.npz", n)
            t_write = time.perf_counter() - t0
            r = subprocess.run([sys.executable, "-c", RSS_CHILD, str(REPO), str(root), str(root / "cache")],
                               capture_output=True, text=True)
            if r.returncode:
                raise SystemExit(r.stderr)
            hwm, t_conv, t_iter, rows = r.stdout.split()
            out[label] = {"rows": int(rows), "array_gb": round(nbytes / 1e9, 2), "peak_rss_mb": float(hwm),
                          "write_npz_s": round(t_write, 1), "convert_s": float(t_conv), "iterate_s": float(t_iter),
                          "npz_gb": round((root / "pathmnist_224.npz").stat().st_size / 1e9, 2)}
            print(f"{label:>5}: train_images {nbytes / 1e9:5.2f} GB ({rows} rows): peak RSS {float(hwm):7.1f} MB "
                  f"(convert {float(t_conv):.1f} s, iterate all rows {float(t_iter):.1f} s)", flush=True)
            import shutil

            shutil.rmtree(root)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="28,64", help="image sizes for the throughput part")
    p.add_argument("--n", type=int, default=6000, help="training images of the throughput file")
    p.add_argument("--batches", type=int, default=60, help="batches timed per run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the thesis-style pipeline")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads of our pipeline")
    p.add_argument("--gb", type=float, default=2.0, help="size of the big train_images member for the RSS part")
    p.add_argument("--tmp", default=None, help="folder for the temporary files (needs ~2x --gb free)")
    p.add_argument("--skip-rss", action="store_true")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",")]
    res = {"cpu_count": os.cpu_count()}
    if not args.skip_throughput:
        res["throughput"] = throughput(args)
    if not args.skip_rss:
        res["rss"] = rss(args)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
