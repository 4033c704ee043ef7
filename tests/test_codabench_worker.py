"""`big run-local`: the compute-worker rules one by one, then fault flows through a small bundle."""
from __future__ import annotations

import json
import math
import os
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from big import cli, limits, registry
from big.codabench import bundle as B
from big.codabench import worker as W
from big.codabench import jobrules as R
from big.errors import UsageError
from big.reference import Reference
from big.submission import write_submission

ORG = {"organizer": "Worker Test", "contact_email": "worker@example.org"}
N_LABELS = {d.flag: d.n_labels for d in registry.datasets()}


# ---------------------------------------------------------------------------------------------
# pure rules
# ---------------------------------------------------------------------------------------------

def test_metadata_lookup_order(tmp_path):
    assert R.read_command(tmp_path) == ("missing", None)
    (tmp_path / "metadata").write_text("command: python3 b.py\n")
    assert R.read_command(tmp_path) == ("ok", "python3 b.py")
    (tmp_path / "metadata.yaml").write_text("command: python3 a.py\n")
    assert R.find_metadata(tmp_path).name == "metadata.yaml"
    assert R.read_command(tmp_path) == ("ok", "python3 a.py")
    (tmp_path / "metadata.yaml").write_text("description: code only\n")
    assert R.read_command(tmp_path) == ("no-command", None)
    (tmp_path / "metadata.yaml").write_text("command: [unclosed\n")
    assert R.read_command(tmp_path) == ("no-command", None)


def test_placeholder_substitution():
    cmd = "python $program/score.py $input $output $hidden $shared $predictions $tmp"
    assert R.substitute(cmd, kind="program", is_scoring=True) == (
        "python /app/program/score.py /app/input /app/output /app/input/ref /app/shared /app/input/res /app/output")
    ing = "python $ingestion_program/ingestion.py $input $output $ingestion_program $submission_program"
    assert R.substitute(ing, kind="ingestion", is_scoring=False) == (
        "python /app/program/ingestion.py /app/input_data /app/output /app/program /app/ingested_program")
    assert R.substitute("$predictions", kind="program", is_scoring=False) == "/app/output"
    assert R.substitute("$program/x", kind="ingestion", is_scoring=True,
                        ingestion_only_during_scoring=True) == "/app/ingestion_program/x"


def test_container_paths_map_to_run_folders(tmp_path):
    mounts = {"/app/program": tmp_path / "p", "/app/input": tmp_path / "i", "/app/input_data": tmp_path / "d"}
    argv = ["python3", "/app/program/score.py", "/app/input", "--data=/app/input_data/x", "/app/output", "/app/inputs"]
    assert R.map_paths(argv, mounts) == ["python3", f"{tmp_path}/p/score.py", f"{tmp_path}/i",
                                         f"--data={tmp_path}/d/x", "/app/output", "/app/inputs"]


def test_docker_arguments(tmp_path):
    mounts = {"/app/program": tmp_path / "prog", "/app/output": tmp_path / "out", "/app/data": tmp_path / "data"}
    args = R.docker_args(image="codalab/codalab-legacy:gpu310", mounts=mounts, name="job1",
                         argv=["python3", "/app/program/ingest.py"], network=False, gpu=True)
    assert args[:3] == ["docker", "run", "--rm"]
    assert args[args.index("-w") + 1] == "/app/program"
    assert "PYTHONUNBUFFERED=1" in args and "no-new-privileges" in args
    assert "http_proxy=" in args and "https_proxy=" in args  # the worker's (empty) proxy variables
    assert args[args.index("--network") + 1] == "none"
    assert args[args.index("--device") + 1] == "nvidia.com/gpu=all"  # the CDI request of a USE_GPU worker
    vols = [args[i + 1] for i, a in enumerate(args) if a == "-v"]
    assert f"{(tmp_path / 'prog').resolve()}:/app/program" in vols
    assert f"{(tmp_path / 'data').resolve()}:/app/data:ro" in vols
    i = args.index("codalab/codalab-legacy:gpu310")
    assert args[i + 1:] == ["python3", "/app/program/ingest.py"]  # container paths, unmapped, no shell
    plain = R.docker_args(image="x", mounts=mounts, argv=[], name="n")
    assert "--network" not in plain and "--device" not in plain and "--gpus" not in plain  # no GPU by default


