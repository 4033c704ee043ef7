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
from big.fsutil import remove_tree

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
    notes = make_zip(tmp_path / "e.zip", {"notes.txt": b"x"})
    assert "holds neither model.py (a code submission) nor" in problems(notes)


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


# --- issue 10: every participant-controlled byte is untrusted ---------------------------------------

def error(path, **kw) -> SubmissionError:
    kw.setdefault("expected_n", EXPECTED)
    with pytest.raises(SubmissionError) as exc:
        read_submission(path, split="test", **kw)
    return exc.value


def test_code_zip_is_named_with_the_tools_that_check_it(tmp_path):
    exc = error(make_zip(tmp_path / "code.zip", {"model.py": b"class Model: pass\n", "weights.npz": b"x"}))
    msg = "\n".join(exc.report())
    assert "this is a code submission (model.py)" in msg and "holds no prediction files" not in msg
    assert "big result-zip" in msg and "big ingest" in msg
    assert getattr(exc, "kind", None) == "code"
    wrapped = error(make_zip(tmp_path / "w.zip", {"sub/model.py": b"", "sub/README.md": b""}))
    assert "code submission (sub/model.py)" in wrapped.report()[0]


def test_all_twelve_results_beside_model_py_are_a_result_and_model_py_is_listed(tmp_path):
    files = {f"preds/{k}": v for k, v in files_for(preds()).items()}
    files["preds/model.py"] = b"raise SystemExit('never run')\n"
    logs = []
    sub = read_submission(make_zip(tmp_path / "s.zip", files), split="test", expected_n=EXPECTED, log=logs.append)
    assert sub.ignored == ["preds/model.py"]
    assert any("preds/model.py is ignored: all twelve prediction files are present" in line for line in logs)


def test_model_py_beside_an_incomplete_set_makes_a_code_submission(tmp_path):
    files = files_for(preds())
    files.pop("organsmnist_28.csv")
    files["model.py"] = b""
    msg = "\n".join(error(make_zip(tmp_path / "s.zip", files)).report())
    assert "this is a code submission (model.py)" in msg and "11 prediction file(s), not all twelve" in msg
    res = tmp_path / "res"  # on the platform: model.py but neither predictions nor a status
    res.mkdir()
    (res / "model.py").write_text("")
    (res / "metadata").write_text("exitCode: 0\n")
    exc = error(res)
    assert "a code submission (model.py) arrived, but no predictions" in exc.report()[0] and exc.kind == "code"


@pytest.mark.parametrize("bad,found", [
    ("99999999999999999999", "id 99999999999999999999 is out of range"),  # beyond int64
    ("9223372036854775808", "id 9223372036854775808 is out of range"),  # 2**63
    ("18446744073709551616", "id 18446744073709551616 is out of range"),  # 2**64
    ("7" * 5000, "id 77777777777777777777... (5000 digits) is out of range"),  # int() refuses 5000 digits
    ("-1", "expected an integer id, found '-1'"),
    ("1e1", "expected an integer id, found '1e1'"),
    ("1.0", "expected an integer id, found '1.0'"),
    ("\u0661", "expected an integer id, found '\u0661' (only the ASCII digits 0-9"),
    ("", "expected an integer id, found '' (the id is empty)"),
])
def test_every_id_field_is_hostile(tmp_path, bad, found):
    rows = good_rows("breastmnist")
    rows[3] = f"{bad},0.5,0.5"
    msg = "\n".join(error(replace(tmp_path, "breastmnist_28.csv", body("breastmnist", rows))).report())
    assert f"breastmnist_28.csv, line 5, column id: {found}" in msg
    assert "Traceback" not in msg


@pytest.mark.parametrize("bad,found", [
    ("1e999", "found '1e999' (submit probabilities, not logits)"),  # overflows to infinity
    ("1" + "0" * 400, "found '1000000000000000000000000000000000000000...' (401 bytes) (submit"),
    ("-1e999", "found '-1e999' (submit probabilities, not logits)"),
    ("0_0.5", "found '0_0.5' (write numbers without '_' separators)"),
    ("\uff10.\uff15", "found '\uff10.\uff15' (only the ASCII digits 0-9"),
    ("\u0660.\u0665", "found '\u0660.\u0665' (only the ASCII digits 0-9"),
    ("0x1p-1", "found '0x1p-1' (write plain decimal numbers"),
    ("infinity", "found 'infinity' (NaN and infinity are not allowed)"),
    ('"0.5"', "found '\"0.5\"' (write numbers without quotes)"),
])
def test_every_value_field_is_hostile(tmp_path, bad, found):
    rows = good_rows("breastmnist")
    rows[3] = f"3,0.5,{bad}"
    msg = "\n".join(error(replace(tmp_path, "breastmnist_28.csv", body("breastmnist", rows))).report())
    assert f"breastmnist_28.csv, line 5, column 1: expected a number in [0, 1], {found}" in msg


