"""The worker process: imports the participant's model.py and runs it over the images.

Everything here runs in the process that also runs participant code; the supervisor
(:mod:`big.ingestion.supervisor`) treats what it sends as untrusted.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from .. import registry
from ..errors import ReferenceDataError
from ..submission import csv_name
from .config import PathLike
from .images import check_images, iter_batches, locate_images
from .outputs import as_scores, csv_header, csv_rows
from .protocol import MAX_DETAILS_CHARS, MAX_IMAGES, MAX_SUMMARY_CHARS, cap, show

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class ModelFailure(Exception):
    """A participant problem found in the worker: a one-line summary plus their traceback."""

    def __init__(self, summary: str, details: str = "", dataset: Optional[str] = None, batch: Optional[int] = None):
        super().__init__(summary)
        self.summary, self.details, self.dataset, self.batch = summary, details, dataset, batch


def participant_traceback(exc: BaseException) -> str:
    """The traceback with our own and importlib's frames dropped (it is their code)."""
    tb = exc.__traceback__
    while tb is not None and (os.path.dirname(os.path.abspath(tb.tb_frame.f_code.co_filename)) == _PACKAGE_DIR
                              or tb.tb_frame.f_code.co_filename.startswith("<frozen importlib")):
        tb = tb.tb_next
    lines = traceback.format_exception(type(exc), exc, tb)
    return "".join(lines).rstrip()


def _exc_line(exc: BaseException) -> str:
    try:
        text = str(exc).strip().splitlines()
    except Exception:  # noqa: BLE001 - their exception's __str__
        text = ["<the exception's message could not be printed>"]
    return f"{type(exc).__name__}: {cap(text[0], 1000)}" if text else type(exc).__name__


