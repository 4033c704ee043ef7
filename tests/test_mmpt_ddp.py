"""DDP through torchrun: 2 CPU processes on gloo give the result of a single-process run."""
import os
import signal
import socket
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from big import data  # noqa: E402

from conftest import REPO  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_group(cmd, env, timeout=300):
    """Run in its own process group; on timeout kill the whole group (torchrun's ranks included)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"timed out after {timeout} s: {' '.join(cmd)}\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_two_gloo_ranks_match_single_process(tmp_path):
    root = tmp_path / "npz"
    # batch 16: 41 rows -> the last global batch (9 rows) is split unevenly, 5 + 4; 33 rows -> the
    # last batch has 1 row, fewer than the ranks, and is given whole to both
    data.synthesize(root, sizes=(28,), n_per_split="train=41,val=20,test=8", seed=4,
                    flags=["bloodmnist", "chestmnist", "retinamnist"])
    data.synthesize(root, sizes=(28,), n_per_split="train=33,val=20,test=8", seed=4, flags=["breastmnist"])
    common = ["--data_root", root, "--model", "vit_tiny_patch16_224", "--pretrained", "false",
              "--model_kwargs", "{img_size: 28, patch_size: 7, depth: 2}", "--native_resolution", "true",
              "--datasets", "bloodmnist,chestmnist,breastmnist,retinamnist", "--epochs", "2", "--batch_size", "16",
              "--eval_batch_size", "32", "--progress", "false", "--plots", "false", "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    runs = {
        "single": [sys.executable, "-m", "big", "train", *common, "--output", tmp_path / "single"],
        "ddp": [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                "--master_port", free_port(),
                "-m", "big", "train", *common, "--output", tmp_path / "ddp"],
    }
    for name, cmd in runs.items():
        r = run_group([str(c) for c in cmd], env)
        assert r.returncode == 0, f"{name}: {r.stderr[-3000:]}"
        assert r.stdout.count("done: 2 epoch(s)") == 1, r.stdout  # rank 0 reports once
    a = torch.load(tmp_path / "single" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "ddp" / "last.pt", weights_only=False)
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        torch.testing.assert_close(b["model"][k], a["model"][k], atol=2e-3, rtol=0, msg=k)
    for ra, rb in zip(a["history"], b["history"]):
        for key in ("train_loss", "val_loss", "breastmnist_train_loss", "chestmnist_val_loss", "mean_val_auc"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-4, abs=1e-5), key
    # the runs really differ from an untrained model, so the match is not trivial
    assert a["history"][-1]["train_loss"] != a["history"][0]["train_loss"]
