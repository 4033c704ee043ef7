"""`big lint`: a clean bundle passes; each rule family catches its broken bundle (codabench.md §4.1)."""
from __future__ import annotations

import datetime as dt
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from big import cli
from big.codabench import bundle as B
from big.codabench import dates
from big.codabench.lint import lint_bundle

ORG = {"organizer": "Lint Test", "contact_email": "lint@example.org"}


@pytest.fixture(scope="module")
def good(synth_root, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("lint_good")
    res = B.build_bundle(B.BundleOptions(data_root=synth_root, out=tmp / "b.zip", input_sizes=[28], allow_synthetic=True,
                                         keep_folder=tmp / "folder", **ORG), log=lambda m: None)
    return res.folder


@pytest.fixture
def bundle(good, tmp_path) -> Path:
    dest = tmp_path / "bundle"
    shutil.copytree(good, dest)
    return dest


def shifted(value: str, **delta) -> str:
    """A quoted phase date moved by a timedelta, written as `big bundle` writes dates."""
    return dates.format_utc(dates.parse_utc(value) + dt.timedelta(**delta))


def edit(folder: Path, fn) -> None:
    path = folder / "competition.yaml"
    doc = yaml.safe_load(path.read_text())
    fn(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def errors(folder, rule=None):
    return [f for f in lint_bundle(folder) if f.level == "error" and (rule is None or f.rule == rule)]


def assert_finds(folder, rule, text):
    found = errors(folder, rule)
    assert any(text in f.message for f in found), [str(f) for f in lint_bundle(folder)]


def test_good_bundle_has_no_errors_but_warns_synthetic(good):
    findings = lint_bundle(good)
    assert [f for f in findings if f.level == "error"] == []
    assert any(f.level == "warning" and "SYNTHETIC" in f.message for f in findings)


def test_cli_exit_codes(good, bundle, capsys):
    assert cli.main(["lint", str(good)]) == 0
    assert "OK:" in capsys.readouterr().out
    assert cli.main(["lint", str(good), "--strict"]) == 1  # synthetic warnings fail under --strict
    edit(bundle, lambda d: d.pop("version"))
    assert cli.main(["lint", str(bundle)]) == 1
    err = capsys.readouterr().err
    assert "error: [version]" in err and "error:" in err.splitlines()[-1]


# -- structure ---------------------------------------------------------------------------------

def test_structure_wrapped_zip(good, tmp_path):
    z = tmp_path / "wrapped.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in sorted(good.rglob("*")):
            if p.is_file():
                zf.write(p, "my_bundle/" + p.relative_to(good).as_posix())
    found = lint_bundle(z)
    assert found[0].rule == "structure" and "wraps a folder" in found[0].message


def test_structure_good_zip_and_not_yaml(good, bundle, tmp_path):
    z = tmp_path / "good.zip"
    B.zip_folder(good, z)
    assert [f for f in lint_bundle(z) if f.level == "error"] == []
    (bundle / "competition.yaml").write_text("title: [unclosed\n")
    assert_finds(bundle, "structure", "not valid YAML")


# -- version and required keys -------------------------------------------------------------------

@pytest.mark.parametrize("value, text", [(None, "no `version: 2`"), (2.0, "only 2"), ("1.5", "only 2")])
def test_version(bundle, value, text):
    edit(bundle, lambda d: d.pop("version") if value is None else d.__setitem__("version", value))
    assert_finds(bundle, "version", text)


def test_required_keys_and_singular_leaderboard(bundle):
    def fn(d):
        d["leaderboard"] = d.pop("leaderboards")
        d.pop("terms")
        d["registration_auto_approve"] = "yes"
    edit(bundle, fn)
    assert_finds(bundle, "keys", "`leaderboard:` (singular)")
    assert_finds(bundle, "keys", "`terms` is missing")
    assert_finds(bundle, "keys", "must be true or false")


# -- files and fields ----------------------------------------------------------------------------

def test_files(bundle):
    (bundle / "logo.png").write_bytes(b"GIF89a not a png")
    (bundle / "pages" / "research.md").write_text("   \n")
    edit(bundle, lambda d: d["pages"].append({"title": "Gone", "file": "pages/gone.md"}))
    assert_finds(bundle, "files", "not a PNG or JPEG")
    assert_finds(bundle, "files", "empty")
    assert_finds(bundle, "files", "does not exist")


def test_unfilled_fields(bundle):
    (bundle / "pages" / "about.md").write_text("# About\n\nOrganizers: {{organizer}}\n")
    edit(bundle, lambda d: d.__setitem__("contact_email", "{{contact_email}}"))
    assert_finds(bundle, "fields", "unfilled field {{organizer}}")
    assert_finds(bundle, "fields", "not an e-mail address")


# -- tasks and programs --------------------------------------------------------------------------

def test_tasks(bundle):
    def fn(d):
        d["tasks"][1]["index"] = 0
        d["tasks"][0].pop("scoring_program")
    edit(bundle, fn)
    assert_finds(bundle, "tasks", "duplicate task index 0")
    assert_finds(bundle, "tasks", "has no scoring_program")


def test_programs(bundle):
    (bundle / "scoring_program" / "metadata.yaml").write_text("description: no command here\n")
    (bundle / "ingestion_program" / "metadata.yaml").unlink()
    assert_finds(bundle, "programs", "no `command:`")
    assert_finds(bundle, "programs", "no metadata.yaml or metadata")


def test_program_zip_with_inner_folder(bundle):
    z = bundle / "scoring.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("scoring_program/metadata.yaml", "command: python3 score.py\n")
    edit(bundle, lambda d: d["tasks"][0].__setitem__("scoring_program", "scoring.zip"))
    assert_finds(bundle, "programs", "zip its contents")


# -- phases --------------------------------------------------------------------------------------

def test_phase_dates(bundle):
    def fn(d):
        d["phases"][1]["start"] = d["phases"][0]["end"]
    edit(bundle, fn)
    assert_finds(bundle, "phases", "same instant")


def test_phase_order_and_end(bundle):
    def fn(d):
        d["phases"][1]["start"] = shifted(d["phases"][0]["end"], days=-1)
        d["phases"][0].pop("end")
    edit(bundle, fn)
    assert_finds(bundle, "phases", "every phase but the last needs an `end`")


def test_phase_overlap(bundle):
    edit(bundle, lambda d: d["phases"][1].__setitem__("start", shifted(d["phases"][0]["end"], days=-3)))
    assert_finds(bundle, "phases", "Phases must be sequential")


def test_phase_limits_and_tasks(bundle):
    def fn(d):
        d["phases"][1].pop("max_submissions")
        d["phases"][1]["max_submissions_per_person"] = 100
        d["phases"][0].pop("execution_time_limit")
        d["phases"][1]["tasks"] = [7]
        d["phases"][0]["auto_migrate_to_this_phase"] = True
    edit(bundle, fn)
    assert_finds(bundle, "phases", "`max_submissions` is not set")
    assert_finds(bundle, "phases", "`max_submissions_per_person` is ignored")
    assert_finds(bundle, "phases", "`execution_time_limit` is not set")
    assert_finds(bundle, "phases", "task index 7 does not exist")
    assert_finds(bundle, "phases", "not allowed on the first phase")


# -- leaderboard and columns ---------------------------------------------------------------------

def test_leaderboard(bundle):
    def fn(d):
        d["leaderboards"][0]["submission_rule"] = "Force_Worst"
        d["leaderboards"][0]["key"] = "k" * 37
    edit(bundle, fn)
    assert_finds(bundle, "leaderboard", "is not one of")
    assert_finds(bundle, "leaderboard", "at most 36 characters")


def test_leaderboard_rule_must_be_explicit(bundle):
    edit(bundle, lambda d: d["leaderboards"][0].pop("submission_rule"))
    assert_finds(bundle, "leaderboard", "choose it explicitly")


def test_columns(bundle):
    def fn(d):
        cols = d["leaderboards"][0]["columns"]
        cols[1]["index"] = 0
        cols[2]["title"] = "A title that is far too long for CodaBench"
        cols.append({"title": "Avg", "key": "avg", "index": 99, "computation": "avg", "computation_indexes": "4,5"})
        d["leaderboards"][0]["primary_index"] = 1000
    edit(bundle, fn)
    assert_finds(bundle, "columns", "duplicate column index 0")
    assert_finds(bundle, "columns", "CodaBench allows 36")
    assert_finds(bundle, "columns", "YAML list of ints")
    assert_finds(bundle, "columns", "no column has index 1000")


# -- fact sheet ----------------------------------------------------------------------------------

def test_fact_sheet(bundle):
    def fn(d):
        d["fact_sheet"]["paper_url"]["is_on_leaderboard"] = True  # unquoted boolean
        d["fact_sheet"]["code_url"].pop("selection")
        d["fact_sheet"]["model_name"]["key"] = "name"
        d["fact_sheet"]["external_data"]["selection"] = ["yes", "no"]
    edit(bundle, fn)
    assert_finds(bundle, "fact_sheet", "quote it")
    assert_finds(bundle, "fact_sheet", "exactly the keys")
    assert_finds(bundle, "fact_sheet", "must equal the mapping key")
    assert_finds(bundle, "fact_sheet", "checkbox needs selection")


# -- scores.json keys == non-computed column keys -----------------------------------------------

def test_scores_keys(bundle):
    def fn(d):
        cols = d["leaderboards"][0]["columns"]
        cols.pop()  # organsmnist_kappa: the scorer writes it, no column takes it
        cols.append({"title": "Speed", "key": "speed", "index": 500, "sorting": "desc"})
    edit(bundle, fn)
    assert_finds(bundle, "scores", "organsmnist_kappa")
    assert_finds(bundle, "scores", "speed")


def test_computed_columns_are_not_scores(bundle):
    def fn(d):
        cols = d["leaderboards"][0]["columns"]
        cols.append({"title": "Mean of means", "key": "mean3", "index": 100, "sorting": "desc",
                     "computation": "avg", "computation_indexes": [0, 1, 2]})
    edit(bundle, fn)
    assert errors(bundle) == []


def test_scoring_program_without_package(bundle):
    shutil.rmtree(bundle / "scoring_program" / "big")
    assert_finds(bundle, "programs", "has no big/ package")


# -- no labels where participants can download ---------------------------------------------------

def test_labels_in_starting_kit(bundle):
    shutil.copy(bundle / "final" / "reference_data" / "pathmnist.npy", bundle / "starting_kit" / "extra.npy")
    assert_finds(bundle, "labels", "shaped like labels")
    assert_finds(bundle, "labels", "byte-identical to the reference file")


def test_reference_manifest_in_input_data(bundle):
    shutil.copy(bundle / "final" / "reference_data" / "manifest.json", bundle / "final" / "input_data" / "manifest.json")
    assert_finds(bundle, "labels", "reference-data manifest")


def test_npz_and_stray_arrays_in_input_data(bundle, synth_root):
    shutil.copy(synth_root / "breastmnist.npz", bundle / "dev" / "input_data" / "breastmnist.npz")
    np.save(bundle / "dev" / "input_data" / "extra_28.npy", np.zeros((3, 28, 28), np.uint8))
    assert_finds(bundle, "labels", "holds label arrays")
    assert_finds(bundle, "labels", "only {flag}_{size}.npy")


def test_reference_data_as_input_data(bundle):
    edit(bundle, lambda d: d["tasks"][1].__setitem__("input_data", d["tasks"][1]["reference_data"]))
    assert_finds(bundle, "labels", "are the same path")


def test_labels_in_solutions(bundle):
    (bundle / "solutions").mkdir()
    shutil.copy(bundle / "dev" / "reference_data" / "chestmnist.npy", bundle / "solutions" / "chest.npy")
    edit(bundle, lambda d: d.__setitem__("solutions", [{"index": 0, "path": "solutions/", "tasks": [0]}]))
    assert_finds(bundle, "labels", "shaped like labels")


# -- BIG rules -----------------------------------------------------------------------------------

def test_ingestion_budget_below_limit(bundle):
    cfg = bundle / "ingestion_program" / "config.yaml"
    B._rewrite_yaml_config(cfg, {"time_budget_s": 600}, "")
    assert_finds(bundle, "big", "time_budget_s 600 is not below the effective limit 600 s")


def warnings(folder, rule=None):
    return [f for f in lint_bundle(folder) if f.level == "warning" and (rule is None or f.rule == rule)]


def test_stale_budget_warns(bundle):
    """A budget that no longer derives from the limits (a limit edited after the build): rebuild."""
    B._rewrite_yaml_config(bundle / "ingestion_program" / "config.yaml", {"time_budget_s": 300}, "")
    found = warnings(bundle, "big")
    assert any("differs from 480 s" in f.message and "rebuild" in f.message for f in found), [str(f) for f in found]
    assert errors(bundle) == []


def test_execution_time_limit_above_the_cap(bundle):
    """1200 s asked on the default queue: a warning with the effective 600 s; the budget is checked
    against the effective limit, so the built 480 s stays right."""
    edit(bundle, lambda d: [p.__setitem__("execution_time_limit", 1200) for p in d["phases"]])
    found = warnings(bundle, "phases")
    assert sum("exceeds the default queue's cap (600 s)" in f.message and "= 600 s" in f.message
               for f in found) == 2
    assert errors(bundle) == [] and not [f for f in warnings(bundle, "big") if "time_budget_s" in f.message]
    B._rewrite_yaml_config(bundle / "ingestion_program" / "config.yaml", {"time_budget_s": 1080}, "")
    assert_finds(bundle, "big", "not below the effective limit 600 s")


def test_recorded_cap_is_read_back(bundle):
    """The cap `big bundle --platform-cap` recorded decides; a queue set after the build contradicts it."""
    cfg = bundle / "ingestion_program" / "config.yaml"
    edit(bundle, lambda d: [p.__setitem__("execution_time_limit", 1200) for p in d["phases"]])
    B._rewrite_yaml_config(cfg, {"platform_cap_s": 1200, "time_budget_s": 1080}, "")
    assert errors(bundle) == [] and not [f for f in warnings(bundle) if "cap" in f.message]
    edit(bundle, lambda d: d.__setitem__("queue", "12345678-1234-1234-1234-123456789abc"))
    assert any("platform_cap_s is 1200 s but competition.yaml sets a queue" in f.message for f in warnings(bundle, "big"))
    B._rewrite_yaml_config(cfg, {"platform_cap_s": "soon"}, "")
    assert_finds(bundle, "big", "platform_cap_s")


def test_code_track_image_without_torch_warns(bundle):
    edit(bundle, lambda d: d.__setitem__("docker_image", "codalab/codalab-legacy:py312"))
    assert any(f.rule == "big" and "has no torch" in f.message for f in lint_bundle(bundle))


def test_size_quotas_warn(bundle, monkeypatch):
    import big.codabench.lint as lint_mod

    monkeypatch.setattr(lint_mod, "UPLOAD_QUOTA", 1000)
    monkeypatch.setattr(lint_mod, "WORKER_CACHE", 1000)
    found = [f for f in lint_bundle(bundle) if f.rule == "big"]
    assert any("upload quota" in f.message for f in found) and any("data cache" in f.message for f in found)
    assert all(f.level == "warning" for f in found)


def test_zip_lint_reads_only_headers_of_large_arrays(good, tmp_path, monkeypatch):
    """A real bundle holds GBs of images: `big lint b.zip` unpacks them only as far as their headers."""
    import big.codabench.lint as lint_mod

    total = sum(p.stat().st_size for p in good.rglob("*") if p.is_file())
    monkeypatch.setattr(lint_mod, "PARTIAL_NPY_BYTES", 10_000)
    monkeypatch.setattr(lint_mod, "_HEADER_BYTES", 256)
    monkeypatch.setattr(lint_mod, "UPLOAD_QUOTA", total - 1)  # the true size is just above the quota
    z = tmp_path / "b.zip"
    B.zip_folder(good, z)
    seen = []
    real = lint_mod.lint_folder
    monkeypatch.setattr(lint_mod, "lint_folder", lambda root, sizes=None: seen.append(sizes) or real(root, sizes=sizes))
    found = lint_bundle(z)
    assert [f for f in found if f.level == "error"] == []
    assert seen[0] and all(k.endswith(".npy") for k in seen[0])  # large arrays were cut to their headers
    assert any("upload quota" in f.message for f in found)  # ... but counted at their true size
    # a label-shaped array is still found inside such a zip
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    np.save(bad / "starting_kit" / "y.npy", np.zeros((50_000, 1), np.uint8))
    B.zip_folder(bad, tmp_path / "bad.zip")
    assert any(f.rule == "labels" for f in lint_bundle(tmp_path / "bad.zip") if f.level == "error")


def test_phase_in_the_past_warns(bundle):
    edit(bundle, lambda d: (d["phases"][0].__setitem__("start", dt.datetime(2020, 1, 1)),
                            d["phases"][0].__setitem__("end", dt.datetime(2020, 6, 30, 23, 59, 59)),
                            d["phases"][1].__setitem__("start", dt.datetime(2020, 7, 1))))
    found = lint_bundle(bundle)
    assert any(f.level == "warning" and "ended on 2020-06-30" in f.message for f in found)
    assert not [f for f in found if f.level == "error"]


# -- phase dates as CodaBench stores them (codabench.md §1.5) -------------------------------------

@pytest.fixture(scope="module")
def noon(synth_root, tmp_path_factory) -> Path:
    """`big bundle --start "2026-12-01 12:00:00"`: back-to-back phases within the same day."""
    tmp = tmp_path_factory.mktemp("lint_noon")
    assert cli.main(["bundle", "--data-root", str(synth_root), "--out", str(tmp / "b.zip"), "--input-sizes", "28",
                     "--allow-synthetic", "--organizer", "Noon", "--contact-email", "noon@example.org",
                     "--start", "2026-12-01 12:00:00", "--keep-folder", str(tmp / "folder")]) == 0
    return tmp / "folder"


def test_noon_start_lints_clean_and_dates_are_stored_as_written(noon):
    findings = lint_bundle(noon)
    assert [f for f in findings if f.level == "error"] == []
    assert [str(f) for f in findings if "SYNTHETIC" not in f.message] == []  # only the synthetic-data warnings
    text = (noon / "competition.yaml").read_text()
    assert "end: '2027-06-01 11:59:59'" in text and "start: '2027-06-01 12:00:00'" in text
    for ph in yaml.safe_load(text)["phases"]:
        for key in ("start", "end"):
            if key in ph:
                assert dates.codabench_datetime(ph[key]) == dates.parse_utc(ph[key]), (key, ph[key])


def unquote_dates(folder: Path) -> None:
    """What an organizer's editor (or an older template) does: the phase dates without quotes."""
    path = folder / "competition.yaml"
    path.write_text(re.sub(r"^(\s+(?:start|end):\s*)'([^']*)'", r"\1\2", path.read_text(), flags=re.M))


def test_hand_edited_unquoted_datetimes_conflict(noon, tmp_path, capsys):
    bundle = tmp_path / "bundle"
    shutil.copytree(noon, bundle)
    unquote_dates(bundle)
    assert "end: 2027-06-01 11:59:59\n" in (bundle / "competition.yaml").read_text()
    found = [f for f in lint_bundle(bundle) if f.rule == "phases"]
    cut = [f for f in found if f.level == "warning" and "cuts it to midnight" in f.message]
    assert len(cut) == 3  # dev start, dev end, test start
    assert any("phases[0] (Development).end" == f.where and "written as 2027-06-01 11:59:59" in f.message
               and "stores 2027-06-01 00:00:00" in f.message and "end: '2027-06-01 11:59:59'" in f.message for f in cut)
    assert any(f.level == "error" and "'Phases dates conflict'" in f.message for f in found)
    assert cli.main(["lint", str(bundle)]) == 1
    assert "Phases dates conflict" in capsys.readouterr().err


def test_hand_edited_template_dates_close_a_day_early(good, bundle):
    """The old template's unquoted `end: 2027-05-31 23:59:59` is stored as midnight: a warning, no error."""
    unquote_dates(bundle)
    found = [f for f in lint_bundle(bundle) if f.rule == "phases"]
    assert not [f for f in found if f.level == "error"]
    assert any(f.level == "warning" and f.where.endswith(".end") and "stores 2027-05-31 00:00:00 UTC" in f.message
               for f in found), [str(f) for f in found]


def test_unreadable_date_is_an_error(bundle):
    edit(bundle, lambda d: d["phases"][1].__setitem__("start", 20270601))
    assert_finds(bundle, "phases", "the upload fails")