def load_model(model_path: PathLike):
    """Import model.py as module ``model`` (its folder first on sys.path) and instantiate Model."""
    import importlib.util

    model_path = Path(model_path).resolve()
    folder = str(model_path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        spec = importlib.util.spec_from_file_location("model", model_path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["model"] = module
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        where = f" (line {exc.lineno})" if exc.lineno else ""
        raise ModelFailure(f"model.py has a syntax error{where}: {exc.msg}", participant_traceback(exc)) from None
    except BaseException as exc:  # noqa: BLE001 - anything their module does at import time
        raise ModelFailure(f"importing model.py failed: {_exc_line(exc)}", participant_traceback(exc)) from None
    cls = getattr(module, "Model", None)
    if cls is None:
        names = sorted(n for n in vars(module) if not n.startswith("_") and isinstance(vars(module)[n], type)
                       and vars(module)[n].__module__ == "model")
        raise ModelFailure("model.py defines no class `Model`" +
                           (f" (its classes: {', '.join(names)})" if names else ""))
    if not callable(cls):
        raise ModelFailure(f"`Model` in model.py is a {type(cls).__name__}, not a class")
    try:
        model = cls()
    except BaseException as exc:  # noqa: BLE001
        raise ModelFailure(f"Model() raised {_exc_line(exc)}", participant_traceback(exc)) from None
    predict = getattr(model, "predict", None)
    if predict is None or not callable(predict):
        raise ModelFailure("Model has no method `predict(self, dataset, images)`")
    resolution = getattr(model, "resolution", None)
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or int(resolution) not in registry.SIZES:
        raise ModelFailure(f"Model.resolution must be one of {', '.join(map(str, registry.SIZES))} (the image size "
                           f"it wants); found {show(resolution)}")
    return model


def run_predictions(model, images: Dict[str, Path], size: int, out_dir: Path, *, batch_size: int,
                    window_bytes: int, send: Callable[..., None]) -> None:
    """Predict every dataset batch by batch; check each batch; append rows to ``out_dir/{flag}_{size}.csv``."""
    grad_off = _torch_no_grad()
    for flag in registry.flags():
        ds = registry.get(flag)
        path = images[flag]
        n = check_images(path, flag, size)
        n_batches = -(-n // batch_size)
        send(event="dataset", dataset=flag, n=n, batches=n_batches)
        t0 = time.perf_counter()
        t_model = 0.0
        target = out_dir / csv_name(flag, size)
        with open(target, "w", encoding="utf-8", newline="") as fh:
            fh.write(csv_header(ds.n_labels))
            for k, (start, batch) in enumerate(iter_batches(path, batch_size, window_bytes=window_bytes), 1):
                where = f"dataset {flag}, batch {k} of {n_batches} (images {start}-{start + len(batch) - 1})"
                t1 = time.perf_counter()
                try:
                    with grad_off():
                        out = model.predict(flag, batch)
                except BaseException as exc:  # noqa: BLE001 - their code
                    raise ModelFailure(f"predict raised {_exc_line(exc)} ({where})", participant_traceback(exc),
                                       dataset=flag, batch=k) from None
                t_model += time.perf_counter() - t1
                scores, problem = as_scores(out, len(batch), ds.n_labels, flag)  # converted before any check
                if problem:
                    raise ModelFailure(f"{where}: {problem}", dataset=flag, batch=k)
                fh.write(csv_rows(scores, start))  # exactly the array that was checked
                send(event="batch", dataset=flag, batch=k, done=start + len(batch))
        dt = time.perf_counter() - t0
        send(event="dataset_done", dataset=flag, n=n, seconds=dt, model_seconds=t_model)


def _torch_no_grad():
    """``torch.no_grad`` when the participant's code imported torch, else a null context."""
    import contextlib

    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "no_grad"):
        return torch.no_grad
    return contextlib.nullcontext


def _device_note() -> Optional[str]:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if torch.cuda.is_available():
            return f"torch {torch.__version__}: CUDA available ({torch.cuda.get_device_name(0)})"
        return f"torch {torch.__version__}: no CUDA device visible, running on CPU"
    except Exception as exc:  # noqa: BLE001
        return f"torch {getattr(torch, '__version__', '?')}: CUDA query failed ({exc})"


def _worker_main(argv: Optional[List[str]] = None) -> int:
    """Entry of the worker process: ``python -c ... JOB_JSON MESSAGE_FD``."""
    argv = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    chan = os.fdopen(int(argv[1]), "w", buffering=1, encoding="utf-8")

    def send(**msg):
        chan.write(json.dumps(msg) + "\n")
        chan.flush()

    stage = "import"
    try:
        send(event="stage", stage="import")
        model = load_model(job["model_path"])
        size = int(model.resolution)
        batch_size = getattr(model, "batch_size", None) or job["batch_size"]
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ModelFailure(f"Model.batch_size must be a positive integer, found {show(batch_size)}")
        batch_size = min(int(batch_size), MAX_IMAGES)  # one batch holds at most a whole dataset anyway
        note = _device_note()
        send(event="model", resolution=size, batch_size=batch_size, device=cap(note, 300) if note else None)
        images, problems = locate_images([Path(d) for d in job["image_dirs"]], size)
        if problems:
            raise ModelFailure(problems[0].message)
        counts = {flag: check_images(path, flag, size) for flag, path in images.items()}
        send(event="plan", counts=counts)
        stage = "predict"
        run_predictions(model, images, size, Path(job["staging"]), batch_size=int(batch_size),
                        window_bytes=int(job["window_bytes"]), send=send)
        send(event="done")
        return 0
    except ModelFailure as exc:
        send(event="failed", summary=cap(exc.summary, MAX_SUMMARY_CHARS), details=cap(exc.details, MAX_DETAILS_CHARS),
             dataset=exc.dataset, batch=exc.batch)
    except ReferenceDataError as exc:
        send(event="error", summary=cap(f"input data problem (organizer): {exc.summary}", MAX_SUMMARY_CHARS))
    except BaseException as exc:  # noqa: BLE001 - a bug of ours, or their code outside predict
        send(event="failed", summary=cap(f"unexpected error during {stage}: {_exc_line(exc)}", MAX_SUMMARY_CHARS),
             details=cap(participant_traceback(exc), MAX_DETAILS_CHARS))
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:  # noqa: BLE001
            pass
    return 1


def _worker_entry() -> None:
    """Process entry: run, flush, and leave at once (``os._exit``), so that threads or atexit
    handlers the participant's code left behind cannot keep the worker alive after its answer."""
    from .reaper import die_with_parent

    die_with_parent()  # if the model kills the supervisor, the worker goes with it
    try:
        rc = _worker_main()
    except BaseException:  # noqa: BLE001 - the message channel itself failed; say so on stderr
        traceback.print_exc()
        rc = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(rc)
