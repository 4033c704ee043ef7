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
from ..errors import ReferenceDataError, SubmissionError
from ..inputdata import read_manifest
from ..submission import INGESTION_STATUS
from .config import (DEFAULT_INPUT_DATA, DEFAULT_OUTPUT, DEFAULT_PROGRAM, IngestionConfig, PathLike,
                     load_config)
from .images import image_dirs
from .kind import classify_submission, drop_participant_status, remove_copied_submission
from .logs import CappedEcho, _cap
from .results import clean_output, expected_counts, our_names, publish, read_back, snapshot
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


def _split_of(input_data: Path) -> str:
    try:
        split = (read_manifest(input_data) or {}).get("split")
    except (ReferenceDataError, AttributeError):
        split = None
    return split if split in registry.SPLITS else "test"


def run_ingestion(input_data: PathLike = DEFAULT_INPUT_DATA, output: PathLike = DEFAULT_OUTPUT,
                  program: PathLike = DEFAULT_PROGRAM, *, config: Optional[IngestionConfig] = None,
                  log: Optional[Callable[[str], None]] = None, err: Optional[Callable[[str], None]] = None,
                  t0: Optional[float] = None, python: Optional[str] = None) -> int:
    """Run one prediction job. Returns 0 when predictions (or a result zip) are in place, else 1.

    Code submissions: the output ends with exactly the 12 checked CSVs and ``ingestion_status.json``
    (or the status alone), the status written last, after the model's whole process tree is gone.
    Result submissions: nothing runs and nothing is written; an ``ingestion_status.json`` from the
    participant's zip is removed (the scorer then reads the prediction files as a result submission).
    OUTPUT should be a folder of its own: entries that appear in it during the run are removed.
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
        dropped = drop_participant_status(output, sub.folder)
        if dropped:
            log(f"removed {', '.join(dropped)} from the output: only the ingestion program writes that file (for "
                "code submissions); the scorer reads this submission's prediction files")
        return 0
    output.mkdir(parents=True, exist_ok=True)
    removed = remove_copied_submission(program, output)
    if removed:
        log(f"removed {len(removed)} copied submission file(s) from {output} (they stay in {program})")
    before = snapshot(output)
    if sub.kind == "invalid":
        err(f"ERROR: {sub.message}")
        # "submission": "invalid" tells the scorer this was not a code run (no "code submission failed")
        _conclude(output, program, before, None, log, "failed", sub.message, extra={"submission": "invalid"})
        return 1
    write_status(output, "failed", "the ingestion program stopped before it finished (killed, out of memory, or "
                                   "the platform's time limit); see the ingestion log")
    log(f"code submission: {sub.model_path.relative_to(program).as_posix()}; time budget {cfg.time_budget_s:g} s; "
        f"{_gpu_visible()}")
    dirs = image_dirs(input_data, os.path.abspath(cfg.data_dir) if cfg.data_dir else None)
    staging = Path(tempfile.mkdtemp(prefix="big-ingestion-"))
    try:
        prog = _supervise(sub.model_path, dirs, staging, cfg, t0, log, python or sys.executable)
        return _finish(prog, staging, output, program, before, dirs, _split_of(input_data), cfg, t0, log, err)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _conclude(output: Path, program: Path, before: set, files: Optional[dict], log, status: str, message: str,
              **fields) -> None:
    """The end of every code run, after the model's tree is gone: remove what is not ours from the
    output, place the checked CSVs (``files``), and write the status last."""
    remove_copied_submission(program, output)  # again: the platform's copy may have run on meanwhile
    size = fields.get("extra", {}).get("resolution") if files else None
    removed, failed = clean_output(output, before, our_names(size))
    if removed:
        shown = ", ".join(removed[:10]) + (f", ... ({len(removed)} in all)" if len(removed) > 10 else "")
        log(f"removed from the output what the model's code wrote there ({shown}): a code submission's output "
            "holds only the 12 predictions and ingestion_status.json")
    if failed:
        log(f"WARNING: could not remove from the output: {', '.join(failed[:10])}")
    if files:
        publish(files, output)
    write_status(output, status, message, **fields)


def _finish(prog: Progress, staging: Path, output: Path, program: Path, before: set, dirs, split: str,
            cfg: IngestionConfig, t0: float, log, err) -> int:
    elapsed = time.monotonic() - t0
    echo: CappedEcho = prog.echo
    extra = {"resolution": prog.resolution, "elapsed_s": round(elapsed, 3), "images": prog.images_done,
             "datasets_done": list(prog.finished)}
    if prog.others_stopped:
        log(f"stopped {prog.others_stopped} other process(es) the model had started")
    if prog.survivors:
        log(f"WARNING: {len(prog.survivors)} process(es) of the model could not be stopped: {prog.survivors[:10]}")

    def fail(status: str, summary: str, details: str = "", dataset=None, batch=None) -> int:
        err(f"ERROR: {summary}")
        if details:
            err(details)
        message = summary + ("\n" + _cap(details, 8000) if details else "")
        _conclude(output, program, before, None, log, status, message, dataset=dataset, batch=batch, extra=extra)
        return 1

    done = list(prog.finished)
    done_note = f"{len(done)} of 12 datasets were done{' (' + ', '.join(done) + ')' if done else ''}"
    if prog.dataset:
        at = f"it was predicting {prog.dataset} (batch {prog.batch + 1} of {prog.batches})"
    elif prog.stage == "predict":
        at = ("it was about to start predicting" if not done else
              f"it had finished {done[-1]} and was about to start the next dataset")
    else:
        at = "it was still loading (importing model.py or running Model())"
    where = {"dataset": prog.dataset, "batch": (prog.batch + 1) if prog.dataset else None}
    if prog.interrupted:
        return fail("failed", f"the ingestion program received {prog.interrupted} after {elapsed:.0f} s and stopped "
                    f"the model; {done_note} and {at}. No predictions were written. (A signal comes from the "
                    "platform, from a user, or from the model's own code: a model must not signal other processes)",
                    **where)
    if prog.timed_out:
        est = ""
        seconds = prog.predict_seconds
        if prog.counts and prog.images_done and seconds > 0:
            rate = prog.images_done / seconds
            total = sum(prog.counts.values())
            est = (f" It predicted {prog.images_done:,} of {total:,} images at {rate:,.0f} images/s; the whole "
                   f"split would need about {total / rate:,.0f} s of prediction.")
        msg = (f"time budget exceeded: ingestion stopped the model after {elapsed:.0f} s (budget "
               f"{cfg.time_budget_s:g} s, stopping {cfg.stop_margin_s:g} s early to finish cleanly); {done_note} "
               f"and {at}.{est} No predictions were written. Use a smaller resolution, a larger batch, the GPU, or a "
               "faster model")
        return fail("timeout", msg, **where)
    if prog.violation:
        return fail("failed", f"the model's code interfered with the ingestion program: its private message channel "
                    f"(file descriptor {prog.channel_fd} of the model's process) carried {prog.violation}. A model "
                    "must not write to, close or replace file descriptors it did not open", **where)
    outcome = prog.outcome
    if outcome is None or outcome.get("event") != "done":
        if outcome is None:
            tail = echo.last_lines() if echo else ""
            summary = (f"the model process {_exit_reason(prog.returncode)} while " +
                       (f"predicting {prog.dataset} (batch {prog.batch + 1} of {prog.batches})" if prog.dataset
                        else "loading the model" if prog.stage != "predict" else "preparing the predictions"))
            if prog.channel_closed_early:
                summary += (" (it had closed the ingestion program's message channel, file descriptor "
                            f"{prog.channel_fd}: a model must not close file descriptors it did not open)")
            details = f"last output of the model:\n{tail}" if tail else ""
        else:
            summary, details = outcome["summary"], outcome.get("details") or ""
            where = {"dataset": outcome.get("dataset"), "batch": outcome.get("batch")}
        return fail("failed", summary, details, **where)
    # "done", after all twelve datasets: read the CSVs back with the scorer's reader before saying ok
    size = prog.resolution
    try:
        counts = expected_counts(dirs, size)
        files = read_back(staging / "csv", size, counts, split, staging / "checked")
    except ReferenceDataError as exc:
        return fail("failed", f"input data problem (organizer): {exc.summary}")
    except SubmissionError as exc:
        shown = "; ".join(str(p) for p in exc.problems[:5]) + (f"; ... ({len(exc.problems)} problems)"
                                                               if len(exc.problems) > 5 else "")
        return fail("failed", "the predictions did not pass the ingestion program's read-back check with the "
                    f"scorer's reader: {shown}. The worker checks and writes every batch itself, so the model's code "
                    "changed its files: a model must not write into the ingestion program's staging folder")
    total_n = prog.images_done
    model_s = sum(v["model_seconds"] for v in prog.finished.values())
    msg = (f"predicted {total_n:,} images of 12 datasets at {size} px in {elapsed:.1f} s "
           f"({total_n / max(1e-9, prog.predict_seconds):,.0f} images/s; predict() {model_s:.1f} s)")
    extra["model_seconds"] = round(model_s, 3)
    extra["loop_seconds"] = round(sum(v["seconds"] for v in prog.finished.values()), 3)
    extra["elapsed_s"] = round(time.monotonic() - t0, 3)
    _conclude(output, program, before, files, log, "ok", msg, extra=extra)
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
            sub = classify_submission(prog)
            if sub.kind == "result":
                drop_participant_status(out, sub.folder)
            else:
                Path(out).mkdir(parents=True, exist_ok=True)
                write_status(out, "failed", f"ingestion configuration error (organizer): {exc.summary}")
        except OSError:
            pass
        return 2
    try:
        return run_ingestion(inp, out, prog, config=cfg, t0=t0)
    except Exception as exc:  # noqa: BLE001 - a bug of ours or a broken platform folder: still a status
        import traceback

        traceback.print_exc()
        msg = (f"internal error of the ingestion program (organizer: see its log): {type(exc).__name__}: "
               f"{str(exc)[:500]}")
        print(f"ERROR: {msg}", file=sys.stderr)
        try:
            if classify_submission(prog).kind != "result":
                Path(out).mkdir(parents=True, exist_ok=True)
                write_status(out, "failed", msg)
        except Exception:  # noqa: BLE001
            pass
        return 1
