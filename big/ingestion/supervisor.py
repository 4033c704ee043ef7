"""The supervisor side of one prediction run: starts the worker process, reads its progress
messages, stops the model's whole process tree at the time budget (and after a normal end), and
collects the outcome.

Nothing the model can reach is trusted here. Its messages are untrusted input (:mod:`.protocol`:
bounded lines, schema and order checked; a bad one stops the run with a participant message).
Catchable signals sent to the supervisor (by the model's code, a user or the platform) stop the run
with a status instead of killing it silently. Its process tree is found and stopped by
:mod:`.reaper`, however it detached. The supervisor never runs participant code.
"""
from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from . import protocol
from .config import IngestionConfig
from .logs import CappedEcho
from .reaper import ProcessTree


@dataclass
class Progress:
    started: float = field(default_factory=time.monotonic)
    resolution: Optional[int] = None
    batch_size: Optional[int] = None
    stage: str = "start"
    dataset: Optional[str] = None
    batch: int = 0
    batches: Optional[int] = None
    n: int = 0
    done_in_dataset: int = 0
    finished: Dict[str, dict] = field(default_factory=dict)
    counts: Dict[str, int] = field(default_factory=dict)
    dataset_started: Optional[float] = None
    outcome: Optional[dict] = None
    # how the run ended (set by _supervise)
    timed_out: bool = False
    interrupted: Optional[str] = None  # the name of a signal the supervisor received
    violation: Optional[str] = None  # what was wrong on the message channel
    channel_fd: Optional[int] = None
    channel_closed_early: bool = False  # EOF on the channel while the worker was still running
    returncode: Optional[int] = None
    others_stopped: int = 0  # processes of the model's tree, besides the worker, that were killed
    survivors: List[int] = field(default_factory=list)
    last_dataset: Optional[str] = None  # the dataset being predicted, or the last one started
    echo: Optional[CappedEcho] = None

    @property
    def images_done(self) -> int:
        return sum(v["n"] for v in self.finished.values()) + self.done_in_dataset

    @property
    def predict_seconds(self) -> float:
        """Seconds spent in the dataset loop so far (finished datasets + the current one)."""
        current = time.monotonic() - self.dataset_started if self.dataset_started is not None else 0.0
        return sum(v["seconds"] for v in self.finished.values()) + current


#: after its answer the worker flushes the model's output and exits at once; it gets this long
FLUSH_WAIT_S = 2.0


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])


# signals whose default action ends a process and that a handler can catch; the supervisor turns
# them into a clean stop (synchronous faults such as SIGSEGV are left alone)
_STOPPING = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGVTALRM", "SIGPROF",
             "SIGIO", "SIGPWR", "SIGXCPU", "SIGXFSZ", "SIGSTKFLT")
# signals whose default action stops (suspends) a process: caught and ignored while the model runs
_SUSPENDING = ("SIGTSTP", "SIGTTIN", "SIGTTOU")


def _ignore(signum, frame) -> None:
    """A handler, not SIG_IGN: an ignored disposition would be inherited by the worker across exec."""


