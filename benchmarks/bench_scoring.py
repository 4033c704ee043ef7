"""Benchmark: the scoring program on a full-size synthetic test submission (issues 2 and 10, Performance).

Setup (not timed): a full-size synthetic test reference (119,320 samples over the 12 datasets;
labels only: ``big.data.synthetic_labels`` + ``big.reference.write_reference``), a full-size result
zip (``big.submission.write_submission``, '%.17g' floats) and a copy of ``scoring_program/`` with
the ``big`` package and ``baselines/tables`` beside it (as ``big bundle`` ships it), so
``score.py`` runs exactly as on CodaBench: ``python3 score.py INPUT OUTPUT``, one fresh process per
run. Its ``config.yaml`` is rewritten per scenario.

Scenarios (each run ``--repeats`` times, medians reported):

1. ``scores``: bootstrap off, report off. Time from process start (just before ``fork``) until
   scores.json is written (its mtime; it is written by ``os.replace`` of a finished temp file), and
   the process' peak RSS (``wait4``; on this path the process does nothing heavier after
   scores.json). Targets (issue 10): <= 0.4 s and <= 100 MB in the py312 image venv
   (``--python .venv-py312/bin/python``).
2. ``bootstrap``: B = ``--bootstrap`` (1000), report off. The bootstrap time (details.json
   ``timing_s.details - timing_s.scores``: 3 metrics x 12 datasets x B, intervals of the mean) and
   the peak RSS. Targets: <= 60 s, <= 1 GB.
3. ``full``: B = 1000 and detailed_results.html with its PNGs: the whole run, wall clock.

The machine is shared; wall times vary with its load, so the CPU time (user + sys) of the scoring
process is printed beside each wall time, and the 1-minute load average before each run.

Each run starts from a small launcher process (no numpy), which forks and execs score.py and
reports the child's ``wait4`` figures: forking the benchmark itself would count its own memory
(hundreds of MB of generated predictions) in the child's peak RSS.

    .venv/bin/python benchmarks/bench_scoring.py                 # 5/3/3 repeats
    .venv/bin/python benchmarks/bench_scoring.py --repeats 1 --json out.json
    .venv/bin/python benchmarks/bench_scoring.py --profile       # cProfile of the scores.json path
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from big import data, registry  # noqa: E402
from big.reference import write_reference  # noqa: E402
from big.submission import write_submission  # noqa: E402


def build_inputs(work: Path, *, size: int = 64, seed: int = 0) -> Path:
    """INPUT folder with ref/ (full-size synthetic test labels) and res/ (a result zip's content)."""
    inp = work / "input"
    labels = {ds.flag: data.synthetic_labels(ds, ds.n_samples["test"], seed=seed, split="test")
              for ds in registry.datasets()}
    write_reference(inp / "ref", "test", labels, {}, synthetic=True)
    rng = np.random.default_rng(seed)
    preds = {}
    for ds in registry.datasets():
        y = labels[ds.flag]
        if ds.kind == registry.MULTILABEL:
            s = np.clip(0.35 * y + 0.65 * rng.random(y.shape), 0.0, 1.0)
        else:
            s = rng.random((y.shape[0], ds.n_labels))
            s[np.arange(y.shape[0]), y[:, 0]] += 0.6
            s /= s.sum(axis=1, keepdims=True)
        preds[ds.flag] = s
    zip_path = write_submission(work / "submission.zip", preds, size)
    # CodaBench unzips a result submission into /app/input/res; do the same
    import zipfile

    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(inp / "res")
    return inp


def assemble_program(dest: Path) -> Path:
    """scoring_program/ + big/ + baselines/tables beside score.py (the bundle layout)."""
    shutil.copytree(REPO / "scoring_program", dest, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "big", dest / "big", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    tables = REPO / "baselines" / "tables"
    if tables.is_dir():
        shutil.copytree(tables, dest / "baselines" / "tables")
    return dest


#: forks and execs argv[2:], then writes the child's figures as JSON to argv[1] (standard library only)
LAUNCHER = """
import json, os, sys, time
t0 = time.time()
p0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - p0
with open(sys.argv[1], "w") as fh:
    json.dump({"t0": t0, "wall": wall, "rc": os.waitstatus_to_exitcode(status), "maxrss_kb": ru.ru_maxrss,
               "cpu": ru.ru_utime + ru.ru_stime}, fh)
"""


def run_once(prog: Path, inp: Path, out: Path, *, n_boot: int, report: bool, python: str) -> dict:
    (prog / "config.yaml").write_text(f"resolutions: [28, 64, 128, 224]\nn_boot: {n_boot}\nseed: 0\n"
                                      f"level: 0.95\nreport: {'true' if report else 'false'}\n")
    if out.exists():
        shutil.rmtree(out)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PYTHONDONTWRITEBYTECODE"] = "0"
    figures = out.parent / (out.name + ".launch.json")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    proc = subprocess.run([python, "-c", LAUNCHER, str(figures), python, str(prog / "score.py"), str(inp), str(out)],
                          cwd=str(prog), env=env, capture_output=True)
    got = json.loads(figures.read_text())
    if got["rc"] != 0 or proc.returncode != 0:
        raise SystemExit(f"score.py exited {got['rc']}:\n{proc.stderr.decode()[-3000:]}")
    scores_at = (out / "scores.json").stat().st_mtime - got["t0"]
    details = json.loads((out / "details.json").read_text())
    timing = details["timing_s"]
    return {
        "wall_s": got["wall"],
        "scores_json_s": scores_at,
        "cpu_s": got["cpu"],
        "peak_rss_mb": got["maxrss_kb"] / 1024.0,  # Linux: kilobytes
        "bootstrap_s": timing["details"] - timing["scores"],
        "report_s": got["wall"] - timing["details"] if report else 0.0,
        "load_1m": load,
        "stderr": proc.stderr.decode()[-2000:],
    }


def median(rows, key):
    return statistics.median(r[key] for r in rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=None, help="runs per scenario (default 5 / 3 / 3)")
    ap.add_argument("--bootstrap", type=int, default=1000, help="B for the bootstrap scenarios")
    ap.add_argument("--size", type=int, default=64, help="resolution named in the file names")
    ap.add_argument("--python", default=sys.executable, help="interpreter for score.py (e.g. .venv-py312/bin/python)")
    ap.add_argument("--workdir", help="keep the inputs and outputs here (default: a temp dir, removed)")
    ap.add_argument("--json", help="write the figures as JSON here")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of the scores.json path and exit")
    ap.add_argument("--scenarios", default="scores,bootstrap,full", help="comma-separated subset to run")
    args = ap.parse_args(argv)
    args.python = os.path.abspath(args.python)  # score.py runs in the program folder; keep the venv's link

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench_scoring."))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        inp = build_inputs(work, size=args.size)
        if (work / "program").exists():  # always the current code
            shutil.rmtree(work / "program")
        prog = assemble_program(work / "program")
        n_rows = sum(ds.n_samples["test"] for ds in registry.datasets())
        csv_mb = sum(f.stat().st_size for f in (inp / "res").glob("*.csv")) / 2**20
        print(f"setup: {n_rows} rows in 12 CSV files ({csv_mb:.0f} MB unzipped) in {time.perf_counter() - t:.1f} s")
        if args.profile:
            return profile_scores_path(prog, inp, work / "out_profile", args.python)
        plan = [("scores", 0, False, args.repeats or 5),
                ("bootstrap", args.bootstrap, False, args.repeats or 3),
                ("full", args.bootstrap, True, args.repeats or 3)]
        wanted = set(args.scenarios.split(","))
        results = {}
        for name, n_boot, report, reps in [p for p in plan if p[0] in wanted]:
            rows = []
            for i in range(reps):
                rows.append(run_once(prog, inp, work / f"out_{name}", n_boot=n_boot, report=report, python=args.python))
                print(f"  {name} run {i + 1}/{reps}: wall {rows[-1]['wall_s']:.2f} s, scores.json at "
                      f"{rows[-1]['scores_json_s']:.2f} s, cpu {rows[-1]['cpu_s']:.2f} s, peak RSS "
                      f"{rows[-1]['peak_rss_mb']:.0f} MB, load {rows[-1]['load_1m']:.1f}", flush=True)
            results[name] = {k: median(rows, k) for k in ("wall_s", "scores_json_s", "cpu_s", "peak_rss_mb",
                                                          "bootstrap_s", "report_s", "load_1m")}
            results[name]["runs"] = reps
        print_table(results, args, n_rows)
        if args.json:
            Path(args.json).write_text(json.dumps({"machine": machine(), "python": args.python, "results": results},
                                                  indent=1) + "\n")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": cpu, "platform": platform.platform(),
            "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def print_table(results: dict, args, n_rows: int) -> None:
    m = machine()
    nan = {k: float("nan") for k in ("wall_s", "scores_json_s", "cpu_s", "peak_rss_mb", "bootstrap_s", "report_s",
                                     "load_1m")}
    s, b, f = (results.get(k, {**nan, "runs": 0}) for k in ("scores", "bootstrap", "full"))
    print()
    print(f"scoring program, full-size synthetic test submission ({n_rows} rows, 12 datasets), {args.size} px")
    print(f"machine: {m['cores']} cores, {m['cpu']}, load average {m['load_avg_1m']:.1f} now, "
          f"{s['load_1m']:.1f} (median) before the scores runs; python {args.python}")
    print("cpu = user+sys CPU time of the score.py process (bootstrap / report rows: the difference between"
          " scenarios); less sensitive to the machine's load than the wall clock")
    print(f"{'measure':58s} {'median':>9s} {'cpu':>8s} {'target':>9s}")
    rows = [
        (f"start -> scores.json written (B=0, no report, {s['runs']} runs)", f"{s['scores_json_s']:.2f} s",
         f"{s['cpu_s']:.2f} s", "<= 0.4 s"),
        ("peak RSS of that run", f"{s['peak_rss_mb']:.0f} MB", "", "<= 100 MB"),
        (f"bootstrap, 3 metrics x 12 datasets x B={args.bootstrap} ({b['runs']} runs)", f"{b['bootstrap_s']:.1f} s",
         f"{b['cpu_s'] - s['cpu_s']:.1f} s", "<= 60 s"),
        ("peak RSS with the bootstrap", f"{b['peak_rss_mb']:.0f} MB", "", "<= 1024 MB"),
        (f"full run: B={args.bootstrap} + detailed_results.html ({f['runs']} runs)", f"{f['wall_s']:.1f} s",
         f"{f['cpu_s']:.1f} s", ""),
        ("  of which the report (HTML + 30 PNGs)", f"{f['report_s']:.1f} s", f"{f['cpu_s'] - b['cpu_s']:.1f} s", ""),
        ("peak RSS of the full run", f"{f['peak_rss_mb']:.0f} MB", "", ""),
    ]
    for r in rows:
        print(f"{r[0]:58s} {r[1]:>9s} {r[2]:>8s} {r[3]:>9s}")


def profile_scores_path(prog: Path, inp: Path, out: Path, python: str) -> int:
    """cProfile of score.py with B=0 and no report (the scores.json path), top 30 by cumulative time."""
    (prog / "config.yaml").write_text("resolutions: [28, 64, 128, 224]\nn_boot: 0\nseed: 0\nlevel: 0.95\nreport: false\n")
    stats = out.with_suffix(".pstats")
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([python, "-m", "cProfile", "-o", str(stats), str(prog / "score.py"), str(inp), str(out)],
                   cwd=str(prog), check=True, stdout=subprocess.DEVNULL)
    import pstats

    pstats.Stats(str(stats)).sort_stats("cumulative").print_stats(30)
    pstats.Stats(str(stats)).sort_stats("tottime").print_stats(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
