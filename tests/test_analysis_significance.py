"""Paired bootstrap of two prediction sets: a clearly better one is found, identical ones are tied."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from conftest import labels_of, needs_genuine, oracle_predictions

from big import metrics, registry
from big.analysis import significance as sig
from big.errors import UsageError
from big.reference import Reference, build_reference
from big.submission import read_submission, write_submission


@pytest.fixture(scope="module")
def labels(synth_ref):
    return labels_of(synth_ref)


def test_clearly_better_is_detected(labels):
    good = oracle_predictions(labels, noise=0.5, seed=1)
    bad = oracle_predictions(labels, noise=0.97, seed=2)
    r = sig.paired_bootstrap(labels, good, bad, n_boot=200, seed=0, name_a="good", name_b="bad")
    for m in registry.METRIC_KEYS:
        s = r["mean"][m]
        assert s["verdict"] == sig.A_BETTER, (m, s)
        assert s["ci"][0] > 0 and s["diff"] > 0 and s["p_a_better"] == 1.0 and 190 <= s["n_valid"] <= 200
    assert sum(r["datasets"][f]["auc"]["verdict"] == sig.A_BETTER for f in registry.flags()) >= 10
    # the other way round: the same resamples, negated differences
    back = sig.paired_bootstrap(labels, bad, good, n_boot=200, seed=0)
    for m in registry.METRIC_KEYS:
        assert back["mean"][m]["verdict"] == sig.B_BETTER
        assert back["mean"][m]["diff"] == pytest.approx(-r["mean"][m]["diff"])
        assert back["mean"][m]["ci"][0] == pytest.approx(-r["mean"][m]["ci"][1])
        assert back["mean"][m]["p_a_better"] == 0.0


def test_identical_submissions_are_tied(labels):
    p = oracle_predictions(labels, noise=0.8, seed=3)
    q = {f: a.copy() for f, a in p.items()}
    r = sig.paired_bootstrap(labels, p, q, n_boot=100, seed=1)
    for part in [r["mean"]] + [r["datasets"][f] for f in registry.flags()]:
        for m in registry.METRIC_KEYS:
            s = part[m]
            assert s["verdict"] == sig.TIED
            assert s["diff"] == 0.0 and s["ci"] == [0.0, 0.0]
            assert s["p_a_better"] == 0.0 and s["p_equal"] == 1.0


def test_pairing_cancels_shared_noise(labels):
    """B = A with one sample per dataset changed: paired, the interval of A - B is far narrower
    than A's own interval (A against a constant score, whose AUC is 0.5 on every resample)."""
    a = oracle_predictions(labels, noise=0.85, seed=8)
    b = {f: v.copy() for f, v in a.items()}
    for v in b.values():
        v[0] = v[0][::-1]
    const = {f: np.full_like(v, 0.5) for f, v in a.items()}
    paired = sig.paired_bootstrap(labels, a, b, n_boot=200, seed=2)["mean"]["auc"]
    alone = sig.paired_bootstrap(labels, a, const, n_boot=200, seed=2)["mean"]["auc"]
    width = lambda s: s["ci"][1] - s["ci"][0]  # noqa: E731
    assert width(alone) > 0.02
    assert width(paired) < width(alone) / 5
    assert paired["verdict"] == sig.TIED


def test_seeded_and_same_streams_as_scorer(synth_ref, labels, tmp_path):
    """Same seed, same answer; A's per-dataset replicates are the scorer's (SeedSequence(seed).spawn(12))."""
    from big import scoring

    a = oracle_predictions(labels, noise=0.7, seed=4)
    b = oracle_predictions(labels, noise=0.75, seed=5)
    r1 = sig.paired_bootstrap(labels, a, b, n_boot=60, seed=11)
    r2 = sig.paired_bootstrap(labels, a, b, n_boot=60, seed=11)
    r3 = sig.paired_bootstrap(labels, a, b, n_boot=60, seed=12)
    assert json.dumps(r1) == json.dumps(r2)
    assert json.dumps(r1) != json.dumps(r3)
    # A vs an all-0.5 submission: A's interval shifted by the constant's metric equals the scorer's
    sub = read_submission(write_submission(tmp_path / "a.zip", a, 28), split="test",
                          expected_n=Reference(synth_ref).expected_n)
    ref = Reference(synth_ref)
    boot = scoring.bootstrap_details(sub, ref, n_boot=60, seed=11, level=0.95)
    flat = {f: np.full_like(v, 0.5) for f, v in a.items()}  # AUC of a constant score is 0.5 on every resample
    r = sig.paired_bootstrap(labels, a, flat, n_boot=60, seed=11)
    for f in registry.flags():
        lo, hi = boot["datasets"][f]["ci"]["auc"]
        assert r["datasets"][f]["auc"]["ci"][0] + 0.5 == pytest.approx(lo, abs=1e-12)
        assert r["datasets"][f]["auc"]["ci"][1] + 0.5 == pytest.approx(hi, abs=1e-12)