class _Signals:
    """While the model runs: catchable stopping signals are recorded (and wake the select loop)
    instead of killing the supervisor without a status. Main thread only; a signal that already has
    a handler of its own (not the default) is left alone; everything is restored on exit."""

    def __init__(self) -> None:
        self.received: Optional[str] = None
        self.wakeup_r: Optional[int] = None
        self._wakeup_w: Optional[int] = None
        self._old: Dict[int, object] = {}
        self._old_wakeup: Optional[int] = None

    def _on_signal(self, signum, frame) -> None:
        if self.received is None:
            try:
                self.received = signal.Signals(signum).name
            except ValueError:
                self.received = f"signal {signum}"

    def __enter__(self) -> "_Signals":
        if threading.current_thread() is not threading.main_thread():
            return self
        names = list(_STOPPING) + list(_SUSPENDING)
        sigs = [getattr(signal, n) for n in names if hasattr(signal, n)]
        suspending = {getattr(signal, n) for n in _SUSPENDING if hasattr(signal, n)}
        if hasattr(signal, "SIGRTMIN"):
            sigs += list(range(signal.SIGRTMIN, signal.SIGRTMAX + 1))
        for sig in sigs:
            try:
                cur = signal.getsignal(sig)
            except (ValueError, OSError):
                continue
            default = cur == signal.SIG_DFL or (sig == signal.SIGINT and cur is signal.default_int_handler)
            if not default:
                continue
            handler = _ignore if sig in suspending else self._on_signal
            try:
                signal.signal(sig, handler)
            except (ValueError, OSError, RuntimeError):
                continue
            self._old[sig] = cur
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        try:
            old = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        except (ValueError, OSError):
            os.close(r), os.close(w)
            return self
        if old != -1:  # someone else's wakeup fd (an event loop): give it back, use the flag only
            signal.set_wakeup_fd(old)
            os.close(r), os.close(w)
            return self
        self.wakeup_r, self._wakeup_w = r, w
        return self

    def __exit__(self, *exc) -> None:
        if self._wakeup_w is not None:
            signal.set_wakeup_fd(-1)
            os.close(self.wakeup_r)
            os.close(self._wakeup_w)
        for sig, old in self._old.items():
            try:
                signal.signal(sig, old)
            except (ValueError, OSError, RuntimeError):
                pass