def test_plain_decimal_spellings_with_spaces_are_accepted(tmp_path):
    rows = [f" {i} , +.5 ,5.0e-1 " for i in range(N)]
    sub = read_submission(replace(tmp_path, "breastmnist_28.csv", body("breastmnist", rows)), split="test",
                          expected_n=EXPECTED)
    assert np.array_equal(sub.predictions["breastmnist"], np.full((N, 2), 0.5))


def test_empty_cell_is_called_empty_probably_a_nan(tmp_path):
    rows = good_rows("breastmnist")
    rows[2] = "2,,0.5"
    msg = "\n".join(error(replace(tmp_path, "breastmnist_28.csv", body("breastmnist", rows))).report())
    assert "line 4, column 0: expected a number in [0, 1], but the cell is empty: probably a NaN" in msg
    assert "found ''" not in msg


def test_percentages_are_told_to_divide_by_100(tmp_path):
    rows = [f"{i},{30 + i},{70 - i}" for i in range(N)]
    msg = "\n".join(error(replace(tmp_path, "breastmnist_28.csv", body("breastmnist", rows))).report())
    assert "found '30' (the scores look like percentages (0-100): divide them by 100)" in msg
    for other in ([f"{i},{-3 + i},0.5" for i in range(N)], [f"{i},0.5,{150 - i}" for i in range(N)]):
        msg = "\n".join(error(replace(tmp_path, "breastmnist_28.csv", body("breastmnist", other))).report())
        assert "(submit probabilities, not logits)" in msg and "divide" not in msg


def pandas_frame():
    pd = pytest.importorskip("pandas")
    scores = np.random.default_rng(3).random((N, registry.get("octmnist").n_labels))
    return pd, pd.DataFrame(scores)


def test_pandas_index_header_hints_fix_the_file(tmp_path):
    """Following each hint (literally, on the same DataFrame) yields a valid file."""
    pd, df = pandas_frame()
    path = tmp_path / "octmnist_28.csv"
    df.to_csv(path)  # header ',0,1,2,3': the index has no name
    msg = "\n".join(error(replace(tmp_path, "octmnist_28.csv", path.read_bytes())).report())
    assert "df.to_csv(path, index_label='id')" in msg and "df.rename_axis('id').to_csv(path)" in msg
    for fixed in (lambda p: df.to_csv(p, index_label="id"), lambda p: df.rename_axis("id").to_csv(p)):
        fixed(path)
        read_submission(replace(tmp_path, "octmnist_28.csv", path.read_bytes()), split="test", expected_n=EXPECTED)
    with_id = df.copy()
    with_id.insert(0, "id", range(N))
    with_id.to_csv(path)  # header ',id,0,1,2,3': an id column, and the index as well
    msg = "\n".join(error(replace(tmp_path, "octmnist_28.csv", path.read_bytes())).report())
    assert "df.to_csv(path, index=False)" in msg and "row.names = FALSE" in msg and "rename_axis" not in msg
    with_id.to_csv(path, index=False)
    read_submission(replace(tmp_path, "octmnist_28.csv", path.read_bytes()), split="test", expected_n=EXPECTED)


def test_r_write_csv_header_gets_the_r_fix(tmp_path):
    c = registry.get("octmnist").n_labels
    r_default = '"",' + ",".join(f'"V{j + 1}"' for j in range(c)) + "\n" + "\n".join(
        f'"{i + 1}",' + ",".join(["0.25"] * c) for i in range(N)) + "\n"
    msg = "\n".join(error(replace(tmp_path, "octmnist_28.csv", r_default)).report())
    assert "write.csv(df, path, row.names = FALSE)" in msg and "named id holding 0..n-1" in msg
    r_fixed = '"id",' + ",".join(f'"{j}"' for j in range(c)) + "\n" + "\n".join(
        f"{i}," + ",".join(["0.25"] * c) for i in range(N)) + "\n"  # what that fix writes
    read_submission(replace(tmp_path, "octmnist_28.csv", r_fixed), split="test", expected_n=EXPECTED)