def test_mean_summary_is_the_mean_of_datasets(labels):
    a = oracle_predictions(labels, noise=0.7, seed=6)
    b = oracle_predictions(labels, noise=0.8, seed=7)
    r = sig.paired_bootstrap(labels, a, b, n_boot=30, seed=0)
    for m in registry.METRIC_KEYS:
        assert r["mean"][m]["a"] == pytest.approx(np.mean([r["datasets"][f][m]["a"] for f in registry.flags()]))
        assert r["mean"][m]["diff"] == pytest.approx(
            np.mean([r["datasets"][f][m]["diff"] for f in registry.flags()]))


def test_verdict_rule():
    assert sig.verdict((0.001, 0.2)) == sig.A_BETTER
    assert sig.verdict((-0.2, -0.001)) == sig.B_BETTER
    assert sig.verdict((-0.1, 0.1)) == sig.TIED
    assert sig.verdict((0.0, 0.1)) == sig.TIED  # an interval touching 0 covers it
    assert sig.verdict(None) == sig.UNDEFINED


def test_tables(labels, tmp_path):
    a = oracle_predictions(labels, noise=0.5, seed=1)
    b = oracle_predictions(labels, noise=0.97, seed=2)
    r = sig.paired_bootstrap(labels, a, b, n_boot=50, seed=0, name_a="mine", name_b="theirs")
    files = sig.write_significance(r, tmp_path)
    rows = list(csv.DictReader(open(files["significance.csv"])))
    assert len(rows) == 39
    mean_auc = next(x for x in rows if x["metric"] == "auc" and x["dataset"] == "mean")
    assert mean_auc["verdict"] == "mine better"
    assert float(mean_auc["ci_low"]) == pytest.approx(r["mean"]["auc"]["ci"][0], abs=1e-9)
    md = files["significance.md"].read_text()
    assert "mine (A) vs theirs (B)" in md and "**mine better**" in md and "B = 50 resamples" in md
    assert json.loads(files["significance.json"].read_text())["n_boot"] == 50
    assert "<table>" in sig.significance_html(r)


def test_bad_options(labels):
    p = oracle_predictions(labels, noise=0.5)
    with pytest.raises(UsageError, match="at least 1 replicate"):
        sig.paired_bootstrap(labels, p, p, n_boot=0)
    with pytest.raises(UsageError, match="between 0 and 1"):
        sig.paired_bootstrap(labels, p, p, n_boot=10, level=95)


def test_small_samples_count_undefined_replicates():
    """With 3 samples many resamples hold one class: those are dropped and counted, never NaN out."""
    y = np.array([[0], [1], [1]], dtype=np.uint8)
    s = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    ra, rb = metrics.bootstrap_replicates(y, [s, s[::-1]], kind=registry.BINARY, n_boot=200,
                                          rng=np.random.default_rng(0))
    summary = sig._summary(1.0, 0.5, ra["auc"] - rb["auc"], 0.95)
    assert 0 < summary["n_valid"] < 200
    assert summary["ci"] is not None and np.isfinite(summary["ci"]).all()


@needs_genuine
def test_genuine_labels_clear_difference(mixed_root, tmp_path):
    ref = Reference(build_reference(mixed_root, "test", tmp_path / "ref", allow_synthetic=True))
    lab = labels_of(ref.folder)
    subs = []
    for i, noise in enumerate((0.6, 0.97)):
        z = write_submission(tmp_path / f"{i}.zip", oracle_predictions(lab, noise=noise, seed=i), 28)
        subs.append(read_submission(z, split="test", expected_n=ref.expected_n))
    r = sig.compare_submissions(ref, subs[0], subs[1], n_boot=100, seed=0)
    assert r["resolution"] == 28 and r["split"] == "test" and r["reference_synthetic"]
    for flag in ("breastmnist", "pneumoniamnist", "retinamnist"):
        assert r["datasets"][flag]["auc"]["verdict"] == sig.A_BETTER
    same = sig.compare_submissions(ref, subs[1], subs[1], n_boot=50, seed=0)
    assert all(same["mean"][m]["verdict"] == sig.TIED for m in registry.METRIC_KEYS)
