"""The ingestion program: runs a participant's ``Model`` over the split's images and writes the CSVs.

CodaBench runs it in the prediction job (codabench.md §2.2-2.5) with the submission's files at
/app/ingested_program, the images at /app/input_data and the shared output at /app/output. A zip
without a metadata file has already been copied into /app/output, and the platform ignores our exit
code, so everything the scorer needs to know goes into ``/app/output/ingestion_status.json``.

Participant API (starting_kit/README.md)::

    model.py (zip root or one wrapping folder)
        class Model:
            resolution = 28          # or 64, 128, 224
            batch_size = 256         # optional
            def predict(self, dataset: str, images: np.ndarray) -> np.ndarray: ...

``images`` is a uint8 batch exactly as in the medmnist npz ((B,S,S) or (B,S,S,3)); the result is
(B, C) scores in [0, 1]. Weights and helpers live beside model.py and are found relative to it.

Design: a supervisor process (this module's :func:`run_ingestion`) and a worker process that imports
the participant's code (:func:`_worker_main`). The supervisor never runs participant code, so it can
always stop the worker at the time budget (killing its whole process group), survive a crash of it,
and cap what it prints (participant output goes through a pipe into a capped log). The worker
streams each ``{flag}_{size}.npy`` through short-lived memory-map windows (resident memory stays at
one window whatever the dataset size), checks every batch's output and appends its rows to a CSV in
a staging folder; the supervisor moves the 12 CSVs into the output only when all are done.

Imports: numpy and the standard library only (this runs in codalab-legacy:gpu310 with python 3.10).
torch is never imported here; when the participant's module imported it, predictions run under
``torch.no_grad()`` and the device is logged.
"""
from __future__ import annotations

import collections
import io
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import data, registry
from .errors import Problem, ReferenceDataError, SubmissionError
from .inputdata import MANIFEST as INPUT_MANIFEST
from .inputdata import file_name as npy_name
from .submission import INGESTION_STATUS, METADATA_NAMES, csv_name

PathLike = Union[str, os.PathLike]

DEFAULT_INPUT_DATA = "/app/input_data"
DEFAULT_OUTPUT = "/app/output"
DEFAULT_PROGRAM = "/app/ingested_program"
DEFAULT_DATA_DIR = "/app/data"
TRACK = "code"
MODEL_FILE = "model.py"
IGNORED_NAMES = {"__MACOSX", ".DS_Store", "__pycache__"}


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------

@dataclass
class IngestionConfig:
    """``ingestion_program/config.yaml``; ``big bundle`` writes ``time_budget_s`` from the phase limit."""

    time_budget_s: float = 1080.0  # whole ingestion run, from the program's start
    stop_margin_s: float = 15.0  # stop the model this long before the budget (CSV move + status)
    batch_size: int = 256  # images per predict() call unless the Model sets batch_size
    window_bytes: int = 64 << 20  # bytes of images mapped at once
    data_dir: str = DEFAULT_DATA_DIR  # images-only fallback on the organizer's own worker
    log_head_bytes: int = 200_000  # participant output echoed in full up to this many bytes
    log_tail_bytes: int = 20_000  # then only the last this many bytes
    progress_every_s: float = 10.0

    @classmethod
    def from_mapping(cls, m: dict) -> "IngestionConfig":
        fields = cls.__dataclass_fields__
        unknown = sorted(set(m) - set(fields))
        if unknown:
            raise ReferenceDataError([Problem(f"unknown ingestion option(s) {', '.join(unknown)}; known: "
                                              f"{', '.join(fields)}")])
        cfg = cls(**m)
        problems = []
        for name in ("time_budget_s", "batch_size", "window_bytes", "progress_every_s"):
            val = getattr(cfg, name)
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not val > 0:
                problems.append(Problem(f"{name} must be a positive number, found {val!r}"))
        for name in ("stop_margin_s", "log_head_bytes", "log_tail_bytes"):
            val = getattr(cfg, name)
            if isinstance(val, bool) or not isinstance(val, (int, float)) or val < 0:
                problems.append(Problem(f"{name} must be a number >= 0, found {val!r}"))
        if not problems and cfg.stop_margin_s >= cfg.time_budget_s:
            problems.append(Problem(f"stop_margin_s ({cfg.stop_margin_s}) must be below time_budget_s "
                                    f"({cfg.time_budget_s})"))
        if problems:
            raise ReferenceDataError(problems)
        cfg.batch_size, cfg.window_bytes = int(cfg.batch_size), int(cfg.window_bytes)
        return cfg


