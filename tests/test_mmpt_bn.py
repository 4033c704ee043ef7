"""Per-dataset BatchNorm statistics (bn_mode per_dataset), big recalibrate-bn, select_by and big evaluate."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from big import data, metrics as bigmetrics, registry  # noqa: E402
from big.errors import UsageError  # noqa: E402
from big.mmpt import bn, config, loader, sampler  # noqa: E402
from big.mmpt import model as mmodel  # noqa: E402
from big.mmpt import train as mtrain  # noqa: E402
from big.mmpt.evaluate import evaluate, recalibrate_bn  # noqa: E402

from conftest import REPO  # noqa: E402

pytestmark = pytest.mark.torch

FLAGS = ["chestmnist", "retinamnist", "breastmnist"]  # INFO order (the order of the statistics rows)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("bn_data")
    data.synthesize(r, sizes=(28,), n_per_split="train=40,val=24,test=24", seed=21, flags=FLAGS)
    return r


def make_cfg(root, out, **kw):
    base = {"model": "resnet10t", "pretrained": False, "native_resolution": True, "data_root": str(root),
            "output": str(out), "epochs": 2, "batch_size": 16, "eval_batch_size": 16, "progress": False,
            "plots": False, "threads": 1, "prefetch": 2, "datasets": FLAGS, "lr": 2e-3}
    base.update(kw)
    return config.resolve(base)


def _big(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "big", *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=600, cwd=cwd)


@pytest.fixture(scope="module")
def runs(root, tmp_path_factory):
    """The same training with shared and with per_dataset statistics (both criteria kept)."""
    base = tmp_path_factory.mktemp("bn_runs")
    out = {}
    for mode in ("shared", "per_dataset"):
        cfg = make_cfg(root, base / mode, bn_mode=mode, save_best=["val_loss", "mean_auc"])
        assert cfg["datasets"] == FLAGS
        out[mode] = {"cfg": cfg, "res": mtrain.train(cfg, log=None), "dir": base / mode}
    return out


# ---------------------------------------------------------------------------------------------
# the layer
# ---------------------------------------------------------------------------------------------

def test_domain_batchnorm_is_batchnorm_per_row():
    torch.manual_seed(0)
    ref = torch.nn.BatchNorm2d(6)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-0.5, 0.5)
    m = bn.DomainBatchNorm.from_batchnorm(ref, ["a", "b", "c"])
    start = m.running_mean.clone()
    x = torch.randn(7, 6, 3, 3) * 2 + 1
    bn.set_domain([m], "b")
    ref.train(), m.train()
    assert torch.equal(m(x), ref(x))  # same kernel, same numbers
    assert torch.equal(m.running_mean[1], ref.running_mean) and torch.equal(m.running_var[1], ref.running_var)
    assert torch.equal(m.running_mean[[0, 2]], start[[0, 2]])  # other datasets untouched
    assert m.num_batches_tracked.tolist() == [0, 1, 0]
    ref.eval(), m.eval()
    assert torch.equal(m(x), ref(x))
    bn.set_domain([m], "a")
    assert not torch.equal(m(x), ref(x))  # a's statistics are still the initial ones
    with pytest.raises(KeyError, match="no BatchNorm statistics for dataset 'z'"):
        bn.set_domain([m], "z")


def test_per_dataset_needs_batchnorm_layers():
    with pytest.raises(UsageError, match="no BatchNorm layer"):
        mmodel.build(config.resolve({"model": "vit_tiny_patch16_224", "pretrained": False, "bn_mode": "per_dataset",
                                     "datasets": FLAGS, "native_resolution": True,
                                     "model_kwargs": {"img_size": 28, "patch_size": 7, "depth": 1}}))


def test_config_keys_are_checked():
    with pytest.raises(UsageError) as e:
        config.resolve({"bn_mode": "per_domain", "select_by": "auc", "save_best": ["loss"]})
    text = "\n".join(e.value.report())
    assert "bn_mode: expected one of shared, per_dataset" in text
    assert "select_by: expected one of val_loss, mean_auc" in text and "save_best" in text
    assert config.parse_overrides(["--save_best", "mean_auc,val_loss", "--bn_mode", "per_dataset"]) == \
        {"save_best": ["mean_auc", "val_loss"], "bn_mode": "per_dataset"}
    cfg = config.resolve({"save_best": ["mean_auc", "val_loss"]})
    assert cfg["save_best"] == ["val_loss", "mean_auc"] and cfg["bn_mode"] == "shared" and cfg["select_by"] == "val_loss"


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------

def test_per_dataset_trains_the_same_weights_with_own_statistics(runs):
    """Training batches normalise with their own batch statistics in both modes: the weights are
    identical; only the running statistics differ (one row per dataset, each fed by its batches)."""
    a = torch.load(runs["shared"]["dir"] / "last.pt", weights_only=False)
    b = torch.load(runs["per_dataset"]["dir"] / "last.pt", weights_only=False)
    assert b["config"]["bn_mode"] == "per_dataset"
    stats = ("running_mean", "running_var", "num_batches_tracked")
    for k, v in a["model"].items():
        if k.endswith(stats):
            assert b["model"][k].shape == (len(FLAGS), *v.shape), k
        else:
            assert torch.equal(v, b["model"][k]), k
    # every dataset's row counts exactly its own training batches
    cfg = runs["per_dataset"]["cfg"]
    steps = {f: sampler.n_batches(40, 16) * cfg["epochs"] for f in FLAGS}
    nbt = b["model"]["backbone.conv1.1.num_batches_tracked"]
    assert nbt.tolist() == [steps[f] for f in FLAGS]
    rm = b["model"]["backbone.conv1.1.running_mean"]
    assert not torch.allclose(rm[0], rm[1]) and not torch.allclose(rm[1], rm[2])


def test_evaluation_uses_the_datasets_own_statistics(runs):
    """A per_dataset net predicts dataset d exactly like a plain net holding d's statistics."""
    cfg = runs["per_dataset"]["cfg"]
    ck = torch.load(runs["per_dataset"]["dir"] / "last.pt", weights_only=False)
    net, pre = mmodel.build(cfg, pretrained=False)
    net.load_state_dict(ck["model"])
    net.eval()
    plain, _ = mmodel.build({**cfg, "bn_mode": "shared"}, pretrained=False)
    imgs = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8))
    for i, flag in enumerate(FLAGS):
        state = {k: (v[i] if k.endswith(("running_mean", "running_var", "num_batches_tracked")) else v)
                 for k, v in ck["model"].items()}
        plain.load_state_dict(state)
        plain.eval()
        with torch.no_grad():
            assert torch.equal(net(pre(imgs), flag), plain(pre(imgs), flag)), flag


