"""`big bundle` end to end: layout, options, what changed, lint, and full run-local flows.

The main flow uses the genuine MedMNIST files (breast, pneumonia, retina at 28 px) beside synthetic
files for the other nine datasets, as an organizer would build a bundle, then runs a result
submission and a code submission through the local compute-worker emulator.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from big import cli, data, limits, registry
from big.codabench import bundle as B
from big.codabench import dates
from big.codabench.lint import lint_bundle
from big.codabench.worker import RunLocalOptions, run_local
from big.errors import UsageError
from big.reference import Reference
from big.submission import write_submission
from conftest import SHARED_DATA, image_python, needs_genuine

ORG = {"organizer": "Test Organizers (Uni X)", "contact_email": "big@example.org"}


def fast_scoring(folder: Path, n_boot: int = 20, report: bool = True) -> None:
    """Fewer bootstrap replicates (and optionally no plots) in a built bundle folder: fast tests."""
    cfg = folder / "scoring_program" / "config.yaml"
    B._rewrite_yaml_config(cfg, {"n_boot": n_boot, "report": report}, "")


def predictions_for(ref_dir: Path, *, quality: float = 0.7, seed: int = 0) -> dict:
    ref = Reference(ref_dir)
    rng = np.random.default_rng(seed)
    out = {}
    for ds in registry.datasets():
        y = ref.labels(ds.flag)
        s = y.astype(float) if ds.kind == registry.MULTILABEL else np.eye(ds.n_labels)[y[:, 0]]
        out[ds.flag] = np.clip(quality * s + (1 - quality) * rng.random(s.shape), 0, 1)
    return out


@pytest.fixture(scope="module")
def mixed_bundle(mixed_root, tmp_path_factory):
    """Both tracks, 28 px input images, genuine files for 3 datasets."""
    tmp = tmp_path_factory.mktemp("mixed_bundle")
    res = B.build_bundle(B.BundleOptions(data_root=mixed_root, out=tmp / "big_bundle.zip", input_sizes=[28],
                                         allow_synthetic=True, keep_folder=tmp / "folder", start="2026-12-10",
                                         n_boot=20, **ORG), log=lambda m: None)
    return res


@pytest.fixture(scope="module")
def results_bundle(synth_root, tmp_path_factory):
    """Results track only, resolution 64 only."""
    tmp = tmp_path_factory.mktemp("results_bundle")
    res = B.build_bundle(B.BundleOptions(data_root=synth_root, out=tmp / "b.zip", tracks=["results"],
                                         resolutions=[64], allow_synthetic=True, keep_folder=tmp / "folder", n_boot=0,
                                         **ORG),
                         log=lambda m: None)
    fast_scoring(res.folder, n_boot=0, report=False)
    return res


# ---------------------------------------------------------------------------------------------
# layout and options
# ---------------------------------------------------------------------------------------------

@needs_genuine
def test_bundle_layout_and_zip_root(mixed_bundle):
    res = mixed_bundle
    with zipfile.ZipFile(res.zip_path) as zf:
        names = zf.namelist()
    assert "competition.yaml" in names  # at the zip root, no wrapping folder
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    for need in ("logo.png", "pages/terms.md", "scoring_program/metadata.yaml", "scoring_program/big/registry.json",
                 "ingestion_program/metadata.yaml", "ingestion_program/big/ingestion/program.py",
                 "dev/reference_data/manifest.json", "final/reference_data/breastmnist.npy",
                 "dev/input_data/pathmnist_28.npy", "final/input_data/manifest.json",
                 "starting_kit/big/registry.json", "starting_kit/pyproject.toml", "starting_kit/README.md"):
        assert need in names, need
    # images only in input_data: exactly the split's image array, never labels
    for split, folder in (("val", "dev"), ("test", "final")):
        man = json.loads((res.folder / folder / "input_data" / "manifest.json").read_text())
        assert man["split"] == split and man["sizes"] == [28]
        arr = np.load(res.folder / folder / "input_data" / "breastmnist_28.npy")
        assert np.array_equal(arr, data.read_images(SHARED_DATA / "breastmnist.npz", split))  # genuine bytes
        assert not any("label" in p.name for p in (res.folder / folder / "input_data").iterdir())
    doc = yaml.safe_load((res.folder / "competition.yaml").read_text())
    assert doc["version"] == 2 and doc["docker_image"] == B.IMAGE_CODE
    assert doc["leaderboards"][0]["columns"] == registry.leaderboard_columns()
    assert doc["phases"][0]["start"] == "2026-12-10 00:00:00"  # a quoted string: CodaBench keeps the time
    assert dates.parse_utc(doc["phases"][1]["start"]) > dates.parse_utc(doc["phases"][0]["end"])
    assert "SYNTHETIC" in doc["title"] and doc["contact_email"] == ORG["contact_email"]
    assert "ingestion_program" in doc["tasks"][0] and doc["tasks"][1]["input_data"] == "final/input_data/"
    about = (res.folder / "pages" / "about.md").read_text()
    assert ORG["organizer"] in about and "{{" not in about
    assert "SYNTHETIC DATA" in (res.folder / "pages" / "overview.md").read_text()
    data_page = (res.folder / "pages" / "data.md").read_text()
    assert "CC BY-NC 4.0" in data_page and "DermaMNIST" in data_page
    # the ingestion time budget: the effective limit min(cap, execution_time_limit) minus the margin
    icfg = (res.folder / "ingestion_program" / "config.yaml").read_text()
    cfg = yaml.safe_load(icfg)
    assert cfg["platform_cap_s"] == limits.DEFAULT_QUEUE_CAP_S
    assert cfg["time_budget_s"] == limits.time_budget(min(600, doc["phases"][0]["execution_time_limit"])) == 480
    assert "#" in icfg
    assert res.synthetic and not [f for f in res.findings if f.level == "error"]
    assert not [f for f in lint_bundle(res.zip_path) if f.level == "error"]


def test_time_budget_margin():
    assert B.time_budget(1200) == 1080       # 120 s margin
    assert B.time_budget(3600) == 3240       # 10 %
    assert B.time_budget(600) == 480


def fake_repo(tmp: Path, edit=None) -> Path:
    """A copy of what `big bundle` reads from the repository, with competition.yaml edited as text."""
    import shutil

    repo = tmp / "repo"
    repo.mkdir(parents=True)
    for name in ("competition.yaml", "logo.png", "pages", "scoring_program", "ingestion_program"):
        src = Path(B.REPO) / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, repo / name)
    if edit:
        path = repo / "competition.yaml"
        path.write_text(edit(path.read_text()))
    return repo


def build(synth_root, tmp: Path, repo: Path = B.REPO, **kw) -> B.BundleResult:
    opts = dict(data_root=synth_root, out=tmp / "b.zip", input_sizes=[28], allow_synthetic=True,
                keep_folder=tmp / "folder", repo=repo, **ORG)
    opts.update(kw)
    return B.build_bundle(B.BundleOptions(**opts), log=lambda m: None)


def test_unquoted_template_dates_are_written_quoted(synth_root, tmp_path):
    """An organizer's template with unquoted date-times: the bundle keeps the times they wrote, quoted."""
    import re

    repo = fake_repo(tmp_path, lambda text: re.sub(r"^(\s+(?:start|end):\s*)'([^']*)'", r"\1\2", text, flags=re.M))
    assert "end: 2027-05-31 23:59:59\n" in (repo / "competition.yaml").read_text()
    res = build(synth_root, tmp_path, repo)
    text = (res.folder / "competition.yaml").read_text()
    assert "end: '2027-05-31 23:59:59'" in text and "start: '2027-06-01 00:00:00'" in text
    assert "phases[0].end: 2027-05-31 23:59:59 (unquoted) -> '2027-05-31 23:59:59'" in res.changes
    assert not [f for f in res.findings if f.rule == "phases"]


