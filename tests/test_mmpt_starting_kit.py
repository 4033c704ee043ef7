"""Participants get only the starting kit: it alone trains a few mm-PT steps and exports the model."""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")

from big import data  # noqa: E402
from big.codabench.kitfiles import assemble_starting_kit  # noqa: E402

from conftest import REPO  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.slow]


def test_train_from_an_extracted_starting_kit(tmp_path):
    kit = assemble_starting_kit(tmp_path / "kit")
    # as downloaded from CodaBench: a zip, extracted into a fresh folder
    shutil.make_archive(str(tmp_path / "starting_kit"), "zip", kit)
    fresh = tmp_path / "fresh"
    with zipfile.ZipFile(tmp_path / "starting_kit.zip") as zf:
        zf.extractall(fresh)
    assert (fresh / "baselines" / "README.md").is_file()
    published = sorted(p.name for p in (REPO / "baselines" / "configs").glob("*.yaml"))
    assert sorted(p.name for p in (fresh / "baselines" / "configs").glob("*.yaml")) == published
    synth = fresh / "synth"
    data.synthesize(synth, sizes=(28,), n_per_split="train=40,val=16,test=16", seed=1)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(fresh)

    def run(*args):
        return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env,
                              cwd=fresh, timeout=600)

    r = run("-c", "import big, sys; print(big.__file__)")
    assert r.returncode == 0 and Path(r.stdout.strip()).resolve().is_relative_to(fresh.resolve()), r.stdout + r.stderr
    r = run("-m", "big", "train", "--config", "baselines/configs/mmpt_resnet18_28_weighted.yaml", "--data_root", "synth",
            "--output", "runs/kit", "--pretrained", "false", "--native_resolution", "true", "--epochs", "1",
            "--batch_size", "16", "--max_steps_per_epoch", "3", "--max_eval_batches", "1", "--threads", "1")
    assert r.returncode == 0, r.stderr[-3000:]
    assert (fresh / "runs" / "kit" / "best.pt").is_file() and (fresh / "runs" / "kit" / "config.yaml").is_file()
    r = run("-m", "big", "export", "--checkpoint", "runs/kit/best.pt", "--out", "code.zip")
    assert r.returncode == 0, r.stderr[-3000:]
    with zipfile.ZipFile(fresh / "code.zip") as zf:
        assert set(zf.namelist()) == {"model.py", "weights.npz", "model_config.json"}
