"""`big demo` (the README's main job) runs end to end offline and shows what it promises."""
from __future__ import annotations

import json

import pytest

from big import cli, registry


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--n-per-split", "train=150,val=60,test=80", "--bootstrap", "20"]) == 0
    text = capsys.readouterr().out
    prior = json.loads((out / "scores" / "class_prior" / "scores.json").read_text())
    model = json.loads((out / "scores" / "sample_model" / "scores.json").read_text())
    assert list(prior) == registry.score_keys()
    assert prior["auc"] == pytest.approx(0.5)  # constant rows rank nothing
    assert model["auc"] > 0.8 and model["kappa"] > prior["kappa"]
    assert (out / "scores" / "sample_model" / "detailed_results.html").is_file()
    assert "sample_model (code)    Finished" in text and "class_prior (result)   Finished" in text
    assert (out / "codabench" / "big_bundle.zip").is_file()
    assert list((out / "leaderboard").glob("*.html")) and list((out / "compare").glob("*.png"))
    assert "detailed results: " in text.splitlines()[-6]
    # BIG-C: the robustness bundle too, offline (MedMNIST-C when its venv exists, else the stand-in, said so)
    assert (out / "big_c" / "big_c_bundle.zip").is_file()
    assert "BIG-C sample_model (code) Finished: corrupted AUC" in text
    assert "[big-c lint] big_c_bundle.zip: 0 error(s)" in text
    assert ("STAND-IN corruptions, not MedMNIST-C" in text) != ("(MedMNIST-C)" in text)
    assert (out / "big_c" / "runs" / "sample_model" / "scoring" / "output" / "detailed_results.html").is_file()