def test_select_best_rules():
    h = [{"epoch": 1, "val_loss": 0.9, "mean_val_auc": math.nan},
         {"epoch": 2, "val_loss": 0.7, "mean_val_auc": 0.6},
         {"epoch": 3, "val_loss": 0.7, "mean_val_auc": 0.8},
         {"epoch": 4, "val_loss": 0.8, "mean_val_auc": 0.8}]
    assert mtrain.select_best(h, "val_loss") == {"select_by": "val_loss", "epoch": 2, "value": 0.7}  # ties: first
    assert mtrain.select_best(h, "mean_auc") == {"select_by": "mean_auc", "epoch": 3, "value": 0.8}
    assert mtrain.select_best(h[:1], "mean_auc")["epoch"] == 1  # nothing defined: the first epoch stands
    assert mtrain.select_best([], "val_loss") is None


def test_select_by_is_recorded_and_both_bests_are_kept(runs):
    d = runs["shared"]["dir"]
    hist = runs["shared"]["res"]["history"]
    best = torch.load(d / "best.pt", weights_only=False)
    assert best["selected_by"] == "val_loss" and best["best"]["select_by"] == "val_loss"
    assert best["epoch"] == mtrain.select_best(hist, "val_loss")["epoch"] == best["best"]["epoch"]
    for crit in ("val_loss", "mean_auc"):
        ck = torch.load(d / f"best_{crit}.pt", weights_only=False)
        want = mtrain.select_best(hist, crit)
        assert ck["selected_by"] == crit and ck["best"] == want and ck["epoch"] == want["epoch"]
    assert torch.load(d / "last.pt", weights_only=False)["selected_by"] == "last"
    assert all(f"best_epoch_{c}" in hist[-1] for c in config.SELECT_BY)


