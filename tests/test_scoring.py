"""The scorer end to end: scores.json contract, details, failure semantics, the scoring program."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from big import cli, registry
from big.submission import write_submission
from conftest import REPO, labels_of, needs_genuine, oracle_predictions


def score(tmp_path, sub, ref, *extra):
    out = tmp_path / "out"
    code = cli.main(["score", str(sub), "--reference", str(ref), "--output", str(out), "--no-report", *extra])
    return code, out


def test_perfect_submission_scores_one(synth_ref, tmp_path, capsys):
    sub = write_submission(tmp_path / "perfect.zip", oracle_predictions(labels_of(synth_ref)), 64)
    code, out = score(tmp_path, sub, synth_ref, "--bootstrap", "50")
    assert code == 0
    scores = json.loads((out / "scores.json").read_text())
    assert list(scores) == registry.score_keys()
    assert scores["resolution"] == 64
    assert all(scores[k] == 1.0 for k in scores if k != "resolution")
    details = json.loads((out / "details.json").read_text())
    assert details["reference_synthetic"] and details["n_boot"] == 50 and details["split"] == "test"
    assert details["datasets"]["chestmnist"]["ci"]["auc"] == [1.0, 1.0]
    assert "scores.json written after" in capsys.readouterr().out


def test_scores_match_the_metrics_and_means(synth_ref, tmp_path):
    preds = oracle_predictions(labels_of(synth_ref), noise=0.8, seed=3)
    code, out = score(tmp_path, write_submission(tmp_path / "s", preds, 28), synth_ref, "--bootstrap", "0")
    scores = json.loads((out / "scores.json").read_text())
    from big.metrics import score_dataset

    labels = labels_of(synth_ref)
    per = {d.flag: score_dataset(labels[d.flag], preds[d.flag], kind=d.kind) for d in registry.datasets()}
    for m in ("auc", "balacc", "kappa"):
        assert scores[m] == pytest.approx(np.mean([per[f][m] for f in per]), abs=1e-15)
        for f in per:
            assert scores[f"{f}_{m}"] == per[f][m]
    assert all(math.isfinite(v) for v in scores.values())
    assert 0.5 < scores["auc"] < 1.0


def test_bootstrap_interval_of_the_mean_uses_the_same_replicates(synth_ref, tmp_path):
    preds = oracle_predictions(labels_of(synth_ref), noise=0.9, seed=4)
    code, out = score(tmp_path, write_submission(tmp_path / "s.zip", preds, 28), synth_ref, "--bootstrap", "100",
                      "--seed", "5")
    d1 = json.loads((out / "details.json").read_text())
    lo, hi = d1["mean"]["ci"]["auc"]
    assert lo < d1["mean"]["auc"] < hi
    per_lo = np.mean([d1["datasets"][f]["ci"]["auc"][0] for f in registry.flags()])
    assert lo > per_lo  # averaging 12 independent resamples narrows the interval
    code, out2 = score(tmp_path / "again", write_submission(tmp_path / "s2.zip", preds, 28), synth_ref,
                       "--bootstrap", "100", "--seed", "5")
    assert json.loads((out2 / "details.json").read_text())["mean"]["ci"] == d1["mean"]["ci"]


def test_bad_submission_fails_cleanly(synth_ref, tmp_path, capsys):
    preds = oracle_predictions(labels_of(synth_ref))
    preds["dermamnist"][3, 2] = 1.5
    out = tmp_path / "out"
    out.mkdir()
    (out / "scores.json").write_text("{}")  # a stale score must not survive a failed run
    code = cli.main(["score", str(write_submission(tmp_path / "bad.zip", preds, 28)), "--reference", str(synth_ref),
                     "--output", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and not (out / "scores.json").exists()
    assert "dermamnist_28.csv, line 5, column 2: expected a number in [0, 1], found '1.5'" in err[0]
    assert err[-1].startswith("Submission rejected: dermamnist_28.csv")
    page = (out / "detailed_results.html").read_text()
    assert "Submission rejected" in page and "found &#x27;1.5&#x27;" in page
    assert "Traceback" not in "\n".join(err)


def test_bad_reference_is_an_organizer_error(tmp_path, capsys):
    (tmp_path / "ref").mkdir()
    code = cli.main(["score", str(tmp_path), "--reference", str(tmp_path / "ref"), "--output", str(tmp_path / "o")])
    assert code == 2 and "no manifest.json in the reference folder" in capsys.readouterr().err


def test_resolution_restriction_from_config(synth_ref, tmp_path, capsys):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("resolutions: [224]\nn_boot: 0\n")
    sub = write_submission(tmp_path / "s.zip", oracle_predictions(labels_of(synth_ref)), 28)
    code, out = score(tmp_path, sub, synth_ref, "--config", str(cfg))
    assert code == 1 and "accepts resolution(s) 224; the submission is for 28" in capsys.readouterr().err
    cfg.write_text("resolutions: [28]\nbootstrap: 5\n")
    code, out = score(tmp_path, sub, synth_ref, "--config", str(cfg))
    assert code == 2 and "unknown scoring option(s) bootstrap" in capsys.readouterr().err


def test_validate_without_labels(synth_ref, tmp_path, capsys):
    sub = write_submission(tmp_path / "s.zip", oracle_predictions(labels_of(synth_ref)), 28)
    assert cli.main(["validate", str(sub), "--reference", str(synth_ref)]) == 0
    assert "valid test submission at resolution 28" in capsys.readouterr().out
    assert cli.main(["validate", str(sub), "--split", "test"]) == 1  # registry sizes: 7180 rows expected
    assert "expected 7180 rows" in capsys.readouterr().err


def test_scoring_program_runs_from_the_repo_checkout(synth_ref, tmp_path):
    inp = tmp_path / "input"
    (inp).mkdir()
    (inp / "ref").symlink_to(synth_ref)
    write_submission(inp / "res", oracle_predictions(labels_of(synth_ref), noise=0.5), 28)
    (inp / "res" / "metadata").write_text("exitCode: 0\n")  # the worker's own file
    out = tmp_path / "output"
    proc = subprocess.run([sys.executable, str(REPO / "scoring_program" / "score.py"), str(inp), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert list(json.loads((out / "scores.json").read_text())) == registry.score_keys()


@needs_genuine
def test_genuine_labels_score_like_sklearn(mixed_root, tmp_path):
    from sklearn.metrics import roc_auc_score

    from big.reference import build_reference

    ref = build_reference(mixed_root, "test", tmp_path / "ref", allow_synthetic=True)
    preds = oracle_predictions(labels_of(ref), noise=0.95, seed=9)
    code, out = score(tmp_path, write_submission(tmp_path / "s.zip", preds, 28), ref, "--bootstrap", "0")
    scores = json.loads((out / "scores.json").read_text())
    y = labels_of(ref)["retinamnist"][:, 0]
    want = np.mean([roc_auc_score(y == c, preds["retinamnist"][:, c]) for c in range(5)])
    assert abs(scores["retinamnist_auc"] - want) < 1e-12
