"""Images-only input data (big/inputdata.py): exact copies of the npz image members, never labels."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from big import data, inputdata, registry
from big.errors import ReferenceDataError, SubmissionError

from conftest import SHARED_DATA, needs_genuine


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("idsrc")
    data.synthesize(root, sizes=(28, 64), n_per_split="train=5,val=7,test=33", seed=2)
    return root


def test_exact_copy_of_every_dataset_and_size(small_root, tmp_path):
    msgs = []
    out = inputdata.write_input_data(small_root, "test", [64, 28], tmp_path / "in" / "test", allow_synthetic=True,
                                     progress=msgs.append, chunk_bytes=50_003)  # windows cut rows in odd places
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([inputdata.MANIFEST] + [f"{f}_{s}.npy" for f in registry.flags() for s in (28, 64)])
    manifest = json.loads((out / inputdata.MANIFEST).read_text())
    assert manifest["split"] == "test" and manifest["sizes"] == [28, 64] and manifest["synthetic"] is True
    for ds in registry.datasets():
        for size in (28, 64):
            arr = inputdata.open_images(out, ds.flag, size)
            want = data.read_images(data.npz_path(small_root, ds.flag, size), "test")
            assert isinstance(arr, np.memmap) and not arr.flags.writeable
            assert arr.dtype == np.uint8 and arr.shape == want.shape == (33, *ds.image_shape(size))
            assert np.array_equal(np.asarray(arr), want)
            entry = manifest["files"][f"{ds.flag}_{size}.npy"]
            assert entry["n"] == 33 and entry["shape"] == list(want.shape)
            assert entry["sha256"] == inputdata.file_sha256(out / f"{ds.flag}_{size}.npy")
    assert inputdata.verify_input_data(out)["bloodmnist_64.npy"] == 33
    assert not any("labels" in p.name for p in out.iterdir())
    assert [p.name for p in out.parent.iterdir()] == ["test"]  # no temp folders left behind
    assert any("writing" in m for m in msgs)


def test_synthetic_refused_without_flag_and_nothing_written(small_root, tmp_path):
    with pytest.raises(ReferenceDataError) as exc:
        inputdata.write_input_data(small_root, "val", [28], tmp_path / "val")
    assert len(exc.value.problems) == 12
    assert "MD5" in exc.value.summary and "--allow-synthetic" in exc.value.summary
    assert list(tmp_path.iterdir()) == []


def test_missing_files_all_listed(small_root, tmp_path):
    with pytest.raises(ReferenceDataError) as exc:
        inputdata.write_input_data(small_root, "val", [28, 128], tmp_path / "val", allow_synthetic=True)
    assert len(exc.value.problems) == 12
    assert "pathmnist_128.npz" in str(exc.value.problems[0])
    assert not (tmp_path / "val").exists()


def test_bad_arguments(small_root, tmp_path):
    with pytest.raises(ReferenceDataError, match="split"):
        inputdata.write_input_data(small_root, "holdout", [28], tmp_path / "x", allow_synthetic=True)
    with pytest.raises(ReferenceDataError, match="sizes"):
        inputdata.write_input_data(small_root, "val", [32], tmp_path / "x", allow_synthetic=True)


def test_replaces_own_folder_but_not_foreign_one(small_root, tmp_path):
    out = tmp_path / "val"
    inputdata.write_input_data(small_root, "val", [28], out, allow_synthetic=True, flags=["breastmnist"])
    inputdata.write_input_data(small_root, "val", [64], out, allow_synthetic=True, flags=["breastmnist"])
    assert sorted(p.name for p in out.iterdir()) == ["breastmnist_64.npy", "manifest.json"]
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep")
    with pytest.raises(ReferenceDataError, match="refusing"):
        inputdata.write_input_data(small_root, "val", [28], foreign, allow_synthetic=True)
    assert (foreign / "precious.txt").read_text() == "keep"


def test_truncated_member_is_refused(tmp_path):
    ds = registry.get("breastmnist")
    lab = {s: np.zeros((4, 1), np.uint8) for s in registry.SPLITS}
    # the header claims 4 images but only 3 are written
    imgs = {s: iter([np.zeros((3 if s == "test" else 4, 28, 28), np.uint8)]) for s in registry.SPLITS}
    data.write_npz(tmp_path / "breastmnist.npz", ds, 28, lab, imgs)
    with pytest.raises(ReferenceDataError, match="truncated"):
        inputdata.write_input_data(tmp_path, "test", [28], tmp_path / "out", allow_synthetic=True,
                                   flags=["breastmnist"])
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_open_images_errors(small_root, tmp_path):
    out = inputdata.write_input_data(small_root, "test", [28, 64], tmp_path / "t", allow_synthetic=True,
                                     flags=["dermamnist"])
    with pytest.raises(SubmissionError) as exc:
        inputdata.open_images(out, "dermamnist", 224)
    assert "224" in exc.value.summary and "28, 64" in exc.value.summary
    with pytest.raises(ReferenceDataError, match="any size"):
        inputdata.open_images(out, "octmnist", 28)
    np.save(out / "octmnist_28.npy", np.zeros((3, 28, 28), np.float32))
    with pytest.raises(ReferenceDataError, match="float32"):
        inputdata.open_images(out, "octmnist", 28)
    (out / "dermamnist_64.npy").write_bytes(b"garbage")
    with pytest.raises(ReferenceDataError, match="cannot read"):
        inputdata.open_images(out, "dermamnist", 64)
    with pytest.raises(ReferenceDataError, match="sha256|missing"):
        inputdata.verify_input_data(out)


def test_hand_placed_folder_without_manifest(small_root, tmp_path):
    """An organizer may place plain .npy files in /app/data; open_images needs no manifest."""
    np.save(tmp_path / "breastmnist_28.npy", data.read_images(small_root / "breastmnist.npz", "test"))
    assert inputdata.open_images(tmp_path, "breastmnist", 28).shape == (33, 28, 28)


@needs_genuine
def test_genuine_files_md5_checked(tmp_path):
    out = inputdata.write_input_data(SHARED_DATA, "test", [28], tmp_path / "test",
                                     flags=["breastmnist", "pneumoniamnist", "retinamnist"])
    manifest = json.loads((out / inputdata.MANIFEST).read_text())
    assert manifest["synthetic"] is False
    for flag in ("breastmnist", "pneumoniamnist", "retinamnist"):
        ds = registry.get(flag)
        arr = inputdata.open_images(out, flag, 28)
        assert arr.shape[0] == ds.n_samples["test"]
        assert np.array_equal(np.asarray(arr), data.read_images(SHARED_DATA / ds.file_name(28), "test"))
        assert manifest["files"][f"{flag}_28.npy"]["source"]["genuine"] is True
    assert not os.path.exists(out / "breastmnist.npy")


def test_cli_input_data_and_verify(small_root, tmp_path, capsys):
    from big import cli

    out = tmp_path / "data" / "test"
    assert cli.main(["input-data", "--data-root", str(small_root), "--split", "test", "--sizes", "28",
                     "--out", str(out), "--allow-synthetic"]) == 0
    assert "(SYNTHETIC)" in capsys.readouterr().out
    assert cli.main(["input-data", "--verify", "--out", str(out)]) == 0
    assert "12 image file(s)" in capsys.readouterr().out
    with open(out / "bloodmnist_28.npy", "r+b") as fh:  # flip one image byte
        fh.seek(-1, 2)
        last = fh.read(1)
        fh.seek(-1, 2)
        fh.write(bytes([last[0] ^ 1]))
    assert cli.main(["input-data", "--verify", "--out", str(out)]) == 2
    assert "bloodmnist_28.npy" in capsys.readouterr().err
    assert cli.main(["input-data", "--data-root", str(small_root), "--split", "test", "--out", str(tmp_path / "x")]) == 2
    assert "--allow-synthetic" in capsys.readouterr().err
    assert cli.main(["input-data", "--out", str(tmp_path / "y")]) == 1
    assert "--data-root" in capsys.readouterr().err