def test_worker_builds_docker_jobs(tmp_path, monkeypatch):
    opts = W.RunLocalOptions(bundle=tmp_path, submission=tmp_path / "s.zip", docker=True, network=False)
    w = W.Worker(opts, log=lambda m: None)
    mounts = {"/app/program": tmp_path / "p", "/app/output": tmp_path / "o", "/app/input": tmp_path / "i",
              "/app/shared": tmp_path / "s"}
    cmd = R.substitute("python3 $program/score.py $input $output", kind="program", is_scoring=True)
    c = w._container("scoring", cmd, mounts, "codalab/codalab-legacy:py312")
    img = c.argv.index("codalab/codalab-legacy:py312")
    assert c.argv[img + 1:] == ["python3", "/app/program/score.py", "/app/input", "/app/output"]
    assert f"{(tmp_path / 'i').resolve()}:/app/input" in c.argv and "--network" in c.argv
    # without a docker engine the run stops with a clear message before doing anything
    monkeypatch.setattr(W.shutil, "which", lambda name: None)
    with pytest.raises(UsageError, match="no docker command"):
        w.run()


def test_local_python_replaces_python3(tmp_path):
    w = W.Worker(W.RunLocalOptions(bundle=tmp_path, submission=tmp_path, python="/opt/py/bin/python"))
    c = w._container("scoring", "python3 /app/program/score.py", {"/app/program": tmp_path}, "img")
    assert c.argv == ["/opt/py/bin/python", f"{tmp_path}/score.py"]


def test_container_paths_in_program_config_are_mapped(tmp_path):
    (tmp_path / "config.yaml").write_text("data_dir: /app/data     # fallback\nbatch_size: 256\n")
    changed = R.map_config_paths(tmp_path, {"/app/data": tmp_path / "empty"})
    assert changed == [f"/app/data -> {tmp_path / 'empty'}"]
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["data_dir"] == str(tmp_path / "empty")


def test_worker_environment():
    host = {"PATH": "/usr/bin", "HOME": "/root", "PYTHONPATH": "/x", "VIRTUAL_ENV": "/v", "http_proxy": "http://p:1",
            "HTTPS_PROXY": "http://p:2", "CUDA_VISIBLE_DEVICES": "0", "BIG_SHARED_DATA": "/d"}
    env = R.worker_env(gpu=False, python_bin=Path("/venv/bin"), base=host)
    assert env["PYTHONUNBUFFERED"] == "1" and env["http_proxy"] == "" and env["https_proxy"] == ""
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env["PATH"] == "/venv/bin" + os.pathsep + "/usr/bin"
    assert not {"PYTHONPATH", "VIRTUAL_ENV", "HTTPS_PROXY", "BIG_SHARED_DATA"} & set(env)
    assert "CUDA_VISIBLE_DEVICES" not in R.worker_env(gpu=True, base=host)  # --gpus: the GPUs stay visible


def test_scores_read_as_the_worker_reads_them(tmp_path):
    out = tmp_path
    assert R.parse_scores(out)[0] is None and "Could not find scores file" in R.parse_scores(out)[1][0]
    (out / "scores.json").write_text('{"auc": NaN}')
    doc, problems = R.parse_scores(out)  # Python's json accepts NaN: the worker goes on to Finished
    assert problems == [] and math.isnan(doc["auc"])
    (out / "scores.json").write_text('{"auc": 0.5,')
    assert "Could not decode scores json" in R.parse_scores(out)[1][0]
    (out / "scores.json").unlink()
    (out / "scores.txt").write_text("auc: 0.75\nbalacc: 0.5\n")
    assert R.parse_scores(out) == ({"auc": 0.75, "balacc": 0.5}, [])