def test_early_stopping_follows_select_by(root, tmp_path):
    # lr 0 and no BatchNorm: nothing changes after epoch 1, so epoch 1 stays best; stop after 1 + 2 epochs
    cfg = make_cfg(root, tmp_path / "run", epochs=10, early_stopping=2, lr=0.0, lr_scheduler="none",
                   select_by="mean_auc", datasets=["breastmnist"], model="vit_tiny_patch16_224",
                   model_kwargs={"img_size": 28, "patch_size": 7, "depth": 1})
    res = mtrain.train(cfg, log=None)
    assert res["epochs"] == 3 and "no improvement of mean_auc" in res["stopped"]
    ck = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    assert ck["selected_by"] == "mean_auc" and ck["best"]["epoch"] == 1
    assert ck["best"]["value"] == res["history"][0]["mean_val_auc"]


# ---------------------------------------------------------------------------------------------
# big evaluate
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["shared", "per_dataset"])
def test_evaluate_val_equals_the_training_log(runs, root, tmp_path, mode):
    d = runs[mode]["dir"]
    res = evaluate(d / "best_mean_auc.pt", "val", root, out=tmp_path / "ev", log=lambda m: None)
    row = next(r for r in runs[mode]["res"]["history"] if r["epoch"] == res["epoch"])
    assert res["selected_by"] == "mean_auc" and res["bn_mode"] == mode
    for flag in FLAGS:
        for k in registry.METRIC_KEYS:
            got, want = res["datasets"][flag][k], row[f"{flag}_val_{k}"]
            assert (got is None and math.isnan(want)) or got == pytest.approx(want, abs=1e-12), (flag, k)
        assert res["datasets"][flag]["genuine"] is False and res["datasets"][flag]["n"] == 24
    saved = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert saved["datasets"].keys() == set(FLAGS) and "3 dataset(s)" in saved["mean_note"]
    assert "| breastmnist (not the genuine file) | 24 |" in (tmp_path / "ev" / "evaluation.md").read_text()


def test_evaluate_cli_on_test_uses_big_metrics(runs, root, tmp_path):
    ck = runs["per_dataset"]["dir"] / "best.pt"
    r = _big("evaluate", "--checkpoint", ck, "--split", "test", "--data-root", root, "--out", tmp_path / "ev")
    assert r.returncode == 0, r.stderr
    assert "| dataset | n | AUC | balanced accuracy | kappa |" in r.stdout
    got = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    from big.mmpt.predict import load_model, predict_arrays

    cfg, net, pre, dev = load_model(ck, "cpu")
    sd = loader.open_split(root, "retinamnist", 28, "test", root / ".npy_cache")
    want = bigmetrics.score_dataset(sd.labels, predict_arrays(net, pre, dev, "retinamnist", sd.images), kind="multiclass")
    assert got["datasets"]["retinamnist"]["auc"] == pytest.approx(want["auc"], abs=1e-12)
    assert got["datasets"]["retinamnist"]["kappa"] == pytest.approx(want["kappa"], abs=1e-12)
    r = _big("evaluate", "--checkpoint", tmp_path / "nope.pt", "--split", "test", "--data-root", root)
    assert r.returncode == 1 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    r = _big("evaluate", "--checkpoint", ck, "--split", "test", "--data-root", tmp_path / "empty")
    assert r.returncode != 0 and "not found" in r.stderr and "Traceback" not in r.stderr


def test_predict_and_export_refuse_a_subset_and_point_to_evaluate(runs, root, tmp_path):
    ck = runs["shared"]["dir"] / "best.pt"
    for args in (("predict", "--checkpoint", ck, "--split", "test", "--data-root", root, "--out", tmp_path / "p.zip"),
                 ("export", "--checkpoint", ck, "--out", tmp_path / "c.zip")):
        r = _big(*args)
        assert r.returncode == 1 and "needs all 12 datasets" in r.stderr and "big evaluate --checkpoint" in r.stderr, \
            r.stderr
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "p.zip").exists() and not (tmp_path / "c.zip").exists()