def test_platform_cap_carried_through(synth_root, tmp_path):
    """--platform-cap is stored in the bundle and every figure derives from min(cap, limit)."""
    repo = fake_repo(tmp_path, lambda text: text.replace("execution_time_limit: 600", "execution_time_limit: 1500"))
    res = build(synth_root, tmp_path / "a", repo, platform_cap=1200)
    cfg = yaml.safe_load((res.folder / "ingestion_program" / "config.yaml").read_text())
    assert cfg["platform_cap_s"] == 1200 and cfg["time_budget_s"] == 1080
    page = (res.folder / "pages" / "submission.md").read_text()
    assert "may run **1200 s** (the phase asks for 1500 s; the shared queue stops every job at 1200 s)" in page
    assert "after **1080 s**" in page
    assert sum("exceeds the default queue's cap (1200 s)" in f.message for f in lint_bundle(res.folder)) == 2
    # the default cap (600 s) without --platform-cap
    res = build(synth_root, tmp_path / "b", repo)
    assert yaml.safe_load((res.folder / "ingestion_program" / "config.yaml").read_text())["time_budget_s"] == 480
    assert "after **480 s**" in (res.folder / "pages" / "submission.md").read_text()
    # an own queue: no cap, the phase's limit applies unchanged
    res = build(synth_root, tmp_path / "c", repo, queue="12345678-1234-1234-1234-123456789abc")
    cfg = yaml.safe_load((res.folder / "ingestion_program" / "config.yaml").read_text())
    assert cfg["platform_cap_s"] is None and cfg["time_budget_s"] == limits.time_budget(1500) == 1350
    page = (res.folder / "pages" / "submission.md").read_text()
    assert "may run **1500 s**." in page and "own compute queue" in page
    assert not [f for f in lint_bundle(res.folder) if "cap" in f.message]
    with pytest.raises(UsageError, match="give one of the two"):
        build(synth_root, tmp_path / "d", repo, queue="12345678-1234-1234-1234-123456789abc", platform_cap=600)


