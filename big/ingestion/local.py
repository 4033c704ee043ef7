"""Local use: any ``predict`` callable over local files, with ingestion's checks -> a result zip."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from .. import registry
from ..errors import Problem, SubmissionError
from ..inputdata import file_name as npy_name
from .config import PathLike
from .images import check_images, iter_batches, iter_npz_batches
from .outputs import as_scores
from .worker import ModelFailure, _exc_line, _torch_no_grad, load_model, participant_traceback


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
            scores, problem = as_scores(res, len(batch), ds.n_labels, flag)  # converted before any check
            if problem:
                raise SubmissionError([Problem(f"{where}: {problem}")])
            parts.append(scores)
        out[flag] = np.concatenate(parts) if parts else np.zeros((n or 0, ds.n_labels))
        if log:
            m = out[flag].shape[0]
            log(f"{flag}: {m} images in {time.perf_counter() - t0:.1f} s")
    return out


def result_zip_from_model(model_path: PathLike, data_root: PathLike, split: str, out_zip: PathLike, *,
                          log: Optional[Callable[[str], None]] = None) -> Path:
    """A code submission's model.py run locally (in this process) -> a result submission zip."""
    from ..submission import write_submission

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
