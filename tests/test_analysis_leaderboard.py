"""big leaderboard: ranking rules on a hand-checked example, a folder re-scored end to end with bad
entries reported and skipped, outputs (Markdown, CSV, HTML, JSON), the CLI."""
from __future__ import annotations

import csv
import io
import json
import shutil

import pytest

from conftest import labels_of, needs_genuine, oracle_predictions

from big import cli, registry, scoring
from big.analysis import leaderboard as lb
from big.reference import build_reference
from big.submission import write_submission


# ---------------------------------------------------------------------------------------------
# ranking rules
# ---------------------------------------------------------------------------------------------

def test_competition_and_average_ranks():
    assert lb.competition_ranks([0.9, 0.8, 0.8, 0.7]) == [1, 2, 2, 4]
    assert lb.competition_ranks([0.1 + 0.2, 0.3, 0.2]) == [1, 1, 3]  # equal at CodaBench's 10 decimals
    assert lb.competition_ranks([2.0, 1.5, 1.5, 3.0], higher_is_better=False) == [3, 1, 1, 4]
    assert lb.average_ranks([0.9, 0.8, 0.8, 0.7]) == [1.0, 2.5, 2.5, 4.0]
    assert lb.average_ranks([0.5, 0.5, 0.5]) == [2.0, 2.0, 2.0]


def test_rank_hand_checked_example():
    """A wins three datasets but collapses on the fourth; B is second everywhere but wins d4.

    d1: A .9 = C .9 > B .85 -> A 1.5, C 1.5, B 3      d2: A 1, B 2, C 3
    d3: A 1, B 2, C 3                                   d4: B 1, C 2, A 3
    avg rank: A (1.5+1+1+3)/4 = 1.625, B (3+2+2+1)/4 = 2.0, C (1.5+3+3+2)/4 = 2.375
    mean:     A 0.7, B 0.8625, C 0.55  -> by mean B, A, C; by average rank A, B, C
    """
    values = {
        "A": {"d1": 0.9, "d2": 0.9, "d3": 0.9, "d4": 0.1},
        "B": {"d1": 0.85, "d2": 0.85, "d3": 0.85, "d4": 0.9},
        "C": {"d1": 0.9, "d2": 0.5, "d3": 0.6, "d4": 0.2},
    }
    rows = lb.rank(values)
    assert [r.name for r in rows] == ["B", "A", "C"]
    by = {r.name: r for r in rows}
    assert by["A"].dataset_ranks == {"d1": 1.5, "d2": 1.0, "d3": 1.0, "d4": 3.0}
    assert by["C"].dataset_ranks == {"d1": 1.5, "d2": 3.0, "d3": 3.0, "d4": 2.0}
    assert by["A"].avg_rank == pytest.approx(1.625)
    assert by["B"].avg_rank == pytest.approx(2.0)
    assert by["C"].avg_rank == pytest.approx(2.375)
    assert by["B"].mean == pytest.approx(0.8625) and by["A"].mean == pytest.approx(0.7)
    assert (by["B"].rank_by_mean, by["A"].rank_by_mean, by["C"].rank_by_mean) == (1, 2, 3)
    assert (by["A"].rank_by_avg_rank, by["B"].rank_by_avg_rank, by["C"].rank_by_avg_rank) == (1, 2, 3)


def test_rank_ties_on_the_mean():
    values = {"X": {"d1": 0.8, "d2": 0.6}, "Y": {"d1": 0.6, "d2": 0.8}, "Z": {"d1": 0.5, "d2": 0.5}}
    rows = lb.rank(values)
    by = {r.name: r for r in rows}
    assert by["X"].rank_by_mean == by["Y"].rank_by_mean == 1 and by["Z"].rank_by_mean == 3
    assert by["X"].avg_rank == by["Y"].avg_rank == 1.5
    assert by["X"].rank_by_avg_rank == by["Y"].rank_by_avg_rank == 1 and by["Z"].rank_by_avg_rank == 3
    assert [r.name for r in rows] == ["X", "Y", "Z"]  # ties ordered by name
    assert lb.rank({}) == []
    with pytest.raises(ValueError):
        lb.rank({"X": {"d1": 1.0}, "Y": {"d2": 1.0}})