def test_other_separators_are_named(tmp_path):
    semi = body("breastmnist", good_rows("breastmnist")).replace(",", ";")
    msg = "\n".join(error(replace(tmp_path, "breastmnist_28.csv", semi)).report())
    assert "uses ';' between values; use commas" in msg
    cr = body("breastmnist", good_rows("breastmnist")).replace("\n", "\r")
    assert "bare CR" in "\n".join(error(replace(tmp_path, "breastmnist_28.csv", cr)).report())
    utf16 = body("breastmnist", good_rows("breastmnist")).encode("utf-16")
    assert "it is UTF-16" in "\n".join(error(replace(tmp_path, "breastmnist_28.csv", utf16)).report())


def windows_zip(path: Path, files: dict) -> Path:
    """A zip whose names use '\\' between folders, as Windows PowerShell 5's Compress-Archive writes them."""
    return make_zip(path, {name.replace("/", "\\"): data for name, data in files.items()})


def test_windows_backslash_zip_and_its_extracted_folder_are_read_the_same(tmp_path):
    p = preds()
    files = {f"my preds/{k}": v for k, v in files_for(p).items()}
    files["my preds/notes.txt"] = b"x"
    zpath = windows_zip(tmp_path / "win.zip", files)
    with zipfile.ZipFile(zpath) as zf:
        assert "my preds\\pathmnist_28.csv" in zf.namelist()
    logs = []
    sub = read_submission(zpath, split="test", expected_n=EXPECTED, log=logs.append)
    assert sub.ignored == ["my preds/notes.txt"] and any("'\\' between folder names" in line for line in logs)
    assert all(np.array_equal(sub.predictions[f], p[f]) for f in p)
    # CodaBench extracts with zipfile on Linux: one file per member, its name holding the backslash
    res = tmp_path / "res"
    with zipfile.ZipFile(zpath) as zf:
        zf.extractall(res)
    (res / "metadata").write_text("exitCode: 0\n")
    assert (res / "my preds\\pathmnist_28.csv").is_file()
    sub2 = read_submission(res, split="test", expected_n=EXPECTED)
    assert sub2.files == sub.files and all(np.array_equal(sub2.predictions[f], p[f]) for f in p)


def test_backslash_neighbours(tmp_path):
    files = {f"sub/{k}": v for k, v in files_for(preds()).items()}
    mixed = {**{k.replace("/", "\\"): v for k, v in list(files.items())[:6]}, **dict(list(files.items())[6:])}
    msg = "\n".join(error(make_zip(tmp_path / "m.zip", mixed)).report())
    assert "holds a backslash: the zip mixes '\\' and '/'" in msg and "tar -a -c -f" in msg
    code = error(windows_zip(tmp_path / "c.zip", {"sub/model.py": b"", "sub/weights/w.npz": b""}))
    assert "writes '\\' between folder names" in code.report()[0] and "tar -a -c -f" in code.report()[0]
    slip = error(windows_zip(tmp_path / "s.zip", {**files, "../../evil.csv": b"x"}))
    assert "points outside the archive" in "\n".join(slip.report())


def utf8_flagged_zip(path: Path, files: dict, bad_name: bytes, *, central_only: bool = False) -> Path:
    """A zip whose member ``'é.csv'`` is flagged UTF-8 but named ``bad_name`` (not UTF-8) in its headers."""
    make_zip(path, {**files, "\u00e9.csv": b"x"})
    raw = path.read_bytes()
    good = "\u00e9.csv".encode()
    assert len(bad_name) == len(good)
    if central_only:
        at = raw.rindex(good)
        raw = raw[:at] + bad_name + raw[at + len(good):]
    else:
        raw = raw.replace(good, bad_name)
    path.write_bytes(raw)
    return path


def test_utf8_flagged_member_name_that_is_not_utf8(tmp_path):
    path = utf8_flagged_zip(tmp_path / "u.zip", files_for(preds()), b"\xff\xfe.csv")
    exc = error(path)
    assert "marked as UTF-8 but is not UTF-8 (b'\\xff\\xfe.csv')" in exc.report()[0]
    # neighbour: the central directory is fine, the prediction file's local header is not
    files = files_for(preds())
    make_zip(tmp_path / "l.zip", files)
    raw = (tmp_path / "l.zip").read_bytes()
    name = b"pathmnist_28.csv"
    at = raw.index(name)  # the local header's copy comes first
    raw = bytearray(raw)
    raw[at - 30 + 7] |= 0x08  # general purpose flags, high byte: bit 11 = UTF-8
    raw[at:at + 2] = b"\xff\xfe"
    (tmp_path / "l.zip").write_bytes(bytes(raw))
    assert "pathmnist_28.csv: the file cannot be read" in "\n".join(error(tmp_path / "l.zip").report())


