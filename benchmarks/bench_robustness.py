#!/usr/bin/env python
"""BIG-C benchmarks: generation speed, bundle size per resolution, ingestion time, GPU time estimate.

    .venv-robustness/bin/python benchmarks/bench_robustness.py generation [--n 10]   # needs medmnistc
    .venv/bin/python benchmarks/bench_robustness.py sizes --counts FILE.json          # after `generation`
    .venv/bin/python benchmarks/bench_robustness.py ingestion [--sizes 28,64]
    .venv/bin/python benchmarks/bench_robustness.py gpu-estimate [--batches 3]

1. generation: `big corrupt` (MedMNIST-C, every corruption of every dataset, severities 1, 3, 5) on
   synthetic 224 px images, --n per dataset: seconds per 1,000 images for each corruption (the
   corruption alone, and with the resizes to 28 and 64 px), from the manifest's timing, and the time
   the full Test sample (N = 500) would take. Writes the corruption lists to --counts-out.
2. sizes: the pooled images of the full Development (N = 100) and Test (N = 500) samples at each
   resolution, uncompressed (exact: rows x S x S x C + the .npy header) and zipped (the DEFLATE level
   1 ratio of `big bundle`, measured on the generated set's images).
3. ingestion: the starting kit's sample model (numpy) through the ingestion program on pooled input of
   the exact full Test shapes (random pixels: its speed does not depend on them), per size.
4. gpu-estimate: ResNet-18 (torchvision, random weights) forward throughput at 64 px on this CPU, its
   FLOPs per image, and the estimated time on one GPU for the whole Test input under stated
   assumptions (an estimate, not a measurement; no GPU here).

Timings on this shared 2-core machine are noisy: each part prints the load average it saw.
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
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from big import registry  # noqa: E402

PER_DATASET, DEV_PER_DATASET, N_SEV = 500, 100, 3


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def sample_n(flag: str, split: str, n_max: int) -> int:
    return min(n_max, registry.get(flag).n_samples[split])


def generation(args) -> dict:
    from big import data
    from big.robustness import layout
    from big.robustness.corrupt import CorruptOptions, corrupt

    work = Path(tempfile.mkdtemp(prefix="bench-bigc-"))
    print(f"generation: {load()}", flush=True)
    data.synthesize(work / "data", sizes=(224,), n_per_split=f"train=2,val=2,test={max(args.n, 16)}", seed=0,
                    signal=0.5)
    t0 = time.perf_counter()
    out = corrupt(CorruptOptions(data_root=work / "data", out=work / "c", seed=1, splits=["test"], per_dataset=args.n,
                                 allow_synthetic=True), log=lambda m: None)["test"]
    wall = time.perf_counter() - t0
    cs = layout.CorruptedSet(out)
    rows, per_corr, full_s = [], {}, 0.0
    for flag in registry.flags():
        e = cs.entry(flag)
        n_full = sample_n(flag, "test", PER_DATASET)
        for c, t in e["timing_s"].items():
            s_per_k = 1000.0 * t["corrupt_s"] / t["images"]
            tot_per_k = 1000.0 * t["total_s"] / t["images"]
            rows.append((flag, c, s_per_k, tot_per_k))
            per_corr.setdefault(c, []).append(s_per_k)
            full_s += tot_per_k / 1000.0 * n_full * N_SEV
    print(f"{'dataset':<15} {'corruption':<18} {'s/1000 img':>10} {'+resize':>9}")
    for r in rows:
        print(f"{r[0]:<15} {r[1]:<18} {r[2]:10.2f} {r[3]:9.2f}")
    med = statistics.median(r[2] for r in rows)
    print(f"median over {len(rows)} dataset x corruption pairs: {med:.2f} s per 1,000 images (corruption alone); "
          f"range {min(r[2] for r in rows):.2f}-{max(r[2] for r in rows):.2f}")
    print(f"full Test sample (N = {PER_DATASET}, 3 severities) would take about {full_s / 60:.0f} min on this machine "
          f"(one process); this run: {wall:.0f} s; {load()}")
    counts = {f: cs.entry(f)["corruptions"] for f in registry.flags()}
    ratio = _zip_ratio(out)
    res = {"per_dataset": args.n, "rows": [list(r) for r in rows], "median_s_per_1000": med,
           "full_test_minutes": full_s / 60, "wall_s": wall, "corruptions": counts, "deflate1_ratio": ratio,
           "packages": cs.manifest["packages"], "load": load()}
    if args.counts_out:
        Path(args.counts_out).write_text(json.dumps(res, indent=1))
        print(f"wrote {args.counts_out}")
    return res


def _zip_ratio(folder: Path) -> dict:
    """DEFLATE level 1 (what `big bundle` uses for .npy) compressed / raw, per size, over the set's images."""
    raw, comp = {}, {}
    for f in sorted(folder.glob("*/images_*.npy")):
        size = int(f.stem.split("_")[1])
        b = f.read_bytes()
        raw[size] = raw.get(size, 0) + len(b)
        comp[size] = comp.get(size, 0) + len(zlib.compress(b, 1))
    return {str(s): comp[s] / raw[s] for s in raw}