def test_results_only_bundle(results_bundle):
    res = results_bundle
    doc = yaml.safe_load((res.folder / "competition.yaml").read_text())
    assert doc["docker_image"] == B.IMAGE_RESULTS
    assert all("ingestion_program" not in t and "input_data" not in t for t in doc["tasks"])
    assert not (res.folder / "ingestion_program").exists() and not (res.folder / "dev" / "input_data").exists()
    assert "64 px" in doc["title"]
    cfg = yaml.safe_load((res.folder / "scoring_program" / "config.yaml").read_text())
    assert cfg["resolutions"] == [64] and cfg["n_boot"] == 0
    assert "at **64 px** only" in (res.folder / "pages" / "submission.md").read_text()
    assert any("resolutions" in c for c in res.changes) and any("docker_image" in c for c in res.changes)


@pytest.mark.parametrize("kwargs, message", [
    ({"tracks": ["results", "video"]}, "--tracks"),
    ({"resolutions": [28], "input_sizes": [64]}, "--input-sizes"),
    ({"resolutions": [32]}, "--resolutions"),
    ({"contact_email": "not-an-email"}, "--contact-email"),
    ({"queue": "my-gpu"}, "--queue"),
    ({"organizer": None}, "--organizer"),
    ({"start": "1st of May"}, "--start"),
    ({"platform_cap": 0}, "--platform-cap"),
    ({"platform_cap": 1200, "tracks": ["results"]}, "results-only bundle (--tracks results) has no ingestion program"),
])
def test_bad_options_write_nothing(synth_root, tmp_path, kwargs, message):
    opts = dict(data_root=synth_root, out=tmp_path / "b.zip", allow_synthetic=True, **ORG)
    opts.update(kwargs)
    with pytest.raises(UsageError) as exc:
        B.build_bundle(B.BundleOptions(**opts), log=lambda m: None)
    assert message in str(exc.value.problems) or message in exc.value.summary
    assert list(tmp_path.iterdir()) == []


def test_synthetic_files_refused_without_flag(synth_root, tmp_path):
    code = cli.main(["bundle", "--data-root", str(synth_root), "--out", str(tmp_path / "b.zip"),
                     "--tracks", "results", "--organizer", "X", "--contact-email", "x@example.org"])
    assert code == 2  # organizer problem: the files are not the genuine MedMNIST+ files
    assert list(tmp_path.iterdir()) == []


