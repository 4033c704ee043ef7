"""Benchmark: re-ranking a folder of full-size test submissions with ``big leaderboard``.

Setup (not timed): a full-size synthetic test reference (119,320 samples over the 12 datasets:
``big.data.synthetic_labels`` + ``big.reference.write_reference``) and ``--n-subs`` result zips
(``big.submission.write_submission``, '%.17g' floats, about 11 MB each). ``--distinct`` of them
hold different predictions; the others are byte copies of those (separate files, so every one is
read, unzipped, parsed and validated in full: the cost does not depend on the values).

Timed:
1. the whole leaderboard without bootstrap (``--repeats`` runs, median), with the split of the
   workers' time into reading (unzip + CSV parse + validation) and metrics, and of the wall time
   into setup, scoring and writing the outputs;
2. the leaderboard with the bootstrap (B = ``--bootstrap``) on ``--boot-subs`` of the submissions
   (all of them when equal to ``--n-subs``); the time for all ``--n-subs`` is extrapolated linearly
   (each submission costs the same; the workers are kept busy as long as boot-subs is a multiple of
   --jobs).

The page cache is warm (the files were just written); reading is CPU-bound parsing, not disk I/O.
Wall times depend on what else runs on the machine, so the script also reports the workers' CPU
seconds per stage and the wall time they imply on idle cores (CPU seconds / --jobs), and the load
average after each run.

Measured 2026-11-25 on the 2-core workplace machine while other jobs ran (load average 4.6-7):

* without bootstrap, 100 submissions: median wall 101.5 s over 3 runs (82.0 / 101.5 / 134.3 s);
  a 4th run 67.0 s. Worker CPU per submission: reading 391-400 ms (74 %), metrics 135-142 ms
  (26 %), i.e. about 27 s on 2 idle cores. Output writing 0.1 s.
* with bootstrap B=1000: 10 submissions 172 s wall (-> 28.7 min for 100 extrapolated); all 100
  measured: 1368 s = 22.8 min wall. CPU per submission 8.8-9.1 s bootstrap + 0.55 s read and
  metrics, i.e. about 7.8-8.1 min for 100 on 2 idle cores.
* peak RSS: main process 190 MB, largest worker 250 MB.

    .venv/bin/python benchmarks/bench_leaderboard.py                    # 100 subs, B=1000 on 10
    .venv/bin/python benchmarks/bench_leaderboard.py --boot-subs 100 --repeats 1   # B=1000 on all
    .venv/bin/python benchmarks/bench_leaderboard.py --n-subs 20 --boot-subs 2 --bootstrap 200
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from big import data, registry  # noqa: E402
from big.analysis import leaderboard  # noqa: E402
from big.reference import write_reference  # noqa: E402
from big.submission import write_submission  # noqa: E402


def predictions(labels, rng, noise: float):
    out = {}
    for ds in registry.datasets():
        y = labels[ds.flag]
        onehot = y.astype(float) if ds.kind == registry.MULTILABEL else np.eye(ds.n_labels)[y[:, 0]]
        out[ds.flag] = np.clip((1 - noise) * onehot + noise * rng.random(onehot.shape), 0.0, 1.0)
    return out


def setup(work: Path, n_subs: int, distinct: int, seed: int):
    t0 = time.perf_counter()
    labels = {ds.flag: data.synthetic_labels(ds, ds.n_samples["test"], seed=seed, split="test")
              for ds in registry.datasets()}
    rows = sum(v.shape[0] for v in labels.values())
    ref = write_reference(work / "ref", "test", labels, {}, synthetic=True)
    subs = work / "subs"
    subs.mkdir()
    rng = np.random.default_rng(seed)
    originals = []
    for i in range(distinct):
        p = write_submission(subs / f"sub{i:03d}.zip", predictions(labels, rng, noise=0.55 + 0.4 * i / max(distinct, 1)),
                             28)
        originals.append(p)
    for i in range(distinct, n_subs):
        shutil.copyfile(originals[i % distinct], subs / f"sub{i:03d}.zip")
    size = sum(p.stat().st_size for p in subs.iterdir())
    print(f"setup: reference with {rows:,} test rows, {n_subs} zips ({distinct} distinct), "
          f"{size / 1e9:.2f} GB, {time.perf_counter() - t0:.0f} s", flush=True)
    return ref, subs, rows


def one_run(subs: Path, ref: Path, out: Path, *, n_boot: int, jobs: int):
    lb = leaderboard.run(subs, ref, out, n_boot=n_boot, seed=0, jobs=jobs, progress=False, log=lambda s: None)
    assert not lb.skipped, [e.summary for e in lb.skipped]
    return lb


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-subs", type=int, default=100)
    ap.add_argument("--distinct", type=int, default=10)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--boot-subs", type=int, default=10, help="submissions timed with the bootstrap (0 = skip)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", help="folder for the generated files (default: a temp folder, removed)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args(argv)

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench_leaderboard."))
    work.mkdir(parents=True, exist_ok=True)
    figures = {"n_subs": args.n_subs, "jobs": args.jobs, "cpu_count": os.cpu_count(), "bootstrap": args.bootstrap}
    try:
        ref, subs, rows = setup(work, args.n_subs, min(args.distinct, args.n_subs), args.seed)
        figures["rows_per_submission"] = rows

        walls, runs, loads = [], [], []
        for i in range(args.repeats):
            lb = one_run(subs, ref, work / "out0", n_boot=0, jobs=args.jobs)
            walls.append(lb.wall_s)
            runs.append(lb)
            loads.append(os.getloadavg()[0])
            print(f"no bootstrap, run {i + 1}: {lb.wall_s:.1f} s (load average {loads[-1]:.1f})", flush=True)
        order = sorted(range(len(walls)), key=lambda i: walls[i])
        mid = order[len(order) // 2]
        med, lb = walls[mid], runs[mid]
        st, cpu = lb.stage_seconds(), lb.stage_seconds(cpu=True)
        worker_cpu = cpu["read"] + cpu["metrics"]
        figures["no_bootstrap"] = {
            "wall_s_median": med, "wall_s_all": walls, "load_average_after": loads,
            "per_submission_wall_s": med / args.n_subs,
            "worker_wall_s": {"read": st["read"], "metrics": st["metrics"]},
            "worker_cpu_s": {"read": cpu["read"], "metrics": cpu["metrics"]},
            "read_share_of_worker_cpu": cpu["read"] / worker_cpu,
            "cpu_bound_wall_s": worker_cpu / args.jobs + lb.phase_s["setup"] + lb.phase_s["output"],
            "phases_s": lb.phase_s,
        }
        print(f"\nWITHOUT bootstrap: {args.n_subs} submissions x {rows:,} rows, {args.jobs} processes: median "
              f"{med:.1f} s wall ({med / args.n_subs * 1000:.0f} ms per submission)")
        print(f"  worker CPU time (summed over processes): reading (unzip + parse + validate) {cpu['read']:.1f} s = "
              f"{100 * cpu['read'] / worker_cpu:.0f} %, metrics {cpu['metrics']:.1f} s = "
              f"{100 * cpu['metrics'] / worker_cpu:.0f} %  (per submission {1000 * cpu['read'] / args.n_subs:.0f} + "
              f"{1000 * cpu['metrics'] / args.n_subs:.0f} ms)")
        print(f"  worker wall time: reading {st['read']:.1f} s, metrics {st['metrics']:.1f} s; on {args.jobs} idle cores "
              f"the run would take about {figures['no_bootstrap']['cpu_bound_wall_s']:.1f} s (worker CPU / {args.jobs})")
        print("  wall phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in lb.phase_s.items()), flush=True)

        if args.boot_subs > 0:
            k = min(args.boot_subs, args.n_subs)
            part = work / "boot_subs"
            part.mkdir(exist_ok=True)
            for p in sorted(subs.iterdir())[:k]:
                if not (part / p.name).exists():
                    os.link(p, part / p.name)
            lb = one_run(part, ref, work / "out1", n_boot=args.bootstrap, jobs=args.jobs)
            load = os.getloadavg()[0]
            st, cpu = lb.stage_seconds(), lb.stage_seconds(cpu=True)
            per_cpu = sum(cpu.values()) / k
            est = lb.wall_s * args.n_subs / k
            est_cpu = per_cpu * args.n_subs / args.jobs
            figures["bootstrap"] = {
                "measured_subs": k, "wall_s": lb.wall_s, "load_average_after": load, "worker_wall_s": st,
                "worker_cpu_s": cpu, "cpu_s_per_submission": per_cpu,
                "extrapolated_wall_s": est, "cpu_bound_wall_s_all": est_cpu, "phases_s": lb.phase_s,
            }
            print(f"\nWITH bootstrap B={args.bootstrap}: {k} submissions in {lb.wall_s:.1f} s wall ({args.jobs} processes, "
                  f"load average {load:.1f}); CPU per submission: bootstrap {cpu['bootstrap'] / k:.1f} s, reading "
                  f"{cpu['read'] / k:.2f} s, metrics {cpu['metrics'] / k:.2f} s")
            verb = "measured" if k == args.n_subs else f"extrapolated linearly from {k}"
            print(f"  {args.n_subs} submissions: {est:.0f} s = {est / 60:.1f} min wall ({verb}); on {args.jobs} idle cores "
                  f"about {est_cpu:.0f} s = {est_cpu / 60:.1f} min (CPU per submission x {args.n_subs} / {args.jobs})")
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        figures["peak_rss_mb"] = {"main": me, "largest_worker": peak}
        print(f"\npeak memory: main process {me:.0f} MB, largest worker {peak:.0f} MB", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