def sizes(args) -> dict:
    info = json.loads(Path(args.counts).read_text())
    counts = info["corruptions"]
    ratio = {int(k): v for k, v in info.get("deflate1_ratio", {}).items()}
    out = {}
    print(f"{'size':>5} {'Dev images':>11} {'Test images':>12} {'uncompressed':>13} {'zipped (est.)':>14}")
    for s in registry.SIZES:
        total, imgs = 0, {}
        for split, n_max in (("val", DEV_PER_DATASET), ("test", PER_DATASET)):
            k = 0
            for flag in registry.flags():
                ds = registry.get(flag)
                rows = sample_n(flag, split, n_max) * (1 + N_SEV * len(counts[flag]))
                k += rows
                total += rows * s * s * ds.n_channels + 128
            imgs[split] = k
        r = ratio.get(s) or ratio.get(min(ratio, key=lambda x: abs(x - s))) if ratio else None
        z = total * r if r else None
        out[s] = {"dev_images": imgs["val"], "test_images": imgs["test"], "bytes": total, "zipped_estimate": z}
        print(f"{s:>5} {imgs['val']:>11,} {imgs['test']:>12,} {total / 1e9:>11.3f} GB "
              f"{'' if z is None else f'{z / 1e9:>11.3f} GB':>14}")
    return out