# ---------------------------------------------------------------------------------------------
# a folder re-scored end to end
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def folder(synth_ref, tmp_path_factory):
    root = tmp_path_factory.mktemp("lb")
    subs = root / "subs"
    lab = labels_of(synth_ref)
    write_submission(subs / "best.zip", oracle_predictions(lab, noise=0.5, seed=1), 28)
    write_submission(subs / "as_folder", oracle_predictions(lab, noise=0.62, seed=2), 28)
    mid = write_submission(root / "mid.zip", oracle_predictions(lab, noise=0.75, seed=3), 28)
    shutil.copy(mid, subs / "mid.zip")
    write_submission(subs / "worst.zip", oracle_predictions(lab, noise=0.97, seed=4), 28)
    write_submission(subs / "hires.zip", oracle_predictions(lab, noise=0.6, seed=5), 64)
    code = scoring.run(mid, synth_ref, subs / "mid_scored", config=scoring.ScoringConfig(n_boot=40, report=False),
                       out=io.StringIO(), err=io.StringIO())
    assert code == 0
    # bad entries
    broken = oracle_predictions(lab, noise=0.5, seed=6)
    broken["bloodmnist"][3, 2] = 1.5
    write_submission(subs / "broken.zip", broken, 28)
    (subs / "empty_dir").mkdir()
    (subs / "notes.txt").write_text("not a submission")
    (subs / "truncated.zip").write_bytes((subs / "best.zip").read_bytes()[:500])
    other = subs / "other_ref"
    other.mkdir()
    d = json.loads((subs / "mid_scored" / "details.json").read_text())
    d["reference_sha256"] = "f" * 64
    (other / "details.json").write_text(json.dumps(d))
    (subs / ".hidden").mkdir()
    return root, subs


@pytest.fixture(scope="module")
def board_run(folder, synth_ref):
    root, subs = folder
    log = []
    run = lb.run(subs, synth_ref, root / "out", n_boot=40, seed=0, jobs=1, progress=False, log=log.append)
    return run, root / "out", log


def test_rankings_and_skipped(board_run, folder, synth_ref):
    run, out, log = board_run
    names = [e.name for e in run.entries]
    assert ".hidden" not in names
    assert sorted(e.name for e in run.skipped) == ["broken", "empty_dir", "notes.txt", "other_ref", "truncated"]
    msgs = {e.name: " ".join(e.problems) for e in run.skipped}
    assert "found '1.5'" in msgs["broken"] and "bloodmnist_28.csv" in msgs["broken"]
    assert "no prediction files" in msgs["empty_dir"]
    assert "not a submission" in msgs["notes.txt"]
    assert "other reference labels" in msgs["other_ref"]
    assert "not a zip file" in msgs["truncated"] or "cannot be read" in msgs["truncated"]
    assert any(line.startswith("skipped broken") for line in log)
    boards = {(b.resolution, b.metric): b for b in run.boards}
    assert set(boards) == {(r, m) for r in (28, 64) for m in registry.METRIC_KEYS}
    auc = boards[(28, "auc")]
    order = [r.name for r in auc.rows]
    assert order[0] == "best" and order[1] == "as_folder" and order[-1] == "worst"
    assert set(order[2:4]) == {"mid", "mid_scored"}
    by = {r.name: r for r in auc.rows}
    assert by["mid"].rank_by_mean == by["mid_scored"].rank_by_mean == 3 and by["worst"].rank_by_mean == 5
    assert by["mid"].dataset_ranks == by["mid_scored"].dataset_ranks
    assert [r.name for r in boards[(64, "kappa")].rows] == ["hires"]