def load_config(path: Optional[PathLike]) -> IngestionConfig:
    if path is None or not Path(path).is_file():
        return IngestionConfig()
    text = Path(path).read_text(encoding="utf-8")
    try:
        import yaml

        m = yaml.safe_load(text)
    except ImportError:  # pragma: no cover - every CodaBench image has pyyaml; plain key: value fallback
        m = {}
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                k, _, v = line.partition(":")
                v = v.strip().strip("'\"")
                try:
                    m[k.strip()] = float(v) if "." in v else int(v)
                except ValueError:
                    m[k.strip()] = v
    except Exception as exc:  # yaml.YAMLError
        raise ReferenceDataError([Problem(f"not valid YAML ({exc})", file=str(path))]) from None
    if m is None:
        m = {}
    if not isinstance(m, dict):
        raise ReferenceDataError([Problem("expected a mapping of options", file=str(path))])
    return IngestionConfig.from_mapping(m)


# ---------------------------------------------------------------------------------------------
# what kind of submission is this
# ---------------------------------------------------------------------------------------------

@dataclass
class Classified:
    kind: str  # "code", "result" or "invalid"
    model_path: Optional[Path] = None
    message: str = ""


def _visible(folder: Path) -> List[Path]:
    return sorted(p for p in folder.iterdir() if p.name not in IGNORED_NAMES and not p.name.startswith("._"))


def _listing(folder: Path, limit: int = 12) -> str:
    files = [p.relative_to(folder).as_posix() for p in sorted(folder.rglob("*")) if p.is_file()
             and not any(part in IGNORED_NAMES for part in p.relative_to(folder).parts)]
    if not files:
        return "nothing"
    return ", ".join(files[:limit]) + (f", ... ({len(files)} files)" if len(files) > limit else "")


def classify_submission(program_dir: PathLike) -> Classified:
    """A code submission (model.py at the root or in one wrapping folder), a result zip (CSV files,
    no model.py), or something invalid (with the participant-facing reason)."""
    root = Path(program_dir)
    if not root.is_dir():
        return Classified("invalid", message=f"the submission folder {root} does not exist; nothing was submitted")
    present = [m for m in METADATA_NAMES if (root / m).exists()]
    if present:
        return Classified("invalid", message=(
            f"the zip holds {present[0]!r} at its root. CodaBench then treats the zip as a program of its own "
            "instead of passing it to the ingestion program (and never copies its files to scoring). Remove "
            f"{present[0]!r}: a code submission holds model.py (+ weights), a result submission the "
            "{flag}_{size}.csv files"))
    if (root / MODEL_FILE).is_file():
        return Classified("code", model_path=root / MODEL_FILE)
    visible = _visible(root)
    if len(visible) == 1 and visible[0].is_dir() and (visible[0] / MODEL_FILE).is_file():
        return Classified("code", model_path=visible[0] / MODEL_FILE)
    if any(p.suffix.lower() == ".csv" for p in root.rglob("*") if p.is_file()):
        return Classified("result")
    deeper = sorted(p for p in root.rglob(MODEL_FILE) if p.is_file())
    if deeper:
        rel = deeper[0].relative_to(root).as_posix()
        return Classified("invalid", message=(
            f"model.py was found at {rel!r}; it must be at the zip root or inside one single wrapping folder "
            f"(the zip holds: {_listing(root)})"))
    return Classified("invalid", message=(
        "the submission holds neither model.py (a code submission) nor {flag}_{size}.csv files (a result "
        f"submission); the zip holds: {_listing(root)}"))