# ---------------------------------------------------------------------------------------------
# big recalibrate-bn
# ---------------------------------------------------------------------------------------------

def test_recalibration_plan_has_no_tiny_batches():
    plan = bn.recalibration_plan({"a": 33, "b": 16, "c": 1}, 16, seed=3)
    sizes = {f: sorted(len(r) for g, r in plan if g == f) for f in "abc"}
    assert sizes == {"a": [11, 11, 11], "b": [16], "c": [1]}
    for f, n in (("a", 33), ("b", 16)):
        assert sorted(np.concatenate([r for g, r in plan if g == f]).tolist()) == list(range(n))
    assert [r.tolist() for _, r in plan] == [r.tolist() for _, r in bn.recalibration_plan({"a": 33, "b": 16, "c": 1}, 16, 3)]


def test_recalibrate_bn_uses_training_images_only(runs, root, tmp_path):
    """The result: same weights, per_dataset statistics = averages of batch statistics over each
    dataset's training images. The data root holds only train_images (no labels, no val/test)."""
    only_train = tmp_path / "only_train"
    only_train.mkdir()
    for f in FLAGS:
        with np.load(data.npz_path(root, f, 28)) as z:
            np.savez(only_train / f"{f}.npz", train_images=z["train_images"])
    src = runs["shared"]["dir"] / "best.pt"
    out = tmp_path / "recal.pt"
    r = _big("recalibrate-bn", "--checkpoint", src, "--data-root", only_train, "--out", out, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    a = torch.load(src, weights_only=False)
    b = torch.load(out, weights_only=False)
    assert b["config"]["bn_mode"] == "per_dataset" and b["made_by"] == "big recalibrate-bn"
    assert b["recalibrated"]["from_bn_mode"] == "shared" and b["recalibrated"]["images"] == {f: 40 for f in FLAGS}
    assert b["selected_by"] == a["selected_by"] and b["epoch"] == a["epoch"] and b["optimizer"] is None
    for k, v in a["model"].items():
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert torch.equal(v, b["model"][k]), k
    # the stem's BatchNorm sees conv(preprocessed image), which no other BatchNorm affects: check it by hand
    cfg = b["config"]
    net, pre = mmodel.build({**cfg, "bn_mode": "shared"}, pretrained=False)
    net.load_state_dict(a["model"])
    conv = net.backbone.conv1[0]
    plan = bn.recalibration_plan({f: 40 for f in FLAGS}, cfg["batch_size"], cfg["seed"])
    for i, f in enumerate(FLAGS):
        imgs = data.read_images(root / f"{f}.npz", "train")
        with torch.no_grad():
            outs = [conv(pre(torch.from_numpy(imgs[rows]))) for g, rows in plan if g == f]
        means = torch.stack([o.mean(dim=(0, 2, 3)) for o in outs]).mean(0)
        varis = torch.stack([o.var(dim=(0, 2, 3), correction=1) for o in outs]).mean(0)
        torch.testing.assert_close(b["model"]["backbone.conv1.1.running_mean"][i], means, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(b["model"]["backbone.conv1.1.running_var"][i], varis, atol=1e-5, rtol=1e-4)
    # evaluable, not resumable, and a second recalibration of the result gives the same statistics
    res = evaluate(out, "test", root, log=lambda m: None)
    assert res["bn_mode"] == "per_dataset" and res["recalibrated"]["from"] == str(src)
    with pytest.raises(UsageError, match="no optimiser state"):
        mtrain.train(make_cfg(root, tmp_path / "again", bn_mode="per_dataset"), resume=out, log=None)
    again = recalibrate_bn(out, only_train, tmp_path / "recal2.pt", device="cpu", log=lambda m: None)
    c = torch.load(again, weights_only=False)
    for k, v in b["model"].items():
        torch.testing.assert_close(c["model"][k], v, atol=1e-6, rtol=1e-6)
    r = _big("recalibrate-bn", "--checkpoint", src, "--data-root", only_train, "--out", src)
    assert r.returncode == 1 and "is the input checkpoint" in r.stderr