def test_score_upload_fails_as_a_whole():
    cols = [{"title": "AUC", "key": "auc", "index": 0}, {"title": "Kappa", "key": "kappa", "index": 1}]
    assert R.upload_scores({"auc": 0.5, "kappa": "0.25", "note": "x"}, cols) == ({"auc": 0.5, "kappa": 0.25}, [])
    for bad, why in (({"auc": float("nan"), "kappa": 0.1}, "not valid JSON"),
                     ({"auc": 0.5, "extra": {"x": float("inf")}}, "not valid JSON"),
                     ({"auc": 1e12, "kappa": 0.1}, "not a number below 1e10"),
                     ({"auc": True, "kappa": 0.1}, "not a number below 1e10"),
                     ({"auc": {"mean": 0.5}}, "not a number below 1e10"),
                     ([0.5], "not a flat mapping")):
        posted, reasons = R.upload_scores(bad, cols)
        assert posted is None and why in reasons[0], (bad, reasons)


def test_scores_matched_to_columns_by_key():
    cols = [{"title": "AUC", "key": "auc", "index": 0, "precision": 4},
            {"title": "Kappa", "key": "kappa", "index": 1},
            {"title": "Avg", "key": "avg", "index": 2, "computation": "avg", "computation_indexes": [0, 1]}]
    row, dropped, missing = R.match_columns({"auc": 0.8, "extra": 1.0, "avg": 5.0}, cols)
    assert row[0] == ("AUC", "auc", 0.8, 4) and row[1][2] is None and row[2][2] == 0.8
    assert dropped == ["extra", "avg"] and missing == ["kappa"]