def remove_copied_submission(program_dir: PathLike, output_dir: PathLike) -> List[str]:
    """Delete from the output the files CodaBench copied there from the submission (same relative
    paths; weights would bloat the prediction upload). Returns the removed paths."""
    program, output = Path(program_dir), Path(output_dir)
    removed: List[str] = []
    if not program.is_dir() or not output.is_dir() or program.resolve() == output.resolve():
        return removed
    for src in sorted(program.rglob("*")):
        if src.is_dir() and not src.is_symlink():
            continue
        rel = src.relative_to(program)
        dst = output / rel
        if rel.as_posix() == INGESTION_STATUS:
            continue
        if dst.is_file() or dst.is_symlink():
            dst.unlink()
            removed.append(rel.as_posix())
    # prune folders that the copy created and that are now empty (deepest first)
    for src in sorted((p for p in program.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        dst = output / src.relative_to(program)
        if dst.is_dir() and not dst.is_symlink() and not any(dst.iterdir()):
            dst.rmdir()
    return removed


# ---------------------------------------------------------------------------------------------
# images: locate {flag}_{size}.npy and stream batches through memory-map windows
# ---------------------------------------------------------------------------------------------

def image_dirs(input_data: PathLike, data_dir: Optional[PathLike]) -> List[Path]:
    """Where to look, in order: the task's input data, then ``data_dir/{split}`` and ``data_dir``
    (the split comes from the input data's manifest when there is one)."""
    dirs = [Path(input_data)]
    if data_dir:
        split = None
        manifest = Path(input_data) / INPUT_MANIFEST
        if manifest.is_file():
            try:
                split = json.loads(manifest.read_text(encoding="utf-8")).get("split")
            except (OSError, ValueError, AttributeError):
                split = None
        if split in registry.SPLITS:
            dirs.append(Path(data_dir) / split)
        dirs.append(Path(data_dir))
    out: List[Path] = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def locate_images(dirs: Sequence[Path], size: int) -> Tuple[Dict[str, Path], List[Problem]]:
    """Path of every dataset's ``{flag}_{size}.npy`` (first folder that has it), or the problems."""
    found: Dict[str, Path] = {}
    missing: List[str] = []
    for flag in registry.flags():
        for d in dirs:
            p = d / npy_name(flag, size)
            if p.is_file():
                found[flag] = p
                break
        else:
            missing.append(flag)
    if not missing:
        return found, []
    where = " or ".join(str(d) for d in dirs)
    if found:  # some datasets have this size, others not: the input data is incomplete
        return found, [Problem(f"no images at {size} px for {', '.join(missing)} in {where} (the input data is "
                               "incomplete; organizer: rebuild it with `big input-data`)")]

    def has(s: int, f: str) -> bool:
        return any((d / npy_name(f, s)).is_file() for d in dirs)

    complete = [s for s in registry.SIZES if all(has(s, f) for f in registry.flags())]
    partial = [s for s in registry.SIZES if any(has(s, f) for f in registry.flags())]
    if complete or partial:
        msg = (f"resolution {size} is not available here; the sizes present are "
               f"{', '.join(map(str, complete or partial))}. Set Model.resolution to one of them")
    else:
        msg = (f"resolution {size} is not available here; no input images were found in {where} (organizer: "
               "check the task's input data)")
    return found, [Problem(msg)]


def _npy_layout(path: Path) -> Tuple[Tuple[int, ...], np.dtype, int]:
    with open(path, "rb") as fh:
        shape, fortran, dtype = data.read_npy_header(fh, with_order=True)
        offset = fh.tell()
    if fortran:
        raise ReferenceDataError([Problem("Fortran-ordered array; expected C order", file=str(path))])
    return tuple(shape), dtype, offset


def check_images(path: Path, flag: str, size: int) -> int:
    """Number of images in ``path`` after checking dtype and shape against the registry."""
    try:
        shape, dtype, offset = _npy_layout(path)
    except (ValueError, OSError) as exc:
        raise ReferenceDataError([Problem(f"cannot read the images: {exc}", file=str(path))]) from None
    want = registry.get(flag).image_shape(size)
    if dtype != np.uint8 or len(shape) != len(want) + 1 or tuple(shape[1:]) != want:
        raise ReferenceDataError([Problem(f"images have dtype {dtype} shape {shape}, expected uint8 "
                                          f"(N, {', '.join(map(str, want))})", file=str(path))])
    expected = offset + int(np.prod(shape, dtype=np.int64))
    actual = path.stat().st_size
    if actual < expected:
        raise ReferenceDataError([Problem(f"file is truncated ({actual} of {expected} bytes)", file=str(path))])
    return int(shape[0])


def iter_batches(path: PathLike, batch_size: int, *, window_bytes: int = 64 << 20
                 ) -> Iterator[Tuple[int, np.ndarray]]:
    """(start row, uint8 batch) for consecutive batches of the .npy at ``path``.

    Rows are read through a read-only memory map of one window (a whole number of batches, about
    ``window_bytes``) at a time; the window is unmapped before the next one, so resident memory does
    not grow with the file. Each batch is a fresh C-contiguous array the model may keep or modify.
    """
    path = Path(path)
    shape, dtype, offset = _npy_layout(path)
    n, row_shape = shape[0], tuple(shape[1:])
    row_bytes = int(np.prod(row_shape, dtype=np.int64)) * dtype.itemsize
    per_window = max(1, int(window_bytes) // max(1, row_bytes * batch_size)) * batch_size
    for w0 in range(0, n, per_window):
        rows = min(per_window, n - w0)
        window = np.memmap(path, dtype=dtype, mode="r", offset=offset + w0 * row_bytes, shape=(rows, *row_shape))
        try:
            for b0 in range(0, rows, batch_size):
                yield w0 + b0, np.array(window[b0:b0 + batch_size])
        finally:
            del window


# ---------------------------------------------------------------------------------------------
# checking a batch of predictions; CSV rows identical to big.submission.format_prediction_csv
# ---------------------------------------------------------------------------------------------

def check_output(out, n_rows: int, n_cols: int, flag: str) -> Optional[str]:
    """What is wrong with one predict() result, or None. The message is for the participant."""
    ds = registry.get(flag)
    if not isinstance(out, np.ndarray):
        tname = f"{type(out).__module__}.{type(out).__qualname__}"
        if hasattr(out, "detach") and hasattr(out, "cpu"):
            return f"predict returned a {tname}; return a numpy array (e.g. tensor.detach().cpu().numpy())"
        return f"predict returned a {tname}; return a numpy array of shape ({n_rows}, {n_cols})"
    if out.dtype == np.bool_ or not (np.issubdtype(out.dtype, np.floating) or np.issubdtype(out.dtype, np.integer)):
        return (f"predict returned an array of dtype {out.dtype}; expected real numbers (float32/float64) "
                f"in [0, 1]")
    if out.shape != (n_rows, n_cols):
        hint = ""
        if ds.kind == registry.BINARY and out.shape == (n_rows,) or out.shape == (n_rows, 1):
            hint = f" ({flag} is binary: give 2 columns, the scores of class 0 and class 1)"
        elif out.ndim == 2 and out.shape[0] == n_cols and out.shape[1] == n_rows:
            hint = " (transposed?)"
        what = {"binary": "2 classes", "multiclass": f"{n_cols} classes", "multilabel": f"{n_cols} labels"}[ds.kind]
        return f"predict returned shape {out.shape}, expected ({n_rows}, {n_cols}): one row per image, {what}{hint}"
    vals = out.astype(np.float64, copy=False)
    bad = ~np.isfinite(vals)
    if bad.any():
        i, j = (int(x[0]) for x in np.nonzero(bad))
        return (f"predict returned {int(bad.sum())} non-finite value(s) (NaN or infinity), the first "
                f"{vals[i, j]!r} at row {i}, column {j}")
    low, high = vals < 0.0, vals > 1.0
    if low.any() or high.any():
        i, j = (int(x[0]) for x in np.nonzero(low | high))
        return (f"predict returned values outside [0, 1] (min {vals.min():.6g}, max {vals.max():.6g}; the first "
                f"{vals[i, j]:.6g} at row {i}, column {j}); return probabilities (softmax/sigmoid), not logits")
    return None


def csv_header(n_cols: int) -> str:
    return "id," + ",".join(str(i) for i in range(n_cols)) + "\n"


def csv_rows(scores: np.ndarray, start: int) -> str:
    """Rows ``start..start+B-1`` exactly as :func:`big.submission.format_prediction_csv` writes them."""
    scores = np.asarray(scores, dtype=np.float64)
    n, c = scores.shape
    if not n:
        return ""
    buf = io.StringIO()
    np.savetxt(buf, np.column_stack([np.arange(start, start + n), scores]), fmt="%d" + ",%.17g" * c, delimiter=",")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# the worker process: imports and runs the participant's model
# ---------------------------------------------------------------------------------------------

class ModelFailure(Exception):
    """A participant problem found in the worker: a one-line summary plus their traceback."""

    def __init__(self, summary: str, details: str = "", dataset: Optional[str] = None, batch: Optional[int] = None):
        super().__init__(summary)
        self.summary, self.details, self.dataset, self.batch = summary, details, dataset, batch


def participant_traceback(exc: BaseException) -> str:
    """The traceback with our own and importlib's frames dropped (it is their code)."""
    tb = exc.__traceback__
    ours = os.path.abspath(__file__)
    while tb is not None and (os.path.abspath(tb.tb_frame.f_code.co_filename) == ours
                              or tb.tb_frame.f_code.co_filename.startswith("<frozen importlib")):
        tb = tb.tb_next
    lines = traceback.format_exception(type(exc), exc, tb)
    return "".join(lines).rstrip()


def _exc_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


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
                           f"it wants); found {resolution!r}")
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
                problem = check_output(out, len(batch), ds.n_labels, flag)
                if problem:
                    raise ModelFailure(f"{where}: {problem}", dataset=flag, batch=k)
                fh.write(csv_rows(out, start))
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
            raise ModelFailure(f"Model.batch_size must be a positive integer, found {batch_size!r}")
        send(event="model", resolution=size, batch_size=int(batch_size), device=_device_note())
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
        send(event="failed", summary=exc.summary, details=exc.details, dataset=exc.dataset, batch=exc.batch)
    except ReferenceDataError as exc:
        send(event="error", summary=f"input data problem (organizer): {exc.summary}")
    except BaseException as exc:  # noqa: BLE001 - a bug of ours, or their code outside predict
        send(event="failed", summary=f"unexpected error during {stage}: {_exc_line(exc)}",
             details=participant_traceback(exc))
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


# ---------------------------------------------------------------------------------------------
# the supervisor
# ---------------------------------------------------------------------------------------------

class CappedEcho(threading.Thread):
    """Drains the worker's stdout+stderr pipe: echoes the first ``head`` bytes, keeps the last ``tail``."""

    def __init__(self, stream, sink, head: int, tail: int, prefix: str = "model| "):
        super().__init__(daemon=True)
        self.stream, self.sink, self.head, self.tail, self.prefix = stream, sink, head, tail, prefix
        self.total = 0
        self.echoed = 0
        self._tail = collections.deque()
        self._tail_len = 0
        self._at_line_start = True
        self._recent = b""

    def _emit(self, data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        out = []
        for piece in text.splitlines(keepends=True):
            if self._at_line_start:
                out.append(self.prefix)
            out.append(piece)
            self._at_line_start = piece.endswith("\n")
        try:
            self.sink.write("".join(out))
            self.sink.flush()
        except (OSError, ValueError):
            pass

    def run(self) -> None:
        while True:
            try:
                block = self.stream.read1(1 << 16) if hasattr(self.stream, "read1") else self.stream.read(1 << 16)
            except (OSError, ValueError):
                break
            if not block:
                break
            self.total += len(block)
            self._recent = (self._recent + block)[-4096:]
            room = self.head - self.echoed
            if room > 0:
                self._emit(block[:room])
                self.echoed += min(room, len(block))
                block = block[room:]
            if block:
                self._tail.append(block)
                self._tail_len += len(block)
                while self._tail and self._tail_len - len(self._tail[0]) >= self.tail:
                    self._tail_len -= len(self._tail.popleft())

    def tail_text(self) -> bytes:
        data = b"".join(self._tail)
        return data[-self.tail:] if self.tail else b""

    def finish(self) -> None:
        self.join(timeout=5)
        omitted = self.total - self.echoed - len(self.tail_text())
        if omitted > 0:
            self._at_line_start = True
            self._emit(f"[... {omitted:,} bytes of model output omitted ...]\n".encode())
        rest = self.tail_text()
        if rest:
            self._emit(rest)
        if not self._at_line_start:
            self._emit(b"\n")

    def last_lines(self, n: int = 15) -> str:
        """The model's last output lines (for a crash message), whether or not they were echoed."""
        lines = self._recent.decode("utf-8", "replace").splitlines()
        return "\n".join(line[-300:] for line in lines[-n:])


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


def _package_root() -> str:
    return str(Path(__file__).resolve().parent.parent)


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
        log(f"result submission (no model.py in {program}): its files are already in the output; nothing to do")
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
    code = f"import sys; sys.path.insert(0, {_package_root()!r}); from big.ingestion import _worker_entry; _worker_entry()"
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


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + f"\n[... {len(text) - limit} characters omitted ...]\n" + text[-half:]


# ---------------------------------------------------------------------------------------------
# entry point (ingestion_program/ingest.py and `big ingest`)
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# local use: any predict callable over local files -> a result submission zip
# ---------------------------------------------------------------------------------------------

def iter_npz_batches(npz: PathLike, split: str, batch_size: int) -> Iterator[Tuple[int, np.ndarray]]:
    """(start row, uint8 batch) streamed from the ``{split}_images`` member of a medmnist npz file
    (decompressed batch by batch, never the whole array)."""
    import zipfile

    npz = Path(npz)
    with zipfile.ZipFile(npz) as zf:
        member = f"{split}_images.npy"
        if member not in zf.namelist():
            raise ReferenceDataError([Problem(f"no member {member}", file=str(npz))])
        with zf.open(member) as fh:
            major, _ = np.lib.format.read_magic(fh)
            reader = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = reader(fh)
            if fortran or dtype != np.uint8:
                raise ReferenceDataError([Problem(f"{member} is {dtype}{' Fortran' if fortran else ''}; expected "
                                                  "C-ordered uint8", file=str(npz))])
            row = int(np.prod(shape[1:], dtype=np.int64))
            for a in range(0, shape[0], batch_size):
                k = min(batch_size, shape[0] - a)
                buf = fh.read(k * row)
                if len(buf) != k * row:
                    raise ReferenceDataError([Problem(f"{member} is truncated at row {a}", file=str(npz))])
                yield a, np.frombuffer(buf, dtype=np.uint8).reshape((k, *shape[1:])).copy()


def predict_local(predict: Callable[[str, np.ndarray], np.ndarray], size: int, data_root: PathLike, split: str,
                  *, batch_size: int = 256, flags: Optional[Sequence[str]] = None,
                  log: Optional[Callable[[str], None]] = None) -> Dict[str, np.ndarray]:
    """Run ``predict(dataset, images)`` over the ``split`` images of every dataset, from medmnist npz
    files or an images-only folder ({flag}_{size}.npy) in ``data_root``, with ingestion's checks.
    Returns {flag: (n, C) float64}; a bad batch raises :class:`SubmissionError` naming it."""
    root = Path(data_root)
    out: Dict[str, np.ndarray] = {}
    for flag in flags or registry.flags():
        ds = registry.get(flag)
        npy, npz = root / npy_name(flag, size), root / ds.file_name(size)
        if npy.is_file():
            n = check_images(npy, flag, size)
            batches = iter_batches(npy, batch_size)
        elif npz.is_file():
            n = None
            batches = iter_npz_batches(npz, split, batch_size)
        else:
            raise SubmissionError([Problem(f"neither {npz.name} nor {npy.name} is in {root} (python -m medmnist "
                                           f"download --size {size})")])
        t0 = time.perf_counter()
        parts = []
        for k, (start, batch) in enumerate(batches, 1):
            where = f"dataset {flag}, batch {k} (images {start}-{start + len(batch) - 1})"
            try:
                res = predict(flag, batch)
            except Exception as exc:
                raise SubmissionError([Problem(f"predict raised {_exc_line(exc)} ({where})\n"
                                               f"{participant_traceback(exc)}")],
                                      summary=f"predict raised {_exc_line(exc)} ({where})") from None
            problem = check_output(res, len(batch), ds.n_labels, flag)
            if problem:
                raise SubmissionError([Problem(f"{where}: {problem}")])
            parts.append(np.asarray(res, dtype=np.float64))
        out[flag] = np.concatenate(parts) if parts else np.zeros((n or 0, ds.n_labels))
        if log:
            m = out[flag].shape[0]
            log(f"{flag}: {m} images in {time.perf_counter() - t0:.1f} s")
    return out


def result_zip_from_model(model_path: PathLike, data_root: PathLike, split: str, out_zip: PathLike, *,
                          log: Optional[Callable[[str], None]] = None) -> Path:
    """A code submission's model.py run locally (in this process) -> a result submission zip."""
    from .submission import write_submission

    try:
        model = load_model(model_path)
    except ModelFailure as exc:
        raise SubmissionError([Problem(exc.summary + ("\n" + exc.details if exc.details else ""))],
                              summary=exc.summary) from None
    size = int(model.resolution)
    batch = int(getattr(model, "batch_size", None) or 256)
    with _torch_no_grad()():
        preds = predict_local(model.predict, size, data_root, split, batch_size=batch, log=log)
    return write_submission(out_zip, preds, size)
