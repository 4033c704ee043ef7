"""The committed competition.yaml template: what the scorer writes is what the leaderboard reads."""
from __future__ import annotations

import json
import re

import yaml

from big import cli, registry
from big.codabench import bundle as B
from big.codabench import lint as L
from big.submission import write_submission
from conftest import REPO, labels_of, oracle_predictions


def template() -> dict:
    return yaml.safe_load((REPO / "competition.yaml").read_text())


def test_scorer_keys_equal_the_committed_columns(synth_ref, tmp_path):
    sub = write_submission(tmp_path / "s.zip", oracle_predictions(labels_of(synth_ref), noise=0.5), 28)
    assert cli.main(["score", str(sub), "--reference", str(synth_ref), "--output", str(tmp_path / "out"),
                     "--bootstrap", "0", "--no-report"]) == 0
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    cols = template()["leaderboards"][0]["columns"]
    assert list(scores) == [c["key"] for c in cols if not c.get("computation")]
    assert cols == registry.leaderboard_columns()


def test_column_rules_of_the_template():
    lb = template()["leaderboards"][0]
    cols = lb["columns"]
    assert lb["submission_rule"] == "Add_And_Delete_Multiple" and lb["primary_index"] == 0
    assert cols[0]["key"] == "auc" and [c["key"] for c in cols[:4]] == ["auc", "balacc", "kappa", "resolution"]
    assert all(len(c["title"]) <= 36 and len(c["key"]) <= 36 and c["sorting"] in ("asc", "desc") for c in cols)
    assert all(c["precision"] == (0 if c["key"] == "resolution" else 4) for c in cols)
    assert len({c["index"] for c in cols}) == len(cols) == len({c["key"] for c in cols})


def test_fact_sheet_flags_are_quoted_strings():
    text = (REPO / "competition.yaml").read_text()
    assert not re.search(r"is_(required|on_leaderboard):\s*(true|false)\s*$", text, re.M)
    fs = template()["fact_sheet"]
    assert set(fs) == {"model_name", "paper_url", "code_url", "training_paradigm", "pretrained_weights", "external_data"}
    for key, q in fs.items():
        assert set(q) == L.FACT_KEYS and q["key"] == key
        assert q["is_required"] in ("true", "false") and q["is_on_leaderboard"] in ("true", "false")
    assert fs["paper_url"]["is_on_leaderboard"] == "true"  # peer-reviewed entries highlighted


def test_phases_of_the_template():
    doc = template()
    assert doc["version"] == 2
    dev, test = doc["phases"]
    assert [len(p["tasks"]) for p in (dev, test)] == [1, 1] and dev["tasks"] != test["tasks"]
    assert test["max_submissions_per_day"] == 10 and test["max_submissions"] == 100  # the thesis' limits
    assert "end" not in test and test["start"] > dev["end"]  # never-ending, strictly after
    assert all(isinstance(p["execution_time_limit"], int) for p in (dev, test))
    tasks = {t["index"]: t for t in doc["tasks"]}
    assert tasks[dev["tasks"][0]]["reference_data"].startswith("dev/")
    assert tasks[test["tasks"][0]]["reference_data"].startswith("final/")


def test_pages_exist_and_template_lints_after_filling(tmp_path):
    """The template with its fields filled passes every rule that does not need built data."""
    import shutil

    for name in ("competition.yaml", "logo.png", "pages", "scoring_program", "ingestion_program", "starting_kit"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    fields = {"organizer": "Org", "contact_email": "org@example.org"}
    for p in list((tmp_path / "pages").glob("*.md")) + [tmp_path / "competition.yaml"]:
        p.write_text(B.fill_fields(p.read_text(), fields))
    findings = [f for f in L.lint_bundle(tmp_path) if f.level == "error"]
    # only the built parts are missing: data folders and the package beside the programs
    assert findings and all(f.rule in ("tasks", "programs") for f in findings), [str(f) for f in findings]
    assert all("does not exist" in f.message or "big/ package" in f.message for f in findings)


def test_timezone_offsets_warn(tmp_path):
    """CodaBench replaces an offset by UTC: a quoted offset and an unquoted one both get a warning
    that says what CodaBench stores."""
    doc = template()
    doc["phases"][0]["start"] = "PLACEHOLDER"
    for written, stored in (("'2026-12-01T00:00:00+02:00'", "stores 2026-12-01 00:00:00 UTC"),
                            ("2026-12-01T10:00:00+02:00", "stores 2026-12-01 00:00:00 UTC")):
        text = yaml.safe_dump(doc, sort_keys=False).replace("PLACEHOLDER", written)
        (tmp_path / "competition.yaml").write_text(text)
        found = [f for f in L.lint_bundle(tmp_path) if f.rule == "phases" and f.level == "warning"]
        assert any(stored in f.message and "phases[0]" in f.where for f in found), [str(f) for f in found]
