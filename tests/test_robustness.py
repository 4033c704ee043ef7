"""BIG-C (the robustness benchmark): sampling, generation, task data, scoring, bundle, lint, run-local.

The corrupted set comes from `big corrupt` in the robustness venv (`make robustness-env`: real
MedMNIST-C, a few corruptions for speed) when it exists, otherwise from `big corrupt --stand-in`;
the genuine-data test of medmnistc needs the venv (it fails under CI=true when the venv is missing,
as the image venvs do) and the genuine files in ../shared/data/medmnist, upsampled to 224 px inside
the test (never written anywhere else).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from big import data, registry
from big.errors import ReferenceDataError, UsageError
from big.robustness import columns, layout, standin
from big.robustness import scoring as rscoring
from big.robustness.corrupt import CorruptOptions, corrupt
from big.robustness.task import RobustnessReference, write_task

from conftest import REPO, SHARED_DATA, genuine_available

ROBUST_PY = REPO / ".venv-robustness" / "bin" / "python"
#: a few MedMNIST-C corruptions covering its back ends (PIL, ImageMagick via Wand, skimage's rng, numpy)
FEW = "pixelate,jpeg_compression,contrast_down,motion_blur,impulse_noise"


def robustness_python() -> Path:
    """The robustness venv's interpreter; missing: fail under CI=true, else skip with the reason."""
    if not ROBUST_PY.exists():
        msg = f"{ROBUST_PY} is missing: run `make robustness-env` (medmnistc, Debian's libmagickwand-dev)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return ROBUST_PY


