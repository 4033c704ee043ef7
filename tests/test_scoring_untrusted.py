"""Issue 10 on the scoring side: hostile result submissions and prediction folders never produce a
traceback from `big validate`, `big score` or the scoring program (also in the CodaBench py312
image venv); the failure page names the right tool for the submission's kind."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from big import cli, registry
from big.submission import csv_name, format_prediction_csv
from conftest import REPO, image_env, image_python, labels_of, oracle_predictions


@pytest.fixture(scope="module")
def good(synth_ref):
    """The CSV bytes of a valid 28 px submission for the synthetic test reference."""
    preds = oracle_predictions(labels_of(synth_ref), noise=0.5, seed=1)
    return {csv_name(f, 28): format_prediction_csv(a) for f, a in preds.items()}


def rows_of(good, flag):
    return good[csv_name(flag, 28)].decode().splitlines()


def with_line(good, flag, index, line):
    lines = rows_of(good, flag)
    lines[index] = line
    return {**good, csv_name(flag, 28): ("\n".join(lines) + "\n").encode()}


def as_zip(path: Path, files: dict) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def as_folder(path: Path, files: dict) -> Path:
    path.mkdir(parents=True)
    for name, data in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return path


def status(body) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


# name -> (files of the submission, expected exit code)
def corpus(good):
    n = len(rows_of(good, "breastmnist")) - 1
    return {
        "valid": (good, 0),
        "id beyond int64": (with_line(good, "breastmnist", 3, "99999999999999999999,0.5,0.5"), 1),
        "id 2**64": (with_line(good, "pathmnist", 2, "18446744073709551616," + ",".join(["0.1"] * 9)), 1),
        "id of 5000 digits": (with_line(good, "breastmnist", 3, "9" * 5000 + ",0.5,0.5"), 1),
        "value 1e999": (with_line(good, "breastmnist", 3, "2,1e999,0.5"), 1),
        "value of 400 digits": (with_line(good, "breastmnist", 3, "2,1" + "0" * 400 + ",0.5"), 1),
        "Arabic-Indic id": (with_line(good, "breastmnist", 1, "\u0660,0.5,0.5"), 1),
        "full-width value": (with_line(good, "breastmnist", 1, "0,\uff10.\uff15,0.5"), 1),
        "underscore value": (with_line(good, "breastmnist", 1, "0,0_0.5,0.5"), 1),
        "empty cell": (with_line(good, "breastmnist", 1, "0,,0.5"), 1),
        "percentages": ({**good, csv_name("breastmnist", 28): ("id,0,1\n" + "\n".join(
            f"{i},40,60" for i in range(n)) + "\n").encode()}, 1),
        "pandas index header": ({**good, csv_name("breastmnist", 28): b"," + good[csv_name("breastmnist", 28)][3:]}, 1),
        "latin-1 byte": ({**good, csv_name("breastmnist", 28): good[csv_name("breastmnist", 28)] + b"\xe9\n"}, 1),
        "NUL bytes": ({**good, csv_name("breastmnist", 28): b"\0" * 5000}, 1),
        "model.py beside all twelve": ({**good, "model.py": b"raise SystemExit(3)\n"}, 0),
        "model.py beside eleven": ({**{k: v for k, v in good.items() if "organs" not in k}, "model.py": b""}, 1),
        "code only": ({"model.py": b"class Model: pass\n", "w.npz": b"\0"}, 1),
        "backslash folder": ({f"preds\\{k}": v for k, v in good.items()}, 0),
        "mixed separators": ({**{f"p\\{k}": v for k, v in list(good.items())[:6]},
                              **{f"p/{k}": v for k, v in list(good.items())[6:]}}, 1),
        "control characters in a name": ({**good, "notes\x1b[2J\n.txt": b"x"}, 0),
    }


FOLDER_ONLY = {
    "status is a list": ({"ingestion_status.json": b"[1]"}, 1),
    "status message is a number": ({"ingestion_status.json": status({"status": "failed", "message": 7})}, 1),
    "status is deeply nested": ({"ingestion_status.json": b"[" * 100_000 + b"]" * 100_000}, 1),
    "status with a lone surrogate": ({"ingestion_status.json": status(
        {"status": "failed", "message": "bad \ud800 thing", "dataset": "pathmnist", "batch": 0})}, 1),
    "status ok": ({"ingestion_status.json": status({"track": "code", "status": "ok", "message": "done"})}, 0),
}


def run_cli(capsys, argv):
    code = cli.main(argv)
    out = capsys.readouterr()
    text = out.out + out.err
    text.encode("utf-8")  # printable as UTF-8: no lone surrogates reach the terminal
    assert "Traceback" not in text
    return code, text


@pytest.mark.parametrize("form", ["zip", "folder"])
def test_corpus_through_validate_and_score(synth_ref, good, tmp_path, capsys, form):
    cases = dict(corpus(good))
    if form == "folder":
        cases.update({k: ({**good, **files}, rc) for k, (files, rc) in FOLDER_ONLY.items()})
    for i, (label, (files, want)) in enumerate(cases.items()):
        if form == "folder" and label in ("backslash folder", "mixed separators"):
            continue  # a folder on Linux holds those names as written; the platform case is below
        where = tmp_path / f"c{i}"
        sub = as_zip(where.with_suffix(".zip"), files) if form == "zip" else as_folder(where, files)
        code, text = run_cli(capsys, ["validate", str(sub), "--reference", str(synth_ref)])
        assert code == want, (label, text)
        assert ("OK:" in text) == (want == 0), (label, text)
        code, text = run_cli(capsys, ["score", str(sub), "--reference", str(synth_ref), "--output",
                                      str(tmp_path / f"o{i}"), "--no-report", "--bootstrap", "0"])
        assert code == want, (label, text)
        assert (tmp_path / f"o{i}" / "scores.json").exists() == (want == 0), label


def codabench_res(zip_path: Path, res: Path) -> Path:
    """What the scoring job finds in /app/input/res for a result zip: zipfile.extractall on Linux,
    plus the platform's metadata file."""
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(res)
    (res / "metadata").write_text("exitCode: 0\nelapsedTime: 1\n")
    return res