def test_folder_names_that_are_not_utf8_are_printed_escaped(tmp_path):
    res = write_submission(tmp_path / "res", preds(), 28)
    os.makedirs(os.path.join(os.fsencode(res), b"\xff\xfe"), exist_ok=True)
    with open(os.path.join(os.fsencode(res), b"notes\xff\n.txt"), "wb") as fh:
        fh.write(b"x")
    logs = []
    sub = read_submission(res, split="test", expected_n=EXPECTED, log=logs.append)
    shown = "\n".join(logs + sub.ignored)
    shown.encode("utf-8")  # printable: no lone surrogates, no raw newline inside a name
    assert "notes\\udcff\\n.txt" in shown


def test_untrusted_files_in_res(tmp_path):
    res = write_submission(tmp_path / "res", preds(), 28)
    (res / "pathmnist_28.csv").unlink()
    os.mkfifo(res / "pathmnist_28.csv")  # never opened for reading in a blocking way
    assert "pathmnist_28.csv: not a regular file" in "\n".join(error(res).report())
    (res / "pathmnist_28.csv").unlink()
    (res / "pathmnist_28.csv").mkdir()
    assert "missing prediction file(s): pathmnist_28.csv" in "\n".join(error(res).report())


def test_too_many_files_in_a_folder(tmp_path):
    res = write_submission(tmp_path / "res", preds(), 28)
    junk = res / "junk"
    junk.mkdir()
    for i in range(10_001):
        (junk / str(i)).touch()
    assert "more than 10000 files and folders" in "\n".join(error(res).report())


STATUS_CASES = [
    ("list", lambda p: p.write_text("[1, 2, 3]"), "a JSON list, not an object"),
    ("message is a number", lambda p: p.write_text('{"status": "failed", "message": 5}'), "'message' is a JSON int"),
    ("message is an object", lambda p: p.write_text('{"status": "failed", "message": {"a": 1}}'),
     "'message' is a JSON dict"),
    ("status is a number", lambda p: p.write_text('{"status": 0}'), "no string 'status'"),
    ("batch is true", lambda p: p.write_text('{"status": "failed", "message": "m", "batch": true}'),
     "'batch' is a JSON bool"),
    ("dataset unknown", lambda p: p.write_text('{"status": "failed", "message": "m", "dataset": "x"}'),
     "'dataset' is not a dataset flag"),
    ("not JSON", lambda p: p.write_bytes(b"\xff\xfe{"), "not UTF-8 JSON"),
    ("deeply nested", lambda p: p.write_text("[" * 200_000 + "]" * 200_000), "not UTF-8 JSON"),
    ("NaN", lambda p: p.write_text('{"status": NaN}'), "no string 'status'"),
    ("400 MB", lambda p: (p.touch(), os.truncate(p, 400 << 20)), "419,430,400 bytes; a status is at most"),
    ("a folder", lambda p: p.mkdir(), "not a regular file"),
    ("a link to /dev/zero", lambda p: p.symlink_to("/dev/zero"), "not a regular file"),
]


@pytest.mark.parametrize("label,make,found", STATUS_CASES, ids=[c[0] for c in STATUS_CASES])
def test_ingestion_status_is_checked_by_its_schema(tmp_path, label, make, found):
    import tracemalloc

    res = write_submission(tmp_path / "res", preds(), 28)
    make(res / "ingestion_status.json")
    tracemalloc.start()
    try:
        exc = error(res)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    msg = "\n".join(exc.report())
    assert found in msg and "A result submission must not contain a file of that name" in msg, msg
    assert peak < 20 << 20  # the 400 MB file is never read


def test_ingestion_status_message_is_shown_capped_and_printable(tmp_path):
    res = write_submission(tmp_path / "res", preds(), 28)
    (res / "ingestion_status.json").write_text(json.dumps(
        {"status": "timeout", "message": "stopped\x1b[2J\ud800 " + "x" * 50_000, "dataset": "pathmnist", "batch": 2}))
    exc = error(res)
    line = exc.report()[0]
    line.encode("utf-8")
    assert "(timeout; dataset pathmnist, batch 2): stopped\\x1b[2J\\ud800 x" in line and "more characters" in line
    assert len(line) < 20_000 and exc.kind == "code"


