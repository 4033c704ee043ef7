"""Bootstrap: the fast path equals the public metric functions exactly; seeded, paired; the
interval of the 12-dataset mean comes from the same replicates as the per-dataset intervals."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from big import metrics as M
from big import registry, scoring
from big.reference import Reference
from big.registry import BINARY, MULTICLASS, MULTILABEL
from big.submission import read_submission, write_submission

from conftest import labels_of, oracle_predictions


def _case(kind, n, c, rng, *, decimals=None, rare=False):
    if kind == MULTILABEL:
        y = (rng.random((n, c)) < 0.3).astype(np.uint8)
        y[0], y[1] = 1, 0
        if rare:
            y[:, 3] = 0
            y[5, 3] = 1  # a label with a single positive: undefined in many resamples
            y[:, 4] = 0  # a label constant in the reference: skipped everywhere
    else:
        y = rng.integers(0, c, size=n)
        y[:c] = np.arange(c)
        if rare:
            y[y == c - 1] = 0
            y[7] = c - 1  # one sample of the last class
            if c > 2:
                y[y == 1] = 0  # class 1 absent
        y = y.astype(np.uint8).reshape(n, 1)
    s = rng.random((n, c))
    if decimals is not None:
        s = np.round(s, decimals)  # many ties, also between positives and negatives
    return y, s


CASES = [(BINARY, 2), (MULTICLASS, 3), (MULTICLASS, 8), (MULTILABEL, 14)]


@pytest.mark.parametrize("kind,c", CASES)
@pytest.mark.parametrize("decimals", [None, 1, 0])
@pytest.mark.parametrize("rare", [False, True])
def test_fast_bootstrap_equals_public_functions_bit_for_bit(kind, c, decimals, rare):
    rng = np.random.default_rng(zlib.crc32(repr((kind, c, decimals, rare)).encode()))
    n = 157
    y, s = _case(kind, n, c, rng, decimals=decimals, rare=rare)
    n_boot, batch = 70, 16
    fast = M.bootstrap_replicates(y, [s], kind=kind, n_boot=n_boot, rng=np.random.default_rng(5), batch=batch)[0]
    W = np.concatenate(list(M.bootstrap_counts(n, n_boot, np.random.default_rng(5), batch)))
    for m, fn in M.METRIC_FUNCTIONS.items():
        slow = np.asarray(fn(y, s, kind=kind, sample_weight=W))
        assert fast[m].shape == (n_boot,)
        assert np.array_equal(fast[m], slow, equal_nan=True), m
    if rare and kind == BINARY:  # one positive: resamples without it have no AUC, and say so
        assert np.isnan(fast["auc"]).any() and np.isfinite(fast["auc"]).any()


def test_counts_are_reproducible_resamples():
    a = np.concatenate(list(M.bootstrap_counts(50, 33, np.random.default_rng(3), 7)))
    b = np.concatenate(list(M.bootstrap_counts(50, 33, np.random.default_rng(3), 7)))
    assert a.shape == (33, 50) and np.array_equal(a, b)
    assert np.all(a.sum(axis=1) == 50) and a.min() >= 0
    assert np.array_equal(a, np.round(a))


def test_seeded_paired_and_point_estimate_inside():
    rng = np.random.default_rng(11)
    y, s = _case(MULTICLASS, 400, 5, rng)
    s2 = np.clip(s + 0.3 * np.eye(5)[y[:, 0]], 0, 1)  # a better model
    a = M.bootstrap_replicates(y, [s, s2], kind=MULTICLASS, n_boot=300, rng=np.random.default_rng(1))
    b = M.bootstrap_replicates(y, [s], kind=MULTICLASS, n_boot=300, rng=np.random.default_rng(1))
    c = M.bootstrap_replicates(y, [s], kind=MULTICLASS, n_boot=300, rng=np.random.default_rng(2))
    for m, fn in M.METRIC_FUNCTIONS.items():
        assert np.array_equal(a[0][m], b[0][m])  # fixed seed -> identical
        assert not np.array_equal(b[0][m], c[0][m])  # different seed -> different
        lo, hi = M.percentile_interval(b[0][m])
        assert lo < fn(y, s, kind=MULTICLASS) < hi
        # paired: the better model wins in (nearly) every shared resample
        assert np.mean(a[1][m] > a[0][m]) > 0.95


def test_point_estimate_typically_inside_the_interval_across_datasets(synth_ref):
    """On all 12 task types the 95% interval holds the point estimate (it typically does)."""
    ref = Reference(synth_ref)
    preds = oracle_predictions(labels_of(synth_ref), noise=0.7, seed=3)
    inside = total = 0
    for ds in registry.datasets():
        y = ref.labels(ds.flag)
        r = M.bootstrap_replicates(y, [preds[ds.flag]], kind=ds.kind, n_boot=200, rng=np.random.default_rng(0))[0]
        for m, fn in M.METRIC_FUNCTIONS.items():
            ci = M.percentile_interval(r[m])
            v = fn(y, preds[ds.flag], kind=ds.kind)
            total += 1
            inside += ci[0] <= v <= ci[1]
    assert inside >= 0.9 * total


def test_mean_interval_comes_from_the_same_replicates(synth_ref, tmp_path):
    ref = Reference(synth_ref)
    labels = labels_of(synth_ref)
    sub_zip = write_submission(tmp_path / "s.zip", oracle_predictions(labels, noise=0.6, seed=1), 28)
    sub = read_submission(sub_zip, split=ref.split, expected_n=ref.expected_n)
    per = scoring.dataset_metrics(sub, ref)
    det = scoring.bootstrap_details(sub, ref, n_boot=150, seed=4, level=0.9)
    # recompute the replicates dataset by dataset with the documented per-dataset streams
    streams = np.random.SeedSequence(4).spawn(12)
    reps = {}
    for ds, ss in zip(registry.datasets(), streams):
        reps[ds.flag] = M.bootstrap_replicates(ref.labels(ds.flag), [sub.predictions[ds.flag]], kind=ds.kind,
                                               n_boot=150, rng=np.random.default_rng(ss))[0]
        for m in M.METRIC_FUNCTIONS:
            assert tuple(det["datasets"][ds.flag]["ci"][m]) == M.percentile_interval(reps[ds.flag][m], 0.9)
    for m in M.METRIC_FUNCTIONS:
        mean_reps = np.mean([reps[f][m] for f in registry.flags()], axis=0)
        assert tuple(det["mean_ci"][m]) == M.percentile_interval(mean_reps, 0.9)
        # and the point estimate of the mean lies inside it
        lo, hi = det["mean_ci"][m]
        assert lo <= np.mean([per[f][m] for f in per]) <= hi
    # same seed -> same details; another seed -> other intervals
    again = scoring.bootstrap_details(sub, ref, n_boot=150, seed=4, level=0.9)
    other = scoring.bootstrap_details(sub, ref, n_boot=150, seed=5, level=0.9)
    assert again == det
    assert other["mean_ci"] != det["mean_ci"]
