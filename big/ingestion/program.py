"""The ingestion program's entry point: classify the submission, run the model under the
supervisor, and write the outputs and ``ingestion_status.json`` for the scorer."""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, List, Optional

from .. import registry
from ..errors import ReferenceDataError
from ..submission import INGESTION_STATUS, csv_name
from .config import (DEFAULT_INPUT_DATA, DEFAULT_OUTPUT, DEFAULT_PROGRAM, IngestionConfig, PathLike,
                     load_config)
from .images import image_dirs
from .kind import classify_submission, remove_copied_submission
from .logs import CappedEcho, _cap
from .supervisor import Progress, _exit_reason, _supervise

TRACK = "code"


def write_status(output: PathLike, status: str, message: str, *, dataset: Optional[str] = None,
                 batch: Optional[int] = None, extra: Optional[dict] = None) -> Path:
    """``ingestion_status.json`` (atomic): {track, status, dataset, batch, message} (+ extra info)."""
    path = Path(output) / INGESTION_STATUS
    body = {"track": TRACK, "status": status, "dataset": dataset, "batch": batch, "message": message}
    if extra:
        body.update(extra)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    tmp.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _gpu_visible() -> str:
    if Path("/proc/driver/nvidia/gpus").is_dir() and any(Path("/proc/driver/nvidia/gpus").iterdir()):
        return "an NVIDIA GPU is visible"
    if Path("/dev/nvidia0").exists():
        return "an NVIDIA device node is visible"
    return "no GPU visible (CPU only)"


def run_ingestion(input_data: PathLike = DEFAULT_INPUT_DATA, output: PathLike = DEFAULT_OUTPUT,
                  program: PathLike = DEFAULT_PROGRAM, *, config: Optional[IngestionConfig] = None,
                  log: Optional[Callable[[str], None]] = None, err: Optional[Callable[[str], None]] = None,
                  t0: Optional[float] = None, python: Optional[str] = None) -> int:
    """Run one prediction job. Returns 0 when predictions (or a result zip) are in place, else 1.

    The scorer learns the outcome from ``ingestion_status.json`` (never written for a result zip).
    """
    t0 = time.monotonic() if t0 is None else t0
    cfg = config or IngestionConfig()
    log = log or (lambda s: print(s, flush=True))
    err = err or (lambda s: print(s, file=sys.stderr, flush=True))
    output, program = Path(os.path.abspath(output)), Path(os.path.abspath(program))
    input_data = Path(os.path.abspath(input_data))
    sub = classify_submission(program)
    if sub.kind == "result":
        note = f"; {sub.ignored_model} beside the 12 prediction files is ignored" if sub.ignored_model else ""
        log(f"result submission: its files are already in the output; nothing to run{note}")
        return 0
    output.mkdir(parents=True, exist_ok=True)
    removed = remove_copied_submission(program, output)
    if removed:
        log(f"removed {len(removed)} copied submission file(s) from {output} (they stay in {program})")
    if sub.kind == "invalid":
        err(f"ERROR: {sub.message}")
        write_status(output, "failed", sub.message)
        return 1
    write_status(output, "failed", "the ingestion program stopped before it finished (killed, out of memory, or "
                                   "the platform's time limit); see the ingestion log")
    log(f"code submission: {sub.model_path.relative_to(program).as_posix()}; time budget {cfg.time_budget_s:g} s; "
        f"{_gpu_visible()}")
    dirs = image_dirs(input_data, os.path.abspath(cfg.data_dir) if cfg.data_dir else None)
    staging = Path(tempfile.mkdtemp(prefix="big-ingestion-"))
    try:
        prog = _supervise(sub.model_path, dirs, staging, cfg, t0, log, python or sys.executable)
        return _finish(prog, staging, output, program, cfg, t0, log, err)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        reserved = output / "metadata"  # CodaBench fails a job whose output holds one (model code could write it)
        if reserved.is_file() or reserved.is_symlink():
            reserved.unlink()
            log(f"removed {reserved}: the name is reserved by CodaBench")