def test_junk_lines_are_rejected_in_bounded_memory(tmp_path):
    """Files just under the ChestMNIST test file cap: rejected in memory bounded by their size."""
    import tracemalloc

    from big.submission import DEFAULT_LIMITS

    ds = registry.get("chestmnist")
    n = ds.n_samples["test"]
    cap = DEFAULT_LIMITS.max_bytes(n, ds.n_labels)
    header = ("id," + ",".join(map(str, range(ds.n_labels))) + "\n").encode()
    cases = {
        "short junk lines": (header + b"x\n" * ((cap - len(header)) // 2), "expected 22433 rows"),
        "right line count, junk": (header + (b"x" * ((cap - len(header)) // n - 1) + b"\n") * n, "found 1"),
        "right line count, commas": (header + (b"," * ((cap - len(header)) // n - 1) + b"\n") * n, "found 600"),
        "one giant line": (header + b"0," * ((cap - len(header)) // 2 - 8), "expected 22433 rows"),
        "giant header": (b"id" + b",0" * ((cap - 16) // 2) + b"\n0,1\n", "wrong header"),
        "empty lines": (header + b"\n" * (cap - len(header) - 1) + b"0", "expected 22433 rows"),
    }
    res = tmp_path / "res"
    res.mkdir()
    for label, (data, found) in cases.items():
        assert len(data) <= cap, label
        (res / "chestmnist_28.csv").write_bytes(data)
        tracemalloc.start()
        try:
            exc = error(res, expected_n={**EXPECTED, "chestmnist": n})
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        msg = "\n".join(exc.report())
        assert "chestmnist_28.csv" in msg and found in msg, (label, msg[:500])
        assert peak <= min(3 * len(data) + (100 << 20), 200 << 20), (label, peak >> 20)


def test_the_line_scan_reads_what_the_fast_path_declines(tmp_path, monkeypatch):
    """One rule, two readers: the scan that explains rejections also reads valid files, identically."""
    p = preds(seed=4)
    path = write_submission(tmp_path / "s.zip", p, 28)
    fast = read_submission(path, split="test", expected_n=EXPECTED)
    from big import csvfile

    monkeypatch.setattr(csvfile, "parse_table", lambda *a, **k: None)
    slow = read_submission(path, split="test", expected_n=EXPECTED)
    assert all(np.array_equal(slow.predictions[f].view(np.uint64), fast.predictions[f].view(np.uint64)) for f in p)
    monkeypatch.undo()
    padded = [f"   {i}   ,   0.25   ,   0.75   " for i in range(N)][::-1]  # more spaces than digits
    sub = read_submission(replace(tmp_path, "breastmnist_28.csv", body("breastmnist", padded)), split="test",
                          expected_n=EXPECTED)
    assert np.array_equal(sub.predictions["breastmnist"], np.tile([0.25, 0.75], (N, 1)))


def test_deeply_nested_folder_is_listed_without_recursion(tmp_path):
    """os.walk recurses before Python 3.12 and would raise RecursionError on 1500 nested folders."""
    res = write_submission(tmp_path / "res", preds(), 28)
    top = d = str(res / "a")
    try:
        os.mkdir(d)
        for _ in range(1500):
            d = os.path.join(d, "a")
            os.mkdir(d)
        with open(os.path.join(d, "x.csv"), "w") as fh:
            fh.write("id,0\n")
        assert "prediction file in a nested folder: 'a/a/a" in "\n".join(error(res).report())
    finally:  # pytest's own clean-up of tmp_path would hit the same recursion limit
        remove_tree(top)


def test_a_zip_declaring_too_many_entries_is_refused_before_listing(tmp_path):
    path = make_zip(tmp_path / "many.zip", {f"junk/{i}": b"" for i in range(10_001)})
    import tracemalloc

    tracemalloc.start()
    try:
        msg = "\n".join(error(path).report())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "the zip holds 10,001 entries; at most 10000 are accepted" in msg
    assert peak < 2 << 20  # the 10,001 entries were never read into ZipInfo objects


def test_a_member_with_an_empty_name_is_skipped(tmp_path):
    files = files_for(preds())
    path = make_zip(tmp_path / "e.zip", files, infos=[(zipfile.ZipInfo("x"), b"junk")])
    raw = path.read_bytes()
    central = raw.rindex(b"PK\x01\x02")  # the last central header is the extra member 'x'
    name_len = central + 28
    raw = raw[:name_len] + b"\x00\x00" + raw[name_len + 2:central + 46] + raw[central + 47:]
    path.write_bytes(raw[:-22] + raw[-22:-10] + (int.from_bytes(raw[-10:-6], "little") - 1).to_bytes(4, "little")
                     + raw[-6:])
    try:
        sub = read_submission(path, split="test", expected_n=EXPECTED)
        assert sub.size == 28
    except SubmissionError as exc:
        assert "Traceback" not in "\n".join(exc.report())