def run_big(python: Path, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["MPLCONFIGDIR"] = env.get("MPLCONFIGDIR", "/tmp/mpl-big-tests")
    return subprocess.run([str(python), "-m", "big", *args], cwd=str(cwd), env=env, capture_output=True, text=True,
                          timeout=900)


# ---------------------------------------------------------------------------------------------
# pure parts
# ---------------------------------------------------------------------------------------------

def test_columns_are_one_table_within_codabench_limits():
    cols = columns.leaderboard_columns()
    assert [c["key"] for c in cols] == columns.score_keys()
    assert cols[0]["key"] == columns.PRIMARY == "auc_c"
    assert [c["index"] for c in cols] == list(range(len(cols)))
    for c in cols:
        assert len(c["key"]) <= 36 and len(c["title"]) <= 36, c
    assert {c["key"]: c["sorting"] for c in cols}["auc_drop"] == "asc"
    assert [k for k in columns.score_keys() if k.endswith("_auc_c") and k != "auc_c"] == \
        [f"{f}_auc_c" for f in registry.flags()]


def test_stratified_sample_is_seeded_proportional_and_covers_every_class():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), [700, 200, 90, 10]).reshape(-1, 1).astype(np.uint8)
    a = layout.stratified_sample(y, registry.MULTICLASS, 100, np.random.default_rng(1))
    b = layout.stratified_sample(y, registry.MULTICLASS, 100, np.random.default_rng(1))
    c = layout.stratified_sample(y, registry.MULTICLASS, 100, np.random.default_rng(2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.size == 100 and np.all(np.diff(a) > 0)
    assert np.bincount(y[a, 0], minlength=4).tolist() == [70, 20, 9, 1]
    # fewer images than N: all of them, in order
    assert np.array_equal(layout.stratified_sample(y[:50], registry.MULTICLASS, 100, rng), np.arange(50))
    # a rare class still appears once when N allows
    y2 = np.array([[0]] * 995 + [[1]] * 5, dtype=np.uint8)
    s = layout.stratified_sample(y2, registry.BINARY, 20, np.random.default_rng(0))
    assert s.size == 20 and (y2[s, 0] == 1).sum() >= 1
    # multi-label: strata by the rarest label present
    ml = (rng.random((500, 14)) < np.linspace(0.02, 0.4, 14)).astype(np.uint8)
    s = layout.stratified_sample(ml, registry.MULTILABEL, 60, np.random.default_rng(0))
    assert s.size == 60 and len(set(s.tolist())) == 60


def test_standin_corruptions_are_seeded_and_named_as_standins():
    img = (np.random.default_rng(0).random((224, 224, 3)) * 255).astype(np.uint8)
    cs = standin.corruptors("pathmnist")
    assert all(n.startswith("standin_") for n in cs)
    for name, f in cs.items():
        a = f(img, 5, np.random.SeedSequence(3))
        assert a.dtype == np.uint8 and a.shape == img.shape
        assert np.array_equal(a, f(img, 5, np.random.SeedSequence(3)))
        assert not np.array_equal(a, img), name
    grey = img[..., 0]
    assert cs["standin_box_blur"](grey, 1, np.random.SeedSequence(0)).shape == grey.shape


# ---------------------------------------------------------------------------------------------
# generation (stand-in), task data and scoring
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def robust_root(tmp_path_factory) -> Path:
    """Synthetic MedMNIST+ files at 28 px (the sample model trains there) and 224 px (corrupted)."""
    root = tmp_path_factory.mktemp("robust_data")
    data.synthesize(root, sizes=(28, 224), n_per_split="train=24,val=10,test=14", seed=5, signal=0.8)
    return root


@pytest.fixture(scope="module")
def standin_set(robust_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cset") / "standin"
    corrupt(CorruptOptions(data_root=robust_root, out=out, seed=11, per_dataset=6, dev_per_dataset=4,
                           stand_in=True, allow_synthetic=True), log=lambda m: None)
    return out


def test_corrupt_standin_layout_and_manifest(standin_set, robust_root):
    cs = layout.find_split(standin_set, "test")
    m = cs.manifest
    assert m["generator"] == "stand-in" and "NOT MedMNIST-C" in m["label"] and "MedMNIST-C (" not in m["label"]
    assert m["baselines"] is None and m["seed"] == 11 and m["seed_is_public"] is False
    assert m["severities"] == [1, 3, 5] and m["sizes"] == [28, 64] and m["synthetic_source"] is True
    assert m["packages"]["numpy"] == np.__version__
    dev = layout.find_split(standin_set, "val")
    assert dev.seed == layout.PUBLIC_DEV_SEED and dev.manifest["seed_is_public"] is True
    for flag in registry.flags():
        e = cs.entry(flag)
        ds = registry.get(flag)
        assert e["n"] == 6 and e["corruptions"] == list(standin.NAMES)
        assert e["blocks"][0] == ["clean", 0] and len(e["blocks"]) == 1 + 4 * 3
        imgs = cs.images(flag, 28)
        assert imgs.shape == (6 * 13, *ds.image_shape(28))
        # the sample ids are recorded: the labels are those rows of the split
        src = cs.source_index(flag)
        assert e["sample_ids"] == src.tolist()
        assert np.array_equal(cs.labels(flag), data.read_labels(robust_root / ds.file_name(224), "test")[src])
        # the clean block is the 224 px test image resized by the documented rule
        from PIL import Image

        img224 = data.read_images(robust_root / ds.file_name(224), "test")[src[0]]
        want = np.asarray(Image.fromarray(img224).resize((28, 28), Image.Resampling.BICUBIC))
        assert np.array_equal(imgs[0], want)
        assert not np.array_equal(imgs[6:12], imgs[0:6])  # corrupted differs from clean
    cs.verify()


def test_corrupt_is_deterministic_and_refuses_bad_options(standin_set, robust_root, tmp_path):
    again = corrupt(CorruptOptions(data_root=robust_root, out=tmp_path / "c", seed=11, splits=["test"], per_dataset=6,
                                   flags=["breastmnist"], stand_in=True, allow_synthetic=True), log=lambda m: None)
    first = layout.find_split(standin_set, "test").entry("breastmnist")["files"]
    second = layout.CorruptedSet(again["test"]).entry("breastmnist")["files"]
    assert first == second
    with pytest.raises(UsageError, match="private"):
        corrupt(CorruptOptions(data_root=robust_root, out=tmp_path / "d", seed=0, stand_in=True, allow_synthetic=True))
    with pytest.raises(UsageError, match="--seed is required"):
        corrupt(CorruptOptions(data_root=robust_root, out=tmp_path / "d", stand_in=True))
    with pytest.raises(UsageError, match="severities"):
        corrupt(CorruptOptions(data_root=robust_root, out=tmp_path / "d", seed=3, severities=[0, 6], stand_in=True))
    with pytest.raises(ReferenceDataError, match="MD5"):  # synthetic files without --allow-synthetic
        corrupt(CorruptOptions(data_root=robust_root, out=tmp_path / "d", seed=3, flags=["breastmnist"],
                               stand_in=True), log=lambda m: None)
    assert not (tmp_path / "d" / "test").exists()  # nothing half-written
    with pytest.raises(UsageError, match="has none of them"):
        corrupt(CorruptOptions(data_root=robust_root, out=tmp_path / "d", seed=3, flags=["breastmnist"],
                               corruptions=["nope"], stand_in=True, allow_synthetic=True), log=lambda m: None)


def test_corrupt_without_medmnistc_says_how_to_get_it(robust_root, tmp_path):
    import importlib.util

    if importlib.util.find_spec("medmnistc") is not None:
        pytest.skip("medmnistc is importable in this interpreter")
    with pytest.raises(UsageError, match="not usable") as info:
        corrupt(CorruptOptions(data_root=robust_root, out=tmp_path / "x", seed=3))
    text = "\n".join(info.value.report())
    assert "make robustness-env" in text and ".venv-robustness/bin/python -m big corrupt" in text
    assert "np.fromstring" in text or "cannot be imported" in text


@pytest.fixture(scope="module")
def standin_task(standin_set, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("task")
    write_task(layout.find_split(standin_set, "test"), dest, [28, 64])
    return dest


def test_task_pools_and_hides_the_map(standin_task, standin_set):
    cs = layout.find_split(standin_set, "test")
    ref = RobustnessReference(standin_task / "reference_data")
    inp = json.loads((standin_task / "input_data" / "manifest.json").read_text())
    assert inp["format"] == "big-input-data/1" and "blocks" not in json.dumps(inp)
    assert sorted(p.name for p in (standin_task / "input_data").iterdir()) == sorted(
        ["manifest.json"] + [f"{f}_{s}.npy" for f in registry.flags() for s in (28, 64)])
    for flag in registry.flags():
        labels, m = ref.data(flag)
        pooled = np.load(standin_task / "input_data" / f"{flag}_28.npy")
        canon = cs.images(flag, 28)
        n = cs.n(flag)
        # id i shows canonical row block*n + sample: the map says which
        assert np.array_equal(pooled, canon[m[:, 0] * n + m[:, 1]])
        assert not np.array_equal(m[:, 0], np.sort(m[:, 0]))  # shuffled
        assert np.array_equal(m[:, 2], cs.source_index(flag)[m[:, 1]])
    assert ref.expected_n == {f: cs.rows(f) for f in registry.flags()}


def _prediction_folder(ref: RobustnessReference, dest: Path, *, clean_only: bool = False, status: str = "ok") -> Path:
    """Oracle scores on the clean copy; with ``clean_only`` noise elsewhere (corrupted rows are random)."""
    from big.submission import write_submission

    rng = np.random.default_rng(0)
    preds = {}
    for ds in registry.datasets():
        lab, m = ref.data(ds.flag)
        y = lab[m[:, 1]]
        s = y.astype(float) if ds.kind == registry.MULTILABEL else np.eye(ds.n_labels)[y[:, 0]]
        if clean_only:
            noisy = m[:, 0] != 0
            s[noisy] = rng.random((int(noisy.sum()), ds.n_labels))
        preds[ds.flag] = s
    z = write_submission(dest.with_suffix(".zip"), preds, 28)
    dest.mkdir()
    zipfile.ZipFile(z).extractall(dest)
    (dest / "ingestion_status.json").write_text(json.dumps({"track": "code", "status": status, "dataset": None,
                                                            "batch": None, "message": "done " + "x" * 1000}))
    return dest


def test_scoring_perfect_and_clean_only_models(standin_task, tmp_path):
    ref = RobustnessReference(standin_task / "reference_data")
    perfect = _prediction_folder(ref, tmp_path / "perfect")
    assert rscoring.run(perfect, standin_task / "reference_data", tmp_path / "o1") == 0
    s = json.loads((tmp_path / "o1" / "scores.json").read_text())
    assert list(s) == columns.score_keys()
    assert s["auc_c"] == 1.0 and s["auc_clean"] == 1.0 and s["auc_drop"] == 0.0 and s["resolution"] == 28
    d = json.loads((tmp_path / "o1" / "details.json").read_text())
    assert d["benchmark"] == "robustness" and d["normalized_error"] is None and "not MedMNIST-C" in \
        d["normalized_error_note"]
    assert set(d["datasets"]["pathmnist"]["corruptions"]) == set(standin.NAMES)
    assert set(d["datasets"]["pathmnist"]["corruptions"]["standin_box_blur"]) == {"1", "3", "5"}
    page = (tmp_path / "o1" / "detailed_results.html").read_text()
    assert "STAND-IN" in page and "heat map" in page and "data:image/png;base64" in page
    clean_only = _prediction_folder(ref, tmp_path / "clean_only", clean_only=True)
    assert rscoring.run(clean_only, standin_task / "reference_data", tmp_path / "o2") == 0
    s2 = json.loads((tmp_path / "o2" / "scores.json").read_text())
    assert s2["auc_clean"] == 1.0 and s2["auc_c"] < 0.9 and s2["auc_drop"] > 0.1
    d2 = json.loads((tmp_path / "o2" / "details.json").read_text())
    f = "dermamnist"
    blocks = [v["auc"] for c in d2["datasets"][f]["corruptions"].values() for v in c.values()]
    assert abs(np.mean(blocks) - s2[f"{f}_auc_c"]) < 1e-12
    assert abs(np.mean([d2["datasets"][g]["auc_drop"] for g in registry.flags()]) - s2["auc_drop"]) < 1e-12


def test_scoring_is_code_only_and_cuts_messages_in_the_hidden_phase(standin_task, tmp_path, capsys):
    ref = RobustnessReference(standin_task / "reference_data")
    folder = _prediction_folder(ref, tmp_path / "p")
    (folder / "ingestion_status.json").unlink()  # what a result submission leaves
    assert rscoring.run(folder, standin_task / "reference_data", tmp_path / "o") == 1
    assert not (tmp_path / "o" / "scores.json").exists()
    assert "code submissions only" in (tmp_path / "o" / "detailed_results.html").read_text()
    failed = _prediction_folder(ref, tmp_path / "f", status="failed")
    capsys.readouterr()
    assert rscoring.run(failed, standin_task / "reference_data", tmp_path / "o3") == 1
    err = capsys.readouterr().err
    assert "more characters are not shown" in err and "x" * 900 not in err  # the Test sample's seed is private
    cfg = rscoring.RobustnessConfig(hide_messages=False)
    assert rscoring.run(failed, standin_task / "reference_data", tmp_path / "o4", config=cfg) == 1
    assert "x" * 900 in capsys.readouterr().err


def test_scoring_refuses_a_changed_reference(standin_task, tmp_path):
    ref_copy = tmp_path / "ref"
    shutil.copytree(standin_task / "reference_data", ref_copy)
    m = np.load(ref_copy / "breastmnist_map.npy")
    np.save(ref_copy / "breastmnist_map.npy", m[::-1])
    folder = _prediction_folder(RobustnessReference(standin_task / "reference_data"), tmp_path / "p")
    assert rscoring.run(folder, ref_copy, tmp_path / "o") == 2
    assert "id map does not match" in (tmp_path / "o" / "detailed_results.html").read_text()


def test_normalized_error_follows_medmnistc_eval():
    per = {"breastmnist": {"clean": {"balacc": 0.9}, "by_corruption": {"pixelate": {"balacc": 0.7},
                                                                        "unknown": {"balacc": 0.5}}}}
    base = {"breastmnist": {"clean_score": 0.2, "raw_scores": {"pixelate": 0.4}}}
    ne = rscoring.normalized_error(per, base)
    v = ne["datasets"]["breastmnist"]
    assert abs(v["be"] - 0.3 / 0.4) < 1e-12 and abs(v["rbe"] - (0.3 - 0.1) / (0.4 - 0.2)) < 1e-12
    assert list(v["be_by_corruption"]) == ["pixelate"]
    assert rscoring.normalized_error(per, {}) is None


# ---------------------------------------------------------------------------------------------
# the pipeline: big corrupt (medmnistc when its venv exists, else the stand-in) -> bundle -> lint -> run-local
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pipeline_set(robust_root, standin_set, tmp_path_factory):
    """(corrupted set, generator): medmnistc in its venv on a few corruptions, else the stand-in set."""
    if not ROBUST_PY.exists():
        return standin_set, "stand-in"
    out = tmp_path_factory.mktemp("cset") / "medmnistc"
    r = run_big(ROBUST_PY, "corrupt", "--data-root", str(robust_root), "--out", str(out), "--seed", "11",
                "--per-dataset", "4", "--dev-per-dataset", "3", "--corruptions", FEW, "--allow-synthetic")
    assert r.returncode == 0, r.stderr[-3000:]
    return out, "medmnistc"


@pytest.fixture(scope="module")
def pipeline_bundle(pipeline_set, tmp_path_factory):
    cdir, generator = pipeline_set
    work = tmp_path_factory.mktemp("bundle")
    r = run_big(Path(sys.executable), "bundle", "--benchmark", "robustness", "--corrupted", str(cdir), "--out",
                str(work / "big_c.zip"), "--allow-synthetic", "--organizer", "Test Org", "--contact-email",
                "test@example.org", "--keep-folder", str(work / "folder"))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "input images at 28 px" in r.stdout and "input images at 64 px" in r.stdout
    return work / "big_c.zip", work / "folder", generator


def test_bundle_lints_clean_and_keeps_the_test_map_hidden(pipeline_bundle):
    zip_path, folder, generator = pipeline_bundle
    r = run_big(Path(sys.executable), "lint", str(zip_path))
    assert r.returncode == 0 and "0 error(s)" in r.stdout, r.stdout + r.stderr
    doc = __import__("yaml").safe_load((folder / "competition.yaml").read_text())
    assert [c["key"] for c in doc["leaderboards"][0]["columns"]] == columns.score_keys()
    test_phase = doc["phases"][-1]
    assert test_phase["hide_output"] is True and test_phase["hide_prediction_output"] is True
    assert all("ingestion_program" in t for t in doc["tasks"]) and doc["make_input_data_available"] is False
    assert "TEST BUNDLE" in doc["title"]
    # what participant code reads holds no map and no labels
    for f in (folder / "final" / "input_data").iterdir():
        assert not f.name.endswith(("_map.npy", "_labels.npy"))
    ref_man = json.loads((folder / "final" / "reference_data" / "manifest.json").read_text())
    assert ref_man["generator"] == generator and ref_man["seed_is_public"] is False
    pages = "".join(p.read_text() for p in (folder / "pages").glob("*.md"))
    assert "_Filled in by" not in pages and "{{" not in pages
    assert "How the two benchmarks relate" in pages and "does not isolate the network" in pages
    assert all(f"`{k}`" in pages for k in columns.score_keys())  # the columns block, from the one table
    assert f"public seed **{layout.PUBLIC_DEV_SEED}**" in pages
    kit = (folder / "starting_kit" / "README.md").read_text()
    assert "code submissions only" in kit and "_Filled in by" not in kit


def test_lint_flags_a_robustness_bundle_that_would_leak(pipeline_bundle, tmp_path):
    import yaml

    from big.codabench.lint import lint_bundle

    _, folder, _ = pipeline_bundle
    copy = tmp_path / "b"
    shutil.copytree(folder, copy)
    doc = yaml.safe_load((copy / "competition.yaml").read_text())
    del doc["phases"][-1]["hide_prediction_output"]
    doc["make_input_data_available"] = True
    del doc["tasks"][0]["ingestion_program"]
    doc["leaderboards"][0]["columns"] = doc["leaderboards"][0]["columns"][:-1]
    (copy / "competition.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    errors = [str(f) for f in lint_bundle(copy) if f.level == "error"]
    text = "\n".join(errors)
    assert "hide_prediction_output is not true" in text
    assert "make_input_data_available" in text and "code submissions only" in text
    assert "organsmnist_auc_c" in text  # the robustness score keys, not BIG's


def test_run_local_sample_code_submission_finishes_with_a_robustness_page(pipeline_bundle, robust_root, tmp_path):
    zip_path, _, generator = pipeline_bundle
    py = Path(sys.executable)
    r = run_big(py, "sample-submission", "--data-root", str(robust_root), "--size", "28", "--out",
                str(tmp_path / "sample.zip"))
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_big(py, "run-local", "--bundle", str(zip_path), "--submission", str(tmp_path / "sample.zip"),
                "--phase", "test", "--work-dir", str(tmp_path / "run"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "status: Finished" in r.stdout
    out = tmp_path / "run" / "scoring" / "output"
    scores = json.loads((out / "scores.json").read_text())
    assert list(scores) == columns.score_keys() and 0.0 <= scores["auc_c"] <= 1.0
    page = (out / "detailed_results.html").read_text()
    assert "BIG-C" in page and "Severity curves" in page
    assert ("STAND-IN" in page) == (generator == "stand-in")
    details = json.loads((out / "details.json").read_text())
    assert details["generator"] == generator
    # the prediction output holds only the 12 CSVs, the status and the worker's metadata
    pred = sorted(p.name for p in (tmp_path / "run" / "prediction" / "output").iterdir())
    assert pred == sorted(["ingestion_status.json", "metadata"] + [f"{f}_28.csv" for f in registry.flags()])


# ---------------------------------------------------------------------------------------------
# medmnistc itself, on the genuine files (upsampled to 224 px for this test only)
# ---------------------------------------------------------------------------------------------

def _upsampled_224(root: Path) -> list:
    """{flag}_224.npz with the val and test splits of the genuine 28/64 px files, upsampled (PIL bicubic) to
    224 px. Not genuine 224 px files (their MD5 differs): `big corrupt --allow-synthetic` is needed."""
    from PIL import Image

    made = []
    for flag, name in (("breastmnist", "breastmnist_64.npz"), ("pneumoniamnist", "pneumoniamnist.npz"),
                       ("retinamnist", "retinamnist.npz")):
        src = SHARED_DATA / name
        arrays = {}
        with np.load(src) as npz:
            for split in ("val", "test"):
                imgs = npz[f"{split}_images"]
                arrays[f"{split}_images"] = np.stack([np.asarray(Image.fromarray(i).resize(
                    (224, 224), Image.Resampling.BICUBIC)) for i in imgs])
                arrays[f"{split}_labels"] = npz[f"{split}_labels"]
        np.savez(root / registry.get(flag).file_name(224), **arrays)
        made.append(flag)
    return made


@pytest.mark.skipif(not genuine_available(), reason=f"genuine MedMNIST files not in {SHARED_DATA}")
def test_big_corrupt_with_medmnistc_on_genuine_files(tmp_path):
    py = robustness_python()
    root = tmp_path / "up224"
    root.mkdir()
    flags = _upsampled_224(root)
    out = tmp_path / "c"
    args = ["corrupt", "--data-root", str(root), "--out", str(out), "--seed", "11", "--per-dataset", "3",
            "--dev-per-dataset", "2", "--flags", ",".join(flags), "--allow-synthetic"]
    r = run_big(py, *args)
    assert r.returncode == 0, r.stderr[-3000:]
    # the baselines and corruption lists, read from the installed package in the same venv (not copied here)
    probe = subprocess.run([str(py), "-c", "import json; from medmnistc.utils.baselines import BASELINES as B; "
                            "from medmnistc.corruptions.registry import CORRUPTIONS_DS as C; "
                            f"print(json.dumps({{f: [B[f], list(C[f])] for f in {flags!r}}}))"],
                           capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr[-2000:]
    truth = json.loads(probe.stdout)
    cs = layout.find_split(out, "test")
    m = cs.manifest
    assert m["generator"] == "medmnistc" and m["label"].startswith("MedMNIST-C (medmnistc 0.1.0")
    assert m["packages"]["medmnistc"] == "0.1.0" and m["packages"]["numpy"].startswith("1.26")
    assert "ImageMagick" in m["packages"]["ImageMagick"] and m["synthetic_source"] is True
    assert m["complete"] is False  # three datasets only
    for flag in flags:
        e = cs.entry(flag)
        assert m["baselines"][flag] == truth[flag][0]
        assert e["corruptions"] == truth[flag][1] and e["complete"] is True
        assert len(e["blocks"]) == 1 + 3 * len(truth[flag][1])
        ds = registry.get(flag)
        imgs = cs.images(flag, 64)
        assert imgs.shape == (3 * len(e["blocks"]), *ds.image_shape(64))
        n = e["n"]
        for b in range(1, len(e["blocks"])):
            assert not np.array_equal(imgs[b * n:(b + 1) * n], imgs[:n]), e["blocks"][b]
        assert e["timing_s"] and all(t["images"] == 3 * 3 for t in e["timing_s"].values())
    # seeded: the same seed gives the same files
    r2 = run_big(py, "corrupt", "--data-root", str(root), "--out", str(tmp_path / "c2"), "--seed", "11",
                 "--per-dataset", "3", "--splits", "test", "--flags", "breastmnist", "--allow-synthetic")
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert layout.CorruptedSet(tmp_path / "c2" / "test").entry("breastmnist")["files"] == \
        cs.entry("breastmnist")["files"]


# ---------------------------------------------------------------------------------------------
# reviewer tools: big compare and big leaderboard on BIG-C scoring outputs
# ---------------------------------------------------------------------------------------------

def test_compare_and_leaderboard_accept_robustness_outputs(standin_task, tmp_path):
    from big.analysis import compare
    from big.cli import main

    ref_dir = standin_task / "reference_data"
    ref = RobustnessReference(ref_dir)
    subs = tmp_path / "subs"
    subs.mkdir()
    for name, clean_only in (("oracle", False), ("clean_only", True)):
        folder = _prediction_folder(ref, tmp_path / f"pred_{name}", clean_only=clean_only)
        assert rscoring.run(folder, ref_dir, subs / name, config=rscoring.RobustnessConfig(report=False)) == 0
    shutil.copytree(tmp_path / "pred_clean_only", subs / "clean_only_predictions")  # a prediction folder too
    results = compare.load_results([f"a={subs / 'oracle'}", f"b={subs / 'clean_only'}"])
    assert [r.benchmark for r in results] == ["robustness", "robustness"]
    assert results[0].mean["auc"] == json.loads((subs / "oracle" / "scores.json").read_text())["auc_c"]
    assert main(["compare", f"a={subs / 'oracle'}", f"b={subs / 'clean_only'}", "--out", str(tmp_path / "cmp"),
                 "--no-plots"]) == 0
    assert (tmp_path / "cmp" / "differences.csv").is_file()
    big_like = compare.Result(name="big", source="x", split="test", resolution=28, reference_sha256="0",
                              reference_synthetic=False, values=results[0].values, mean=results[0].mean)
    with pytest.raises(compare.UsageError, match="BIG and BIG-C"):
        compare.check_compatible([results[0], big_like])
    assert main(["leaderboard", str(subs), "--reference", str(ref_dir), "--out", str(tmp_path / "board"),
                 "--bootstrap", "0", "--jobs", "1", "--no-progress"]) == 0
    board = json.loads((tmp_path / "board" / "leaderboard.json").read_text())
    text = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "BIG-C (robustness)" in text
    assert board["benchmark"] == "robustness" and "corrupted" in board["competition_ranking"]
    rows = board["boards"]["28"]["auc"]
    assert rows[0]["submission"] == "oracle" and rows[0]["mean"] == 1.0
    assert {r["submission"] for r in rows} == {"oracle", "clean_only", "clean_only_predictions"}
    assert rows[1]["mean"] == rows[2]["mean"]  # the prediction folder scores as its scoring output


@pytest.mark.codabench_env
@pytest.mark.parametrize("image", ["py312", "gpu310"])
def test_robustness_scoring_program_runs_in_the_codabench_images(image, standin_task, tmp_path):
    """The bundled BIG-C scoring program (package beside score.py, project not installed) in the image venvs."""
    from conftest import bundled_program, image_env, image_python

    py = image_python(image)
    prog = bundled_program("robustness/scoring_program", tmp_path / "scoring_program")
    folder = _prediction_folder(RobustnessReference(standin_task / "reference_data"), tmp_path / "res")
    inp = tmp_path / "input"
    inp.mkdir()
    os.symlink(folder, inp / "res")
    os.symlink(standin_task / "reference_data", inp / "ref")
    r = subprocess.run([str(py), str(prog / "score.py"), str(inp), str(tmp_path / "out")], cwd=str(prog),
                       env=image_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert list(scores) == columns.score_keys() and scores["auc_c"] == 1.0
    assert (tmp_path / "out" / "detailed_results.html").is_file()
    assert "Traceback" not in r.stderr


def test_normalized_error_only_for_medmnistc_sets_at_224_px():
    per = {f: {"n": 5, "clean": {"auc": 0.9, "balacc": 0.8, "kappa": 0.5},
               "corrupted": {"auc": 0.8, "balacc": 0.6, "kappa": 0.3}, "auc_drop": 0.1,
               "by_corruption": {"pixelate": {"auc": 0.8, "balacc": 0.6, "kappa": 0.3}}} for f in registry.flags()}

    class Ref:  # the attributes build_details reads from a RobustnessReference
        split, synthetic, label, severities = "test", False, "MedMNIST-C (medmnistc 0.1.0)", [1, 3, 5]
        generator = "medmnistc"
        manifest = {"complete": True, "baselines": {f: {"clean_score": 0.1, "raw_scores": {"pixelate": 0.5}}
                                                    for f in registry.flags()}}

        def sha256(self):
            return "0" * 64

    scores = {"auc_drop": 0.1}
    d224 = rscoring.build_details(per, scores, Ref(), 224, {}, {})
    assert abs(d224["normalized_error"]["mean_be"] - 0.4 / 0.5) < 1e-12
    assert "computed on this sample" in d224["normalized_error_note"] and "1, 3, 5" in d224["normalized_error_note"]
    d64 = rscoring.build_details(per, scores, Ref(), 64, {}, {})
    assert d64["normalized_error"] is None and "224 px only" in d64["normalized_error_note"]
    from big.robustness.report import _normalized_error

    assert "computed on this sample" in _normalized_error(d224) and "224 px only" in _normalized_error(d64)