def test_bundle_cli_prints_changes_and_contents(synth_root, tmp_path, capsys):
    code = cli.main(["bundle", "--data-root", str(synth_root), "--out", str(tmp_path / "b.zip"), "--tracks", "results",
                     "--allow-synthetic", "--organizer", "X", "--contact-email", "x@example.org",
                     "--queue", "12345678-1234-1234-1234-123456789abc", "--docker-image", "me/big:1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "changed from the template:" in out and "docker_image: 'codalab/codalab-legacy:gpu310' -> 'me/big:1'" in out
    assert "queue:" in out and "contents (uncompressed):" in out and "scoring_program/big/" in out
    assert "zipped" in out and "lint: no errors" in out
    assert [p.name for p in tmp_path.iterdir()] == ["b.zip"]  # no staging folder left behind


def test_committed_template_in_sync():
    """competition.yaml columns and the pages' generated blocks equal what the registry generates."""
    drift = B.template_drift()
    assert drift == [], "; ".join(drift) + " — refresh with `python -m big.codabench.bundle`"


def test_estimate_matches_issue_figures():
    gb = {s: B.estimate_input_bytes([s], ["test"]) / 1e9 for s in registry.SIZES}
    assert [round(gb[s], 2) for s in registry.SIZES] == [0.11, 0.60, 2.38, 7.29]


# ---------------------------------------------------------------------------------------------
# run-local: the whole platform flow
# ---------------------------------------------------------------------------------------------

@needs_genuine
@pytest.mark.slow
def test_run_local_result_submission_with_genuine_files(mixed_bundle, tmp_path, capsys):
    """A result submission through the emulated worker on the bundle holding the genuine files."""
    res = mixed_bundle
    sub = write_submission(tmp_path / "sub.zip", predictions_for(res.folder / "dev" / "reference_data"), 28)
    code = cli.main(["run-local", "--bundle", str(res.zip_path), "--submission", str(sub), "--phase", "development",
                     "--work-dir", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "status: Finished" in out and "Mean AUC:" in out and "Resolution: 28" in out
    run = tmp_path / "run"
    # the worker's layout and files
    for p in ("prediction/program/breastmnist_28.csv", "prediction/output/metadata", "scoring/input/ref/manifest.json",
              "scoring/input/res/metadata", "scoring/output/scores.json", "scoring/output/detailed_results.html",
              "logs/scoring_stdout", "logs/prediction_ingestion_stderr"):
        assert (run / p).exists(), p
    meta = yaml.safe_load((run / "prediction/output/metadata").read_text())
    assert set(meta) == {"exitCode", "elapsedTime", "ingestionExitCode", "ingestionElapsedTime"}
    assert meta["exitCode"] is None  # no command ran for the submission: its files were copied
    scores = json.loads((run / "scoring/output/scores.json").read_text())
    assert list(scores) == registry.score_keys() and 0.5 < scores["auc"] <= 1
    details = json.loads((run / "scoring/output/details.json").read_text())
    assert details["split"] == "val"
    assert details["datasets"]["pneumoniamnist"]["n"] == registry.get("pneumoniamnist").n_samples["val"]  # genuine


@needs_genuine
@pytest.mark.slow
def test_run_local_code_submission(mixed_bundle, tmp_path):
    """model.py through the bundled ingestion program, then the scorer (test phase)."""
    res = mixed_bundle
    sub = tmp_path / "code.zip"
    with zipfile.ZipFile(sub, "w") as zf:
        zf.writestr("model.py",
                    "import numpy as np\nC = " + json.dumps({d.flag: d.n_labels for d in registry.datasets()}) + "\n"
                    "class Model:\n    resolution = 28\n"
                    "    def predict(self, dataset, images):\n"
                    "        x = images.reshape(len(images), -1).mean(axis=1, keepdims=True) / 255.0\n"
                    "        return np.clip(np.repeat(x, C[dataset], axis=1) * np.linspace(0.2, 1, C[dataset]), 0, 1)\n")
    r = run_local(RunLocalOptions(bundle=res.folder, submission=sub, phase="test", work_dir=tmp_path / "run"),
                  log=lambda m: None)
    assert r.status == "Finished", (r.message, (tmp_path / "run/logs/prediction_ingestion_stderr").read_text())
    assert r.metadata["ingestionExitCode"] == 0 and r.metadata["exitCode"] is None
    status = json.loads((tmp_path / "run/prediction/output/ingestion_status.json").read_text())
    assert status["status"] == "ok"
    assert not (tmp_path / "run/prediction/output/model.py").exists()  # ingestion removed the copied code
    assert dict((k, v) for _, k, v, _ in r.row)["resolution"] == 28


@pytest.mark.slow
def test_run_local_rejects_other_resolution(results_bundle, tmp_path):
    """A competition restricted to 64 px: a 28 px submission fails clearly in the scoring step."""
    res = results_bundle
    sub = write_submission(tmp_path / "s.zip", predictions_for(res.folder / "final" / "reference_data"), 28)
    r = run_local(RunLocalOptions(bundle=res.folder, submission=sub, phase="test", work_dir=tmp_path / "run"),
                  log=lambda m: None)
    assert r.status == "Failed" and "exited with code 1" in r.message
    err = (tmp_path / "run/logs/scoring_stderr").read_text()
    assert "64" in err and "28" in err
    assert not (tmp_path / "run/scoring/output/scores.json").exists()


@pytest.mark.codabench_env
@pytest.mark.slow
def test_results_bundle_runs_in_py312_image_venv(results_bundle, tmp_path):
    """The bundled scoring program alone (project not installed) under the py312 image's pins."""
    py = image_python("py312")
    res = results_bundle
    sub = write_submission(tmp_path / "s.zip", predictions_for(res.folder / "final" / "reference_data"), 64)
    r = run_local(RunLocalOptions(bundle=res.folder, submission=sub, phase="test", work_dir=tmp_path / "run",
                                  python=str(py)), log=lambda m: None)
    assert r.status == "Finished", (tmp_path / "run/logs/scoring_stderr").read_text()[-2000:]
    assert str(py) in r.commands[-1][0] or r.commands[-1][0] == str(py)


@needs_genuine
@pytest.mark.codabench_env
@pytest.mark.slow
def test_code_bundle_runs_in_gpu310_image_venv(mixed_bundle, tmp_path):
    """Ingestion and scoring programs of the code-track bundle under the gpu310 image's pins."""
    py = image_python("gpu310")
    res = mixed_bundle
    sub = tmp_path / "code.zip"
    with zipfile.ZipFile(sub, "w") as zf:
        zf.writestr("model.py", "import numpy as np\nC = " + json.dumps({d.flag: d.n_labels for d in registry.datasets()})
                    + "\nclass Model:\n    resolution = 28\n    def predict(self, dataset, images):\n"
                    "        return np.full((len(images), C[dataset]), 0.5)\n")
    r = run_local(RunLocalOptions(bundle=res.folder, submission=sub, phase="development", work_dir=tmp_path / "run",
                                  python=str(py)), log=lambda m: None)
    assert r.status == "Finished", ((tmp_path / "run/logs/prediction_ingestion_stderr").read_text()[-2000:],
                                    (tmp_path / "run/logs/scoring_stderr").read_text()[-2000:])
    assert r.metadata["ingestionExitCode"] == 0
    assert abs(dict((k, v) for _, k, v, _ in r.row)["auc"] - 0.5) < 1e-9  # constant scores: chance AUC


def test_download_fetches_only_missing_files(synth_root, tmp_path, monkeypatch):
    """--download asks for each missing file once (here a stand-in writes a synthetic file)."""
    import big.reference as reference

    root = tmp_path / "data"
    root.mkdir()
    for p in synth_root.iterdir():
        if not p.name.startswith("pathmnist"):
            os.symlink(p, root / p.name)
    asked = []

    def fake_download(data_root, flag, size, *, progress=None, opener=None):
        asked.append((flag, size))
        return data.synthesize(data_root, sizes=[size], flags=[flag], n_per_split="train=120,val=60,test=80",
                               seed=7)[0]

    monkeypatch.setattr(reference, "download", fake_download)
    res = B.build_bundle(B.BundleOptions(data_root=root, out=tmp_path / "b.zip", input_sizes=[28, 64], download=True,
                                         allow_synthetic=True, **ORG), log=lambda m: None)
    assert sorted(asked) == [("pathmnist", 28), ("pathmnist", 64)]
    assert res.zip_path.is_file()