def run_program(python: str, synth_ref: Path, res_files: dict, tmp_path: Path, *, from_zip: bool = True):
    inp = tmp_path / "input"
    inp.mkdir(parents=True)
    (inp / "ref").symlink_to(synth_ref)
    if from_zip:
        codabench_res(as_zip(tmp_path / "sub.zip", res_files), inp / "res")
    else:
        as_folder(inp / "res", res_files)
    out = tmp_path / "output"
    proc = subprocess.run([python, str(REPO / "scoring_program" / "score.py"), str(inp), str(out)],
                          capture_output=True, text=True, timeout=300, env=image_env())
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return proc, out


PROGRAM_CASES = ["valid", "backslash folder", "id beyond int64", "code only", "control characters in a name",
                 "model.py beside all twelve"]


@pytest.mark.parametrize("label", PROGRAM_CASES)
def test_scoring_program_on_extracted_zips(synth_ref, good, tmp_path, label):
    files, want = corpus(good)[label]
    proc, out = run_program(sys.executable, synth_ref, files, tmp_path)
    assert proc.returncode == want, proc.stderr
    assert (out / "scores.json").exists() == (want == 0)
    assert (out / "detailed_results.html").exists()


@pytest.mark.parametrize("label", ["id beyond int64", "backslash folder", "status is a list",
                                   "status with a lone surrogate"])
def test_scoring_program_in_the_py312_image(synth_ref, good, tmp_path, label):
    py = image_python("py312")
    if label in FOLDER_ONLY:
        files, want = FOLDER_ONLY[label]
        proc, out = run_program(str(py), synth_ref, {**good, **files}, tmp_path, from_zip=False)
    else:
        files, want = corpus(good)[label]
        proc, out = run_program(str(py), synth_ref, files, tmp_path)
    assert proc.returncode == want, proc.stderr
    assert (out / "scores.json").exists() == (want == 0)


def test_failure_page_names_the_tool_for_the_kind(synth_ref, good, tmp_path):
    files, _ = corpus(good)["id beyond int64"]
    proc, out = run_program(sys.executable, synth_ref, files, tmp_path / "r")
    page = (out / "detailed_results.html").read_text()
    assert "big validate SUBMISSION.zip --split val|test" in page and "big result-zip" not in page
    failed = {"ingestion_status.json": status({"track": "code", "status": "failed", "dataset": "dermamnist",
                                               "batch": 3, "message": "predict returned shape (64, 6)"})}
    proc, out = run_program(sys.executable, synth_ref, failed, tmp_path / "c", from_zip=False)
    page = (out / "detailed_results.html").read_text()
    assert proc.returncode == 1 and "predict returned shape (64, 6)" in page
    assert "big result-zip --model DIR/model.py" in page and "big ingest" in page
    assert "big validate SUBMISSION.zip" not in page


def test_zip_level_hostility_through_validate(tmp_path, good, capsys, synth_ref):
    bad_name = tmp_path / "u.zip"
    as_zip(bad_name, {**good, "\u00e9.txt": b"x"})
    raw = bad_name.read_bytes().replace("\u00e9.txt".encode(), b"\xff\xfe.txt")
    bad_name.write_bytes(raw)
    code, text = run_cli(capsys, ["validate", str(bad_name), "--reference", str(synth_ref)])
    assert code == 1 and "marked as UTF-8 but is not UTF-8" in text
    truncated = tmp_path / "t.zip"
    truncated.write_bytes(as_zip(tmp_path / "full.zip", good).read_bytes()[:-30])
    code, text = run_cli(capsys, ["validate", str(truncated), "--reference", str(synth_ref)])
    assert code == 1
    os.mkfifo(tmp_path / "fifo.zip")
    code, text = run_cli(capsys, ["validate", str(tmp_path / "fifo.zip"), "--reference", str(synth_ref)])
    assert code == 1 and "not a zip file" in text


def test_flipped_bytes_in_a_zip_never_crash(tmp_path, good, synth_ref):
    """Corrupt zips (one byte changed at many places) only ever give messages."""
    import random

    from big.errors import SubmissionError
    from big.submission import read_submission

    clean = as_zip(tmp_path / "clean.zip", {k: v for k, v in list(good.items())[:3]}).read_bytes()
    rng = random.Random(0)
    ref_n = {f: 80 for f in registry.flags()}
    for i in range(300):
        raw = bytearray(clean)
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        path = tmp_path / f"f{i}.zip"
        path.write_bytes(bytes(raw))
        try:
            read_submission(path, split="test", expected_n=ref_n)
        except SubmissionError as exc:
            "\n".join(exc.report()).encode("utf-8")
