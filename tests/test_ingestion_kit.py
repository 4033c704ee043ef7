"""The starting kit's scripts: a result zip from any callable, and both scripts run from an assembled kit."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from big import registry
from big.codabench.kitfiles import assemble_starting_kit
from big.submission import read_submission

from conftest import REPO


def _kit_module():
    spec = importlib.util.spec_from_file_location("make_result_submission", REPO / "starting_kit" / "make_result_submission.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    from big import data

    root = tmp_path_factory.mktemp("kit_npz")
    data.synthesize(root, sizes=(28,), n_per_split="train=40,val=13,test=17", seed=4)
    return root


def test_result_zip_from_function(tmp_path, small):
    mod = _kit_module()
    calls = []

    def predict(dataset, images):
        calls.append((dataset, images.shape, images.dtype))
        c = registry.get(dataset).n_labels
        return np.full((len(images), c), 1.0 / c, dtype=np.float32)

    out = mod.write_result_submission(predict, size=28, data_root=small, split="val", out=tmp_path / "r.zip",
                                      batch_size=5, log=None)
    sub = read_submission(out, split="val", expected_n={f: 13 for f in registry.flags()})
    assert sub.size == 28 and set(sub.predictions) == set(registry.flags())
    assert ("pathmnist", (5, 28, 28, 3), np.uint8) in calls and ("chestmnist", (3, 28, 28), np.uint8) in calls


def test_cli_with_callable_and_class(tmp_path, small, monkeypatch, capsys):
    mod = _kit_module()
    (tmp_path / "myinfer.py").write_text(
        "import numpy as np\nfrom big import registry\n"
        "def predict(dataset, images):\n    c = registry.get(dataset).n_labels\n"
        "    return np.full((len(images), c), 1.0 / c)\n"
        "class Net:\n    resolution = 28\n    def predict(self, dataset, images):\n        return predict(dataset, images)\n"
        "def bad(dataset, images):\n    return predict(dataset, images) * 3\n")
    monkeypatch.chdir(tmp_path)
    assert mod.main(["--callable", "myinfer:predict", "--size", "28", "--data-root", str(small), "--split", "test",
                     "--out", "a.zip"]) == 0
    assert mod.main(["--callable", "myinfer:Net", "--data-root", str(small), "--split", "test", "--out", "b.zip"]) == 0
    assert "OK: b.zip is a valid test result submission at 28 px" in capsys.readouterr().out
    assert mod.main(["--callable", "myinfer:predict", "--data-root", str(small), "--out", "c.zip"]) == 1
    assert "give --size" in capsys.readouterr().err
    assert mod.main(["--callable", "myinfer:bad", "--size", "28", "--data-root", str(small), "--out", "d.zip"]) == 1
    err = capsys.readouterr().err
    assert "dataset pneumoniamnist, batch 1" in err and "outside [0, 1]" in err  # 3 x 1/2 > 1
    assert not (tmp_path / "d.zip").exists()


def test_scripts_run_from_assembled_kit(tmp_path, small):
    kit = assemble_starting_kit(tmp_path / "kit")
    assert (kit / "make_result_submission.py").is_file() and (kit / "sample_code_submission" / "model.py").is_file()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "train_sample_model.py", "--data-root", str(small), "--size", "28",
                          "--epochs", "3", "--zip", str(tmp_path / "code.zip")],
                         cwd=kit, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    with zipfile.ZipFile(tmp_path / "code.zip") as zf:
        assert sorted(zf.namelist()) == ["model.py", "weights.npz"]
    res = subprocess.run([sys.executable, "make_result_submission.py", "--model", "sample_code_submission/model.py",
                          "--data-root", str(small), "--split", "test", "--out", str(tmp_path / "res.zip")],
                         cwd=kit, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    read_submission(tmp_path / "res.zip", split="test", expected_n={f: 17 for f in registry.flags()})
