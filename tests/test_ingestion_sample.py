"""The starting kit's sample code submission: trained by the committed script, zipped, run through
ingestion and the scorer; it must beat chance clearly on synthetic data and on the genuine files."""
from __future__ import annotations

import importlib.util
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from big import cli, ingestion, inputdata, registry, scoring
from big.reference import build_reference
from big.submission import read_submission

from conftest import REPO

KIT = REPO / "starting_kit"


def _train_module():
    spec = importlib.util.spec_from_file_location("train_sample_model", KIT / "train_sample_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _code_job(zip_path: Path, input_dir: Path, ref: Path, work: Path):
    """Unzip like CodaBench (program + copy in output), ingest, score. Returns (status, scores)."""
    prog, out = work / "ingested_program", work / "output"
    for target in (prog, out):
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(target)
    cfg = ingestion.IngestionConfig(time_budget_s=300, stop_margin_s=5, data_dir="")
    rc = ingestion.run_ingestion(input_dir, out, prog, config=cfg, log=lambda s: None, err=print)
    status = json.loads((out / "ingestion_status.json").read_text())
    assert rc == 0, status
    assert not (out / "weights.npz").exists() and not (out / "model.py").exists()
    err = io.StringIO()
    rc = scoring.run(out, ref, work / "score", config=scoring.ScoringConfig(n_boot=0, report=False),
                     out=io.StringIO(), err=err)
    assert rc == 0, err.getvalue()
    return status, json.loads((work / "score" / "scores.json").read_text())


def test_zip_layout_and_weights_not_committed(tmp_path, synth_root):
    mod = _train_module()
    weights = mod.train(synth_root, 28, tmp_path / "w.npz", max_train=50, epochs=2, log=None)
    z = mod.package(tmp_path / "s.zip", weights)
    with zipfile.ZipFile(z) as zf:
        assert sorted(zf.namelist()) == ["model.py", "weights.npz"]
    import subprocess

    res = subprocess.run(["git", "ls-files", "starting_kit/sample_code_submission"], cwd=REPO, capture_output=True,
                         text=True)
    if res.returncode == 0:  # a git checkout: weights are built, never committed
        assert res.stdout.split() == ["starting_kit/sample_code_submission/model.py"]


def test_sample_submission_beats_chance_on_synthetic(tmp_path, synth_root, synth_ref):
    inp = inputdata.write_input_data(synth_root, "test", [28, 64], tmp_path / "input", allow_synthetic=True)
    rc = cli.main(["sample-submission", "--data-root", str(synth_root), "--size", "64", "--epochs", "20",
                   "--out", str(tmp_path / "sample.zip")])
    assert rc == 0
    status, scores = _code_job(tmp_path / "sample.zip", inp, synth_ref, tmp_path / "job")
    assert status["resolution"] == 64
    assert scores["resolution"] == 64
    print("sample submission on synthetic data (64 px): mean AUC %.3f" % scores["auc"])
    assert scores["auc"] > 0.9
    assert min(scores[f"{f}_auc"] for f in registry.flags()) > 0.75

    # the same model run locally into a result zip gives byte-identical CSVs
    with zipfile.ZipFile(tmp_path / "sample.zip") as zf:
        zf.extractall(tmp_path / "local")
    rc = cli.main(["result-zip", "--model", str(tmp_path / "local" / "model.py"), "--data-root", str(synth_root),
                   "--split", "test", "--out", str(tmp_path / "result.zip")])
    assert rc == 0
    read_submission(tmp_path / "result.zip", split="test", expected_n={f: 80 for f in registry.flags()})
    with zipfile.ZipFile(tmp_path / "result.zip") as zf:
        for flag in registry.flags():
            assert zf.read(f"{flag}_64.csv") == (tmp_path / "job" / "output" / f"{flag}_64.csv").read_bytes()


@pytest.mark.slow
def test_sample_submission_beats_chance_on_genuine_files(tmp_path, mixed_root):
    ref = build_reference(mixed_root, "test", tmp_path / "ref", allow_synthetic=True)
    inp = inputdata.write_input_data(mixed_root, "test", [28], tmp_path / "input", allow_synthetic=True)
    mod = _train_module()
    weights = mod.train(mixed_root, 28, tmp_path / "weights.npz", log=None)
    z = mod.package(tmp_path / "sample.zip", weights)
    _, scores = _code_job(z, inp, ref, tmp_path / "job")
    genuine = {f: scores[f"{f}_auc"] for f in ("pneumoniamnist", "breastmnist", "retinamnist")}
    print("sample submission on the genuine test splits (28 px): " +
          ", ".join(f"{f} AUC {v:.3f}" for f, v in genuine.items()))
    assert genuine["pneumoniamnist"] > 0.85
    assert genuine["breastmnist"] > 0.70
    assert genuine["retinamnist"] > 0.62
    assert scores["pneumoniamnist_balacc"] > 0.6 and scores["pneumoniamnist_kappa"] > 0.3


def test_training_script_cli_reports_missing_files(tmp_path, capsys):
    mod = _train_module()
    assert mod.main(["--data-root", str(tmp_path), "--size", "28", "--out", str(tmp_path / "w.npz")]) == 1
    assert "missing pathmnist.npz" in capsys.readouterr().err
    assert not (tmp_path / "w.npz").exists()


def test_model_features_any_resolution():
    spec = importlib.util.spec_from_file_location("m", KIT / "sample_code_submission" / "model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for size in registry.SIZES:
        grey = np.full((3, size, size), 255, np.uint8)
        rgb = np.zeros((2, size, size, 3), np.uint8)
        fg, fr = mod.features(grey), mod.features(rgb)
        assert fg.shape == (3, mod.GRID ** 2 + 2) and fr.shape == (2, 3 * mod.GRID ** 2 + 6)
        assert np.allclose(fg[:, :mod.GRID ** 2], 1.0) and np.allclose(fr, 0.0)
