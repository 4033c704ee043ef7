"""The BIG metrics against scikit-learn (the thesis reference code calls these) and their invariances."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score, roc_auc_score

from big import metrics as M
from big.registry import BINARY, MULTICLASS, MULTILABEL

TOL = 1e-12


# --- the thesis reference implementation, written with scikit-learn as the thesis code does -------

def ref_auc(y, s, kind):
    if kind == MULTILABEL:
        return np.mean([roc_auc_score(y[:, j], s[:, j]) for j in range(y.shape[1])])
    if kind == BINARY:
        return roc_auc_score(y.ravel(), s[:, -1])
    y = y.ravel()
    return np.mean([roc_auc_score(y == i, s[:, i]) for i in range(s.shape[1])])


def ref_balacc(y, s, kind):
    if kind == MULTILABEL:
        return np.mean([balanced_accuracy_score(y[:, j], s[:, j] > 0.5) for j in range(y.shape[1])])
    if kind == BINARY:
        return balanced_accuracy_score(y.ravel(), s[:, -1] > 0.5)
    return balanced_accuracy_score(y.ravel(), np.argmax(s, axis=1))


def ref_kappa(y, s, kind):
    if kind == MULTILABEL:
        return np.mean([cohen_kappa_score(y[:, j], s[:, j] > 0.5) for j in range(y.shape[1])])
    if kind == BINARY:
        return cohen_kappa_score(y.ravel(), s[:, -1] > 0.5)
    return cohen_kappa_score(y.ravel(), np.argmax(s, axis=1))


REF = {"auc": ref_auc, "balacc": ref_balacc, "kappa": ref_kappa}


def make_case(kind, n, c, rng, *, decimals=None):
    if kind == MULTILABEL:
        y = (rng.random((n, c)) < 0.3).astype(np.uint8)
        y[0], y[1] = 1, 0
    else:
        y = rng.integers(0, c, size=n)
        y[:c] = np.arange(c)
        y = y.astype(np.uint8).reshape(n, 1)
    s = rng.random((n, c))
    if decimals is not None:  # many ties
        s = np.round(s, decimals)
    return y, s


CASES = [(BINARY, 2), (MULTICLASS, 5), (MULTICLASS, 11), (MULTILABEL, 14)]


@pytest.mark.parametrize("kind,c", CASES)
@pytest.mark.parametrize("decimals", [None, 1])
@pytest.mark.parametrize("seed", range(4))
def test_equals_reference_on_random_inputs(kind, c, decimals, seed):
    rng = np.random.default_rng(seed)
    y, s = make_case(kind, int(rng.integers(c + 5, 400)), c, rng, decimals=decimals)
    for name, fn in M.METRIC_FUNCTIONS.items():
        assert abs(fn(y, s, kind=kind) - REF[name](y, s, kind)) < TOL, name


@pytest.mark.parametrize("kind,c", CASES)
def test_adversarial_inputs(kind, c):
    rng = np.random.default_rng(1)
    y, _ = make_case(kind, 60, c, rng)
    onehot = y.astype(float) if kind == MULTILABEL else np.eye(c)[y[:, 0]]
    cases = {
        "constant": np.full((60, c), 0.5),
        "perfect": onehot,
        "inverted": 1.0 - onehot,
        "all-ties-zero": np.zeros((60, c)),
        "threshold-exactly-0.5": np.where(onehot > 0, 0.5, 0.25),
    }
    for label, s in cases.items():
        for name, fn in M.METRIC_FUNCTIONS.items():
            want = REF[name](y, s, kind)
            got = fn(y, s, kind=kind)
            if np.isnan(want):
                assert np.isnan(got), (label, name)
            else:
                assert abs(got - want) < TOL, (label, name, got, want)
    assert M.auc_score(y, onehot, kind=kind) == 1.0
    assert M.auc_score(y, 1.0 - onehot, kind=kind) == 0.0
    assert M.auc_score(y, np.full((60, c), 0.5), kind=kind) == 0.5


def test_binary_uses_column_one_and_strict_threshold():
    y = np.array([[0], [1], [1], [0]], dtype=np.uint8)
    s = np.array([[0.9, 0.1], [0.1, 0.9], [0.5, 0.5], [0.2, 0.8]])
    # column 1 > 0.5: predictions 0, 1, 0 (0.5 is not > 0.5), 1
    assert M.hard_predictions(s, BINARY).tolist() == [0, 1, 0, 1]
    assert M.balanced_accuracy_score(y, s, kind=BINARY) == pytest.approx(0.5)
    assert M.auc_score(y, s, kind=BINARY) == pytest.approx(roc_auc_score(y.ravel(), s[:, 1]))


def test_argmax_ties_go_to_the_lowest_index():
    s = np.array([[0.3, 0.3, 0.3], [0.1, 0.4, 0.4]])
    assert M.hard_predictions(s, MULTICLASS).tolist() == [0, 1]


@pytest.mark.parametrize("kind,c", CASES)
def test_invariances(kind, c):
    rng = np.random.default_rng(5)
    y, s = make_case(kind, 200, c, rng)
    base = {k: fn(y, s, kind=kind) for k, fn in M.METRIC_FUNCTIONS.items()}
    perm = rng.permutation(200)
    for k, fn in M.METRIC_FUNCTIONS.items():  # row order
        assert abs(fn(y[perm], s[perm], kind=kind) - base[k]) < TOL
    # AUC unchanged by a strictly increasing transform of each column
    t = np.sqrt(s) * 0.5 + 0.1
    assert abs(M.auc_score(y, t, kind=kind) - base["auc"]) < TOL
    if kind == MULTICLASS:  # argmax metrics unchanged by scaling a row by c > 0
        scale = rng.uniform(0.1, 1.0, size=(200, 1))
        for k in ("balacc", "kappa"):
            assert abs(M.METRIC_FUNCTIONS[k](y, s * scale, kind=kind) - base[k]) < TOL


def test_absent_class_is_skipped_and_reported():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, size=100)  # class 4 of 5 never occurs
    y[:4] = np.arange(4)
    s = rng.random((100, 5))
    auc = M.auc_score(y, s, kind=MULTICLASS)
    want = np.mean([roc_auc_score(y == i, s[:, i]) for i in range(4)])
    assert abs(auc - want) < TOL
    assert M.skipped_classes(y, kind=MULTICLASS, n_classes=5) == [4]
    assert abs(M.balanced_accuracy_score(y, s, kind=MULTICLASS) - balanced_accuracy_score(y, s.argmax(1))) < TOL


def test_constant_label_column_is_skipped_in_multilabel():
    rng = np.random.default_rng(3)
    y, s = make_case(MULTILABEL, 120, 14, rng)
    y[:, 13] = 0  # label 13 has no positive case
    keep = list(range(13))
    for name, fn in M.METRIC_FUNCTIONS.items():
        assert abs(fn(y, s, kind=MULTILABEL) - REF[name](y[:, keep], s[:, keep], MULTILABEL)) < TOL
    assert M.skipped_classes(y, kind=MULTILABEL, n_classes=14) == [13]


@pytest.mark.parametrize("kind,c", CASES)
def test_weights_are_multiplicities(kind, c):
    """A (B, n) weight matrix equals scoring the explicitly repeated samples, row by row."""
    rng = np.random.default_rng(4)
    y, s = make_case(kind, 80, c, rng, decimals=2)
    W = rng.integers(0, 3, size=(3, 80)).astype(float)
    W[:, :c + 2] = 1  # keep every class present
    for name, fn in M.METRIC_FUNCTIONS.items():
        batch = fn(y, s, kind=kind, sample_weight=W)
        for b in range(3):
            idx = np.repeat(np.arange(80), W[b].astype(int))
            assert abs(batch[b] - REF[name](y[idx], s[idx], kind)) < 1e-10, name


def test_bootstrap_is_seeded_paired_and_brackets_the_estimate():
    rng = np.random.default_rng(6)
    y, s = make_case(MULTICLASS, 300, 4, rng)
    a = M.bootstrap_replicates(y, [s, s], kind=MULTICLASS, n_boot=200, rng=np.random.default_rng(1))
    b = M.bootstrap_replicates(y, [s], kind=MULTICLASS, n_boot=200, rng=np.random.default_rng(1))
    c = M.bootstrap_replicates(y, [s], kind=MULTICLASS, n_boot=200, rng=np.random.default_rng(2))
    for m in M.METRIC_FUNCTIONS:
        assert np.array_equal(a[0][m], a[1][m])  # paired: same resamples for both score sets
        assert np.array_equal(a[0][m], b[0][m])  # seeded
        assert not np.array_equal(b[0][m], c[0][m])
        lo, hi = M.percentile_interval(b[0][m])
        assert lo <= M.METRIC_FUNCTIONS[m](y, s, kind=MULTICLASS) <= hi
    narrow = M.percentile_interval(b[0]["auc"], 0.5)
    wide = M.percentile_interval(b[0]["auc"], 0.95)
    assert wide[0] <= narrow[0] <= narrow[1] <= wide[1]


def test_bootstrap_marks_undefined_replicates_as_nan():
    y = np.array([[0]] * 59 + [[1]], dtype=np.uint8)  # one positive: many resamples lack it
    s = np.random.default_rng(0).random((60, 2))
    r = M.bootstrap_replicates(y, [s], kind=BINARY, n_boot=100, rng=np.random.default_rng(0))[0]
    assert np.isnan(r["auc"]).any() and np.isfinite(r["auc"]).any()
    assert M.percentile_interval(np.full(5, np.nan)) is None


def test_shapes_are_checked():
    with pytest.raises(ValueError):
        M.auc_score(np.zeros((5, 1)), np.zeros((4, 2)), kind=BINARY)
    with pytest.raises(ValueError):
        M.auc_score(np.zeros((5, 1)), np.zeros((5, 2)), kind="ordinal")


@pytest.mark.parametrize("kind,c", CASES)
@pytest.mark.parametrize("decimals", [None, 1, 0])
def test_unweighted_path_is_bit_identical_to_the_weighted_one(kind, c, decimals):
    """score_dataset (no weights) sorts values only; with weights 1 the general path gives the same doubles."""
    rng = np.random.default_rng(7)
    y, s = make_case(kind, 301, c, rng, decimals=decimals)
    ones = np.ones(301)
    for name, fn in M.METRIC_FUNCTIONS.items():
        a, b = fn(y, s, kind=kind), fn(y, s, kind=kind, sample_weight=ones)
        assert a == b or (np.isnan(a) and np.isnan(b)), name


def test_readme_states_where_scikit_learn_differs():
    """README's claim of equality with scikit-learn names its exception: a constant ChestMNIST label."""
    from conftest import REPO

    text = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    assert "to 1e-12" in text
    claim = text[text.index("scikit-learn"):text.index("to 1e-12") + 600]
    assert "constant" in claim and "skips" in claim and "genuine val and test labels" in claim


def test_constant_chest_label_is_skipped_here_and_breaks_the_scikit_learn_reference():
    """The documented difference: BIG leaves a constant label out of all three means; the thesis code's
    scikit-learn calls have no AUC for it (an error, or NaN with a warning in newer scikit-learn) and
    count it in balanced accuracy and kappa."""
    import warnings

    rng = np.random.default_rng(11)
    y, s = make_case(MULTILABEL, 200, 14, rng)
    y[:, 13] = 0
    keep = list(range(13))
    for name, fn in M.METRIC_FUNCTIONS.items():
        assert abs(fn(y, s, kind=MULTILABEL) - REF[name](y[:, keep], s[:, keep], MULTILABEL)) < TOL
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            assert np.isnan(REF["auc"](y, s, MULTILABEL))
        except ValueError as exc:
            assert "Only one class" in str(exc)
        for name in ("balacc", "kappa"):
            assert abs(M.METRIC_FUNCTIONS[name](y, s, kind=MULTILABEL) - REF[name](y, s, MULTILABEL)) > 1e-6
