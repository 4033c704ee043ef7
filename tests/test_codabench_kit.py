"""The participant-side pieces of issue 11: row counts from the files used, the synthetic-folder marker,
`run-local --kit` argument rules, run-local's wording per leaderboard rule, self-contained kit Markdown."""
from __future__ import annotations

import pytest

from big import cli, data, registry
from big.codabench import kitfiles as K
from big.codabench import kit
from big.codabench.jobrules import scored_message
from big.submission import write_submission

from conftest import REPO


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    data.synthesize(root, sizes=(28,), n_per_split="train=10,val=7,test=9", seed=3)
    return root


def _uniform(n: int) -> dict:
    return {d.flag: [[1.0 / d.n_labels] * d.n_labels] * n for d in registry.datasets()}


def test_split_counts_and_validate_against_the_files_used(tiny, tmp_path, capsys):
    assert kit.split_counts(tiny, "val") == {f: 7 for f in registry.flags()}
    import numpy as np

    sub = write_submission(tmp_path / "v.zip", {f: np.asarray(a) for f, a in _uniform(7).items()}, 28)
    assert cli.main(["validate", str(sub), "--split", "val"]) == 1  # the official row counts
    capsys.readouterr()
    assert cli.main(["validate", str(sub), "--split", "val", "--data-root", str(tiny)]) == 0
    out = capsys.readouterr().out
    assert f"row counts from the files in {tiny}" in out and "the platform would reject this zip" in out
    assert cli.main(["validate", str(sub), "--split", "test", "--data-root", str(tiny)]) == 1  # 9 test rows


def test_synth_marks_its_folder_and_build_reference_accepts_it(tmp_path, capsys):
    out = tmp_path / "s"
    assert cli.main(["synth", "--out", str(out), "--sizes", "28", "--n-per-split", "5"]) == 0
    assert kit.is_marked_synthetic(out)
    assert cli.main(["build-reference", "--data-root", str(out), "--split", "val", "--out", str(tmp_path / "r")]) == 0
    assert "accepted as with --allow-synthetic" in capsys.readouterr().out
    (out / kit.SYNTH_MARKER).unlink()  # an unmarked folder of non-genuine files still needs the flag
    assert cli.main(["build-reference", "--data-root", str(out), "--split", "val", "--out", str(tmp_path / "r2")]) == 2


def test_run_local_kit_argument_rules(tiny, tmp_path, capsys):
    import numpy as np

    sub = write_submission(tmp_path / "v.zip", {f: np.asarray(a) for f, a in _uniform(7).items()}, 28)
    assert cli.main(["run-local", "--submission", str(sub)]) == 1
    assert "--kit" in capsys.readouterr().err
    assert cli.main(["run-local", "--kit", "--submission", str(sub)]) == 1
    assert "--data-root" in capsys.readouterr().err
    assert cli.main(["run-local", "--kit", str(REPO), "--submission", str(sub), "--data-root", str(tiny),
                     "--phase", "test", "--work-dir", str(tmp_path / "w")]) == 1
    assert "Development phase only" in capsys.readouterr().err
    assert cli.main(["run-local", "--kit", str(tmp_path), "--submission", str(sub), "--data-root", str(tiny)]) == 1
    assert "not a starting kit" in capsys.readouterr().err


def test_scored_message_follows_the_leaderboard_rule():
    manual = scored_message("Add_And_Delete_Multiple")
    assert "nothing is posted automatically" in manual and "posted to the leaderboard" not in manual
    assert "posted to the leaderboard" in scored_message("Force_Latest_Multiple")
    assert "nothing is posted automatically (Add)" in scored_message(None)


def test_localize_markdown(tmp_path):
    repo = tmp_path / "repo"
    (repo / "starting_kit").mkdir(parents=True)
    (repo / "benchmarks").mkdir()
    (repo / "benchmarks" / "bench.py").write_text("")
    (repo / "baselines" / "tables").mkdir(parents=True)
    (repo / "starting_kit" / "README.md").write_text(
        "See [tables](baselines/tables/) and [bench](benchmarks/bench.py), `benchmarks/bench.py`, "
        "notes.md, [web](https://x.org/a.md) and [here](#top).\n")
    kit_dir = tmp_path / "kit"
    kit_dir.mkdir()
    (kit_dir / "baselines" / "tables").mkdir(parents=True)
    (kit_dir / "README.md").write_text((repo / "starting_kit" / "README.md").read_text())
    changed = K.localize_markdown(kit_dir, repo)
    text = (kit_dir / "README.md").read_text()
    assert "[tables](baselines/tables/)" in text and "[web](https://x.org/a.md)" in text and "[here](#top)" in text
    assert "bench (in the BIG repository, not in this kit)" in text
    assert "`benchmarks/bench.py` (in the BIG repository, not in this kit)" in text
    assert "notes.md (not in this kit)" in text and changed
    assert K.localize_markdown(kit_dir, repo) == []  # idempotent
    assert K.relative_links(text) == ["baselines/tables/"]
