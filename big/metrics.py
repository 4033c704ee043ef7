"""The BIG metrics as pure numpy functions (no I/O, no scikit-learn at run time).

Definitions follow the thesis reference code (medmnist ``getAUC`` plus the thesis' balanced
accuracy and Cohen's kappa), per task family:

========== ======================================= =========================================
family     AUC                                     balanced accuracy / kappa (unweighted)
========== ======================================= =========================================
binary     AUC of column 1 (the positive class)    on ``score[:, 1] > 0.5`` (strict)
multiclass mean over classes of one-vs-rest AUC    on ``argmax`` (ties -> lowest index)
(ordinal)  (RetinaMNIST is scored as multiclass)
multilabel mean over labels of per-label AUC       per label at ``> 0.5``, then mean over labels
========== ======================================= =========================================

A class (multiclass AUC) or label (multilabel, all three metrics) whose reference labels hold a
single value is undefined and skipped in the mean; :func:`skipped_classes` says which. A metric
that is undefined as a whole comes back as NaN here; callers decide what to do with it (the scorer
refuses such reference data, the bootstrap drops such replicates) so no NaN reaches scores.json.

Every function takes ``sample_weight``: ``None``, a 1-D array of n weights, or a 2-D (B, n) array
of B weight vectors (bootstrap counts), in which case a (B,) array is returned. Weights are
multiplicities: an integer weight w counts a sample w times.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from .registry import BINARY, MULTICLASS, MULTILABEL

ArrayOrFloat = Union[float, np.ndarray]
THRESHOLD = 0.5


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def _weights(sample_weight, n: int):
    """(W as (B, n) float64, squeeze flag)."""
    if sample_weight is None:
        return np.ones((1, n)), True
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim == 1:
        if w.shape[0] != n:
            raise ValueError(f"sample_weight has {w.shape[0]} entries for {n} samples")
        return w[None, :], True
    if w.ndim != 2 or w.shape[1] != n:
        raise ValueError(f"sample_weight must be (n,) or (B, n) with n={n}, got {w.shape}")
    return w, False


def _out(x: np.ndarray, squeeze: bool) -> ArrayOrFloat:
    return float(x[0]) if squeeze else x


def _nanmean_rows(stack: np.ndarray) -> np.ndarray:
    """Mean over axis 0 ignoring NaN; NaN where a column is all-NaN (no warning)."""
    ok = ~np.isnan(stack)
    cnt = ok.sum(axis=0)
    tot = np.where(ok, stack, 0.0).sum(axis=0)
    return np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)


def _as_labels(y_true: np.ndarray, kind: str) -> np.ndarray:
    y = np.asarray(y_true)
    if kind == MULTILABEL:
        if y.ndim != 2:
            raise ValueError(f"multilabel y_true must be (n, L), got {y.shape}")
        return y.astype(np.int64)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"y_true must be (n,) or (n, 1) for {kind}, got {y.shape}")
    return y.astype(np.int64)


def _as_scores(y_score: np.ndarray, n: int) -> np.ndarray:
    s = np.asarray(y_score, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != n:
        raise ValueError(f"y_score must be (n, C) with n={n}, got {s.shape}")
    return s


def _binary_auc(y: np.ndarray, s: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Weighted AUC (Mann-Whitney with ties counted 1/2) for each row of W; NaN if a class is empty."""
    order = np.argsort(s, kind="mergesort")
    s_sorted = s[order]
    pos = y[order].astype(bool)
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    Ws = W[:, order]
    P = np.add.reduceat(np.where(pos, Ws, 0.0), starts, axis=1)
    N = np.add.reduceat(np.where(pos, 0.0, Ws), starts, axis=1)
    n_below = np.cumsum(N, axis=1) - N
    num = (P * (n_below + 0.5 * N)).sum(axis=1)
    den = P.sum(axis=1) * N.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _binary_auc_unweighted(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """:func:`_binary_auc` with every weight 1 and finite scores, by sorting values only: for each
    positive, the negatives strictly below it and those tied with it. Every partial sum is an exact
    integer or half-integer, so the result is the same double as :func:`_binary_auc`'s."""
    pos = y.astype(bool)
    n_pos = int(np.count_nonzero(pos))
    n_neg = pos.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return np.array([np.nan])
    neg = np.sort(s[~pos])
    sp = np.sort(s[pos])
    below = np.searchsorted(neg, sp, "left")
    upto = np.searchsorted(neg, sp, "right")
    num = float(below.sum()) + 0.5 * float((upto - below).sum())
    return np.array([num / (n_pos * n_neg)])


def _auc_column(y: np.ndarray, s: np.ndarray, W: np.ndarray, unweighted: bool) -> np.ndarray:
    if unweighted and np.isfinite(s).all():
        return _binary_auc_unweighted(y, s)
    return _binary_auc(y, s, W)


def _confusion(y: np.ndarray, pred: np.ndarray, k: int, W: np.ndarray, unweighted: bool = False) -> np.ndarray:
    """(B, k, k) weighted confusion matrices, rows = truth, columns = prediction."""
    cells = y * k + pred
    if unweighted:  # every weight 1: integer counts, the same numbers as the sums below
        return np.bincount(cells, minlength=k * k).astype(np.float64).reshape(1, k, k)
    order = np.argsort(cells, kind="stable")
    c_sorted = cells[order]
    starts = np.flatnonzero(np.r_[True, c_sorted[1:] != c_sorted[:-1]])
    sums = np.add.reduceat(W[:, order], starts, axis=1)
    cm = np.zeros((W.shape[0], k * k))
    cm[:, c_sorted[starts]] = sums
    return cm.reshape(W.shape[0], k, k)


def _balacc_from_cm(cm: np.ndarray) -> np.ndarray:
    support = cm.sum(axis=2)  # (B, k) true counts
    diag = np.diagonal(cm, axis1=1, axis2=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, diag / np.where(support > 0, support, 1.0), np.nan)
    return _nanmean_rows(recall.T)


def _kappa_from_cm(cm: np.ndarray) -> np.ndarray:
    n = cm.sum(axis=(1, 2))
    tr = np.trace(cm, axis1=1, axis2=2)
    expected = (cm.sum(axis=2) * cm.sum(axis=1)).sum(axis=1)  # sum_c rows_c * cols_c
    with np.errstate(invalid="ignore", divide="ignore"):
        den = n - expected / np.where(n > 0, n, 1.0)
        num = tr - expected / np.where(n > 0, n, 1.0)
        return np.where((n > 0) & (den > 1e-12 * np.maximum(n, 1)), num / np.where(den != 0, den, 1.0), np.nan)


def hard_predictions(y_score: np.ndarray, kind: str) -> np.ndarray:
    """Thresholded / argmax predictions as the thesis code derives them."""
    s = np.asarray(y_score, dtype=np.float64)
    if kind == MULTILABEL:
        return (s > THRESHOLD).astype(np.int64)
    if kind == BINARY:
        return (s[:, 1] > THRESHOLD).astype(np.int64)
    return np.argmax(s, axis=1)


def _label_defined(y: np.ndarray, W: np.ndarray) -> np.ndarray:
    """(B,) whether binary labels y hold both values under weights W."""
    wp = (W * (y == 1)).sum(axis=1)
    wn = (W * (y == 0)).sum(axis=1)
    return (wp > 0) & (wn > 0)


# ---------------------------------------------------------------------------------------------
# public metrics
# ---------------------------------------------------------------------------------------------

def auc_score(y_true, y_score, *, kind: str, sample_weight=None) -> ArrayOrFloat:
    """Area under the ROC curve, BIG definition for ``kind`` (see the module table)."""
    y = _as_labels(y_true, kind)
    s = _as_scores(y_score, y.shape[0])
    W, sq = _weights(sample_weight, y.shape[0])
    one = sample_weight is None
    if kind == BINARY:
        return _out(_auc_column(y, s[:, 1], W, one), sq)
    if kind == MULTILABEL:
        per = np.stack([_auc_column(y[:, j], s[:, j], W, one) for j in range(y.shape[1])])
        return _out(_nanmean_rows(per), sq)
    if kind == MULTICLASS:
        per = np.stack([_auc_column((y == c).astype(np.int64), s[:, c], W, one) for c in range(s.shape[1])])
        return _out(_nanmean_rows(per), sq)
    raise ValueError(f"unknown task kind {kind!r}")


def _hard_metric(y_true, y_score, kind: str, sample_weight, from_cm) -> ArrayOrFloat:
    """A metric computed from the confusion matrix of the BIG hard predictions (per label for
    multilabel, then the mean over the labels whose reference holds both values)."""
    y = _as_labels(y_true, kind)
    s = _as_scores(y_score, y.shape[0])
    W, sq = _weights(sample_weight, y.shape[0])
    pred = hard_predictions(s, kind)
    one = sample_weight is None
    if kind == MULTILABEL:
        per = [np.where(_label_defined(y[:, j], W), from_cm(_confusion(y[:, j], pred[:, j], 2, W, one)), np.nan)
               for j in range(y.shape[1])]
        return _out(_nanmean_rows(np.stack(per)), sq)
    k = s.shape[1] if kind == MULTICLASS else 2
    return _out(from_cm(_confusion(y, pred, k, W, one)), sq)


def balanced_accuracy_score(y_true, y_score, *, kind: str, sample_weight=None) -> ArrayOrFloat:
    """Balanced accuracy (mean recall over the classes present), BIG thresholds for ``kind``."""
    return _hard_metric(y_true, y_score, kind, sample_weight, _balacc_from_cm)


def cohen_kappa_score(y_true, y_score, *, kind: str, sample_weight=None) -> ArrayOrFloat:
    """Unweighted Cohen's kappa between the labels and the BIG hard predictions for ``kind``."""
    return _hard_metric(y_true, y_score, kind, sample_weight, _kappa_from_cm)


METRIC_FUNCTIONS = {
    "auc": auc_score,
    "balacc": balanced_accuracy_score,
    "kappa": cohen_kappa_score,
}


def skipped_classes(y_true, *, kind: str, n_classes: int) -> List[int]:
    """Classes (multiclass AUC) or labels (multilabel) left out of the per-class mean.

    Multiclass: classes with no sample, or every sample, in the reference. Multilabel: labels whose
    reference column is constant. Binary: [] (a constant binary reference is an error upstream).
    """
    y = _as_labels(y_true, kind)
    if kind == MULTILABEL:
        return [j for j in range(y.shape[1]) if y[:, j].min() == y[:, j].max()]
    if kind == MULTICLASS:
        counts = np.bincount(y, minlength=n_classes)
        return [c for c in range(n_classes) if counts[c] == 0 or counts[c] == y.shape[0]]
    return []


def score_dataset(y_true, y_score, *, kind: str) -> Dict[str, float]:
    """The three BIG metrics for one dataset (floats; NaN only where undefined as a whole)."""
    return {key: float(fn(y_true, y_score, kind=kind)) for key, fn in METRIC_FUNCTIONS.items()}


def mean_over_datasets(per_dataset: Dict[str, Dict[str, float]], metrics: Sequence[str] = tuple(METRIC_FUNCTIONS)):
    """Unweighted mean over datasets for each metric (the benchmark score)."""
    return {m: float(np.mean([per_dataset[d][m] for d in per_dataset])) for m in metrics}


# ---------------------------------------------------------------------------------------------
# bootstrap
# ---------------------------------------------------------------------------------------------

def _count_batches(n: int, n_boot: int, rng: np.random.Generator, batch: int, dtype=np.float64):
    """(b, n) resampling multiplicities in ``dtype``; the random stream does not depend on dtype."""
    done = 0
    while done < n_boot:
        b = min(batch, n_boot - done)
        idx = rng.integers(0, n, size=(b, n))
        idx += (np.arange(b) * n)[:, None]
        flat = np.bincount(idx.ravel(), minlength=b * n)
        del idx
        yield flat.reshape(b, n).astype(dtype)
        done += b


def bootstrap_counts(n: int, n_boot: int, rng: np.random.Generator, batch: int = 64):
    """Yield (b, n) float arrays of resampling multiplicities (n draws with replacement each)."""
    yield from _count_batches(n, n_boot, rng, batch, np.float64)


class _AucPlan:
    """One binary AUC prepared for many weight vectors (bootstrap counts).

    The sort by score and the tie groups are computed once; each batch then needs one gather of
    the positives' and negatives' counts, a running sum over the negatives and a dot product.
    With integer counts every partial sum is an exact integer (or half-integer) in float32/float64,
    so the result equals :func:`_binary_auc` bit for bit.
    """

    def __init__(self, y: np.ndarray, s: np.ndarray):
        order = np.argsort(s, kind="mergesort")
        s_sorted = s[order]
        pos = np.asarray(y)[order].astype(bool)
        group = np.cumsum(np.r_[True, s_sorted[1:] != s_sorted[:-1]]) - 1  # tie group of each sorted sample
        self.ip, self.in_ = order[pos], order[~pos]
        gp, gn = group[pos], group[~pos]
        # negatives: one column per tie group (reduceat only when negatives tie)
        new_n = np.r_[True, gn[1:] != gn[:-1]] if gn.size else np.zeros(0, bool)
        self.n_starts = np.flatnonzero(new_n) if gn.size and not new_n.all() else None
        ugn = gn[new_n] if gn.size else gn
        k = np.searchsorted(ugn, gp, side="left")  # negative groups strictly below each positive
        self.below = k  # index into [0, cumsum...] (column 0 = nothing below)
        has_eq = np.zeros(gp.shape, bool)
        inside = k < ugn.size
        has_eq[inside] = ugn[k[inside]] == gp[inside]
        self.eq_pos = np.flatnonzero(has_eq)
        self.eq_col = k[has_eq]

    def __call__(self, W: np.ndarray) -> np.ndarray:
        Wp = W[:, self.ip]
        Wn = W[:, self.in_]
        N = Wn if self.n_starts is None else np.add.reduceat(Wn, self.n_starts, axis=1)
        cum = np.zeros((W.shape[0], N.shape[1] + 1), dtype=np.float64)
        np.cumsum(N, axis=1, out=cum[:, 1:])
        x = cum[:, self.below]  # weighted negatives strictly below each positive's score
        if self.eq_pos.size:
            x[:, self.eq_pos] += 0.5 * N[:, self.eq_col]
        num = np.einsum("ij,ij->i", Wp.astype(np.float64), x)
        den = cum[:, -1] * Wp.sum(axis=1, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


class _BootstrapPlan:
    """The three metrics of one (labels, scores) pair, prepared once for many weight batches.

    Equal, bit for bit, to calling :data:`METRIC_FUNCTIONS` with ``sample_weight=W`` (the tests
    check it); only faster: sorts, hard predictions and confusion cells are computed once, the
    confusion matrices of all classes/labels come from one float32 matrix product (exact for
    integer counts below 2**24) and feed both balanced accuracy and kappa.
    """

    def __init__(self, y_true, y_score, kind: str):
        y = _as_labels(y_true, kind)
        s = _as_scores(y_score, y.shape[0])
        self.kind = kind
        self.n = y.shape[0]
        pred = hard_predictions(s, kind)
        if kind == BINARY:
            self.auc_plans = [_AucPlan(y, s[:, 1])]
            self.k, cells = 2, (y * 2 + pred)[:, None]
        elif kind == MULTILABEL:
            self.auc_plans = [_AucPlan(y[:, j], s[:, j]) for j in range(y.shape[1])]
            self.k = 2
            cells = y * 2 + pred + 4 * np.arange(y.shape[1])[None, :]  # label j's 2x2 in columns 4j..4j+3
        elif kind == MULTICLASS:
            self.auc_plans = [_AucPlan((y == c).astype(np.int64), s[:, c]) for c in range(s.shape[1])]
            self.k, cells = s.shape[1], (y * s.shape[1] + pred)[:, None]
        else:
            raise ValueError(f"unknown task kind {kind!r}")
        self.n_blocks = cells.shape[1]
        onehot = np.zeros((self.n, self.n_blocks * self.k * self.k), dtype=np.float32)
        for j in range(cells.shape[1]):
            onehot[np.arange(self.n), cells[:, j]] = 1.0
        self.onehot = onehot
        self.exact = self.n < (1 << 24)  # float32 sums of counts are exact below 2**24

    def __call__(self, W: np.ndarray) -> Dict[str, np.ndarray]:
        B = W.shape[0]
        auc = np.stack([p(W) for p in self.auc_plans])
        auc = auc[0] if self.kind == BINARY else _nanmean_rows(auc)
        Wc = W if (W.dtype == np.float32 and self.exact) else W.astype(np.float64)
        cm_all = (Wc @ (self.onehot if Wc.dtype == np.float32 else self.onehot.astype(np.float64)))
        cm_all = cm_all.astype(np.float64).reshape(B, self.n_blocks, self.k, self.k)
        if self.kind == MULTILABEL:
            bal, kap = [], []
            for j in range(self.n_blocks):
                cm = cm_all[:, j]
                wn, wp = cm[:, 0, :].sum(axis=1), cm[:, 1, :].sum(axis=1)
                defined = (wp > 0) & (wn > 0)
                bal.append(np.where(defined, _balacc_from_cm(cm), np.nan))
                kap.append(np.where(defined, _kappa_from_cm(cm), np.nan))
            return {"auc": auc, "balacc": _nanmean_rows(np.stack(bal)), "kappa": _nanmean_rows(np.stack(kap))}
        cm = cm_all[:, 0]
        return {"auc": auc, "balacc": _balacc_from_cm(cm), "kappa": _kappa_from_cm(cm)}


def bootstrap_replicates(y_true, y_scores: Sequence[np.ndarray], *, kind: str, n_boot: int,
                         rng: np.random.Generator, batch: Optional[int] = None) -> List[Dict[str, np.ndarray]]:
    """Metric values on ``n_boot`` resamples of the samples, the same resamples for every score set
    in ``y_scores`` (paired). Returns one {metric: (n_boot,) array} per score set; NaN marks a
    replicate where the metric is undefined (e.g. a resample holding a single class).

    The resamples are the counts of :func:`bootstrap_counts` (same ``rng`` stream and batches), and
    each replicate equals ``METRIC_FUNCTIONS[m](y_true, s, kind=kind, sample_weight=counts)``.
    """
    y = np.asarray(y_true)
    n = y.shape[0]
    if batch is None:  # keep a (batch, n) block near 16 MB (float32 counts)
        batch = max(1, min(n_boot, (4 << 20) // max(n, 1)))
    plans = [_BootstrapPlan(y, s, kind) for s in y_scores]
    dtype = np.float32 if n < (1 << 24) else np.float64
    out: List[Dict[str, List[np.ndarray]]] = [{m: [] for m in METRIC_FUNCTIONS} for _ in y_scores]
    for W in _count_batches(n, n_boot, rng, batch, dtype):
        for i, plan in enumerate(plans):
            for m, v in plan(W).items():
                out[i][m].append(np.asarray(v, dtype=np.float64))
    return [{m: np.concatenate(v) if v else np.zeros(0) for m, v in d.items()} for d in out]


def percentile_interval(values: np.ndarray, level: float = 0.95):
    """(low, high) percentile interval of the finite values, or None when there are none."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(v, [a, 1.0 - a])
    return float(lo), float(hi)
