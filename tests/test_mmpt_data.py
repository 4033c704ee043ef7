"""The memory-mapped .npy cache, the row reader, the prefetching loader and on-device preprocessing."""
import os
import zipfile

import numpy as np
import pytest

from big import data, registry

from conftest import SHARED_DATA, needs_genuine


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache_src")
    data.synthesize(root, sizes=(28, 64), n_per_split="train=70,val=30,test=30", seed=2,
                    flags=["pathmnist", "chestmnist", "breastmnist"])
    return root


@pytest.mark.parametrize("name", ["pathmnist.npz", "chestmnist_64.npz", "breastmnist.npz"])
def test_cache_equals_npz_members(small_root, tmp_path, name):
    npz = small_root / name
    for key in ("train_images", "train_labels", "val_images", "test_labels"):
        # tiny chunks: many windows, rows never split wrongly
        dest = data.convert_member(npz, key, tmp_path / f"{key}.npy", chunk_bytes=1000)
        np.testing.assert_array_equal(np.load(dest, mmap_mode="r"), data.read_array(npz, key))
    assert not list(tmp_path.glob("*.partial"))


def test_cache_is_keyed_by_source_md5(small_root, tmp_path):
    npz = tmp_path / "breastmnist.npz"
    npz.write_bytes((small_root / "breastmnist.npz").read_bytes())
    cache = tmp_path / "cache"
    p1 = data.cached_member(npz, "val_images", cache)
    assert data.md5sum(npz) in p1.parent.name
    assert data.cached_member(npz, "val_images", cache) == p1  # second open: no conversion
    data.synthesize(tmp_path / "other", sizes=(28,), n_per_split=30, seed=99, flags=["breastmnist"])
    os.replace(tmp_path / "other" / "breastmnist.npz", npz)  # a different file under the same name
    p2 = data.cached_member(npz, "val_images", cache)
    assert p2 != p1
    np.testing.assert_array_equal(np.load(p2), data.read_images(npz, "val"))


