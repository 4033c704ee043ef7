"""The result format: round trip, what is accepted, and one test per participant-facing problem."""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from big import registry
from big.errors import SubmissionError
from big.submission import csv_name, format_prediction_csv, read_submission, write_submission

N = 12  # rows per dataset in these tests
EXPECTED = {f: N for f in registry.flags()}


def preds(seed=0, n=N):
    rng = np.random.default_rng(seed)
    return {d.flag: rng.random((n, d.n_labels)) for d in registry.datasets()}


def files_for(p, size=28):
    return {csv_name(f, size): format_prediction_csv(a) for f, a in p.items()}


def make_zip(path: Path, files: dict, *, infos=None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for info, data in infos or []:
            zf.writestr(info, data)
    return path


def problems(path, **kw) -> str:
    with pytest.raises(SubmissionError) as exc:
        read_submission(path, split="test", expected_n=EXPECTED, **kw)
    return "\n".join(exc.value.report())


def test_round_trip_is_exact(tmp_path):
    p = preds()
    p["pathmnist"][0] = [1 / 3, 1e-300, 0.1 + 0.2, 1.0, 0.0, 5e-324, 0.999999999999, 2 ** -30, 0.5]
    sub = read_submission(write_submission(tmp_path / "s.zip", p, 64), split="test", expected_n=EXPECTED)
    assert sub.size == 64
    for f in p:
        assert np.array_equal(sub.predictions[f], p[f])


def test_folder_zip_and_wrapping_folder_are_accepted(tmp_path):
    p = preds()
    write_submission(tmp_path / "folder", p, 28)
    assert read_submission(tmp_path / "folder", split="test", expected_n=EXPECTED).size == 28
    wrapped = {f"mysub/{k}": v for k, v in files_for(p).items()}
    wrapped["mysub/README.txt"] = b"notes"
    wrapped["__MACOSX/mysub/._x"] = b""
    logs = []
    sub = read_submission(make_zip(tmp_path / "w.zip", wrapped), split="test", expected_n=EXPECTED, log=logs.append)
    assert sub.ignored == ["mysub/README.txt"] and "README.txt" in logs[0]


def test_any_row_order_bom_crlf_and_float_spellings(tmp_path):
    p = preds()
    files = files_for(p)
    lines = files["bloodmnist_28.csv"].decode().splitlines()
    body = lines[1:][::-1]
    files["bloodmnist_28.csv"] = ("\ufeff" + "\r\n".join([lines[0]] + body) + "\r\n").encode()
    c = registry.get("breastmnist").n_labels
    rows = ["id," + ",".join(map(str, range(c)))] + [f"{i}, 1e-1 ,+.5" for i in range(N)]
    files["breastmnist_28.csv"] = "\n".join(rows).encode()
    sub = read_submission(make_zip(tmp_path / "s.zip", files), split="test", expected_n=EXPECTED)
    assert np.array_equal(sub.predictions["bloodmnist"], p["bloodmnist"])
    assert np.allclose(sub.predictions["breastmnist"], [[0.1, 0.5]] * N)


def replace(tmp_path, name, text):
    files = files_for(preds())
    files[name] = text if isinstance(text, bytes) else text.encode()
    return make_zip(tmp_path / "s.zip", files)


def body(flag, rows, c=None):
    c = c or registry.get(flag).n_labels
    return "id," + ",".join(str(i) for i in range(c)) + "\n" + "\n".join(rows) + "\n"


def good_rows(flag, n=N):
    c = registry.get(flag).n_labels
    return [f"{i}," + ",".join(["0.5"] * c) for i in range(n)]


def test_missing_and_misnamed_files(tmp_path):
    files = files_for(preds())
    files.pop("organsmnist_28.csv")
    files["pathmnst_28.csv"] = files.pop("pathmnist_28.csv")
    msg = problems(make_zip(tmp_path / "s.zip", files))
    assert "missing prediction file(s): pathmnist_28.csv, organsmnist_28.csv" in msg
    assert "unknown dataset 'pathmnst'" in msg


def test_mixed_sizes_and_disallowed_size(tmp_path):
    files = files_for(preds())
    files["chestmnist_64.csv"] = files.pop("chestmnist_28.csv")
    msg = problems(make_zip(tmp_path / "s.zip", files))
    assert "more than one size" in msg and "size 64: chestmnist" in msg
    ok = make_zip(tmp_path / "t.zip", files_for(preds(), 128))
    assert "accepts resolution(s) 28, 64; the submission is for 128" in problems(ok, resolutions=(28, 64))
    assert "not a MedMNIST+ size" in problems(replace(tmp_path, "dermamnist_32.csv", "x"))


def test_wrong_header_and_column_count(tmp_path):
    msg = problems(replace(tmp_path, "octmnist_28.csv", body("octmnist", good_rows("octmnist"), c=3)))
    assert "octmnist_28.csv, line 1: wrong header: expected 'id,0,1,2,3'" in msg and "found 4" in msg
    pandas_default = "," + body("octmnist", good_rows("octmnist"))[3:]
    assert "rename_axis('id')" in problems(replace(tmp_path, "octmnist_28.csv", pandas_default))
    rows = good_rows("octmnist")
    rows[3] += ",0.5"
    msg = problems(replace(tmp_path, "octmnist_28.csv", body("octmnist", rows)))
    assert "line 5: expected 5 values (id and 4 scores), found 6" in msg


def test_non_numeric_nan_inf_and_out_of_range(tmp_path):
    rows = good_rows("retinamnist")
    rows[0] = "0,abc,0.1,0.1,0.1,0.1"
    msg = problems(replace(tmp_path, "retinamnist_28.csv", body("retinamnist", rows)))
    assert "retinamnist_28.csv, line 2, column 0: expected a number in [0, 1], found 'abc'" in msg
    rows[0] = "0,nan,inf,-inf,1.5,-0.1"
    msg = problems(replace(tmp_path, "retinamnist_28.csv", body("retinamnist", rows)))
    for col, found in [(0, "nan"), (1, "inf"), (2, "-inf")]:
        assert f"line 2, column {col}: expected a number in [0, 1], found '{found}' (NaN and infinity" in msg
    assert "column 3: expected a number in [0, 1], found '1.5' (submit probabilities" in msg
    assert "column 4: expected a number in [0, 1], found '-0.1'" in msg


def test_ids_duplicate_missing_out_of_range_and_non_integer(tmp_path):
    rows = good_rows("breastmnist")
    rows[1] = "0,0.5,0.5"  # duplicate of id 0, id 1 missing
    rows[2] = "99,0.5,0.5"  # out of range, id 2 missing
    msg = problems(replace(tmp_path, "breastmnist_28.csv", body("breastmnist", rows)))
    assert "id 0 appears 2 times (lines 2, 3)" in msg
    assert f"line 4, column id: id 99 is out of range; ids run from 0 to {N - 1}" in msg
    assert "2 id(s) have no row: 1, 2" in msg
    rows = good_rows("breastmnist")
    rows[4] = "four,0.5,0.5"
    assert "line 6, column id: expected an integer id, found 'four'" in problems(
        replace(tmp_path, "breastmnist_28.csv", body("breastmnist", rows)))


def test_row_count(tmp_path):
    msg = problems(replace(tmp_path, "bloodmnist_28.csv", body("bloodmnist", good_rows("bloodmnist", N - 2))))
    assert f"expected {N} rows (one per sample of the split), found {N - 2}" in msg
    assert "header but no rows" in problems(replace(tmp_path, "bloodmnist_28.csv", body("bloodmnist", [])))


def test_empty_file_and_non_utf8(tmp_path):
    assert "bloodmnist_28.csv: the file is empty" in problems(replace(tmp_path, "bloodmnist_28.csv", b""))
    latin = body("bloodmnist", good_rows("bloodmnist")).encode() + "# é".encode("latin-1")
    assert "not UTF-8 text (byte 0xe9" in problems(replace(tmp_path, "bloodmnist_28.csv", latin))


def test_problems_are_capped_per_kind(tmp_path):
    rows = [f"{i},x,x" for i in range(N)]
    msg = problems(replace(tmp_path, "breastmnist_28.csv", body("breastmnist", rows)))
    assert msg.count("found 'x'") == 10 and "and 14 more number problems" in msg


def test_nested_folders_and_second_copy(tmp_path):
    files = files_for(preds())
    files["a/b/pathmnist_28.csv"] = files.pop("pathmnist_28.csv")
    assert "nested folder: 'a/b/pathmnist_28.csv'" in problems(make_zip(tmp_path / "n.zip", files))
    files = {f"sub/{k}": v for k, v in files_for(preds()).items()}
    files["sub/deeper/chestmnist_28.csv"] = b"x"
    assert "nested folder" in problems(make_zip(tmp_path / "m.zip", files))
    infos = [(zipfile.ZipInfo("pathmnist_28.csv"), files_for(preds())["pathmnist_28.csv"])]
    with pytest.warns(UserWarning):  # zipfile warns about the duplicate name
        dup = make_zip(tmp_path / "d.zip", files_for(preds()), infos=infos)
    assert "pathmnist_28.csv appears 2 times" in problems(dup)


def test_zip_slip_and_symlinks(tmp_path):
    infos = [(zipfile.ZipInfo("../../evil.csv"), b"x"), (zipfile.ZipInfo("/abs/pathmnist_28.csv"), b"x")]
    msg = problems(make_zip(tmp_path / "s.zip", files_for(preds()), infos=infos))
    assert "'../../evil.csv' points outside the archive" in msg and "'/abs/pathmnist_28.csv' points outside" in msg
    folder = write_submission(tmp_path / "f", preds(), 28)
    target = folder / "pathmnist_28.csv"
    os.replace(target, tmp_path / "elsewhere.csv")
    os.symlink(tmp_path / "elsewhere.csv", target)
    assert "pathmnist_28.csv: symbolic links are not accepted" in problems(folder)


def test_oversized_files_in_zip_and_folder(tmp_path):
    big = body("pathmnist", good_rows("pathmnist")) + "#" * 200_000
    assert "at most" in problems(replace(tmp_path, "pathmnist_28.csv", big))
    folder = write_submission(tmp_path / "f", preds(), 28)
    (folder / "pathmnist_28.csv").write_text(big)
    assert "pathmnist_28.csv: the file is 2" in problems(folder)


def test_zip_bomb_is_not_decompressed(tmp_path):
    info = zipfile.ZipInfo("tissuemnist_28.csv")
    files = files_for(preds())
    files.pop("tissuemnist_28.csv")
    info.compress_type = zipfile.ZIP_DEFLATED
    path = make_zip(tmp_path / "b.zip", files, infos=[(info, b"0" * 50_000_000)])
    assert path.stat().st_size < 200_000  # 50 MB of zeros compress to ~50 KB
    assert "tissuemnist_28.csv: the file is 50,000,000 bytes; at most" in problems(path)


def test_metadata_in_zip_is_refused_like_codabench(tmp_path):
    files = files_for(preds())
    files["metadata"] = b"description: my model\n"
    msg = problems(make_zip(tmp_path / "s.zip", files))
    assert "holds 'metadata' at its root" in msg and "CodaBench treats such a zip as a program" in msg


def test_empty_res_explains_the_metadata_trap(tmp_path):
    res = tmp_path / "res"
    res.mkdir()
    (res / "metadata").write_text("exitCode: 0\nelapsedTime: 1\n")
    msg = problems(res)
    assert "no prediction files arrived" in msg and "'metadata.yaml'" in msg
    assert "holds neither model.py (a code submission) nor" in problems(make_zip(tmp_path / "e.zip", {"notes.txt": b"x"}))


def test_not_a_zip(tmp_path):
    p = tmp_path / "sub.zip"
    p.write_text("hello")
    assert "not a zip file" in problems(p)


def test_ingestion_failure_becomes_the_reason(tmp_path):
    res = write_submission(tmp_path / "res", preds(), 28)
    (res / "ingestion_status.json").write_text(json.dumps(
        {"track": "code", "status": "failed", "dataset": "dermamnist", "batch": 3,
         "message": "predict returned shape (64, 6), expected (64, 7)"}))
    with pytest.raises(SubmissionError) as exc:
        read_submission(res, split="test", expected_n=EXPECTED)
    assert "failed during ingestion (failed; dataset dermamnist, batch 3): predict returned shape" in exc.value.report()[0]
    assert exc.value.summary.startswith("code submission failed:")
    (res / "ingestion_status.json").write_text(json.dumps({"track": "code", "status": "ok"}))
    assert read_submission(res, split="test", expected_n=EXPECTED).size == 28


def test_corrupt_or_unsupported_members_are_reported(tmp_path):
    path = make_zip(tmp_path / "s.zip", files_for(preds()))
    raw = bytearray(path.read_bytes())
    name = b"pathmnist_28.csv"
    at = raw.index(name) + len(name)  # first local header's data follows its name (no extra field)
    raw[at + 20:at + 40] = b"\xff" * 20  # corrupt the deflate stream
    path.write_bytes(bytes(raw))
    msg = problems(path)
    assert "pathmnist_28.csv: the file cannot be read" in msg
    enc = make_zip(tmp_path / "e.zip", files_for(preds()))
    raw = bytearray(enc.read_bytes())
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):  # set the 'encrypted' flag bit in every header
        i = raw.find(sig)
        while i >= 0:
            off = i + (6 if sig == b"PK\x03\x04" else 8)
            raw[off] |= 1
            i = raw.find(sig, i + 4)
    enc.write_bytes(bytes(raw))
    assert "cannot be read" in problems(enc) and "no password" in problems(enc)


def test_wrong_split_is_named(tmp_path):
    n_val = registry.get("breastmnist").n_samples["val"]
    n_test = registry.get("breastmnist").n_samples["test"]
    p = {d.flag: np.full((d.n_samples["val"], d.n_labels), 0.5) for d in registry.datasets()}
    sub = write_submission(tmp_path / "val.zip", p, 28)
    with pytest.raises(SubmissionError) as exc:
        read_submission(sub, split="test")
    msg = "\n".join(exc.value.report())
    assert f"expected {n_test} rows (one per sample of the split), found {n_val} — {n_val} is the size of the val " \
           "split: predictions for the wrong split?" in msg
