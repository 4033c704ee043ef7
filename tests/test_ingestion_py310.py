"""The ingestion program in the codalab-legacy:gpu310 stand-in venv (python 3.10, numpy 1.26.4,
torch 2.3.1, no timm/torchvision), with the project NOT installed: ingestion_program/ and big/ are
copied into a folder as the bundle does. Fails (not skips) under CI=true when the venv is missing."""
from __future__ import annotations

import io
import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from big import inputdata, registry, scoring

from conftest import REPO, bundled_program, image_env, image_python

@pytest.fixture(scope="module")
def py310():
    return image_python("gpu310")


@pytest.fixture(scope="module")
def bundle_program(tmp_path_factory):
    """ingestion_program/ with big/ beside ingest.py, as `big bundle` lays it out."""
    dest = tmp_path_factory.mktemp("bundle") / "ingestion_program"
    bundled_program("ingestion_program", dest)
    return dest


def _clean_env():
    return image_env(PYTHONUNBUFFERED="1")  # as CodaBench sets it


def _run(py, program_dir: Path, inp: Path, out: Path, sub: Path, cwd: Path):
    return subprocess.run([str(py), str(program_dir / "ingest.py"), str(inp), str(out), str(sub),
                           "--data-dir", str(cwd / "no_app_data")],
                          capture_output=True, text=True, env=_clean_env(), cwd=cwd, timeout=300)