def test_means_and_intervals_match_the_scorer(board_run, folder, synth_ref, tmp_path):
    run, out, _ = board_run
    root, subs = folder
    code = scoring.run(subs / "best.zip", synth_ref, tmp_path / "s", config=scoring.ScoringConfig(n_boot=40, report=False),
                       out=io.StringIO(), err=io.StringIO())
    assert code == 0
    details = json.loads((tmp_path / "s" / "details.json").read_text())
    scores = json.loads((tmp_path / "s" / "scores.json").read_text())
    for m in registry.METRIC_KEYS:
        board = next(b for b in run.boards if b.resolution == 28 and b.metric == m)
        row = next(r for r in board.rows if r.name == "best")
        assert row.mean == scores[m]
        assert board.results["best"].mean_ci[m] == tuple(details["mean"]["ci"][m])
        for f in registry.flags():
            assert row.values[f] == scores[f"{f}_{m}"]


def test_output_files(board_run):
    run, out, _ = board_run
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["leaderboard.md", "leaderboard.html", "leaderboard.json", "skipped.csv"]
                           + [f"leaderboard_{r}px_{m}.csv" for r in (28, 64) for m in registry.METRIC_KEYS])
    rows = list(csv.DictReader(open(out / "leaderboard_28px_auc.csv")))
    assert [r["submission"] for r in rows][0] == "best"
    first = rows[0]
    assert int(first["rank_by_mean"]) == 1 and float(first["ci_low"]) <= float(first["mean_auc"]) <= float(first["ci_high"])
    assert float(first["avg_rank"]) >= 1 and first["n_boot"] == "40"
    assert set(registry.flags()) <= set(first)
    md = (out / "leaderboard.md").read_text()
    assert "ranks by the **Mean AUC** column" in md and "## 28 px" in md and "## 64 px" in md
    assert "### AUC (the competition's ranking)" in md and "Avg rank" in md
    assert "| broken | zip |" in md and "SYNTHETIC" in md
    page = (out / "leaderboard.html").read_text()
    body = page.split("<body>", 1)[1]
    assert "http" not in body and "<link" not in page and "src=" not in page  # self-contained
    for e in run.entries:
        assert e.name in page
    assert page.count("<section class='board'") == 6 and "found &#x27;1.5&#x27;" in page
    data = json.loads((out / "leaderboard.json").read_text())
    assert data["competition_ranking"].startswith("mean AUC")
    assert [r["submission"] for r in data["boards"]["28"]["auc"]][0] == "best"
    assert len(data["skipped"]) == 5
    skipped = list(csv.DictReader(open(out / "skipped.csv")))
    assert {r["entry"] for r in skipped} == {"broken", "empty_dir", "notes.txt", "other_ref", "truncated"}


def test_no_bootstrap_and_stale_files(folder, synth_ref, tmp_path):
    root, subs = folder
    only = tmp_path / "only28"
    only.mkdir()
    shutil.copy(subs / "best.zip", only / "best.zip")
    shutil.copy(subs / "worst.zip", only / "worst.zip")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "leaderboard_64px_auc.csv").write_text("stale")
    run = lb.run(only, synth_ref, tmp_path / "out", n_boot=0, progress=False, log=lambda s: None)
    assert not (tmp_path / "out" / "leaderboard_64px_auc.csv").exists()
    assert all(r.mean_ci["auc"] is None for b in run.boards for r in b.results.values())
    rows = list(csv.DictReader(open(tmp_path / "out" / "leaderboard_28px_auc.csv")))
    assert rows[0]["ci_low"] == "" and rows[0]["n_boot"] == "0"
    assert run.stage_seconds()["bootstrap"] < run.stage_seconds()["read"] + 1.0
    assert "No bootstrap intervals" in (tmp_path / "out" / "leaderboard.md").read_text()


def test_resolution_filter(folder, synth_ref, tmp_path):
    root, subs = folder
    run = lb.run(subs, synth_ref, tmp_path / "o", n_boot=0, resolutions=(28,), progress=False, log=lambda s: None)
    skipped = {e.name: " ".join(e.problems) for e in run.skipped}
    assert "accepts resolution(s) 28" in skipped["hires"]
    assert {b.resolution for b in run.boards} == {28}


