"""The program folders run in virtualenvs pinned like the CodaBench images, project NOT installed.

``make venvs`` builds them with the image resolver (``big image-env``, big/imageenv.py, whose table
holds each image's Python version and pins): .venv-py312 = codalab-legacy:py312, .venv-gpu310 =
codalab-legacy:gpu310 (torch 2.3.1) and .venv-big-gpu310 = the docker/ image (gpu310 + torchvision
and timm). Under CI=true a missing venv fails the test instead of skipping it.
"""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from big import imageenv, registry
from big.submission import write_submission
from conftest import bundled_program, image_env, image_python, labels_of, oracle_predictions

#: the images the scoring program must run in (results-only: py312; code track: gpu310)
SCORING_IMAGES = ("py312", "gpu310")


@pytest.mark.codabench_env
@pytest.mark.parametrize("image", imageenv.names())
def test_image_pins(image):
    """Each venv has its image's Python minor version and every pin of the table (one source)."""
    image_python(image)
    env, problems = imageenv.inspect(image)
    assert env is not None, problems
    assert env.python_version.rsplit(".", 1)[0] == imageenv.IMAGES[image].minor
    for req in imageenv.all_pins(env.image):
        want = imageenv.pinned_version(req)
        have = env.versions[imageenv.requirement_name(req)]
        assert have is not None and (want is None or have.split("+")[0] == want), (req, have)
    proc = subprocess.run([str(env.python), "-c", "import big"], capture_output=True, text=True, env=image_env(),
                          cwd="/")
    assert proc.returncode != 0, "the project must not be installed in the image venv"


@pytest.mark.codabench_env
@pytest.mark.slow
def test_competition_image_runs_timm():
    """The docker/ image's venv: the Dockerfile's own smoke test (timm model from torch 2.3.1)."""
    py = image_python("big-gpu310")
    proc = subprocess.run([str(py), "-c", imageenv.IMAGES["big-gpu310"].smoke + "; import torch, torchvision; "
                           "print(torch.__version__, torchvision.__version__)"],
                          capture_output=True, text=True, env=image_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0].startswith("2.3.1") and proc.stdout.split()[1].startswith("0.18.1")


@pytest.mark.codabench_env
@pytest.mark.parametrize("image", SCORING_IMAGES)
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
