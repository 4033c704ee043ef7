"""The detailed results page is drawn completely in the CodaBench-image virtualenvs.

py312 = codalab-legacy:py312 (python 3.12, numpy 1.26.4, matplotlib 3.8.4, pandas 2.2.3) and gpu310 =
codalab-legacy:gpu310 (python 3.10, numpy 1.26.4, matplotlib 3.9.0); built by ``make venvs``, with
the project NOT installed: the program folder carries ``big/`` and ``baselines/tables`` as the
bundle ships them. Under CI=true a missing venv fails instead of skipping.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from big import metrics, registry
from big.submission import write_submission
from conftest import bundled_program, image_env, image_python, labels_of, oracle_predictions

IMAGES = ("py312", "gpu310")


@pytest.mark.codabench_env
@pytest.mark.slow
@pytest.mark.parametrize("image", IMAGES)
def test_full_report_in_image(image, synth_ref, tmp_path):
    py = image_python(image)
    prog = bundled_program("scoring_program", tmp_path / "program")
    (prog / "config.yaml").write_text("resolutions: [64]\nn_boot: 25\nseed: 1\nlevel: 0.95\nreport: true\n")
    inp = tmp_path / "input"
    inp.mkdir()
    shutil.copytree(synth_ref, inp / "ref")
    write_submission(inp / "res", oracle_predictions(labels_of(synth_ref), noise=0.5, seed=4), 64)
    out = tmp_path / "output"
    proc = subprocess.run([str(py), str(prog / "score.py"), str(inp), str(out)], capture_output=True, text=True,
                          env=image_env(), cwd=str(prog), timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "failed" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    page = (out / "detailed_results.html").read_text(encoding="utf-8")
    assert page.count('src="data:image/png;base64,') == 6 + 2 * 12
    assert "could not be drawn" not in page and "no baseline tables" not in page
    assert "Published baselines at 64&times;64" in page and "SYNTHETIC REFERENCE DATA" in page
    details = json.loads((out / "details.json").read_text())
    # the image's numpy (1.26) gives the same intervals as the dev venv's numpy 2 (bootstrap is exact)
    from big.reference import Reference
    from big.submission import read_submission
    from big import scoring

    ref = Reference(inp / "ref")
    sub = read_submission(inp / "res", split=ref.split, expected_n=ref.expected_n)
    here = scoring.bootstrap_details(sub, ref, n_boot=25, seed=1, level=0.95)
    for f in registry.flags():
        for m in metrics.METRIC_FUNCTIONS:
            assert np.allclose(details["datasets"][f]["ci"][m], here["datasets"][f]["ci"][m], rtol=0, atol=1e-12)
    assert re.search(r"scorer version</th><td[^>]*>\d", page)