@pytest.mark.slow
def test_parallel_matches_serial(folder, board_run, synth_ref, tmp_path):
    root, subs = folder
    serial, out1, _ = board_run
    par = lb.run(subs, synth_ref, tmp_path / "par", n_boot=40, seed=0, jobs=2, progress=False, log=lambda s: None)
    a = json.loads((out1 / "leaderboard.json").read_text())
    b = json.loads((tmp_path / "par" / "leaderboard.json").read_text())
    assert a["boards"] == b["boards"] and a["skipped"] == b["skipped"]
    assert [e.name for e in par.entries] == [e.name for e in serial.entries]


def test_cli(folder, synth_ref, tmp_path, capsys):
    root, subs = folder
    code = cli.main(["leaderboard", str(subs), "--reference", str(synth_ref), "--out", str(tmp_path / "o"),
                     "--bootstrap", "0", "--jobs", "1", "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "ranked, 5 skipped" in out
    bad = tmp_path / "allbad"
    bad.mkdir()
    (bad / "x.txt").write_text("x")
    assert cli.main(["leaderboard", str(bad), "--reference", str(synth_ref), "--out", str(tmp_path / "o2"),
                     "--no-progress"]) == 1
    assert "No submission could be ranked" in (tmp_path / "o2" / "leaderboard.md").read_text()
    # organizer errors stop the run with exit code 2 / usage errors with 1
    assert cli.main(["leaderboard", str(subs), "--reference", str(tmp_path / "noref"), "--out",
                     str(tmp_path / "o3"), "--no-progress"]) == 2
    assert "manifest.json" in capsys.readouterr().err
    assert cli.main(["leaderboard", str(tmp_path / "nothing"), "--reference", str(synth_ref), "--out",
                     str(tmp_path / "o4"), "--no-progress"]) == 1
    assert "is not a folder" in capsys.readouterr().err


def test_output_inside_the_submissions_folder_is_ignored(folder, synth_ref, tmp_path):
    root, subs = folder
    here = tmp_path / "subs"
    here.mkdir()
    shutil.copy(subs / "best.zip", here / "best.zip")
    lb.run(here, synth_ref, here / "board", n_boot=0, progress=False, log=lambda s: None)
    run = lb.run(here, synth_ref, here / "board", n_boot=0, progress=False, log=lambda s: None)
    assert [e.name for e in run.entries] == ["best"] and not run.skipped


@needs_genuine
def test_leaderboard_on_genuine_labels(mixed_root, tmp_path):
    ref = build_reference(mixed_root, "test", tmp_path / "ref", allow_synthetic=True)
    lab = labels_of(ref)
    subs = tmp_path / "subs"
    write_submission(subs / "strong.zip", oracle_predictions(lab, noise=0.55, seed=1), 28)
    write_submission(subs / "weak.zip", oracle_predictions(lab, noise=0.95, seed=2), 28)
    run = lb.run(subs, ref, tmp_path / "out", n_boot=30, progress=False, log=lambda s: None)
    auc = next(b for b in run.boards if b.metric == "auc")
    assert [r.name for r in auc.rows] == ["strong", "weak"]
    assert auc.rows[0].dataset_ranks["breastmnist"] == 1.0 and auc.rows[0].avg_rank < auc.rows[1].avg_rank


def test_plain_progress_without_tqdm(folder, synth_ref, tmp_path, monkeypatch, capsys):
    """A bare image without tqdm still gets a progress report (a line per 10 %)."""
    import sys

    monkeypatch.setitem(sys.modules, "tqdm", None)
    root, subs = folder
    run = lb.run(subs, synth_ref, tmp_path / "o", n_boot=0, progress=True, log=lambda s: None)
    err = capsys.readouterr().err
    n = len(run.entries)
    assert f"scoring: {n}/{n}" in err and "scoring: 1/" in err
    assert set(run.phase_s) == {"setup", "scoring", "output"} and run.phase_s["scoring"] > 0
