"""The one rule that says what a submission is (big.kind), and the ingestion program following it."""
from __future__ import annotations

import pytest

from big import ingestion, registry
from big.kind import CODE, NEITHER, RESULT, posix_names, submission_kind
from big.submission import csv_name


def twelve(size=28, folder=""):
    return [folder + csv_name(f, size) for f in registry.flags()]


@pytest.mark.parametrize("folder", ["", "preds/"])
def test_complete_results_win_over_model_py(folder):
    k = submission_kind(twelve(64, folder) + [folder + "model.py", folder + "weights.npz"])
    assert (k.kind, k.folder, k.size, k.model) == (RESULT, folder, 64, folder + "model.py")
    assert k.complete


def test_model_py_with_incomplete_results_is_code():
    k = submission_kind(twelve()[:11] + ["model.py"])
    assert (k.kind, k.model, k.folder) == (CODE, "model.py", "")


def test_wrapped_model_py_is_code_and_archive_noise_is_ignored():
    k = submission_kind(["sub/model.py", "sub/w.npz", "__MACOSX/sub/._model.py", ".DS_Store", "sub/._w.npz"])
    assert (k.kind, k.model, k.folder) == (CODE, "sub/model.py", "sub/")


def test_model_py_in_one_of_two_folders_is_neither_with_the_place():
    k = submission_kind(["a/model.py", "b/readme.txt"])
    assert k.kind == NEITHER and "'a/model.py'" in k.reason and "zip root" in k.reason


def test_any_csv_without_model_is_a_result_to_validate():
    assert submission_kind(["preds/notes.CSV"]).kind == RESULT
    assert not submission_kind(["pathmnist_28.csv"]).complete


def test_mixed_sizes_are_not_complete():
    names = twelve(28)[:6] + twelve(64)[6:]
    k = submission_kind(names + ["model.py"])
    assert k.kind == CODE  # no complete set of one size: model.py decides


def test_nothing():
    k = submission_kind([])
    assert k.kind == NEITHER and "holds: nothing" in k.reason


def test_ingestion_treats_complete_results_with_model_py_as_results(tmp_path):
    prog, out = tmp_path / "prog", tmp_path / "out"
    prog.mkdir()
    for name in twelve(28):
        (prog / name).write_text("id,0\n")
    (prog / "model.py").write_text("raise SystemExit('must never run')\n")
    sub = ingestion.classify_submission(prog)
    assert sub.kind == "result" and sub.ignored_model == "model.py"
    logs = []
    rc = ingestion.run_ingestion(tmp_path / "in", out, prog, log=logs.append, err=logs.append)
    assert rc == 0 and not out.exists()
    assert any("model.py beside the 12 prediction files is ignored" in line for line in logs)


def test_backslash_separators_are_folders_when_no_name_uses_a_slash():
    win = [n.replace("/", "\\") for n in twelve(64, "my preds/")] + ["my preds\\model.py"]
    k = submission_kind(win)
    assert (k.kind, k.folder, k.size, k.model, k.backslashes) == (RESULT, "my preds/", 64, "my preds/model.py", True)
    assert posix_names(["a\\b.csv", "c.csv"]) == {"a\\b.csv": "a/b.csv", "c.csv": "c.csv"}
    assert posix_names(["a\\b.csv", "d/c.csv"]) == {"a\\b.csv": "a\\b.csv", "d/c.csv": "d/c.csv"}  # mixed: names


def test_code_with_backslash_folders_is_neither_and_says_how_to_rezip():
    for names in (["sub\\model.py", "sub\\w.npz"], ["model.py", "weights\\w.npz"]):
        k = submission_kind(names)
        assert k.kind == NEITHER and "between folder names" in k.reason and "tar -a -c -f" in k.reason
    assert submission_kind(["model.py", "w.npz"]).kind == CODE  # no folders, nothing to split


def test_ingestion_classifies_an_extracted_windows_zip_like_validation(tmp_path):
    prog = tmp_path / "prog"
    prog.mkdir()
    for name in twelve(28):
        (prog / f"preds\\{name}").write_text("id,0\n")
    assert ingestion.classify_submission(prog).kind == "result"
    code = tmp_path / "code"
    code.mkdir()
    (code / "sub\\model.py").write_text("")
    sub = ingestion.classify_submission(code)
    assert sub.kind == "invalid" and "between folder names" in sub.message
