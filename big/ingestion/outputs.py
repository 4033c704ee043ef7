"""Checking one batch of predictions, and its CSV rows (identical to
:func:`big.submission.format_prediction_csv`).

Every predict() result goes through :func:`as_scores` before anything looks at its values: it is
either converted, explicitly, into a plain C-ordered float64 ``numpy.ndarray`` (which is then both
checked and written), or rejected with a message that says what to return. Nothing else is ever
written, so a value the checks did not see (a masked NaN, a subclass that overrides comparisons)
cannot reach the CSV.
"""
from __future__ import annotations

import io
from typing import Optional, Tuple

import numpy as np

from .. import registry

#: what to return, appended to every rejection of an output's type
_RETURN = "return a numpy array of shape ({n}, {c}) with float scores in [0, 1]"


def _type_name(obj) -> str:
    t = type(obj)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _plain_array(out, n_rows: int, n_cols: int) -> Tuple[Optional[np.ndarray], Optional[str]]:
    """The output as a base-class ndarray (no copy yet), or why its type is refused."""
    want = _RETURN.format(n=n_rows, c=n_cols)
    if out is None:
        return None, f"predict returned None (a missing `return`?); {want}"
    if isinstance(out, np.ma.MaskedArray):
        masked = int(np.count_nonzero(np.ma.getmaskarray(out)))
        if masked:
            return None, (f"predict returned a numpy masked array with {masked} masked value(s), and a masked "
                          f"entry has no score; return a plain numpy array of shape ({n_rows}, {n_cols}) with float "
                          "scores in [0, 1] (e.g. np.ma.filled(out, 0.5), with a fill value of your choice)")
        return np.ndarray.view(np.ma.getdata(out), np.ndarray), None
    if isinstance(out, np.ndarray):  # np.matrix, np.memmap and other subclasses: their plain values
        return np.ndarray.view(out, np.ndarray), None
    tname = _type_name(out)
    if hasattr(out, "detach") and hasattr(out, "cpu"):
        return None, f"predict returned a {tname}; return a numpy array (e.g. tensor.detach().cpu().numpy())"
    if hasattr(out, "to_numpy"):
        return None, f"predict returned a {tname}; return a numpy array (e.g. out.to_numpy()); {want}"
    if isinstance(out, (list, tuple)):
        return None, f"predict returned a {tname}; {want} (e.g. np.asarray(out, dtype=np.float64))"
    if isinstance(out, (int, float, complex, np.generic, str, bytes)):
        return None, f"predict returned a single value ({tname}); {want}: one row per image"
    if hasattr(out, "__array__") or hasattr(out, "__array_interface__"):
        return None, f"predict returned a {tname}, not a numpy array; {want} (e.g. np.asarray(out))"
    return None, f"predict returned a {tname}; {want}"


def _shape_hint(shape: tuple, n_rows: int, n_cols: int, flag: str) -> str:
    ds = registry.get(flag)
    if shape in ((n_rows,), (n_rows, 1)):
        if ds.kind == registry.BINARY:
            return f" ({flag} is binary: give 2 columns, the scores of class 0 and class 1)"
        if ds.kind == registry.MULTICLASS:
            return (f" ({flag} has {n_cols} classes: give one column per class, the probability of each class, "
                    "e.g. a softmax, not the predicted class index)")
        return f" ({flag} has {n_cols} labels: give one column per label, e.g. a sigmoid of each logit)"
    if len(shape) == 2 and shape == (n_cols, n_rows):
        return " (transposed?)"
    if len(shape) == 2 and shape[0] == n_rows:
        what = "classes" if ds.kind != registry.MULTILABEL else "labels"
        return f" ({flag} has {n_cols} {what}: one column for each)"
    if len(shape) >= 1 and shape[0] != n_rows:
        return f" (the batch holds {n_rows} images: one row for each, in order)"
    return ""


def as_scores(out, n_rows: int, n_cols: int, flag: str) -> Tuple[Optional[np.ndarray], Optional[str]]:
    """One predict() result as a plain C-ordered float64 array, or (None, the participant's message).

    Accepted: ``numpy.ndarray`` and its subclasses (np.matrix, np.memmap, a masked array without masked
    entries: their values), of any real dtype (floats incl. float16 and non-native byte order,
    integers). Refused, each with what to return instead: None, lists, tuples, scalars, torch tensors,
    DataFrames, other objects (even with ``__array__``), masked entries, bool/complex/object/string/
    structured/datetime dtypes, the wrong shape, non-finite values, values outside [0, 1].
    """
    arr, problem = _plain_array(out, n_rows, n_cols)
    if problem:
        return None, problem
    kind = arr.dtype.kind
    if kind not in "fiu" or arr.dtype.fields is not None or arr.dtype.subdtype is not None:
        what = {"b": "booleans", "c": "complex numbers", "O": "Python objects", "V": "records (a structured dtype)",
                "U": "strings", "S": "bytes", "M": "dates", "m": "time spans"}.get(kind, "not real numbers")
        return None, (f"predict returned an array of dtype {arr.dtype} ({what}); expected real numbers "
                      f"(float32/float64) in [0, 1]" + (" (e.g. out.astype(np.float64) once every entry is a number)"
                                                        if kind == "O" else ""))
    if arr.shape != (n_rows, n_cols):
        ds = registry.get(flag)
        what = {"binary": "2 classes", "multiclass": f"{n_cols} classes", "multilabel": f"{n_cols} labels"}[ds.kind]
        return None, (f"predict returned shape {arr.shape}, expected ({n_rows}, {n_cols}): one row per image, "
                      f"{what}{_shape_hint(tuple(arr.shape), n_rows, n_cols, flag)}")
    vals = np.array(arr, dtype=np.float64, order="C", copy=True)  # native float64, owned, contiguous
    bad = ~np.isfinite(vals)
    if bad.any():
        i, j = (int(x[0]) for x in np.nonzero(bad))
        return None, (f"predict returned {int(bad.sum())} non-finite value(s) (NaN or infinity), the first "
                      f"{vals[i, j]!r} at row {i}, column {j}")
    low, high = vals < 0.0, vals > 1.0
    if low.any() or high.any():
        i, j = (int(x[0]) for x in np.nonzero(low | high))
        return None, (f"predict returned values outside [0, 1] (min {vals.min():.6g}, max {vals.max():.6g}; the "
                      f"first {vals[i, j]:.6g} at row {i}, column {j}); return probabilities (softmax/sigmoid), "
                      "not logits")
    return vals, None


def check_output(out, n_rows: int, n_cols: int, flag: str) -> Optional[str]:
    """What is wrong with one predict() result, or None (:func:`as_scores` without the array)."""
    return as_scores(out, n_rows, n_cols, flag)[1]


def csv_header(n_cols: int) -> str:
    return "id," + ",".join(str(i) for i in range(n_cols)) + "\n"


def csv_rows(scores: np.ndarray, start: int) -> str:
    """Rows ``start..start+B-1`` exactly as :func:`big.submission.format_prediction_csv` writes them
    (``scores`` as returned by :func:`as_scores`)."""
    scores = np.asarray(scores, dtype=np.float64)
    n, c = scores.shape
    if not n:
        return ""
    buf = io.StringIO()
    np.savetxt(buf, np.column_stack([np.arange(start, start + n), scores]), fmt="%d" + ",%.17g" * c, delimiter=",")
    return buf.getvalue()