class _Lines:
    """Splits the channel's bytes into lines, never holding more than MAX_LINE_BYTES."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> List[bytes]:
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        if len(self.buf) > protocol.MAX_LINE_BYTES or any(len(ln) > protocol.MAX_LINE_BYTES for ln in lines):
            raise protocol.Violation(f"a line longer than {protocol.MAX_LINE_BYTES:,} bytes "
                                     f"(starting {protocol.show(self.buf[:40] or lines[0][:40])})")
        return lines


def _supervise(model_path: Path, dirs: List[Path], staging: Path, cfg: IngestionConfig, t0: float,
               log, python: str) -> Progress:
    job = {"model_path": str(model_path), "image_dirs": [str(d) for d in dirs], "staging": str(staging / "csv"),
           "batch_size": cfg.batch_size, "window_bytes": cfg.window_bytes}
    (staging / "csv").mkdir()
    (staging / "job.json").write_text(json.dumps(job), encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([_package_root()] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("PYTHONUNBUFFERED", None)  # block-buffer the participant's prints (a flood costs less)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # never write __pycache__ into the submission folder
    # our package first on sys.path: a participant file or folder named `big` must not shadow it
    code = f"import sys; sys.path.insert(0, {_package_root()!r}); from big.ingestion.worker import _worker_entry; _worker_entry()"
    prog = Progress(started=t0)
    deadline = t0 + cfg.time_budget_s - cfg.stop_margin_s
    with ProcessTree() as tree, _Signals() as sigs:
        rfd, wfd = os.pipe()
        try:
            proc = subprocess.Popen([python, "-c", code, str(staging / "job.json"), str(wfd)], pass_fds=(wfd,),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    cwd=str(model_path.parent), env=env, start_new_session=True)
        except BaseException:
            os.close(rfd)
            raise
        finally:
            os.close(wfd)
        prog.channel_fd = wfd
        echo = CappedEcho(proc.stdout, sys.stdout, cfg.log_head_bytes, cfg.log_tail_bytes)
        echo.start()
        prog.echo = echo
        try:
            _read_channel(proc, rfd, sigs, prog, cfg, t0, deadline, log)
        finally:
            if prog.outcome is not None and not (prog.timed_out or prog.interrupted or prog.violation):
                try:  # let the worker flush the model's buffered output and exit (it does so at once)
                    proc.wait(timeout=max(0.1, min(FLUSH_WAIT_S, deadline - time.monotonic())))
                except subprocess.TimeoutExpired:
                    pass
            prog.survivors = tree.stop(proc.pid)  # the worker and everything it started, however detached
            prog.others_stopped = tree.killed
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL was sent
                pass
            os.close(rfd)
            echo.finish()
        prog.returncode = proc.returncode
    return prog


def _read_channel(proc: subprocess.Popen, rfd: int, sigs: _Signals, prog: Progress, cfg: IngestionConfig,
                  t0: float, deadline: float, log) -> None:
    """Read and apply the worker's messages until an outcome, the worker's exit, the budget, a signal
    or a protocol violation. At a stop, what is already in the pipe is read first (the location in
    the status is then exact), without waiting for more."""
    sel = selectors.DefaultSelector()
    sel.register(rfd, selectors.EVENT_READ, "channel")
    if sigs.wakeup_r is not None:
        sel.register(sigs.wakeup_r, selectors.EVENT_READ, "signal")
    pending = selectors.DefaultSelector()  # the channel alone
    pending.register(rfd, selectors.EVENT_READ)
    lines = _Lines()
    note = {"last": time.monotonic()}
    state = {"open": True}

    def read_once() -> None:
        data = os.read(rfd, 1 << 16)
        if not data:  # EOF: every writer closed it (the worker's exit, or the model closed it)
            state["open"] = False
            sel.unregister(rfd)
            pending.unregister(rfd)
            if proc.poll() is None:
                prog.channel_closed_early = True
            if lines.buf:
                raise protocol.Violation(f"an unterminated line {protocol.show(lines.buf)}")
            return
        for line in lines.feed(data):
            msg = protocol.check(protocol.decode(line), prog)
            _apply(msg, prog, note, cfg, t0, log)
            if prog.outcome is not None:
                return

    def drain(seconds: float) -> None:
        end = time.monotonic() + seconds
        while state["open"] and prog.outcome is None and time.monotonic() < end and pending.select(timeout=0):
            read_once()

    try:
        while prog.outcome is None:
            if sigs.received:
                prog.interrupted = sigs.received
                drain(0.2)
                return
            now = time.monotonic()
            if now >= deadline:
                prog.timed_out = True
                drain(0.2)
                return
            for key, _ in sel.select(timeout=min(0.5, max(0.01, deadline - now))):
                if key.data == "signal":
                    try:
                        os.read(sigs.wakeup_r, 4096)
                    except OSError:
                        pass
                elif state["open"]:
                    read_once()
                if prog.outcome is not None:
                    return
            if proc.poll() is not None:  # the worker exited: what is left, without waiting for a
                drain(0.5)               # grandchild that may hold the channel open
                return
    except protocol.Violation as exc:
        prog.violation = str(exc)
    finally:
        sel.close()
        pending.close()


def _apply(msg: dict, prog: Progress, note: dict, cfg: IngestionConfig, t0: float, log) -> None:
    """Update the run's state from one checked message (see :func:`protocol.check`)."""
    ev = msg["event"]
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
        prog.last_dataset = msg["dataset"]
        prog.dataset_started = note["last"] = now
    elif ev == "batch":
        prog.batch, prog.done_in_dataset = msg["batch"], msg["done"]
        if now - note["last"] >= cfg.progress_every_s:
            note["last"] = now
            rate = prog.done_in_dataset / max(1e-9, now - prog.dataset_started)
            log(f"  {prog.dataset}: {prog.done_in_dataset:,}/{prog.n:,} images ({rate:,.0f} images/s)")
    elif ev == "dataset_done":
        flag = msg["dataset"]
        prog.finished[flag] = {"n": msg["n"], "seconds": float(msg["seconds"]),
                               "model_seconds": float(msg["model_seconds"])}
        prog.dataset, prog.done_in_dataset, prog.dataset_started = None, 0, None
        rate = msg["n"] / max(1e-9, msg["seconds"])
        log(f"{flag}: {msg['n']:,} images in {msg['seconds']:.2f} s ({rate:,.0f} images/s; "
            f"predict() {msg['model_seconds']:.2f} s) [{len(prog.finished)}/12]")
    elif ev in protocol.OUTCOMES:
        prog.outcome = msg


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