def test_project_not_installed_in_venv(py310, tmp_path):
    res = subprocess.run([str(py310), "-c", "import sys, numpy, torch; print(sys.version_info[:2], numpy.__version__, "
                          "torch.__version__)\ntry:\n import big\nexcept ImportError:\n print('no big')\n"
                          "try:\n import timm\nexcept ImportError:\n print('no timm')"],
                         capture_output=True, text=True, env=_clean_env(), cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "(3, 10) 1.26.4 2.3.1" in res.stdout and "no big" in res.stdout and "no timm" in res.stdout


TORCH_MODEL = textwrap.dedent("""
    import numpy as np
    import torch
    from pathlib import Path

    COLS = {COLS}

    class Net(torch.nn.Module):
        def __init__(self, ch, c):
            super().__init__()
            self.conv = torch.nn.Conv2d(ch, 8, 3, padding=1)
            self.head = torch.nn.Linear(8, c)

        def forward(self, x):
            return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))

    class Model:
        resolution = 28
        batch_size = 16

        def __init__(self):
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
            state = torch.load(Path(__file__).parent / "weights.pt", map_location="cpu")
            self.nets = {}
            for flag, c in COLS.items():
                ch = state[flag + ".conv.weight"].shape[1]
                net = Net(ch, c)
                net.load_state_dict({k.split(".", 1)[1]: v for k, v in state.items() if k.startswith(flag + ".")})
                self.nets[flag] = net.to(self.device).eval()

        def predict(self, dataset, images):
            assert not torch.is_grad_enabled(), "ingestion runs predict under torch.no_grad()"
            x = torch.from_numpy(images).float().div(255)
            x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
            logits = self.nets[dataset](x.to(self.device))
            if COLS[dataset] == 14:
                return torch.sigmoid(logits).cpu().numpy()
            return torch.softmax(logits, dim=1).double().cpu().numpy()
""").replace("{COLS}", repr({d.flag: d.n_labels for d in registry.datasets()}))


@pytest.mark.slow
def test_torch_code_submission_in_gpu310_venv(py310, bundle_program, tmp_path, synth_root, synth_ref):
    inp = inputdata.write_input_data(synth_root, "test", [28], tmp_path / "input_data", allow_synthetic=True)
    sub = tmp_path / "ingested_program"
    sub.mkdir()
    (sub / "model.py").write_text(TORCH_MODEL)
    # weights made with torch 2.3.1 in the same venv (never committed; built here)
    make = ("import torch\ntorch.manual_seed(0)\nstate = {}\n" +
            "".join(f"state['{d.flag}.conv.weight'] = torch.randn(8, {d.n_channels}, 3, 3) * 0.1\n"
                    f"state['{d.flag}.conv.bias'] = torch.zeros(8)\n"
                    f"state['{d.flag}.head.weight'] = torch.randn({d.n_labels}, 8)\n"
                    f"state['{d.flag}.head.bias'] = torch.zeros({d.n_labels})\n" for d in registry.datasets()) +
            f"torch.save(state, {str(sub / 'weights.pt')!r})\n")
    subprocess.run([str(py310), "-c", make], check=True, env=_clean_env(), cwd=tmp_path, timeout=120)
    out = tmp_path / "output"
    shutil.copytree(sub, out)
    res = _run(py310, bundle_program, inp, out, sub, tmp_path)
    status = json.loads((out / "ingestion_status.json").read_text())
    assert res.returncode == 0 and status["status"] == "ok", res.stdout + res.stderr + str(status)
    assert "torch 2.3.1" in res.stdout and "images/s" in res.stdout
    assert not (out / "weights.pt").exists() and not (out / "metadata").exists()
    assert not list(sub.rglob("__pycache__"))  # nothing written into the submission folder
    err = io.StringIO()
    rc = scoring.run(out, synth_ref, tmp_path / "score", config=scoring.ScoringConfig(n_boot=0, report=False),
                     out=io.StringIO(), err=err)
    assert rc == 0, err.getvalue()


def test_numpy_sample_and_a_fault_in_gpu310_venv(py310, bundle_program, tmp_path, synth_root, synth_ref):
    import importlib.util

    inp = inputdata.write_input_data(synth_root, "test", [28], tmp_path / "input_data", allow_synthetic=True)
    spec = importlib.util.spec_from_file_location("tsm", REPO / "starting_kit" / "train_sample_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sub = tmp_path / "sub"
    sub.mkdir()
    mod.train(synth_root, 28, sub / "weights.npz", epochs=10, log=None)
    shutil.copy(REPO / "starting_kit" / "sample_code_submission" / "model.py", sub / "model.py")
    out = tmp_path / "out"
    shutil.copytree(sub, out)
    res = _run(py310, bundle_program, inp, out, sub, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    err = io.StringIO()
    rc = scoring.run(out, synth_ref, tmp_path / "score", config=scoring.ScoringConfig(n_boot=0, report=False),
                     out=io.StringIO(), err=err)
    assert rc == 0, err.getvalue()
    assert json.loads((tmp_path / "score" / "scores.json").read_text())["auc"] > 0.9

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.py").write_text("import numpy as np\nclass Model:\n    resolution = 28\n"
                                  "    def predict(self, dataset, images):\n        return np.full((len(images), 3), np.nan)\n")
    out2 = tmp_path / "out2"
    res = _run(py310, bundle_program, inp, out2, bad, tmp_path)
    assert res.returncode == 1
    status = json.loads((out2 / "ingestion_status.json").read_text())
    assert status["status"] == "failed" and "expected (80, 9)" in status["message"]
    assert [p.name for p in out2.iterdir()] == ["ingestion_status.json"]


HOSTILE = {
    # case: (model.py, budget, expected rc, expected status, words in the status message or the log)
    "forged_done": ("import os, sys\nos.write(int(sys.argv[2]), b'{\"event\": \"done\"}\\n')\nclass Model:\n"
                    "    resolution = 28\n    def predict(self, dataset, images):\n        return None\n",
                    60, 1, "failed", ["interfered", "'done' message after 0 of 12"]),
    "masked_nan": ("import numpy as np\nclass Model:\n    resolution = 28\n    def predict(self, dataset, images):\n"
                   "        return np.ma.masked_invalid(np.full((len(images), 9), np.nan))\n",
                   60, 1, "failed", ["masked array"]),
    "torch_tensor": ("import torch\nclass Model:\n    resolution = 28\n    def predict(self, dataset, images):\n"
                     "        return torch.full((len(images), 9), 0.5)\n", 60, 1, "failed", ["tensor.detach()"]),
    "detached_daemon_past_budget": (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork():\n        os._exit(0)\n"
        "    while True:\n        time.sleep(0.2)\nclass Model:\n    resolution = 28\n"
        "    def predict(self, dataset, images):\n        time.sleep(60)\n",
        4, 1, "timeout", ["time budget exceeded", "stopped 1 other process(es)"]),
    "sigterm_to_the_supervisor": (
        "import os, signal, time\nclass Model:\n    resolution = 28\n    def predict(self, dataset, images):\n"
        "        os.kill(os.getppid(), signal.SIGTERM)\n        time.sleep(30)\n", 60, 1, "failed", ["received SIGTERM"]),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_models_in_gpu310_venv(case, py310, bundle_program, tmp_path, synth_root):
    """ingest.py as bundled, in the gpu310 stand-in: a clear status and no traceback of ours."""
    model, budget, rc, state, words = HOSTILE[case]
    inp = inputdata.write_input_data(synth_root, "test", [28], tmp_path / "input_data", allow_synthetic=True)
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "model.py").write_text(model)
    out = tmp_path / "out"
    shutil.copytree(sub, out)
    res = subprocess.run([str(py310), str(bundle_program / "ingest.py"), str(inp), str(out), str(sub),
                          "--data-dir", "", "--time-budget", str(budget)],
                         capture_output=True, text=True, env=_clean_env(), cwd=tmp_path, timeout=120)
    status = json.loads((out / "ingestion_status.json").read_text())
    assert res.returncode == rc and status["status"] == state, res.stdout + res.stderr
    for word in words:
        assert word in status["message"] + res.stdout, (word, status["message"], res.stdout)
    assert "big/ingestion/" not in res.stderr and "ingest.py\", line" not in res.stderr, res.stderr
    assert [p.name for p in out.iterdir()] == ["ingestion_status.json"]