def _finish(prog: Progress, staging: Path, output: Path, program: Path, cfg: IngestionConfig, t0: float,
            log, err) -> int:
    elapsed = time.monotonic() - t0
    echo: CappedEcho = prog.echo  # type: ignore[attr-defined]
    extra = {"resolution": prog.resolution, "elapsed_s": round(elapsed, 3), "images": prog.images_done,
             "datasets_done": list(prog.finished)}
    if prog.timed_out:  # type: ignore[attr-defined]
        done = list(prog.finished)
        if prog.stage == "predict" and prog.dataset:
            at = f"it was predicting {prog.dataset} (batch {prog.batch + 1} of {prog.batches})"
        elif prog.stage == "predict":
            at = "it was about to start predicting"
        else:
            at = "it was still loading (importing model.py or running Model())"
        est = ""
        seconds = prog.predict_seconds
        if prog.counts and prog.images_done and seconds > 0:
            rate = prog.images_done / seconds
            total = sum(prog.counts.values())
            est = (f" It predicted {prog.images_done:,} of {total:,} images at {rate:,.0f} images/s; the whole "
                   f"split would need about {total / rate:,.0f} s of prediction.")
        msg = (f"time budget exceeded: ingestion stopped the model after {elapsed:.0f} s (budget "
               f"{cfg.time_budget_s:g} s, stopping {cfg.stop_margin_s:g} s early to finish cleanly); {len(done)} of 12 "
               f"datasets were done{' (' + ', '.join(done) + ')' if done else ''} and {at}.{est} No predictions "
               "were written. Use a smaller resolution, a larger batch, the GPU, or a faster model")
        err(f"ERROR: {msg}")
        where = {"dataset": prog.dataset, "batch": (prog.batch + 1) if prog.dataset else None}
        write_status(output, "timeout", msg, **where, extra=extra)
        return 1
    outcome = prog.outcome
    if outcome is None or outcome.get("event") != "done":
        where = {"dataset": None, "batch": None}
        if outcome is None:
            tail = echo.last_lines()
            if prog.dataset:
                where = {"dataset": prog.dataset, "batch": prog.batch + 1}
            summary = (f"the model process {_exit_reason(prog.returncode)} while " +
                       (f"predicting {prog.dataset} (batch {prog.batch + 1} of {prog.batches})" if prog.dataset
                        else "loading the model" if prog.stage != "predict" else "preparing the predictions"))
            details = f"last output of the model:\n{tail}" if tail else ""
        else:
            summary, details = outcome["summary"], outcome.get("details") or ""
            where = {"dataset": outcome.get("dataset"), "batch": outcome.get("batch")}
        err(f"ERROR: {summary}")
        if details:
            err(details)
        message = summary + ("\n" + _cap(details, 8000) if details else "")
        write_status(output, "failed", message, **where, extra=extra)
        return 1
    # success: move the CSVs in (after removing the copied submission again: the platform's copy may
    # still have been running when we started)
    remove_copied_submission(program, output)

    size = prog.resolution
    for flag in registry.flags():
        src = staging / "csv" / csv_name(flag, size)
        tmp = output / f".{src.name}.partial"
        shutil.copyfile(src, tmp)
        os.replace(tmp, output / src.name)
    total_n = prog.images_done
    model_s = sum(v["model_seconds"] for v in prog.finished.values())
    msg = (f"predicted {total_n:,} images of 12 datasets at {size} px in {elapsed:.1f} s "
           f"({total_n / max(1e-9, prog.predict_seconds):,.0f} images/s; predict() {model_s:.1f} s)")
    extra["model_seconds"] = round(model_s, 3)
    extra["loop_seconds"] = round(sum(v["seconds"] for v in prog.finished.values()), 3)
    write_status(output, "ok", msg, extra=extra)
    log(msg)
    return 0


USAGE = ("usage: ingest.py [INPUT_DATA OUTPUT INGESTED_PROGRAM] [--data-dir DIR] [--config FILE] "
         "[--time-budget SECONDS]\n(defaults: /app/input_data /app/output /app/ingested_program, data dir /app/data)")


def main(argv: Optional[List[str]] = None, *, config_path: Optional[PathLike] = None,
         t0: Optional[float] = None) -> int:
    import argparse

    t0 = time.monotonic() if t0 is None else t0
    parser = argparse.ArgumentParser(prog="ingest.py", description="BIG ingestion program", usage=USAGE)
    parser.add_argument("paths", nargs="*")
    parser.add_argument("--data-dir")
    parser.add_argument("--config", default=config_path)
    parser.add_argument("--time-budget", type=float)
    args = parser.parse_args(argv)
    if len(args.paths) not in (0, 3):
        print(USAGE, file=sys.stderr)
        return 2
    inp, out, prog = args.paths or (DEFAULT_INPUT_DATA, DEFAULT_OUTPUT, DEFAULT_PROGRAM)
    try:
        cfg = load_config(args.config)
        if args.data_dir is not None:
            cfg.data_dir = args.data_dir
        if args.time_budget is not None:
            cfg = IngestionConfig.from_mapping({**asdict(cfg), "time_budget_s": args.time_budget,
                                                "stop_margin_s": min(cfg.stop_margin_s, args.time_budget / 10)})
    except ReferenceDataError as exc:
        for line in exc.report():
            print(line, file=sys.stderr)
        print(f"ingestion configuration error: {exc.summary}", file=sys.stderr)
        try:  # the scorer must still learn why no predictions arrived
            if classify_submission(prog).kind != "result":
                Path(out).mkdir(parents=True, exist_ok=True)
                write_status(out, "failed", f"ingestion configuration error (organizer): {exc.summary}")
        except OSError:
            pass
        return 2
    return run_ingestion(inp, out, prog, config=cfg, t0=t0)
