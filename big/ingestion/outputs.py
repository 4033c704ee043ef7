"""Checking one batch of predictions, and its CSV rows (identical to
:func:`big.submission.format_prediction_csv`)."""
from __future__ import annotations

import io
from typing import Optional

import numpy as np

from .. import registry


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
