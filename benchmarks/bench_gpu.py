#!/usr/bin/env python
"""GPU benchmark of the mm-PT baselines and the code track: one JSON file, at most ~4 minutes on one GPU.

    python benchmarks/bench_gpu.py --out benchmarks/results/bench_gpu.json          # on a GPU machine
    python benchmarks/bench_gpu.py --tiny --device cpu --out /tmp/bench_gpu_cpu.json  # CPU smoke (tests)

Measures, on one device:

1. mm-PT training: steps/s and images/s of the training step ``big.mmpt.train.train_step`` (the
   one ``big train`` runs: uint8 batch -> device -> Preprocess -> backbone -> the drawn dataset's
   head -> loss -> backward -> AdamW) with the project's loader (``RowReader`` + ``Prefetcher``
   read-ahead thread) on an interleaved plan over all 12 datasets (``sampler.epoch_plan``), for
   resnet18 and vit_base_patch16_224 (timm, random init), with 28 px input zero-padded to 224 as in
   the thesis and with 224 px input, AMP off and on (fp16 + gradient scaling on CUDA).
2. Whether the loader keeps the GPU busy: the share of the timed wall time the loop spent waiting
   for the next batch (``data_wait_share``), and the GPU utilisation sampled every 0.2 s while
   timing (``torch.cuda.utilization`` via pynvml, else ``nvidia-smi``; null when neither exists).
3. The code track on this device: a resnet18 checkpoint (bn_mode shared and per_dataset) exported
   with ``big export`` (fp16 weights, plain-PyTorch model.py) and run by the ingestion program
   (``ingestion_program/ingest.py``, the CodaBench entry point) on 28 px test images of all 12
   datasets: wall time, images/s, exit code and ingestion_status.json.

The JSON records torch, CUDA, cuDNN, the GPU's name, memory and driver, timm, numpy, Python, the
git commit and every setting. Step times use ``torch.cuda.synchronize`` around the timed steps, and
the loop reads the loss every step as ``big train`` does. A time guard (``--budget-s``, default
210 s) skips what is left and says so in the JSON, so the run fits a 4-minute slot. The JSON is
rewritten after every measurement, and a measurement that raises (say an op without a
deterministic CUDA kernel; ``--no-deterministic`` turns big train's deterministic algorithms off)
is recorded under ``errors`` while the others still run; the exit code is then 1.

Needs installed: Python >= 3.10, numpy, pyyaml, torch >= 2.0 (the machine's own build; CUDA for
the real run), timm >= 1.0 (with the torchvision it imports); optional pynvml or nvidia-smi for
GPU utilisation. The ``big`` package is imported from this checkout (no install needed). Nothing is
downloaded (random weights, random images: throughput does not depend on them). Missing packages
stop the script with a message that names them.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

REQUIRED = ("numpy", "yaml", "torch", "timm")
FULL = {"models": ["resnet18", "vit_base_patch16_224"], "inputs": ["28pad224", "224"], "amp": [False, True],
        "batch_size": 64, "warmup": 5, "steps": 30, "rows": 96, "ingest_n": 500}
TINY = {"models": ["resnet18", "vit_tiny_patch16_224"], "inputs": ["28pad224", "224"], "amp": [False, True],
        "batch_size": 4, "warmup": 1, "steps": 2, "rows": 8, "ingest_n": 4}
INPUTS = {"28pad224": (28, False), "224": (224, True)}  # name -> (img_size, native_resolution)


def check_requirements() -> None:
    missing = [m for m in REQUIRED if importlib.util.find_spec(m) is None]
    if missing:
        names = {"yaml": "pyyaml"}
        raise SystemExit(f"bench_gpu.py needs {', '.join(names.get(m, m) for m in missing)}: "
                         f"pip install {' '.join(names.get(m, m) for m in missing)} (timm also needs torchvision)")


def _run(cmd, **kw) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, **kw).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def environment(device) -> dict:
    import numpy as np
    import timm
    import torch

    env = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
           "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
           "timm": timm.__version__, "numpy": np.__version__, "device": str(device),
           "git_commit": _run(["git", "-C", str(REPO), "rev-parse", "HEAD"]) or None,
           "gpu_name": None, "gpu_capability": None, "gpu_memory_gib": None, "gpu_driver": None}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        env.update({"gpu_name": p.name, "gpu_capability": f"{p.major}.{p.minor}",
                    "gpu_memory_gib": round(p.total_memory / 2**30, 1),
                    "gpu_driver": _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader",
                                        "-i", str(device.index or 0)]) or None})
    return env


class UtilSampler:
    """GPU utilisation (%) every ``period`` s in a thread, while timing."""

    def __init__(self, device, period: float = 0.2):
        self.device, self.period, self.samples, self.source = device, period, [], None
        self._stop = threading.Event()
        self._thread = None
        if device.type != "cuda":
            return
        import torch

        try:
            torch.cuda.utilization(device)
            self.source = "torch.cuda.utilization (pynvml)"
        except Exception:  # no pynvml
            if shutil.which("nvidia-smi"):
                self.source = "nvidia-smi"

    def _read(self):
        import torch

        if self.source and self.source.startswith("torch"):
            return float(torch.cuda.utilization(self.device))
        out = _run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                    "-i", str(self.device.index or 0)])
        return float(out.splitlines()[0]) if out else None

    def _loop(self):
        while not self._stop.wait(self.period):
            v = self._read()
            if v is not None:
                self.samples.append(v)

    def __enter__(self):
        if self.source:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def summary(self) -> dict:
        return {"gpu_util_mean": round(statistics.fmean(self.samples), 1) if self.samples else None,
                "gpu_util_samples": len(self.samples), "gpu_util_source": self.source}


def make_splits(folder: Path, size: int, rows: int, seed: int = 0) -> dict:
    """Random uint8 training images of all 12 datasets at ``size`` px in .npy files, read by the
    project's RowReader (the reader of the training cache), with valid synthetic labels."""
    import numpy as np

    from big import data, registry
    from big.mmpt import loader

    rng = np.random.default_rng(seed)
    splits = {}
    for ds in registry.datasets():
        path = folder / f"{ds.flag}_{size}_train_images.npy"
        if not path.exists():
            arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(rows, *ds.image_shape(size)))
            for a in range(0, rows, 16):
                arr[a:a + 16] = rng.integers(0, 256, size=arr[a:a + 16].shape, dtype=np.uint8)
            arr.flush()
            del arr
        labels = data.synthetic_labels(ds, rows, seed=seed, split="train")
        splits[ds.flag] = loader.SplitData(ds.flag, "train", data.RowReader(path), labels)
    return splits


