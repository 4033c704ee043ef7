"""The scoring program folder runs in virtualenvs pinned like the CodaBench images, project NOT installed.

``make venvs`` builds them: .venv-py312 = codalab-legacy:py312 (python 3.12, numpy 1.26.4,
scikit-learn 1.5.1, pandas 2.2.3, matplotlib 3.8.4, pyyaml 6.0.2) and .venv-gpu310 =
codalab-legacy:gpu310 (python 3.10, numpy 1.26.4, scikit-learn 1.5.0, pandas 2.2.2, matplotlib 3.9.0,
PyYAML 6.0.1, torch 2.3.1). Under CI=true a missing venv fails the test instead of skipping it.
"""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from big import registry
from big.submission import write_submission
from conftest import bundled_program, image_env, image_python, labels_of, oracle_predictions

IMAGES = {
    "py312": {"python": "3.12", "numpy": "1.26.4", "pandas": "2.2.3", "matplotlib": "3.8.4", "yaml": "6.0.2"},
    "gpu310": {"python": "3.10", "numpy": "1.26.4", "pandas": "2.2.2", "matplotlib": "3.9.0", "yaml": "6.0.1"},
}


@pytest.mark.codabench_env
@pytest.mark.parametrize("image", sorted(IMAGES))
def test_image_pins(image):
    py = image_python(image)
    code = ("import sys, numpy, pandas, matplotlib, yaml; print(sys.version_info[:2], numpy.__version__, "
            "pandas.__version__, matplotlib.__version__, yaml.__version__)")
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, env=image_env()).stdout
    want = IMAGES[image]
    major, minor = want["python"].split(".")
    assert out.split(")")[0] == f"({major}, {minor}"
    assert out.split(")")[1].split() == [want["numpy"], want["pandas"], want["matplotlib"], want["yaml"]]
    proc = subprocess.run([str(py), "-c", "import big"], capture_output=True, text=True, env=image_env(), cwd="/")
    assert proc.returncode != 0, "the project must not be installed in the image venv"


@pytest.mark.codabench_env
@pytest.mark.parametrize("image", sorted(IMAGES))
def test_scoring_program_in_image(image, synth_ref, tmp_path):
    py = image_python(image)
    prog = bundled_program("scoring_program", tmp_path / "program")
    inp = tmp_path / "input"
    inp.mkdir()
    shutil.copytree(synth_ref, inp / "ref")
    write_submission(inp / "res", oracle_predictions(labels_of(synth_ref), noise=0.6, seed=1), 64)
    (prog / "config.yaml").write_text("resolutions: [28, 64]\nn_boot: 30\nseed: 0\nlevel: 0.95\nreport: true\n")
    out = tmp_path / "output"
    proc = subprocess.run([str(py), str(prog / "score.py"), str(inp), str(out)], capture_output=True, text=True,
                          env=image_env(), cwd=str(prog), timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "detailed results failed" not in proc.stderr, proc.stderr
    scores = json.loads((out / "scores.json").read_text())
    assert list(scores) == registry.score_keys() and scores["resolution"] == 64
    details = json.loads((out / "details.json").read_text())
    assert details["n_boot"] == 30 and (out / "detailed_results.html").is_file()
    # a bad submission fails the same way in the image
    (inp / "res" / "pathmnist_64.csv").unlink()
    proc = subprocess.run([str(py), str(prog / "score.py"), str(inp), str(tmp_path / "out2")], capture_output=True,
                          text=True, env=image_env(), cwd=str(prog), timeout=600)
    assert proc.returncode == 1 and not (tmp_path / "out2" / "scores.json").exists()
    assert proc.stderr.strip().splitlines()[-1].startswith("Submission rejected: ")
    assert "pathmnist_64.csv" in proc.stderr and "Traceback" not in proc.stderr
