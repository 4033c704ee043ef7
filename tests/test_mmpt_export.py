"""big predict / big export: result and code submissions from a checkpoint, scored end to end."""
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from big import data, inputdata, registry, scoring  # noqa: E402
from big.submission import read_submission  # noqa: E402
from big.errors import UsageError  # noqa: E402
from big.mmpt import bn, config, export, model as mmodel  # noqa: E402
from big.mmpt import train as mtrain  # noqa: E402
from big.reference import build_reference  # noqa: E402

from conftest import REPO, bundled_program, image_env, image_python  # noqa: E402

pytestmark = pytest.mark.torch
def save_checkpoint(cfg, path, *, fp16_round=False, seed=0):
    """A `big train`-format checkpoint of a randomly initialised MultiNet (BN statistics randomised)."""
    torch.manual_seed(seed)
    net, pre = mmodel.build(cfg, pretrained=False)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, bn.DomainBatchNorm)):  # per_dataset: every row differs
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
        if fp16_round:
            for t in net.state_dict().values():
                if t.is_floating_point():
                    t.copy_(t.half().float())
    state = {"format": mtrain.CKPT_FORMAT, "config": cfg, "epoch": 0, "model": net.state_dict(),
             "norm": {"mean": pre.mean.flatten().tolist(), "std": pre.std.flatten().tolist()}}
    torch.save(state, path)
    return net.eval(), pre