# ---------------------------------------------------------------------------------------------
# flows through a small bundle
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundle(synth_root, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("worker_bundle")
    res = B.build_bundle(B.BundleOptions(data_root=synth_root, out=tmp / "b.zip", input_sizes=[28],
                                         allow_synthetic=True, keep_folder=tmp / "folder", **ORG), log=lambda m: None)
    B._rewrite_yaml_config(res.folder / "scoring_program" / "config.yaml", {"n_boot": 0, "report": False}, "")
    return res.folder


def run(bundle, tmp_path, files: dict, phase="development", **kw) -> W.RunResult:
    tmp_path.mkdir(parents=True, exist_ok=True)
    sub = tmp_path / "sub.zip"
    with zipfile.ZipFile(sub, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return W.run_local(W.RunLocalOptions(bundle=bundle, submission=sub, phase=phase, work_dir=tmp_path / "run", **kw),
                       log=lambda m: None)


def csv_files(bundle, split_folder="dev", size=28) -> dict:
    ref = Reference(bundle / split_folder / "reference_data")
    from big.submission import csv_name, format_prediction_csv

    out = {}
    for ds in registry.datasets():
        n = ref.expected_n[ds.flag]
        out[csv_name(ds.flag, size)] = format_prediction_csv(np.full((n, ds.n_labels), 0.5)).decode()
    return out


def model_py(body: str) -> str:
    return ("import numpy as np, time\nC = " + json.dumps(N_LABELS) + "\nclass Model:\n    resolution = 28\n"
            "    def predict(self, dataset, images):\n" + body)


def edited(bundle: Path, tmp_path: Path, *, limit=None, tasks=None, icfg=None, scoring_files=None) -> Path:
    """A copy of the bundle, hand-edited: the phases' execution_time_limit, each task (a function),
    ingestion config values, files of the scoring program."""
    dest = tmp_path / "edited_bundle"
    shutil.copytree(bundle, dest, symlinks=True)
    path = dest / "competition.yaml"
    doc = yaml.safe_load(path.read_text())
    for ph in doc["phases"]:
        if limit is not None:
            ph["execution_time_limit"] = limit
    for task in doc["tasks"]:
        if tasks is not None:
            tasks(task)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    if icfg:
        B._rewrite_yaml_config(dest / "ingestion_program" / "config.yaml", icfg, "")
    for name, text in (scoring_files or {}).items():
        (dest / "scoring_program" / name).write_text(text)
    return dest


def test_phase_selection(bundle, tmp_path):
    r = run(bundle, tmp_path, csv_files(bundle, "final"), phase="Test")
    assert r.status == "Finished" and r.phase == "Test" and r.task == "BIG test split"
    with pytest.raises(UsageError, match="no phase"):
        run(bundle, tmp_path / "x", csv_files(bundle), phase="final-final")


def test_zip_with_metadata_file_passes_nothing_on(bundle, tmp_path):
    """A results zip holding `metadata`: the worker copies nothing; the scorer explains why."""
    files = csv_files(bundle)
    files["metadata"] = "description: my results\n"
    r = run(bundle, tmp_path, files)
    assert r.status == "Failed"
    left = sorted(p.name for p in (tmp_path / "run/prediction/output").iterdir())
    assert not [n for n in left if n.endswith(".csv")] and "metadata" in left
    assert "metadata" in (tmp_path / "run/logs/scoring_stderr").read_text()


def test_submission_with_a_command_runs_beside_ingestion(bundle, tmp_path):
    files = {"metadata.yaml": "command: python3 $program/job.py $output\n",
             "job.py": "import sys, pathlib\npathlib.Path(sys.argv[1], 'hello.txt').write_text('hi')\nsys.exit(3)\n"}
    r = run(bundle, tmp_path, files)
    assert r.metadata["exitCode"] == 3  # recorded, not checked: the job went on to scoring
    assert (tmp_path / "run/prediction/output/hello.txt").read_text() == "hi"
    assert not (tmp_path / "run/prediction/output/job.py").exists()  # a program is run, not copied
    assert r.status == "Failed"  # ... where the scorer finds no predictions
    assert (tmp_path / "run/logs/prediction_stdout").exists()


def test_program_writing_metadata_fails_the_job(bundle, tmp_path):
    """A task without an ingestion program (which could clean the output first): the worker's rule alone."""
    b = edited(bundle, tmp_path, tasks=lambda t: t.pop("ingestion_program"))
    files = {"metadata.yaml": "command: python3 -c \"open('/app/output/metadata', 'w').write('x')\"\n"}
    r = run(b, tmp_path, files)
    assert r.status == "Failed" and "already contains a metadata file" in r.message


def test_ingestion_failure_is_ignored_then_reported_by_the_scorer(bundle, tmp_path):
    r = run(bundle, tmp_path, {"model.py": model_py("        raise RuntimeError('my model broke')\n")})
    assert r.metadata["ingestionExitCode"] not in (0, None)  # ignored by the worker ...
    assert r.status == "Failed"                              # ... the scoring step fails the submission
    err = (tmp_path / "run/logs/scoring_stderr").read_text()
    assert "my model broke" in err or "failed" in err
    assert "my model broke" in (tmp_path / "run/logs/prediction_ingestion_stderr").read_text()


def test_worker_limit_kill(bundle, tmp_path):
    """A bundle whose limit is below the ingestion budget (hand-edited; lint flags it): the worker's
    own limit ends the job with its bare message, and the result says the platform may do otherwise."""
    b = edited(bundle, tmp_path, limit=4)
    t0 = time.perf_counter()
    r = run(b, tmp_path, {"model.py": model_py("        time.sleep(60)\n")})
    assert time.perf_counter() - t0 < 30
    assert r.status == "Failed" and r.message == "Execution Time Limit exceeded. Limit was 4 seconds"
    assert "Execution Time Limit exceeded" in (tmp_path / "run/logs/prediction_ingestion_stderr").read_text()
    assert any("not below the worker's limit" in n for n in r.notes)
    assert any("run on to the end" in n for n in r.notes)


def test_worker_limit_run_on(bundle, tmp_path):
    """The other thing the real worker does: the job runs on past its limit and may end Finished."""
    b = edited(bundle, tmp_path, limit=2)
    slow = ("import numpy as np, time\nC = " + json.dumps(N_LABELS) + "\nclass Model:\n    resolution = 28\n"
            "    def __init__(self):\n        time.sleep(4)\n"
            "    def predict(self, dataset, images):\n        return np.full((len(images), C[dataset]), 0.5)\n")
    r = run(b, tmp_path, {"model.py": slow}, past_limit="run-on")
    assert r.status == "Finished" and r.row
    assert any("ran past the worker's limit of 2 s" in p for p in r.problems)


def test_time_limit_lowers_the_ingestion_budget(bundle, tmp_path):
    r = run(bundle, tmp_path, {"model.py": model_py("        return np.full((len(images), C[dataset]), 0.5)\n")},
            time_limit=300)
    assert r.status == "Finished" and r.limit == 300 and r.budget == 180 == limits.time_budget(300)
    assert "time budget 180 s" in (tmp_path / "run/logs/prediction_ingestion_stdout").read_text()
    assert yaml.safe_load((tmp_path / "run/prediction/ingestion_program/config.yaml").read_text())["time_budget_s"] == 180
    assert yaml.safe_load((bundle / "ingestion_program/config.yaml").read_text())["time_budget_s"] == 480  # untouched
    # above the cap: the cap decides, the bundle's budget stays
    r = run(bundle, tmp_path / "capped", {"model.py": model_py("        return np.full((len(images), C[dataset]), 0.5)\n")},
            time_limit=5000)
    assert r.limit == 600 and r.budget == 480


def test_time_limit_without_room_for_the_budget_is_refused(bundle, tmp_path, capsys):
    sub = tmp_path / "s.zip"
    with zipfile.ZipFile(sub, "w") as zf:
        zf.writestr("model.py", model_py("        return np.full((len(images), C[dataset]), 0.5)\n"))
    code = cli.main(["run-local", "--bundle", str(bundle), "--submission", str(sub), "--time-limit", "100",
                     "--work-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1 and "at least 136 s" in err and "big ingest --time-budget" in err
    assert not (tmp_path / "run" / "prediction").exists()  # nothing ran


def test_budget_ends_the_job_with_its_own_message(bundle, tmp_path):
    """The ingestion budget below the worker's limit: the participant sees the ingestion program's message."""
    b = edited(bundle, tmp_path, icfg={"time_budget_s": 4, "stop_margin_s": 1})
    t0 = time.perf_counter()
    r = run(b, tmp_path, {"model.py": model_py("        time.sleep(60)\n")})
    assert time.perf_counter() - t0 < 40
    assert r.status == "Failed" and "time budget exceeded" in r.message and "Execution Time Limit" not in r.message
    status = json.loads((tmp_path / "run/prediction/output/ingestion_status.json").read_text())
    assert status["status"] == "timeout"


def test_app_data_is_empty_or_the_data_dir(bundle, synth_root, tmp_path):
    """/app/data is an empty folder unless --data-dir gives one (never this host's /app/data)."""
    model64 = model_py("        return np.full((len(images), C[dataset]), 0.5)\n").replace("resolution = 28",
                                                                                         "resolution = 64")
    r = run(bundle, tmp_path / "a", {"model.py": model64})
    assert r.status == "Failed" and "64" in (tmp_path / "a/run/logs/prediction_ingestion_stderr").read_text()
    cfg = yaml.safe_load((tmp_path / "a/run/prediction/ingestion_program/config.yaml").read_text())
    assert cfg["data_dir"] == str(tmp_path / "a/run/app_data") and not any((tmp_path / "a/run/app_data").iterdir())
    from big.inputdata import write_input_data

    data = tmp_path / "worker_data"
    write_input_data(synth_root, "val", [64], data / "val", allow_synthetic=True)
    r = run(bundle, tmp_path / "b", {"model.py": model64}, data_dir=data)
    assert r.status == "Finished", (tmp_path / "b/run/logs/prediction_ingestion_stderr").read_text()[-2000:]
    assert dict((k, v) for _, k, v, _ in r.row)["resolution"] == 64


def test_programs_see_the_worker_environment(bundle, tmp_path):
    files = {"metadata.yaml": "command: python3 /app/program/env.py /app/output\n",
             "env.py": "import json, os, sys\njson.dump(dict(os.environ), open(os.path.join(sys.argv[1], 'env.json'), 'w'))\n"}
    run(bundle, tmp_path / "cpu", files)
    env = json.loads((tmp_path / "cpu/run/prediction/output/env.json").read_text())
    assert env["PYTHONUNBUFFERED"] == "1" and env["http_proxy"] == "" and env["https_proxy"] == ""
    assert env["CUDA_VISIBLE_DEVICES"] == "" and "PYTHONPATH" not in env and "VIRTUAL_ENV" not in env
    run(bundle, tmp_path / "gpu", files, gpu=True)
    env = json.loads((tmp_path / "gpu/run/prediction/output/env.json").read_text())
    assert env.get("CUDA_VISIBLE_DEVICES") != ""  # --gpus: whatever this machine has stays visible


def test_non_finite_scores_finish_without_scores(bundle, tmp_path, capsys):
    """The real worker reads NaN (Python's json), marks the submission Finished, and the upload fails."""
    b = edited(bundle, tmp_path, scoring_files={
        "metadata.yaml": "command: python3 /app/program/nan.py /app/output\n",
        "nan.py": "import json, sys\njson.dump({'auc': float('nan'), 'balacc': 0.5}, open(sys.argv[1] + '/scores.json', 'w'))\n"})
    sub = tmp_path / "s.zip"
    with zipfile.ZipFile(sub, "w") as zf:
        for name, text in csv_files(b).items():
            zf.writestr(name, text)
    code = cli.main(["run-local", "--bundle", str(b), "--submission", str(sub), "--work-dir", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 1
    assert "status: Finished — Finished, but no scores reach the leaderboard" in out and "NaN" in out
    assert "Mean AUC: n/a | Mean Balanced accuracy: n/a" in out


def test_code_submission_finishes(bundle, tmp_path, capsys):
    sub = tmp_path / "code.zip"
    with zipfile.ZipFile(sub, "w") as zf:
        zf.writestr("model.py", model_py("        return np.full((len(images), C[dataset]), 0.5)\n"))
    code = cli.main(["run-local", "--bundle", str(bundle), "--submission", str(sub), "--phase", "test",
                     "--work-dir", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "status: Finished" in out and "ingestion exit code 0" in out and "Mean AUC: 0.5000" in out
    meta = yaml.safe_load((tmp_path / "run/scoring/input/res/metadata").read_text())
    assert meta["ingestionExitCode"] == 0


def test_not_a_zip_is_refused(bundle, tmp_path):
    (tmp_path / "s.csv").write_text("id,0\n")
    assert cli.main(["run-local", "--bundle", str(bundle), "--submission", str(tmp_path / "s.csv")]) == 1


@pytest.mark.slow
def test_demo_bundle_and_run(synth_root, tmp_path):
    """The function `big demo` calls: bundle, lint, one result and one code submission."""
    from big.codabench.demo import bundle_and_run

    ref_dir = tmp_path / "ref"
    from big.reference import build_reference

    build_reference(synth_root, "val", ref_dir, allow_synthetic=True)
    ref = Reference(ref_dir)
    preds = {d.flag: np.full((ref.expected_n[d.flag], d.n_labels), 0.5) for d in registry.datasets()}
    result_zip = write_submission(tmp_path / "results.zip", preds, 28)
    code_zip = tmp_path / "code.zip"
    with zipfile.ZipFile(code_zip, "w") as zf:
        zf.writestr("model.py", model_py("        return np.full((len(images), C[dataset]), 0.5)\n"))
    lines = []
    out = bundle_and_run(tmp_path / "work", synth_root, {"results": result_zip, "code": code_zip}, log=lines.append,
                         n_boot=0)
    assert out["lint_errors"] == 0 and Path(out["bundle"]).is_file()
    for name in ("results", "code"):
        row = out["rows"][name]
        assert row["status"] == "Finished", row
        assert row["scores"]["auc"] == 0.5 and row["scores"]["resolution"] == 28
        assert set(row["scores"]) == set(registry.score_keys())
    assert any(l.startswith("[lint]") for l in lines) and any("leaderboard row" in l for l in lines)


# ---------------------------------------------------------------------------------------------
# run-local --image: the programs run with the image's Python and pins (big.imageenv)
# ---------------------------------------------------------------------------------------------

@pytest.mark.codabench_env
@pytest.mark.slow
def test_run_local_image_gpu310_runs_the_sample_code_submission(bundle, synth_root, tmp_path, capsys):
    """The starting kit's sample code submission through the emulated worker in the gpu310 image venv."""
    import importlib.util

    from big import imageenv
    from conftest import REPO, image_python

    py = image_python("gpu310")
    spec = importlib.util.spec_from_file_location("train_sample_model", REPO / "starting_kit" / "train_sample_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sample = mod.package(tmp_path / "sample.zip", mod.train(synth_root, 28, tmp_path / "w.npz", max_train=60, epochs=3,
                                                             log=None))
    code = cli.main(["run-local", "--bundle", str(bundle), "--submission", str(sample), "--image", "gpu310",
                     "--work-dir", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 0, out
    env, problems = imageenv.inspect("gpu310")
    assert env is not None and env.python == py, problems
    assert f"programs ran with image gpu310 (codalab/codalab-legacy:gpu310): {py}" in out
    assert "Python 3.10" in out and "numpy 1.26.4" in out and "torch 2.3.1" in out
    status = json.loads((tmp_path / "run/prediction/output/ingestion_status.json").read_text())
    assert status["status"] == "ok" and "time budget 480 s" in (tmp_path / "run/logs/prediction_ingestion_stdout").read_text()
    # the commands of both jobs ran the venv's interpreter; a model reports what it really ran in
    probe = ("import sys, platform, numpy as np, torch\nC = " + json.dumps(N_LABELS) + "\n"
             "print('PROBE', sys.executable, platform.python_version(), np.__version__, torch.__version__, flush=True)\n"
             "class Model:\n    resolution = 28\n    def predict(self, dataset, images):\n"
             "        return np.full((len(images), C[dataset]), 0.5)\n")
    r = run(bundle, tmp_path / "probe", {"model.py": probe}, image="auto")  # = the bundle's docker_image, gpu310
    assert r.status == "Finished" and r.python == str(py)
    assert [c[0] for c in r.commands] == [str(py), str(py)]  # ingestion, then scoring
    line = next(l for l in (tmp_path / "probe/run/logs/prediction_ingestion_stdout").read_text().splitlines()
                if "PROBE " in l)  # the model's own print, echoed by the ingestion program
    exe, version, np_version, torch_version = line.split("PROBE ", 1)[1].split()
    assert exe.startswith(str(py.parent)) and version.startswith("3.10") and np_version == "1.26.4"
    assert torch_version.startswith("2.3.1")


@pytest.mark.codabench_env
def test_big_ingest_image_runs_the_ingestion_program_in_the_venv(bundle, tmp_path, capfd):
    """`big ingest --image gpu310`: the whole ingestion program under the image venv's Python."""
    from conftest import image_python

    py = image_python("gpu310")
    prog = tmp_path / "sub"
    prog.mkdir()
    (prog / "model.py").write_text(
        "import sys, platform, numpy as np\nC = " + json.dumps(N_LABELS) + "\n"
        "print('PROBE', sys.executable, platform.python_version(), np.__version__, flush=True)\n"
        "class Model:\n    resolution = 28\n    def predict(self, dataset, images):\n"
        "        return np.full((len(images), C[dataset]), 0.5)\n")
    code = cli.main(["ingest", str(bundle / "dev" / "input_data"), str(tmp_path / "out"), str(prog),
                     "--image", "gpu310"])
    out = capfd.readouterr().out  # the subprocess writes to the file descriptor
    assert code == 0
    assert f"ingestion program runs with image gpu310 (codalab/codalab-legacy:gpu310): {py}" in out
    exe, version, np_version = out.split("PROBE ", 1)[1].split()[:3]
    assert exe.startswith(str(py.parent)) and version.startswith("3.10") and np_version == "1.26.4"
    status = json.loads((tmp_path / "out" / "ingestion_status.json").read_text())
    assert status["status"] == "ok" and len(list((tmp_path / "out").glob("*_28.csv"))) == 12


def test_run_local_image_options_are_checked(bundle, tmp_path, capsys):
    sub = tmp_path / "s.zip"
    with zipfile.ZipFile(sub, "w") as zf:
        zf.writestr("model.py", model_py("        return np.full((len(images), C[dataset]), 0.5)\n"))
    base = ["run-local", "--bundle", str(bundle), "--submission", str(sub)]
    assert cli.main(base + ["--image", "py37", "--work-dir", str(tmp_path / "a")]) == 1
    assert "unknown image 'py37'" in capsys.readouterr().err
    assert cli.main(base + ["--image", "gpu310", "--python", "/usr/bin/python3", "--work-dir", str(tmp_path / "b")]) == 1
    assert "not both" in capsys.readouterr().err
    assert cli.main(base + ["--docker", "--image", "gpu310"]) == 1
    assert "--docker runs the bundle's docker_image" in capsys.readouterr().err
