"""Registry (generated from medmnist.INFO) and the npz layout: synthetic and genuine files alike."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import numpy as np
import pytest

from big import data, registry
from conftest import REPO, SHARED_DATA, needs_genuine


def test_registry_has_the_12_flags_in_info_order():
    assert registry.flags() == ("pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist",
                                "retinamnist", "breastmnist", "bloodmnist", "tissuemnist", "organamnist",
                                "organcmnist", "organsmnist")
    assert sum(d.n_samples["test"] for d in registry.datasets()) == 119_320
    assert registry.get("dermamnist").license == "CC BY-NC 4.0"
    assert registry.get("chestmnist").kind == "multilabel" and registry.get("chestmnist").n_labels == 14
    assert registry.get("retinamnist").kind == "multiclass"  # ordinal scored as multiclass (thesis)
    assert registry.get("breastmnist").file_name(64) == "breastmnist_64.npz"
    assert registry.get("breastmnist").file_name(28) == "breastmnist.npz"


def test_leaderboard_columns_are_the_score_keys():
    cols = registry.leaderboard_columns()
    assert [c["key"] for c in cols] == registry.score_keys()
    assert cols[0]["key"] == "auc" and [c["index"] for c in cols] == list(range(len(cols)))
    assert all(len(c["title"]) <= 36 and len(c["key"]) <= 36 for c in cols)


@pytest.mark.skipif(importlib.util.find_spec("medmnist") is None, reason="medmnist not installed")
def test_registry_json_is_regenerated_identically():
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_registry.py"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_scoring_path_does_not_import_medmnist_torch_or_pandas():
    code = ("import sys, big.scoring, big.cli; bad = [m for m in ('medmnist', 'torch', 'pandas', 'sklearn', "
            "'matplotlib') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr


def test_synthetic_layout_determinism_and_label_identity(tmp_path):
    data.synthesize(tmp_path / "a", sizes=(28, 64), n_per_split=20, flags=["chestmnist", "pathmnist"], seed=1)
    data.synthesize(tmp_path / "b", sizes=(28,), n_per_split=20, flags=["chestmnist", "pathmnist"], seed=1)
    for f in ("chestmnist", "pathmnist"):
        ds = registry.get(f)
        for size in (28, 64):
            assert data.check_layout(tmp_path / "a" / ds.file_name(size), ds, size) == []
        with np.load(tmp_path / "a" / ds.file_name(28)) as z28, np.load(tmp_path / "a" / ds.file_name(64)) as z64:
            assert list(z28.files) == list(data.KEY_ORDER_28) and list(z64.files) == list(data.KEY_ORDER_PLUS)
            for split in registry.SPLITS:
                assert np.array_equal(z28[f"{split}_labels"], z64[f"{split}_labels"])
        assert (tmp_path / "a" / ds.file_name(28)).read_bytes() == (tmp_path / "b" / ds.file_name(28)).read_bytes()
    chest = data.read_labels(tmp_path / "a" / "chestmnist.npz", "train")
    assert chest.shape == (20, 14) and chest.dtype == np.uint8 and set(np.unique(chest)) == {0, 1}
    img = data.read_images(tmp_path / "a" / "pathmnist_64.npz", "val")
    assert img.shape == (20, 64, 64, 3) and img.dtype == np.uint8


def test_synthetic_signal_is_learnable(tmp_path):
    """Class means of the images differ: a nearest-centroid rule beats chance clearly."""
    data.synthesize(tmp_path, sizes=(28,), n_per_split="train=400,val=0,test=200", flags=["bloodmnist"], seed=2)
    p = tmp_path / "bloodmnist.npz"
    xtr = data.read_images(p, "train").reshape(400, -1).astype(float)
    ytr = data.read_labels(p, "train")[:, 0]
    xte = data.read_images(p, "test").reshape(200, -1).astype(float)
    yte = data.read_labels(p, "test")[:, 0]
    cent = np.stack([xtr[ytr == c].mean(0) for c in range(8)])
    pred = np.argmin(((xte[:, None, :] - cent[None]) ** 2).sum(-1), axis=1)
    assert (pred == yte).mean() > 0.6  # chance is at most the largest prior


def test_n_per_split_parsing():
    assert data.parse_n_per_split(5) == {"train": 5, "val": 5, "test": 5}
    assert data.parse_n_per_split("train=3,test=full") == {"train": 3, "val": 0, "test": "full"}
    with pytest.raises(ValueError, match="unknown split"):
        data.parse_n_per_split("tests=3")
    with pytest.raises(ValueError, match="expected an integer"):
        data.parse_n_per_split("train=x")


@needs_genuine
@pytest.mark.parametrize("name,flag,size", [("breastmnist.npz", "breastmnist", 28), ("breastmnist_64.npz", "breastmnist", 64),
                                            ("pneumoniamnist.npz", "pneumoniamnist", 28), ("retinamnist.npz", "retinamnist", 28)])
def test_genuine_files_load_through_the_same_code(name, flag, size):
    ds = registry.get(flag)
    path = SHARED_DATA / name
    assert data.md5sum(path) == ds.md5(size)
    assert data.check_layout(path, ds, size) == []
    for split in registry.SPLITS:
        assert data.read_labels(path, split).shape == (ds.n_samples[split], 1)