def ingestion(args) -> dict:
    """The sample model through run_ingestion on input of the exact full Test shapes (random pixels)."""
    import numpy as np

    from big.robustness.layout import PER_DATASET as N

    counts = json.loads(Path(args.counts).read_text())["corruptions"] if args.counts else None
    work = Path(tempfile.mkdtemp(prefix="bench-bigc-ing-"))
    results = {}
    # the sample model: train it on a small synthetic set (its speed does not depend on the weights)
    from big import data

    data.synthesize(work / "train", sizes=tuple(args.sizes), n_per_split="train=200,val=2,test=2", seed=0)
    for size in args.sizes:
        inp = work / f"input_{size}"
        inp.mkdir()
        rng = np.random.default_rng(0)
        total = 0
        for flag in registry.flags():
            ds = registry.get(flag)
            k = len(counts[flag]) if counts else 10
            rows = min(N, ds.n_samples["test"]) * (1 + N_SEV * k)
            arr = np.lib.format.open_memmap(inp / f"{flag}_{size}.npy", mode="w+", dtype=np.uint8,
                                            shape=(rows, *ds.image_shape(size)))
            for a in range(0, rows, 8192):
                b = min(rows, a + 8192)
                arr[a:b] = rng.integers(0, 256, size=(b - a, *ds.image_shape(size)), dtype=np.uint8)
            arr.flush()
            del arr
            total += rows
        sub = work / f"sample_{size}.zip"
        r = subprocess.run([sys.executable, "-m", "big", "sample-submission", "--data-root", str(work / "train"),
                            "--size", str(size), "--out", str(sub)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        prog = work / f"prog_{size}"
        with zipfile.ZipFile(sub) as zf:
            zf.extractall(prog)
        outd = work / f"out_{size}"
        print(f"ingestion at {size} px: {total:,} pooled images; {load()}", flush=True)
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, str(REPO / "ingestion_program" / "ingest.py"), str(inp), str(outd),
                            str(prog), "--time-budget", "3600"], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        status = json.loads((outd / "ingestion_status.json").read_text())
        print(f"  {status['status']}: {wall:.1f} s wall; {status['message'][:160]}")
        results[size] = {"images": total, "wall_s": wall, "status": status["status"],
                         "model_seconds": status.get("model_seconds"), "load": load()}
    return results


def gpu_estimate(args) -> dict:
    import torch
    import torchvision

    counts = json.loads(Path(args.counts).read_text())["corruptions"] if args.counts else None
    total = sum(min(PER_DATASET, registry.get(f).n_samples["test"]) * (1 + N_SEV * (len(counts[f]) if counts else 10))
                for f in registry.flags())
    torch.set_num_threads(os.cpu_count() or 1)
    m = torchvision.models.resnet18(num_classes=14).eval()
    x = torch.randn(args.batch, 3, 64, 64)
    flops = None
    try:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as fc, torch.no_grad():
            m(x[:1])
        flops = fc.get_total_flops()  # counts a multiply-add as 2 FLOPs
    except Exception as exc:  # noqa: BLE001
        print(f"no FLOP count ({exc!r})")
    with torch.no_grad():
        m(x)  # warm-up
        times = []
        for _ in range(args.batches):
            t0 = time.perf_counter()
            m(x)
            times.append(time.perf_counter() - t0)
    cpu_ips = args.batch / statistics.median(times)
    print(f"ResNet-18 at 64 px on this CPU ({torch.get_num_threads()} threads, batch {args.batch}): {cpu_ips:.0f} "
          f"images/s; {load()}")
    print(f"whole Test input: {total:,} images -> {total / cpu_ips / 60:.1f} min of forward passes on this CPU")
    res = {"images": total, "cpu_images_per_s": cpu_ips, "flops_per_image": flops, "load": load()}
    if flops:
        tflop = flops * total / 1e12
        # assumptions (stated in the README): a T4-class GPU, 8.1 TFLOP/s fp32 peak, 25 % of it reached by a
        # ResNet-18 at 64 px in batches of 256 (small images keep the GPU far from its peak)
        peak, eff = 8.1e12, 0.25
        gpu_s = flops * total / (peak * eff)
        print(f"{flops / 1e9:.3f} GFLOP per image, {tflop:.1f} TFLOP for the whole Test input; on a T4-class GPU at "
              f"25 % of 8.1 TFLOP/s fp32: about {gpu_s:.0f} s of compute (an ESTIMATE)")
        res.update({"tflop_total": tflop, "gpu_compute_s_estimate": gpu_s, "assumed_peak_flops": peak,
                    "assumed_efficiency": eff})
    return res


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=["generation", "sizes", "ingestion", "gpu-estimate"])
    p.add_argument("--n", type=int, default=10, help="generation: images per dataset")
    p.add_argument("--counts-out", help="generation: write the results (corruption lists, zip ratio) here")
    p.add_argument("--counts", help="sizes/ingestion/gpu-estimate: the JSON written by `generation --counts-out`")
    p.add_argument("--sizes", type=lambda t: [int(x) for x in t.split(",")], default=[28, 64])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--batches", type=int, default=3)
    p.add_argument("--json", help="write this part's results here")
    a = p.parse_args()
    fn = {"generation": generation, "sizes": sizes, "ingestion": ingestion, "gpu-estimate": gpu_estimate}[a.part]
    res = fn(a)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
