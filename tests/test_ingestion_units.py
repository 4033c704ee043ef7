"""Building blocks of the ingestion program: classification, cleanup, batching, output checks, CSV rows."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from big import ingestion, registry
from big.errors import ReferenceDataError, SubmissionError
from big.submission import format_prediction_csv, parse_prediction_csv


def test_classify(tmp_path):
    assert ingestion.classify_submission(tmp_path / "nope").kind == "invalid"
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "model.py").write_text("")
    assert ingestion.classify_submission(tmp_path / "a").model_path == tmp_path / "a" / "model.py"
    wrapped = tmp_path / "w"
    (wrapped / "inner").mkdir(parents=True)
    (wrapped / "inner" / "model.py").write_text("")
    (wrapped / "__MACOSX").mkdir()  # macOS zips add this; it does not count as a second folder
    assert ingestion.classify_submission(wrapped).model_path == wrapped / "inner" / "model.py"
    res = tmp_path / "r"
    (res / "preds").mkdir(parents=True)
    (res / "preds" / "pathmnist_28.csv").write_text("id,0\n")
    assert ingestion.classify_submission(res).kind == "result"
    both = tmp_path / "b"
    both.mkdir()
    (both / "model.py").write_text("")
    (both / "pathmnist_28.csv").write_text("")
    assert ingestion.classify_submission(both).kind == "code"
    empty = tmp_path / "e"
    empty.mkdir()
    c = ingestion.classify_submission(empty)
    assert c.kind == "invalid" and "holds: nothing" in c.message
    (both / "metadata.yaml").write_text("command: x\n")
    c = ingestion.classify_submission(both)
    assert c.kind == "invalid" and "'metadata.yaml'" in c.message


def test_remove_copied_submission_only_touches_copied_paths(tmp_path):
    prog, out = tmp_path / "prog", tmp_path / "out"
    (prog / "sub").mkdir(parents=True)
    (prog / "model.py").write_text("x")
    (prog / "sub" / "w.bin").write_bytes(b"w")
    (out / "sub").mkdir(parents=True)
    (out / "model.py").write_text("x")
    (out / "sub" / "w.bin").write_bytes(b"w")
    (out / "other.txt").write_text("not from the submission")
    removed = ingestion.remove_copied_submission(prog, out)
    assert sorted(removed) == ["model.py", "sub/w.bin"]
    assert sorted(p.name for p in out.iterdir()) == ["other.txt"]
    assert (prog / "model.py").is_file() and (prog / "sub" / "w.bin").is_file()
    assert ingestion.remove_copied_submission(prog, prog) == []  # same folder: never delete the program


@pytest.mark.parametrize("n,batch,window", [(0, 4, 1 << 20), (1, 4, 1 << 20), (37, 5, 300), (37, 5, 1 << 20),
                                            (40, 8, 10)])
def test_iter_batches_covers_every_row_once(tmp_path, n, batch, window):
    arr = np.random.default_rng(n).integers(0, 256, size=(n, 7, 7, 3), dtype=np.uint8)
    np.save(tmp_path / "x.npy", arr)
    got = list(ingestion.iter_batches(tmp_path / "x.npy", batch, window_bytes=window))
    assert [s for s, _ in got] == list(range(0, n, batch))
    assert all(b.flags.c_contiguous and b.flags.writeable and not isinstance(b, np.memmap) for _, b in got)
    joined = np.concatenate([b for _, b in got]) if got else np.zeros((0, 7, 7, 3), np.uint8)
    assert np.array_equal(joined, arr)


def test_iter_batches_memory_does_not_grow_with_file(tmp_path):
    """Peak RSS of a full pass over a 400 MB file stays near one window (not the file size)."""
    n, size = 400, 1000 * 1000
    path = tmp_path / "big.npy"
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, 1000, 1000))
    for a in range(0, n, 50):
        mm[a:a + 50] = a % 251
    del mm
    code = (f"import resource, numpy as np\nfrom big.ingestion import iter_batches\n"
            f"base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            f"s = 0\nfor _, b in iter_batches({str(path)!r}, 8, window_bytes=32 << 20):\n    s += int(b[:, 0, 0].sum())\n"
            f"print(s, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    total, grew_kb = map(int, res.stdout.split())
    assert total == sum(((a // 50 * 50) % 251) for a in range(n))
    assert grew_kb * 1024 < 120e6, f"RSS grew by {grew_kb / 1024:.0f} MB for a {n * size / 1e6:.0f} MB file"


@pytest.mark.parametrize("out,needle", [
    (np.full((4, 9), 0.5), None),
    (np.full((4, 9), 1, dtype=np.int64), None),
    (np.full((4, 9), 0.5, dtype=np.float16), None),
    (np.full((4, 8), 0.5), "shape (4, 8), expected (4, 9)"),
    (np.full((9, 4), 0.5), "transposed"),
    (np.full((4, 9), 0.5).tolist(), "returned a list"),
    (np.full((4, 9), True), "dtype bool"),
    (np.full((4, 9), "0.5"), "dtype <U3"),
    (np.full((4, 9), 0.5, dtype=object), "dtype object"),
    (np.full((4, 9), np.inf), "non-finite"),
    (np.full((4, 9), -0.001), "outside [0, 1]"),
    (np.full((4, 9), 1.0000001), "outside [0, 1]"),
])
def test_check_output(out, needle):
    msg = ingestion.check_output(out, 4, 9, "pathmnist")
    assert (msg is None) if needle is None else (needle in msg), msg


def test_check_output_torch_hint():
    class FakeTensor:  # duck-typed like torch.Tensor
        def detach(self):
            return self

        def cpu(self):
            return self

    assert "tensor.detach().cpu().numpy()" in ingestion.check_output(FakeTensor(), 4, 2, "breastmnist")
    assert "binary" in ingestion.check_output(np.zeros(4), 4, 2, "breastmnist")


@pytest.mark.parametrize("chunks", [[5], [1, 1, 3], [2, 3], [0, 5]])
def test_csv_rows_identical_to_result_format(chunks):
    rng = np.random.default_rng(1)
    scores = rng.random((5, 3))
    scores[0, 0], scores[1, 1] = 1e-300, 1.0 - 1e-16
    text, start = ingestion.csv_header(3), 0
    for k in chunks:
        text += ingestion.csv_rows(scores[start:start + k], start)
        start += k
    assert text.encode() == format_prediction_csv(scores)
    back = parse_prediction_csv(text.encode(), name="x.csv", n=5, n_cols=3)
    assert np.array_equal(back, scores)


def test_locate_images_messages(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    for flag in registry.flags():
        (d / f"{flag}_28.npy").write_bytes(b"")
        (d / f"{flag}_128.npy").write_bytes(b"")
    found, problems = ingestion.locate_images([d], 64)
    assert not found and "sizes present are 28, 128" in problems[0].message
    (d / "pathmnist_28.npy").unlink()
    found, problems = ingestion.locate_images([d], 28)
    assert "pathmnist" in problems[0].message and len(found) == 11
    extra = tmp_path / "data"
    extra.mkdir()
    (extra / "pathmnist_28.npy").write_bytes(b"")
    found, problems = ingestion.locate_images([d, extra], 28)
    assert not problems and found["pathmnist"] == extra / "pathmnist_28.npy"


def test_image_dirs_use_manifest_split(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "manifest.json").write_text('{"split": "val"}')
    dirs = ingestion.image_dirs(tmp_path / "in", tmp_path / "data")
    assert dirs == [tmp_path / "in", tmp_path / "data" / "val", tmp_path / "data"]
    assert ingestion.image_dirs(tmp_path / "in", None) == [tmp_path / "in"]


def test_check_images_rejects_bad_files(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((3, 28, 28), np.float32))
    with pytest.raises(ReferenceDataError, match="float32"):
        ingestion.check_images(tmp_path / "a.npy", "breastmnist", 28)
    np.save(tmp_path / "b.npy", np.zeros((3, 28, 28), np.uint8))
    data = (tmp_path / "b.npy").read_bytes()
    (tmp_path / "b.npy").write_bytes(data[:-10])
    with pytest.raises(ReferenceDataError, match="truncated"):
        ingestion.check_images(tmp_path / "b.npy", "breastmnist", 28)


def test_config_validation(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("time_budget_s: 100\nstop_margin_s: 200\n")
    with pytest.raises(ReferenceDataError, match="below time_budget_s"):
        ingestion.load_config(cfg)
    cfg.write_text("batch_size: 0\n")
    with pytest.raises(ReferenceDataError, match="batch_size"):
        ingestion.load_config(cfg)
    cfg.write_text("[1, 2]\n")
    with pytest.raises(ReferenceDataError, match="mapping"):
        ingestion.load_config(cfg)
    assert ingestion.load_config(tmp_path / "absent.yaml") == ingestion.IngestionConfig()


def test_predict_local_checks_like_ingestion(tmp_path):
    from big import data

    data.synthesize(tmp_path, sizes=(28,), n_per_split="train=2,val=2,test=9", flags=["breastmnist"], seed=1)
    preds = ingestion.predict_local(lambda f, x: np.full((len(x), 2), 0.5), 28, tmp_path, "test", batch_size=4,
                                    flags=["breastmnist"])
    assert preds["breastmnist"].shape == (9, 2)
    with pytest.raises(SubmissionError, match="outside"):
        ingestion.predict_local(lambda f, x: np.full((len(x), 2), 5.0), 28, tmp_path, "test", flags=["breastmnist"])
    with pytest.raises(SubmissionError, match="predict raised KeyError"):
        ingestion.predict_local(lambda f, x: {}[f], 28, tmp_path, "test", flags=["breastmnist"])
    with pytest.raises(SubmissionError, match="python -m medmnist download"):
        ingestion.predict_local(lambda f, x: x, 64, tmp_path, "test", flags=["breastmnist"])