def load_exported(zip_path, dest):
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
        zf.extractall(dest)
    assert names == {"model.py", "weights.npz", "model_config.json"}
    spec = importlib.util.spec_from_file_location(f"exported_{abs(hash(str(dest)))}", Path(dest) / "model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def images_for(flag, size, n=5, seed=0):
    shape = registry.get(flag).image_shape(size)
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


@torch.no_grad()
def timm_scores(net, pre, flag, imgs):
    return mmodel.scores(flag, net(pre(torch.from_numpy(imgs)), flag)).numpy()


@pytest.mark.parametrize("name,size,native,slow", [
    ("resnet18", 28, False, False),
    ("resnet18", 64, True, False),
    ("vit_tiny_patch16_224", 28, False, False),
    pytest.param("vit_base_patch16_224", 64, False, True, marks=pytest.mark.slow),
])
def test_plain_model_matches_timm(tmp_path, name, size, native, slow):
    flags = ["pathmnist", "chestmnist", "breastmnist"]
    cfg = config.resolve({"model": name, "img_size": size, "native_resolution": native, "pretrained": False})
    net, pre = save_checkpoint(cfg, tmp_path / "ck.pt", fp16_round=True)
    logs = []
    out, mc = export.export(tmp_path / "ck.pt", tmp_path / "code.zip", log=logs.append)
    assert mc["arch"] in ("resnet", "vit") and "self-contained" in logs[-1]
    mod = load_exported(out, tmp_path / "x")
    assert "import timm" not in (tmp_path / "x" / "model.py").read_text().split("def timm_backbone")[0]
    m = mod.Model(device="cpu")
    assert m.resolution == size
    for flag in flags:
        imgs = images_for(flag, size, n=2 if slow else 3)
        got = m.predict(flag, imgs)
        want = timm_scores(net, pre, flag, imgs)
        assert got.shape == want.shape == (len(imgs), registry.get(flag).n_labels)
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
        assert ((got >= 0) & (got <= 1)).all()


def test_other_backbones_are_exported_with_a_docker_note(tmp_path):
    cfg = config.resolve({"model": "resnet10t", "native_resolution": True, "pretrained": False})
    net, pre = save_checkpoint(cfg, tmp_path / "ck.pt")
    logs = []
    out, mc = export.export(tmp_path / "ck.pt", tmp_path / "code.zip", dtype="float32", log=logs.append)
    assert mc["arch"] == "timm" and any("docker image" in m for m in logs)
    mod = load_exported(out, tmp_path / "x")
    imgs = images_for("bloodmnist", 28)
    np.testing.assert_allclose(mod.Model(device="cpu").predict("bloodmnist", imgs),
                               timm_scores(net, pre, "bloodmnist", imgs), atol=1e-5)
    with pytest.raises(UsageError, match="not a `big train` checkpoint"):
        torch.save({"x": 1}, tmp_path / "bad.pt")
        export.export(tmp_path / "bad.pt", tmp_path / "c2.zip")
    with pytest.raises(UsageError, match=".zip"):
        export.export(tmp_path / "ck.pt", tmp_path / "code.tar")
    assert not (tmp_path / "c2.zip").exists()


def test_exported_model_runs_in_the_gpu310_venv(tmp_path):
    """model.py with torch 2.3.1 on python 3.10 (the stock codalab-legacy:gpu310 image, minus CUDA)."""
    gpu310 = image_python("gpu310")
    cfg = config.resolve({"model": "resnet18", "img_size": 28, "pretrained": False})
    net, pre = save_checkpoint(cfg, tmp_path / "ck.pt", fp16_round=True)
    out, _ = export.export(tmp_path / "ck.pt", tmp_path / "code.zip", log=lambda m: None)
    with zipfile.ZipFile(out) as zf:
        zf.extractall(tmp_path / "prog")
    imgs = {f: images_for(f, 28, n=4, seed=i) for i, f in enumerate(["chestmnist", "dermamnist"])}
    np.savez(tmp_path / "imgs.npz", **imgs)
    script = (
        "import sys, numpy as np, torch; sys.path.insert(0, sys.argv[1]); import model\n"
        "assert sys.version_info[:2] == (3, 10) and torch.__version__.startswith('2.3')\n"
        "m = model.Model(); z = np.load(sys.argv[2])\n"
        "np.savez(sys.argv[3], **{k: m.predict(k, z[k]) for k in z.files})\n")
    r = subprocess.run([str(gpu310), "-c", script, str(tmp_path / "prog"), str(tmp_path / "imgs.npz"),
                        str(tmp_path / "out.npz")], capture_output=True, text=True, timeout=300,
                       env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert r.returncode == 0, r.stderr
    got = np.load(tmp_path / "out.npz")
    for f, x in imgs.items():
        np.testing.assert_allclose(got[f], timm_scores(net, pre, f, x), atol=1e-4)


# ---------------------------------------------------------------------------------------------
# end to end: train -> predict -> validate -> score, and train -> export -> ingestion -> score
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    src = root / "npz"
    data.synthesize(src, sizes=(28,), n_per_split="train=40,val=16,test=20", seed=5)
    cfg = config.resolve({"model": "resnet18", "pretrained": False, "native_resolution": True, "data_root": str(src),
                          "output": str(root / "run"), "epochs": 1, "batch_size": 16, "max_steps_per_epoch": 4,
                          "max_eval_batches": 1, "progress": False, "plots": False, "threads": 1})
    mtrain.train(cfg, log=None)
    ref = build_reference(src, "test", root / "ref", allow_synthetic=True)
    return {"root": root, "src": src, "ckpt": root / "run" / "best.pt", "ref": ref}


def _big(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "big", *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=600, cwd=cwd)


def test_predict_validate_score(trained, tmp_path):
    sub = tmp_path / "sub.zip"
    r = _big("predict", "--checkpoint", trained["ckpt"], "--split", "test", "--data-root", trained["src"], "--out", sub)
    assert r.returncode == 0, r.stderr
    r = _big("validate", sub, "--reference", trained["ref"])
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr
    r = _big("score", sub, "--reference", trained["ref"], "--output", tmp_path / "score", "--bootstrap", "0", "--no-report")
    assert r.returncode == 0, r.stderr
    scores = json.loads((tmp_path / "score" / "scores.json").read_text())
    assert scores["resolution"] == 28 and 0 <= scores["auc"] <= 1
    # full precision: the CSV holds float64 round-trip values
    with zipfile.ZipFile(sub) as zf:
        line = zf.read("pathmnist_28.csv").decode().splitlines()[1]
    assert len(line.split(",")[1]) > 12
    r = _big("predict", "--checkpoint", tmp_path / "nope.pt", "--split", "test", "--data-root", trained["src"],
             "--out", tmp_path / "x.zip")
    assert r.returncode != 0 and "does not exist" in r.stderr and not (tmp_path / "x.zip").exists()


def test_export_ingestion_score(trained, tmp_path):
    code = tmp_path / "code.zip"
    r = _big("export", "--checkpoint", trained["ckpt"], "--out", code, "--dtype", "float32")
    assert r.returncode == 0, r.stderr
    inp = inputdata.write_input_data(trained["src"], "test", [28], tmp_path / "input_data", allow_synthetic=True)
    prog, out = tmp_path / "ingested_program", tmp_path / "output"
    with zipfile.ZipFile(code) as zf:
        zf.extractall(prog)
    shutil.copytree(prog, out)  # CodaBench copies a zip without metadata into the output
    r = _big("ingest", inp, out, prog, "--data-dir", tmp_path / "no_app_data", "--time-budget", 300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads((out / "ingestion_status.json").read_text())["status"] == "ok"
    err = io.StringIO()
    rc = scoring.run(out, trained["ref"], tmp_path / "score", config=scoring.ScoringConfig(n_boot=0, report=False),
                     out=io.StringIO(), err=err)
    assert rc == 0, err.getvalue()
    s_code = json.loads((tmp_path / "score" / "scores.json").read_text())
    # the same model through big predict scores the same
    from big.mmpt.predict import predict

    sub = predict(trained["ckpt"], "test", trained["src"], tmp_path / "sub.zip", log=lambda m: None)
    rc = scoring.run(sub, trained["ref"], tmp_path / "score2", config=scoring.ScoringConfig(n_boot=0, report=False),
                     out=io.StringIO(), err=io.StringIO())
    s_pred = json.loads((tmp_path / "score2" / "scores.json").read_text())
    for k in ("auc", "balacc", "kappa"):
        assert s_code[k] == pytest.approx(s_pred[k], abs=1e-6), k


def test_per_dataset_export_ingests_in_gpu310_and_reproduces_predict(tmp_path):
    """bn_mode per_dataset: the float32 export, run by the bundled ingestion program in the gpu310
    venv (python 3.10, torch 2.3.1, no timm, project not installed), gives big predict's scores."""
    gpu310 = image_python("gpu310")
    src = tmp_path / "npz"
    data.synthesize(src, sizes=(28,), n_per_split="train=4,val=4,test=6", seed=9)
    cfg = config.resolve({"model": "resnet18", "img_size": 28, "pretrained": False, "bn_mode": "per_dataset"})
    save_checkpoint(cfg, tmp_path / "ck.pt")
    from big.mmpt.predict import predict

    n = {f: 6 for f in registry.flags()}
    want = read_submission(predict(tmp_path / "ck.pt", "test", src, tmp_path / "pred.zip", device="cpu",
                                   log=lambda m: None), split="test", expected_n=n).predictions
    out, mc = export.export(tmp_path / "ck.pt", tmp_path / "code.zip", dtype="float32", log=lambda m: None)
    assert mc["bn_mode"] == "per_dataset" and mc["bn_datasets"] == list(registry.flags())
    with np.load(io.BytesIO(zipfile.ZipFile(out).read("weights.npz"))) as z:
        assert z["backbone.bn1.running_mean"].shape == (12, 64)
    prog, res = tmp_path / "ingested_program", tmp_path / "output"
    with zipfile.ZipFile(out) as zf:
        zf.extractall(prog)
    shutil.copytree(prog, res)
    inp = inputdata.write_input_data(src, "test", [28], tmp_path / "input_data", allow_synthetic=True)
    program = bundled_program("ingestion_program", tmp_path / "bundle" / "ingestion_program")
    r = subprocess.run([str(gpu310), str(program / "ingest.py"), str(inp), str(res), str(prog),
                        "--data-dir", str(tmp_path / "no_app_data")], capture_output=True, text=True,
                       env=image_env(PYTHONUNBUFFERED="1"), cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    got = read_submission(res, split="test", expected_n=n).predictions
    for flag in registry.flags():
        np.testing.assert_allclose(got[flag], want[flag], atol=1e-5, rtol=0, err_msg=flag)
    # the datasets' statistics really differ: predicting with another dataset's rows changes the scores
    m = load_exported(out, tmp_path / "x").Model(device="cpu")
    imgs = images_for("dermamnist", 28, n=4)
    own = m.predict("dermamnist", imgs)
    m.use_dataset("bloodmnist")
    m.bn_dataset = "dermamnist"  # pretend the switch was done: the dermamnist head now sees bloodmnist's statistics
    assert np.abs(m.predict("dermamnist", imgs) - own).max() > 1e-3
