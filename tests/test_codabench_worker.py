"""`big run-local`: the compute-worker rules one by one, then fault flows through a small bundle."""
from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from big import cli, registry
from big.codabench import bundle as B
from big.codabench import worker as W
from big.errors import UsageError
from big.reference import Reference
from big.submission import write_submission

ORG = {"organizer": "Worker Test", "contact_email": "worker@example.org"}
N_LABELS = {d.flag: d.n_labels for d in registry.datasets()}


# ---------------------------------------------------------------------------------------------
# pure rules
# ---------------------------------------------------------------------------------------------

def test_metadata_lookup_order(tmp_path):
    assert W.read_command(tmp_path) == ("missing", None)
    (tmp_path / "metadata").write_text("command: python3 b.py\n")
    assert W.read_command(tmp_path) == ("ok", "python3 b.py")
    (tmp_path / "metadata.yaml").write_text("command: python3 a.py\n")
    assert W.find_metadata(tmp_path).name == "metadata.yaml"
    assert W.read_command(tmp_path) == ("ok", "python3 a.py")
    (tmp_path / "metadata.yaml").write_text("description: code only\n")
    assert W.read_command(tmp_path) == ("no-command", None)
    (tmp_path / "metadata.yaml").write_text("command: [unclosed\n")
    assert W.read_command(tmp_path) == ("no-command", None)


def test_placeholder_substitution():
    cmd = "python $program/score.py $input $output $hidden $shared $predictions $tmp"
    assert W.substitute(cmd, kind="program", is_scoring=True) == (
        "python /app/program/score.py /app/input /app/output /app/input/ref /app/shared /app/input/res /app/output")
    ing = "python $ingestion_program/ingestion.py $input $output $ingestion_program $submission_program"
    assert W.substitute(ing, kind="ingestion", is_scoring=False) == (
        "python /app/program/ingestion.py /app/input_data /app/output /app/program /app/ingested_program")
    assert W.substitute("$predictions", kind="program", is_scoring=False) == "/app/output"
    assert W.substitute("$program/x", kind="ingestion", is_scoring=True,
                        ingestion_only_during_scoring=True) == "/app/ingestion_program/x"


def test_container_paths_map_to_run_folders(tmp_path):
    mounts = {"/app/program": tmp_path / "p", "/app/input": tmp_path / "i", "/app/input_data": tmp_path / "d"}
    argv = ["python3", "/app/program/score.py", "/app/input", "--data=/app/input_data/x", "/app/output", "/app/inputs"]
    assert W.map_paths(argv, mounts) == ["python3", f"{tmp_path}/p/score.py", f"{tmp_path}/i",
                                         f"--data={tmp_path}/d/x", "/app/output", "/app/inputs"]


def test_docker_arguments(tmp_path):
    mounts = {"/app/program": tmp_path / "prog", "/app/output": tmp_path / "out", "/app/data": tmp_path / "data"}
    args = W.docker_args(image="codalab/codalab-legacy:gpu310", mounts=mounts, name="job1",
                         argv=["python3", "/app/program/ingest.py"], network=False, gpu=True)
    assert args[:3] == ["docker", "run", "--rm"]
    assert args[args.index("-w") + 1] == "/app/program"
    assert "PYTHONUNBUFFERED=1" in args and "no-new-privileges" in args
    assert args[args.index("--network") + 1] == "none" and "--gpus" in args
    vols = [args[i + 1] for i, a in enumerate(args) if a == "-v"]
    assert f"{(tmp_path / 'prog').resolve()}:/app/program" in vols
    assert f"{(tmp_path / 'data').resolve()}:/app/data:ro" in vols
    i = args.index("codalab/codalab-legacy:gpu310")
    assert args[i + 1:] == ["python3", "/app/program/ingest.py"]  # container paths, unmapped, no shell
    assert "--network" not in W.docker_args(image="x", mounts=mounts, argv=[], name="n")


def test_worker_builds_docker_jobs(tmp_path, monkeypatch):
    opts = W.RunLocalOptions(bundle=tmp_path, submission=tmp_path / "s.zip", docker=True, network=False)
    w = W.Worker(opts, log=lambda m: None)
    mounts = {"/app/program": tmp_path / "p", "/app/output": tmp_path / "o", "/app/input": tmp_path / "i",
              "/app/shared": tmp_path / "s"}
    cmd = W.substitute("python3 $program/score.py $input $output", kind="program", is_scoring=True)
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


def test_strict_scores_parsing(tmp_path):
    out = tmp_path
    assert W.parse_scores(out)[0] is None and "Could not find scores file" in W.parse_scores(out)[1][0]
    (out / "scores.json").write_text('{"auc": NaN}')
    assert W.parse_scores(out)[0] is None  # strict JSON: NaN fails like the worker's json decode
    (out / "scores.json").write_text('{"auc": 0.5, "info": {"a": 1}, "name": "x", "big": 1e12, "ok": true}')
    scores, problems = W.parse_scores(out)
    assert scores["auc"] == 0.5 and len(problems) == 4
    (out / "scores.json").unlink()
    (out / "scores.txt").write_text("auc: 0.75\nbalacc: 0.5\n")
    assert W.parse_scores(out) == ({"auc": 0.75, "balacc": 0.5}, [])


def test_scores_matched_to_columns_by_key():
    cols = [{"title": "AUC", "key": "auc", "index": 0, "precision": 4},
            {"title": "Kappa", "key": "kappa", "index": 1},
            {"title": "Avg", "key": "avg", "index": 2, "computation": "avg", "computation_indexes": [0, 1]}]
    row, dropped, missing = W.match_columns({"auc": 0.8, "extra": 1.0, "avg": 5.0}, cols)
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
    files = {"metadata.yaml": "command: python3 -c \"open('/app/output/metadata', 'w').write('x')\"\n"}
    r = run(bundle, tmp_path, files)
    assert r.status == "Failed" and "already contains a metadata file" in r.message


def test_ingestion_failure_is_ignored_then_reported_by_the_scorer(bundle, tmp_path):
    r = run(bundle, tmp_path, {"model.py": model_py("        raise RuntimeError('my model broke')\n")})
    assert r.metadata["ingestionExitCode"] not in (0, None)  # ignored by the worker ...
    assert r.status == "Failed"                              # ... the scoring step fails the submission
    err = (tmp_path / "run/logs/scoring_stderr").read_text()
    assert "my model broke" in err or "failed" in err
    assert "my model broke" in (tmp_path / "run/logs/prediction_ingestion_stderr").read_text()


def test_time_limit_kills_the_job(bundle, tmp_path):
    t0 = time.perf_counter()
    r = run(bundle, tmp_path, {"model.py": model_py("        time.sleep(60)\n")}, time_limit=4)
    assert time.perf_counter() - t0 < 30
    assert r.status == "Failed" and r.message == "Execution Time Limit exceeded. Limit was 4 seconds"
    assert "Execution Time Limit exceeded" in (tmp_path / "run/logs/prediction_ingestion_stderr").read_text()


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
