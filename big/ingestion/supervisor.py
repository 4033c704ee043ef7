"""The supervisor side of one prediction run: starts the worker process, reads its progress
messages, stops its process group at the time budget and collects the outcome."""
from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from .config import IngestionConfig
from .logs import CappedEcho


@dataclass
class Progress:
    started: float = field(default_factory=time.monotonic)
    resolution: Optional[int] = None
    batch_size: Optional[int] = None
    stage: str = "start"
    dataset: Optional[str] = None
    batch: Optional[int] = None
    batches: Optional[int] = None
    n: int = 0
    done_in_dataset: int = 0
    finished: Dict[str, dict] = field(default_factory=dict)
    counts: Dict[str, int] = field(default_factory=dict)
    dataset_started: Optional[float] = None
    outcome: Optional[dict] = None

    @property
    def images_done(self) -> int:
        return sum(v["n"] for v in self.finished.values()) + self.done_in_dataset

    @property
    def predict_seconds(self) -> float:
        """Seconds spent in the dataset loop so far (finished datasets + the current one)."""
        current = time.monotonic() - self.dataset_started if self.dataset_started is not None else 0.0
        return sum(v["seconds"] for v in self.finished.values()) + current


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])


def _supervise(model_path: Path, dirs: List[Path], staging: Path, cfg: IngestionConfig, t0: float,
               log, python: str) -> Progress:
    job = {"model_path": str(model_path), "image_dirs": [str(d) for d in dirs], "staging": str(staging / "csv"),
           "batch_size": cfg.batch_size, "window_bytes": cfg.window_bytes}
    (staging / "csv").mkdir()
    (staging / "job.json").write_text(json.dumps(job), encoding="utf-8")
    rfd, wfd = os.pipe()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([_package_root()] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("PYTHONUNBUFFERED", None)  # block-buffer the participant's prints (a flood costs less)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # never write __pycache__ into the submission folder
    # our package first on sys.path: a participant file or folder named `big` must not shadow it
    code = f"import sys; sys.path.insert(0, {_package_root()!r}); from big.ingestion.worker import _worker_entry; _worker_entry()"
    prog = Progress(started=t0)
    deadline = t0 + cfg.time_budget_s - cfg.stop_margin_s
    try:
        proc = subprocess.Popen([python, "-c", code, str(staging / "job.json"), str(wfd)], pass_fds=(wfd,),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                cwd=str(model_path.parent), env=env, start_new_session=True)
    finally:
        os.close(wfd)
    echo = CappedEcho(proc.stdout, sys.stdout, cfg.log_head_bytes, cfg.log_tail_bytes)
    echo.start()
    prog.echo = echo  # type: ignore[attr-defined]
    sel = selectors.DefaultSelector()
    chan = os.fdopen(rfd, "rb")
    sel.register(chan, selectors.EVENT_READ)
    timed_out = False
    state = {"buf": b"", "last_note": time.monotonic()}

    def handle(data: bytes) -> None:
        state["buf"] += data
        *lines, state["buf"] = state["buf"].split(b"\n")
        for line in lines:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            _on_message(msg, prog, state, cfg, t0, log)

    timed_out = False
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                break
            if sel.select(timeout=min(1.0, max(0.01, deadline - now))):
                data = os.read(chan.fileno(), 1 << 16)
                if not data:
                    break
                handle(data)
                if prog.outcome is not None:  # the worker answered; it exits by itself right after
                    break
            elif proc.poll() is not None:  # exited; a grandchild may still hold the pipe open
                while sel.select(timeout=0):
                    data = os.read(chan.fileno(), 1 << 16)
                    if not data:
                        break
                    handle(data)
                break
    finally:
        sel.close()
        if not timed_out:  # let it flush the model's buffered output, within the budget
            try:
                proc.wait(timeout=max(0.1, min(5.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                pass
        _kill_group(proc)  # the worker and anything it started (also after a normal exit)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass
        chan.close()
        echo.finish()
    prog.returncode = proc.returncode  # type: ignore[attr-defined]
    prog.timed_out = timed_out  # type: ignore[attr-defined]
    return prog


def _on_message(msg: dict, prog: Progress, state: dict, cfg: IngestionConfig, t0: float, log) -> None:
    ev = msg.get("event")
    now = time.monotonic()
    if ev == "stage":
        prog.stage = msg["stage"]
    elif ev == "model":
        prog.resolution, prog.batch_size = msg["resolution"], msg["batch_size"]
        log(f"model loaded in {now - t0:.1f} s: resolution {msg['resolution']}, batch size {msg['batch_size']}"
            + (f"; {msg['device']}" if msg.get("device") else ""))
    elif ev == "plan":
        prog.stage, prog.counts = "predict", dict(msg["counts"])
        log(f"{sum(prog.counts.values()):,} images in 12 datasets to predict")
    elif ev == "dataset":
        prog.dataset, prog.batch, prog.batches, prog.n, prog.done_in_dataset = (
            msg["dataset"], 0, msg["batches"], msg["n"], 0)
        prog.dataset_started = state["last_note"] = now
    elif ev == "batch":
        prog.batch, prog.done_in_dataset = msg["batch"], msg["done"]
        if now - state["last_note"] >= cfg.progress_every_s:
            state["last_note"] = now
            rate = prog.done_in_dataset / max(1e-9, now - prog.dataset_started)
            log(f"  {prog.dataset}: {prog.done_in_dataset:,}/{prog.n:,} images ({rate:,.0f} images/s)")
    elif ev == "dataset_done":
        prog.finished[msg["dataset"]] = {"n": msg["n"], "seconds": msg["seconds"],
                                         "model_seconds": msg["model_seconds"]}
        prog.done_in_dataset, prog.dataset_started = 0, None
        rate = msg["n"] / max(1e-9, msg["seconds"])
        log(f"{msg['dataset']}: {msg['n']:,} images in {msg['seconds']:.2f} s ({rate:,.0f} images/s; "
            f"predict() {msg['model_seconds']:.2f} s) [{len(prog.finished)}/12]")
    elif ev in ("done", "failed", "error"):
        prog.outcome = msg


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            proc.kill()
        except ProcessLookupError:
            pass


def _exit_reason(code: Optional[int]) -> str:
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {code}"