def bench_training(model: str, input_name: str, amp: bool, s: dict, device, splits: dict) -> dict:
    import numpy as np
    import torch

    from big import registry
    from big.mmpt import config, loader, model as mmodel, sampler
    from big.mmpt import train as mtrain

    img_size, native = INPUTS[input_name]
    cfg = config.resolve({"model": model, "pretrained": False, "img_size": img_size, "pad_to": 224,
                          "native_resolution": native, "datasets": list(registry.flags()), "amp": amp,
                          "batch_size": s["batch_size"], "deterministic": s["deterministic"], "progress": False,
                          "device": str(device), "prefetch": 4})
    mtrain.seed_everything(cfg["seed"])
    net, pre = mmodel.build(cfg)
    net.to(device)
    pre.to(device)
    net.train()
    opt = mtrain.make_optimizer(net, cfg)
    scaler = mtrain.make_scaler(cfg, device)
    sizes = {f: len(sd) for f, sd in splits.items()}
    weights = sampler.loss_weights({f: sampler.n_batches(n, cfg["batch_size"]) for f, n in sizes.items()})
    need = s["warmup"] + s["steps"]
    plan, epoch = [], 0
    while len(plan) < need:
        plan += sampler.epoch_plan(sizes, cfg["batch_size"], cfg["seed"], epoch)
        epoch += 1
    plan = plan[:need]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda *a: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    waits, step_times, losses, n_images = [], [], [], 0
    sampler_util = UtilSampler(device)
    t_start = None
    it = iter(loader.Prefetcher(splits, plan, depth=cfg["prefetch"]))
    for i in range(need):
        if i == s["warmup"]:
            sync()
            sampler_util.__enter__()
            t_start = time.perf_counter()
        t0 = time.perf_counter()
        flag, _rows, imgs, labs = next(it)
        t1 = time.perf_counter()
        loss, _ = mtrain.train_step(net, net.backbone, pre, opt, scaler, cfg, device, flag, imgs, labs,
                                    scale=weights[flag])
        losses.append(float(loss))  # big train reads the loss every step (a device sync)
        if i >= s["warmup"]:
            waits.append(t1 - t0)
            step_times.append(time.perf_counter() - t0)
            n_images += len(imgs)
    sync()
    wall = time.perf_counter() - t_start
    sampler_util.__exit__()
    out = {"model": model, "input": input_name, "img_size": img_size, "fed_size": img_size if native else 224,
           "amp": amp, "amp_dtype": ("float16" if device.type == "cuda" else "bfloat16") if amp else None,
           "batch_size": cfg["batch_size"], "timed_steps": s["steps"], "wall_s": round(wall, 4),
           "steps_per_s": round(s["steps"] / wall, 3), "images_per_s": round(n_images / wall, 1),
           "step_ms_median": round(1000 * statistics.median(step_times), 2),
           "data_wait_share": round(sum(waits) / wall, 4), "losses_finite": bool(np.isfinite(losses).all()),
           **sampler_util.summary()}
    if device.type == "cuda":
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    del net, opt, pre
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def bench_ingestion(bn_mode: str, s: dict, device, work: Path, data_root: Path, input_data: Path) -> dict:
    import torch

    from big import registry
    from big.mmpt import config, export, model as mmodel
    from big.mmpt import train as mtrain

    cfg = config.resolve({"model": "resnet18", "pretrained": False, "img_size": 28, "bn_mode": bn_mode})
    mtrain.seed_everything(cfg["seed"])
    net, pre = mmodel.build(cfg)
    ck = work / f"ck_{bn_mode}.pt"
    torch.save(mtrain.model_checkpoint(cfg, net, pre), ck)
    code, _ = export.export(ck, work / f"code_{bn_mode}.zip", log=lambda m: None)  # fp16, as participants get it
    prog, out = work / f"program_{bn_mode}", work / f"output_{bn_mode}"
    with zipfile.ZipFile(code) as zf:
        zf.extractall(prog)
    shutil.copytree(prog, out)  # CodaBench copies a zip without metadata into the output folder
    env = dict(os.environ)
    if device.type != "cuda":
        env["CUDA_VISIBLE_DEVICES"] = ""  # model.py takes cuda whenever it is available
    elif device.index is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(device.index)
    t0 = time.perf_counter()
    cmd = [sys.executable, str(REPO / "ingestion_program" / "ingest.py"), str(input_data), str(out), str(prog),
           "--data-dir", str(work / "no_app_data"), "--time-budget", "150"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=200)
    except subprocess.TimeoutExpired as exc:
        r = subprocess.CompletedProcess(cmd, -9, exc.stdout or "", f"killed after {exc.timeout} s")
    wall = time.perf_counter() - t0
    status_path = out / "ingestion_status.json"
    status = json.loads(status_path.read_text()) if status_path.is_file() else None
    csvs = sorted(p.name for p in out.glob("*_28.csv"))
    n = s["ingest_n"] * len(registry.flags())
    return {"bn_mode": bn_mode, "model": "resnet18", "resolution": 28, "fed_size": 224, "weights": "float16",
            "images": n, "returncode": r.returncode, "wall_s": round(wall, 2), "images_per_s": round(n / wall, 1),
            "csv_files": len(csvs), "status": status,
            "stderr_tail": r.stderr[-1500:] if r.returncode else ""}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="the JSON file to write")
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    ap.add_argument("--tiny", action="store_true", help="CPU smoke settings: small batch, few steps, vit_tiny")
    ap.add_argument("--models", help="comma-separated timm names (default resnet18,vit_base_patch16_224)")
    ap.add_argument("--inputs", help="comma-separated of 28pad224,224")
    ap.add_argument("--amp", help="comma-separated of off,on")
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--warmup", type=int)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--rows", type=int, help="training images per dataset")
    ap.add_argument("--ingest-n", type=int, help="test images per dataset for the ingestion run (0: skip it)")
    ap.add_argument("--no-deterministic", action="store_true", help="cuDNN autotuning instead of big train's "
                                                                    "deterministic algorithms")
    ap.add_argument("--budget-s", type=float, default=210.0, help="skip what is left after this many seconds")
    args = ap.parse_args(argv)
    check_requirements()
    import torch

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"error: --device {args.device}: torch {torch.__version__} sees no CUDA device (use --device cpu "
              f"for the CPU smoke run)", file=sys.stderr)
        return 2
    s = dict(TINY if args.tiny else FULL)
    for key in ("batch_size", "warmup", "steps", "rows", "ingest_n"):
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    if args.models:
        s["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.inputs:
        s["inputs"] = [x.strip() for x in args.inputs.split(",") if x.strip()]
    if args.amp:
        s["amp"] = [{"off": False, "on": True}[x.strip()] for x in args.amp.split(",") if x.strip() in ("off", "on")]
    bad = [x for x in s["inputs"] if x not in INPUTS]
    if bad or s["steps"] < 1 or s["warmup"] < 0 or s["batch_size"] < 2 or s["rows"] < s["batch_size"]:
        print(f"error: bad settings (inputs {bad or 'ok'}; need steps >= 1, warmup >= 0, batch size >= 2, "
              f"rows >= batch size)", file=sys.stderr)
        return 2
    s["deterministic"] = not args.no_deterministic
    t0 = time.perf_counter()
    from big.mmpt import train as mtrain

    mtrain.set_determinism({"threads": None, "deterministic": s["deterministic"]})
    if not s["deterministic"]:
        torch.backends.cudnn.benchmark = True
    result = {"benchmark": "benchmarks/bench_gpu.py", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "environment": environment(device), "settings": s, "training": [], "ingestion": [], "skipped": [], "errors": []}

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every measurement: a run killed from outside still leaves its figures
        result["wall_s"] = round(time.perf_counter() - t0, 1)
        tmp_out = out.with_name(out.name + ".tmp")
        tmp_out.write_text(json.dumps(result, indent=1) + "\n")
        os.replace(tmp_out, out)

    def over_budget(what: str) -> bool:
        if time.perf_counter() - t0 > args.budget_s:
            result["skipped"].append(f"{what}: time budget of {args.budget_s:.0f} s spent")
            return True
        return False

    def attempt(what: str, fn, *a):
        """One measurement; an exception is recorded (and the run goes on) instead of losing the rest."""
        try:
            return fn(*a)
        except Exception as exc:  # e.g. an op without a deterministic CUDA kernel, out of memory
            import traceback

            result["errors"].append({"what": what, "error": f"{type(exc).__name__}: {exc}"[:2000],
                                     "where": traceback.format_exc(limit=4)[-2000:]})
            print(f"{what}: FAILED ({type(exc).__name__}: {str(exc)[:300]})", flush=True)
            return None
        finally:
            save()

    with tempfile.TemporaryDirectory(prefix="bench_gpu_") as tmp:
        work = Path(tmp)
        data_dirs = {}
        for input_name in s["inputs"]:
            size = INPUTS[input_name][0]
            if size not in data_dirs:
                (work / f"train_{size}").mkdir()
                data_dirs[size] = make_splits(work / f"train_{size}", size, s["rows"])
        for model in s["models"]:
            for input_name in s["inputs"]:
                for amp in s["amp"]:
                    what = f"{model} {input_name} amp {'on' if amp else 'off'}"
                    if over_budget(what):
                        continue
                    r = attempt(what, bench_training, model, input_name, amp, s, device,
                                data_dirs[INPUTS[input_name][0]])
                    if r is None:
                        continue
                    result["training"].append(r)
                    print(f"{what}: {r['steps_per_s']} steps/s, {r['images_per_s']} images/s, data wait "
                          f"{100 * r['data_wait_share']:.1f} %, GPU util {r['gpu_util_mean']}", flush=True)
        if s["ingest_n"] > 0 and not over_budget("ingestion"):
            from big import data

            root = work / "npz28"
            data.synthesize(root, sizes=(28,), n_per_split={"train": 2, "val": 2, "test": s["ingest_n"]}, seed=1)
            inp = work / "input_data"
            cmd = [sys.executable, "-m", "big", "input-data", "--data-root", str(root), "--split", "test", "--sizes",
                   "28", "--out", str(inp), "--allow-synthetic"]
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                                   env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
            except subprocess.TimeoutExpired:
                r = subprocess.CompletedProcess(cmd, -9, "", "big input-data took over 300 s")
            if r.returncode != 0:
                result["skipped"].append(f"ingestion: big input-data failed: {r.stderr[-500:]}")
            else:
                for bn_mode in ("shared", "per_dataset"):
                    if over_budget(f"ingestion {bn_mode}"):
                        continue
                    ing = attempt(f"ingestion {bn_mode}", bench_ingestion, bn_mode, s, device, work, root, inp)
                    if ing is None:
                        continue
                    result["ingestion"].append(ing)
                    print(f"ingestion ({bn_mode}): rc {ing['returncode']}, {ing['csv_files']} CSVs, "
                          f"{ing['images_per_s']} images/s incl. start-up", flush=True)
    save()
    print(f"wrote {out} ({result['wall_s']} s; {result['environment']['gpu_name'] or 'no GPU'})")
    failed = result["errors"] or [i for i in result["ingestion"] if i["returncode"] != 0]
    return 1 if failed or not all(t["losses_finite"] for t in result["training"]) else 0


if __name__ == "__main__":
    sys.exit(main())
