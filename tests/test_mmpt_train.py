"""mm-PT training on CPU: tiny timm models, synthetic and genuine data, pretrained=False."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from big import data, registry  # noqa: E402
from big.errors import UsageError  # noqa: E402
from big.mmpt import config, sampler  # noqa: E402
from big.mmpt import train as mtrain  # noqa: E402

from conftest import REPO, SHARED_DATA, image_python, needs_genuine  # noqa: E402

pytestmark = pytest.mark.torch

TINY_VIT = {"img_size": 28, "patch_size": 7, "depth": 2}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mmpt_data")
    data.synthesize(root, sizes=(28,), n_per_split="train=48,val=24,test=24", seed=11)
    return root


def make_cfg(root, out, **kw):
    base = {"model": "resnet10t", "pretrained": False, "native_resolution": True, "data_root": str(root),
            "output": str(out), "epochs": 1, "batch_size": 16, "eval_batch_size": 32, "progress": False,
            "plots": False, "threads": 1, "prefetch": 2}
    base.update(kw)
    return config.resolve(base)


def test_loss_goes_down_on_learnable_data(tiny_root, tmp_path):
    cfg = make_cfg(tiny_root, tmp_path / "run", datasets=["bloodmnist", "chestmnist", "retinamnist"], epochs=4,
                   lr=2e-3, plots=True)
    res = mtrain.train(cfg, log=None)
    h = res["history"]
    assert [r["epoch"] for r in h] == [1, 2, 3, 4]
    assert h[-1]["train_loss"] < 0.7 * h[0]["train_loss"]
    assert h[-1]["val_loss"] < h[0]["val_loss"]
    out = Path(res["output"])
    for name in ("last.pt", "best.pt", "log.csv", "log.json", "config.yaml", "loss_curves.png"):
        assert (out / name).is_file(), name
    log = json.loads((out / "log.json").read_text())
    assert log["best"]["epoch"] == min(h, key=lambda r: r["val_loss"])["epoch"]
    header = (out / "log.csv").read_text().splitlines()[0].split(",")
    for col in ("epoch", "lr", "train_loss", "val_loss", "chestmnist_train_loss", "chestmnist_val_loss",
                "retinamnist_val_auc", "bloodmnist_val_balacc", "bloodmnist_val_kappa", "mean_val_auc"):
        assert col in header
    saved = config.load_yaml(out / "config.yaml")
    assert saved["lr"] == 2e-3 and saved["datasets"] == ["chestmnist", "retinamnist", "bloodmnist"]


def test_only_the_sampled_head_changes(tiny_root, tmp_path):
    cfg = make_cfg(tiny_root, tmp_path / "run", max_steps_per_epoch=3, weight_decay=0.5)
    tr = mtrain.Trainer(cfg, log=None)
    before = {k: v.clone() for k, v in tr.net.state_dict().items()}
    sizes = {f: len(d) for f, d in tr.train_data.items()}
    drawn = {f for f, _ in sampler.epoch_plan(sizes, 16, cfg["seed"], 0)[:3]}
    assert 1 <= len(drawn) <= 3
    tr.train_epoch(0)
    after = tr.net.state_dict()
    state = tr.opt.state
    for flag, head in tr.net.heads.items():
        changed = not torch.equal(before[f"heads.{flag}.weight"], after[f"heads.{flag}.weight"])
        assert changed == (flag in drawn), flag
        # idle heads: no Adam moments, so no momentum and no weight decay later either
        assert (len(state[head.weight]) > 0) == (flag in drawn), flag
    assert not torch.equal(before["backbone.conv1.0.weight"], after["backbone.conv1.0.weight"])


def test_resume_equals_uninterrupted(tiny_root, tmp_path):
    kw = dict(datasets=["breastmnist", "dermamnist", "chestmnist"], epochs=3, lr_scheduler="cosine", cosine_epochs=3)
    mtrain.train(make_cfg(tiny_root, tmp_path / "full", **kw), log=None)
    part = make_cfg(tiny_root, tmp_path / "part", **{**kw, "epochs": 1})
    mtrain.train(part, log=None)
    with pytest.raises(UsageError, match="already holds a run"):
        mtrain.train(part, log=None)
    resumed_cfg = make_cfg(tiny_root, tmp_path / "part", **kw)
    res = mtrain.train(resumed_cfg, resume=tmp_path / "part" / "last.pt", log=None)
    assert res["epochs"] == 3
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=False)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert [r["val_loss"] for r in a["history"]] == [r["val_loss"] for r in b["history"]]
    assert a["best"] == b["best"]
    # a changed training setting is refused
    with pytest.raises(UsageError, match="same training settings"):
        mtrain.train(make_cfg(tiny_root, tmp_path / "part", **{**kw, "lr": 1e-3, "epochs": 4}),
                     resume=tmp_path / "part" / "last.pt", log=None)


def test_early_stopping_writes_the_last_checkpoint_first(tiny_root, tmp_path):
    # lr 0: the criterion never improves after epoch 1 -> stop after 1 + 2 epochs, last.pt of epoch 3
    cfg = make_cfg(tiny_root, tmp_path / "run", datasets=["breastmnist"], epochs=10, early_stopping=2, lr=0.0,
                   lr_scheduler="none")
    res = mtrain.train(cfg, log=None)
    assert res["epochs"] == 3 and "early stopping" in res["stopped"]
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert ck["epoch"] == 3 and ck["stopped"]
    assert torch.load(tmp_path / "run" / "best.pt", weights_only=False)["epoch"] == 1


def test_lr_schedule_has_no_lag_and_none_works():
    cfg = config.resolve({})
    assert mtrain.lr_at(cfg, 0) == pytest.approx(1e-4)
    assert mtrain.lr_at(cfg, 1) == pytest.approx(0.5e-4 * (1 + math.cos(math.pi / 100)))
    assert mtrain.lr_at(cfg, 1) < mtrain.lr_at(cfg, 0)  # thesis: epochs 1 and 2 both ran at 1e-4
    assert mtrain.lr_at(cfg, 50) == pytest.approx(0.5e-4)
    assert mtrain.lr_at(config.resolve({"lr_scheduler": "none"}), 60) == 1e-4


def test_loss_weighting(tiny_root, tmp_path):
    cfg = make_cfg(tiny_root, tmp_path / "w", datasets=["breastmnist", "chestmnist"], batch_size=16)
    tr = mtrain.Trainer(cfg, log=None)
    assert tr.train_counts == {"chestmnist": 3, "breastmnist": 3}
    cfg2 = make_cfg(tiny_root, tmp_path / "w2", datasets=["breastmnist", "chestmnist"], batch_size=40, weighted_loss=True)
    tr2 = mtrain.Trainer(cfg2, log=None)
    assert tr2.w_train == {"chestmnist": 1.0, "breastmnist": 1.0}
    cfg3 = make_cfg(tiny_root, tmp_path / "w3", weighted_loss=False)
    assert set(mtrain.Trainer(cfg3, log=None).w_train.values()) == {1.0}


def test_config_errors_are_clear(tmp_path):
    with pytest.raises(UsageError) as e:
        config.resolve({"img_size": 32, "lr": "fast", "datasets": ["nomnist"], "epoch": 3})
    text = "\n".join(e.value.report())
    assert "img_size" in text and "lr" in text and "nomnist" in text and "unknown setting 'epoch'" in text
    assert config.parse_overrides(["--lr", "3e-4", "--pretrained=false", "--datasets", "a,b", "--threads", "null"]) == \
        {"lr": 3e-4, "pretrained": False, "datasets": ["a", "b"], "threads": None}
    with pytest.raises(UsageError, match="missing its value"):
        config.parse_overrides(["--lr"])


PER_DATASET_SUFFIX = "_bn_per_dataset"


def test_all_sixteen_baseline_configs_resolve():
    paths = sorted(p for p in (REPO / "baselines" / "configs").glob("*.yaml") if not p.stem.endswith(PER_DATASET_SUFFIX))
    assert len(paths) == 16
    seen = set()
    for p in paths:
        cfg = config.load(p)
        assert cfg["bn_mode"] == "shared" and cfg["select_by"] == "val_loss"  # thesis-faithful
        assert cfg["pretrained"] is True and cfg["seed"] == 9930641 and cfg["batch_size"] == 64
        assert cfg["lr"] == 1e-4 and cfg["weight_decay"] == 0.01 and cfg["early_stopping"] == 10
        assert cfg["datasets"] == list(registry.flags()) and not cfg["native_resolution"]
        seen.add((cfg["model"], cfg["img_size"], cfg["weighted_loss"]))
    assert seen == {(m, s, w) for m in ("resnet18", "vit_base_patch16_224") for s in registry.SIZES
                    for w in (True, False)}


def test_per_dataset_configs_differ_from_their_thesis_config_only_in_batchnorm():
    """One bn_mode per_dataset config beside each resnet18 config (a ViT has no BatchNorm)."""
    configs = REPO / "baselines" / "configs"
    variants = sorted(configs.glob(f"*{PER_DATASET_SUFFIX}.yaml"))
    assert {p.stem[:-len(PER_DATASET_SUFFIX)] for p in variants} == {p.stem for p in configs.glob("mmpt_resnet18_*.yaml")
                                                                    if not p.stem.endswith(PER_DATASET_SUFFIX)}
    for p in variants:
        base = config.load(configs / (p.stem[:-len(PER_DATASET_SUFFIX)] + ".yaml"))
        cfg = config.load(p)
        assert cfg["bn_mode"] == "per_dataset" and cfg["select_by"] == "val_loss"
        assert cfg["save_best"] == ["val_loss", "mean_auc"] and cfg["output"] == f"runs/{p.stem}"
        assert {k for k in cfg if cfg[k] != base[k]} == {"bn_mode", "save_best", "output", "name"}, p.name
        assert p.name in p.read_text()  # its "Reproduce:" line names this file


def test_cli_train_with_overrides(tiny_root, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "big", "train", "--config", str(REPO / "baselines/configs/mmpt_resnet18_28_weighted.yaml"),
           "--data_root", str(tiny_root), "--output", str(out), "--model", "resnet10t", "--pretrained", "false",
           "--native-resolution", "true", "--epochs", "1", "--max_steps_per_epoch", "2", "--max_eval_batches", "1",
           "--datasets", "breastmnist,pneumoniamnist", "--threads", "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "done: 1 epoch(s)" in r.stdout and (out / "best.pt").is_file()
    r = subprocess.run(cmd[:5] + [str(tmp_path / "missing.yaml")], capture_output=True, text=True, env=env)
    assert r.returncode != 0 and "missing.yaml does not exist" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(cmd + ["--lr", "abc"], capture_output=True, text=True, env=env)
    assert r.returncode != 0 and "setting lr: expected float" in r.stderr


@needs_genuine
def test_trains_on_genuine_files(tmp_path):
    root = tmp_path / "genuine"
    root.mkdir()
    for f in ("breastmnist.npz", "pneumoniamnist.npz", "retinamnist.npz"):
        os.symlink(SHARED_DATA / f, root / f)
    cfg = make_cfg(root, tmp_path / "run", datasets=["breastmnist", "pneumoniamnist", "retinamnist"], batch_size=64,
                   max_steps_per_epoch=6, max_eval_batches=2, epochs=2, lr=1e-3)
    res = mtrain.train(cfg, log=None)
    h = res["history"]
    assert h[-1]["train_loss"] < h[0]["train_loss"] or h[-1]["val_loss"] < h[0]["val_loss"]
    assert all(np.isfinite(r["val_loss"]) for r in h)
    # the cache holds exactly the genuine arrays
    cached = np.load(data.cached_member(root / "retinamnist.npz", "val_images", cfg["cache_dir"]), mmap_mode="r")
    assert np.array_equal(cached, data.read_images(root / "retinamnist.npz", "val"))


def test_amp_on_cpu_trains(tiny_root, tmp_path):
    cfg = make_cfg(tiny_root, tmp_path / "amp", datasets=["bloodmnist", "chestmnist"], amp=True, max_steps_per_epoch=3,
                   max_eval_batches=1)
    h = mtrain.train(cfg, log=None)["history"]
    assert np.isfinite(h[0]["train_loss"]) and np.isfinite(h[0]["val_loss"])


def test_big_cli_does_not_import_torch():
    code = "import sys, big.cli; big.cli.build_parser(); print(sorted(m for m in ('torch', 'timm') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_without_torch_the_verbs_say_what_to_install(tmp_path):
    py312 = image_python("py312")  # the scoring image: numpy etc., no torch
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(REPO)
    r = subprocess.run([str(py312), "-m", "big", "export", "--checkpoint", "x.pt", "--out", "y.zip"],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 1 and ".[train]" in r.stderr and "Traceback" not in r.stderr, r.stderr