def test_truncated_member_leaves_nothing(small_root, tmp_path):
    src = small_root / "pathmnist.npz"
    bad = tmp_path / "pathmnist.npz"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(bad, "w") as zout:
        for n in zin.namelist():
            b = zin.read(n)
            zout.writestr(n, b[: len(b) // 2] if n == "train_images.npy" else b)
    with pytest.raises(ValueError, match="header promises"):
        data.convert_member(bad, "train_images", tmp_path / "c" / "x.npy")
    assert not list((tmp_path / "c").iterdir())
    with pytest.raises(KeyError, match="no member 'foo_images'"):
        data.convert_member(src, "foo_images", tmp_path / "c" / "y.npy")


def test_row_reader(small_root, tmp_path):
    p = data.cached_member(small_root / "chestmnist_64.npz", "train_images", tmp_path)
    ref = data.read_images(small_root / "chestmnist_64.npz", "train")
    r = data.RowReader(p)
    assert len(r) == 70 and r.row_shape == (64, 64)
    for idx in ([3, 4, 5, 6], [69, 0, 1, 30], [], list(range(70))):
        np.testing.assert_array_equal(r.take(idx), ref[np.array(idx, dtype=int)])
    with pytest.raises(IndexError):
        r.take([70])


@needs_genuine
def test_cache_of_genuine_files(tmp_path):
    for name in ("breastmnist_64.npz", "retinamnist.npz"):
        for key in ("train_images", "test_labels"):
            p = data.cached_member(SHARED_DATA / name, key, tmp_path)
            np.testing.assert_array_equal(np.load(p, mmap_mode="r"), data.read_array(SHARED_DATA / name, key))


# ---------------------------------------------------------------------------------------------
# torch parts
# ---------------------------------------------------------------------------------------------

def test_prefetcher_yields_the_plan_and_raises(small_root, tmp_path):
    pytest.importorskip("torch")
    from big.mmpt import loader, sampler

    splits = {f: loader.open_split(small_root, f, 28, "train", tmp_path) for f in ("pathmnist", "breastmnist")}
    plan = sampler.epoch_plan({f: len(s) for f, s in splits.items()}, 16, seed=3, epoch=0)
    for depth in (0, 3):
        got = list(loader.Prefetcher(splits, plan, depth=depth))
        assert [g[0] for g in got] == [f for f, _ in plan]
        for (flag, rows, imgs, labs), (_, want_rows) in zip(got, plan):
            np.testing.assert_array_equal(imgs, data.read_images(small_root / f"{flag}.npz", "train")[want_rows])
            np.testing.assert_array_equal(labs, data.read_labels(small_root / f"{flag}.npz", "train")[want_rows])
    bad = plan + [("pathmnist", np.array([10_000]))]
    with pytest.raises(IndexError):
        list(loader.Prefetcher(splits, bad, depth=2))


def test_missing_file_message(tmp_path):
    pytest.importorskip("torch")
    from big.errors import UsageError
    from big.mmpt import loader

    with pytest.raises(UsageError, match="big synth"):
        loader.open_split(tmp_path, "dermamnist", 64, "train", tmp_path / "c")


@pytest.mark.parametrize("flag,size", [("pneumoniamnist", 28), ("pathmnist", 64), ("bloodmnist", 28)])
@pytest.mark.parametrize("model_name", ["resnet18", "vit_base_patch16_224"])
def test_preprocess_equals_the_thesis_transforms(flag, size, model_name):
    """Device-side preprocessing == as_rgb PIL convert('RGB'), ToTensor, Normalize(timm mean/std), Pad(fill=0)."""
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    transforms = pytest.importorskip("torchvision.transforms")
    from PIL import Image

    from big.mmpt.model import Preprocess, norm_stats

    cfg = timm.get_pretrained_cfg(model_name).to_dict()
    mean, std = tuple(cfg["mean"]), tuple(cfg["std"])
    assert (mean, std) == norm_stats(type("B", (), {"pretrained_cfg": cfg})())
    imgs = np.random.default_rng(1).integers(0, 256, size=(4, *registry.get(flag).image_shape(size)), dtype=np.uint8)
    pad = 224 - size
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std),
                             transforms.Pad((pad // 2, pad // 2, pad - pad // 2, pad - pad // 2), fill=0)])
    want = torch.stack([tf(Image.fromarray(im).convert("RGB")) for im in imgs])
    got = Preprocess(mean, std, 224)(torch.from_numpy(imgs))
    assert got.shape == (4, 3, 224, 224)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    native = Preprocess(mean, std, None)(torch.from_numpy(imgs))
    assert native.shape == (4, 3, size, size)
    # the buffer-reusing variant (training, prediction) gives the same, batch after batch
    ring = Preprocess(mean, std, 224, ring=2)
    other = torch.from_numpy(np.full_like(imgs, 255))
    for batch, ref in ((imgs, want), (other, None), (imgs, want), (imgs[:3], want[:3])):
        got = ring(torch.from_numpy(batch) if isinstance(batch, np.ndarray) else batch)
        if ref is not None:
            torch.testing.assert_close(got, ref, atol=1e-6, rtol=0)
    assert torch.equal(Preprocess(mean, std, None, ring=2)(torch.from_numpy(imgs)), native)


def test_corrupt_npz_and_unwritable_cache_messages(small_root, tmp_path):
    pytest.importorskip("torch")
    from big.errors import ReferenceDataError, UsageError
    from big.mmpt import loader

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "pathmnist.npz").write_bytes(b"not a zip file")
    with pytest.raises(ReferenceDataError, match="pathmnist.npz"):
        loader.open_split(bad, "pathmnist", 28, "train", tmp_path / "c")
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        if os.access(ro, os.W_OK):  # running as root: permissions are not enforced
            pytest.skip("permissions not enforced for this user")
        with pytest.raises(UsageError, match="--cache_dir"):
            loader.open_split(small_root, "pathmnist", 28, "train", ro / "cache")
    finally:
        os.chmod(ro, 0o700)
