"""build-reference: MD5 checks, the synthetic stamp, label identity across sizes, download."""
from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest

from big import cli, data, registry
from big.errors import ReferenceDataError
from big.reference import Reference, build_reference, download, labels_sha256
from conftest import SHARED_DATA, needs_genuine


def test_synthetic_files_need_allow_synthetic(synth_root, tmp_path, capsys):
    code = cli.main(["build-reference", "--data-root", str(synth_root), "--split", "val", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "r").exists()
    assert "pathmnist.npz: MD5 " in err and "differs from medmnist INFO a8b06965200029087d5bd730944a56c1" in err
    code = cli.main(["build-reference", "--data-root", str(synth_root), "--split", "val", "--out", str(tmp_path / "r"),
                     "--allow-synthetic"])
    assert code == 0
    ref = Reference(tmp_path / "r")
    assert ref.synthetic and ref.split == "val" and ref.expected_n == {f: 60 for f in registry.flags()}
    man = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert man["datasets"]["chestmnist"]["source_files"]["64"]["file"] == "chestmnist_64.npz"
    assert man["medmnist_version"] == registry.medmnist_version()
    assert not list((tmp_path / "r").glob("*images*"))
    lab = ref.labels("chestmnist")
    assert lab.shape == (60, 14) and man["datasets"]["chestmnist"]["labels_sha256"] == labels_sha256(lab)


def test_labels_must_agree_across_sizes(tmp_path):
    data.synthesize(tmp_path, sizes=(28,), n_per_split=30, seed=1)
    data.synthesize(tmp_path / "other", sizes=(64,), n_per_split=30, seed=2, flags=["dermamnist"])
    shutil.move(tmp_path / "other" / "dermamnist_64.npz", tmp_path / "dermamnist_64.npz")
    with pytest.raises(ReferenceDataError) as exc:
        build_reference(tmp_path, "test", tmp_path / "ref", allow_synthetic=True)
    assert "test labels differ between dermamnist.npz and dermamnist_64.npz" in str(exc.value.report())
    assert not (tmp_path / "ref").exists()


def test_missing_dataset_and_tampered_reference(tmp_path):
    data.synthesize(tmp_path, sizes=(28,), n_per_split=30, seed=1, flags=list(registry.flags())[:11])
    with pytest.raises(ReferenceDataError, match="no file for organsmnist"):
        build_reference(tmp_path, "test", tmp_path / "ref", allow_synthetic=True)
    data.synthesize(tmp_path, sizes=(28,), n_per_split=30, seed=1, flags=["organsmnist"])
    out = build_reference(tmp_path, "test", tmp_path / "ref", allow_synthetic=True)
    np.save(out / "octmnist.npy", np.zeros((30, 1), dtype=np.uint8))
    with pytest.raises(ReferenceDataError, match="do not match the sha256"):
        Reference(out).labels("octmnist")


def test_download_checks_md5(tmp_path):
    ds = registry.get("breastmnist")

    class Resp(io.BytesIO):
        headers = {"Content-Length": "5"}

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    with pytest.raises(ReferenceDataError, match="downloaded file has MD5"):
        download(tmp_path, "breastmnist", 28, progress=None, opener=lambda url: Resp(b"wrong"))
    assert not list(tmp_path.iterdir())  # nothing half-written
    if (SHARED_DATA / ds.file_name(28)).is_file():
        payload = (SHARED_DATA / ds.file_name(28)).read_bytes()
        seen = []
        got = download(tmp_path, "breastmnist", 28, progress=seen.append,
                       opener=lambda url: (seen.append(url), Resp(payload))[1])
        assert data.md5sum(got) == ds.md5(28) and ds.url(28) in seen


@needs_genuine
def test_genuine_files_are_accepted_without_the_synthetic_stamp(mixed_root, tmp_path):
    out = build_reference(mixed_root, "test", tmp_path / "ref", allow_synthetic=True)
    man = json.loads((out / "manifest.json").read_text())
    assert man["synthetic"] is True  # the other 9 datasets are synthetic here
    assert man["datasets"]["breastmnist"]["source_files"]["28"]["genuine"] is True
    assert man["datasets"]["breastmnist"]["n"] == 156
    lab = Reference(out).labels("pneumoniamnist")
    assert np.bincount(lab[:, 0]).tolist() == [234, 390]


def test_missing_data_root_is_one_message(tmp_path, capsys):
    assert cli.main(["build-reference", "--data-root", str(tmp_path / "nope"), "--split", "test",
                     "--out", str(tmp_path / "r")]) == 2
    assert "is not a folder" in capsys.readouterr().err
