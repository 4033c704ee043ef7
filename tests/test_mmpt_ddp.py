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


def test_per_dataset_batchnorm_two_gloo_ranks_match_single_process(tmp_path):
    """bn_mode per_dataset under DDP: BatchNorm sees the global batch (synchronised over gloo), so
    weights, every dataset's running statistics and the validation numbers equal one process's,
    and all ranks hold the same statistics."""
    root = tmp_path / "npz"
    # batch 16: 41 rows -> a last batch of 9 rows, split 5 + 4; 34 rows -> 2 rows, one per rank
    # (a rank alone cannot normalise one image at a 1x1 feature map: without synchronisation,
    # BatchNorm raises "Expected more than 1 value per channel"; the global batch has two)
    data.synthesize(root, sizes=(28,), n_per_split="train=41,val=20,test=8", seed=4, flags=["bloodmnist", "retinamnist"])
    data.synthesize(root, sizes=(28,), n_per_split="train=34,val=20,test=8", seed=4, flags=["breastmnist"])
    common = ["--data_root", root, "--model", "resnet10t", "--pretrained", "false", "--native_resolution", "true",
              "--bn_mode", "per_dataset", "--datasets", "bloodmnist,breastmnist,retinamnist", "--epochs", "2",
              "--batch_size", "16", "--eval_batch_size", "32", "--progress", "false",
              "--plots", "false", "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    runs = {
        "single": [sys.executable, "-m", "big", "train", *common, "--output", tmp_path / "single"],
        "ddp": [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                "--master_port", free_port(), "-m", "big", "train", *common, "--output", tmp_path / "ddp"],
    }
    for name, cmd in runs.items():
        r = run_group([str(c) for c in cmd], env)
        assert r.returncode == 0, f"{name}: {r.stderr[-3000:]}"
    a = torch.load(tmp_path / "single" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "ddp" / "last.pt", weights_only=False)
    assert a["model"].keys() == b["model"].keys()
    stats = [k for k in a["model"] if k.endswith(("running_mean", "running_var"))]
    assert stats and all(a["model"][k].shape[0] == 3 for k in stats)
    for k in a["model"]:
        torch.testing.assert_close(b["model"][k], a["model"][k], atol=2e-3, rtol=0, msg=k)
    for k in [k for k in a["model"] if k.endswith("num_batches_tracked")]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for ra, rb in zip(a["history"], b["history"]):
        assert rb["bn_stats_rank_diff"] == 0.0  # rank 1 holds exactly rank 0's statistics
        for key in ("train_loss", "val_loss", "breastmnist_val_loss", "retinamnist_val_auc", "mean_val_auc"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-4, abs=1e-5), key
    # the datasets' statistics differ, so equal rows are not an accident of identical data
    rows = a["model"]["backbone.bn1.running_mean"]
    assert not torch.allclose(rows[0], rows[1], atol=1e-3)
