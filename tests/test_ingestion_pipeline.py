"""Code submissions through the ingestion program and then the scorer, as on CodaBench.

Each test emulates the prediction job: the submission unzipped in PROGRAM, a copy of it in OUTPUT
(CodaBench copies a zip without a metadata file there before ingestion runs), the images-only
input data; then the scoring job reads OUTPUT as res/. Every fault must end in a clean message from
the scorer, never in a traceback or a score.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from big import data, ingestion, inputdata, registry, scoring
from big.reference import build_reference
from big.submission import write_submission

from conftest import REPO

N_TEST = 24


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory)


def make_world(tmp_path_factory) -> dict:
    """Synthetic npz files (28 and 64 px), the test split's input data at 28 px only, the reference."""
    root = tmp_path_factory.mktemp("ingest")
    src = root / "npz"
    data.synthesize(src, sizes=(28, 64), n_per_split=f"train=200,val=10,test={N_TEST}", seed=11)
    inp = inputdata.write_input_data(src, "test", [28], root / "input_data", allow_synthetic=True)
    ref = build_reference(src, "test", root / "ref", allow_synthetic=True)
    return {"src": src, "input": inp, "ref": ref}


def make_program(folder: Path, files: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content), encoding="utf-8")
    return folder


def prediction_job(tmp_path: Path, world, files: dict, *, copy=True, budget=60.0, margin=1.0, **cfg):
    """Run ingestion like CodaBench's prediction job; return (exit code, output folder, log text)."""
    prog = make_program(tmp_path / "ingested_program", files)
    out = tmp_path / "output"
    if copy:  # the platform's copy of a zip without metadata
        shutil.copytree(prog, out)
    else:
        out.mkdir()
    lines = []
    config = ingestion.IngestionConfig(time_budget_s=budget, stop_margin_s=margin, data_dir="", **cfg)
    rc = ingestion.run_ingestion(world["input"], out, prog, config=config, log=lines.append, err=lines.append)
    assert not (out / "metadata").exists()
    return rc, out, "\n".join(lines)


def scoring_job(out: Path, world, tmp_path: Path):
    err, log = io.StringIO(), io.StringIO()
    rc = scoring.run(out, world["ref"], tmp_path / "score", config=scoring.ScoringConfig(n_boot=0, report=False),
                     out=log, err=err)
    scores = tmp_path / "score" / "scores.json"
    return rc, err.getvalue(), json.loads(scores.read_text()) if scores.exists() else None


def status_of(out: Path) -> dict:
    return json.loads((out / "ingestion_status.json").read_text())


UNIFORM = textwrap.dedent("""
    import numpy as np

    N_COLS = {'pathmnist': 9, 'chestmnist': 14, 'dermamnist': 7, 'octmnist': 4, 'pneumoniamnist': 2,
              'retinamnist': 5, 'breastmnist': 2, 'bloodmnist': 8, 'tissuemnist': 8, 'organamnist': 11,
              'organcmnist': 11, 'organsmnist': 11}

    class Model:
        resolution = 28
        batch_size = 10

        def predict(self, dataset, images):
            c = N_COLS[dataset]
            return np.full((len(images), c), 1.0 / c)
""")


def model_with(predict_body: str, header: str = "", resolution: int = 28) -> str:
    """A model.py whose predict runs ``predict_body`` (with ``out`` the uniform scores)."""
    body = textwrap.indent(textwrap.dedent(predict_body).strip(), " " * 8)
    target = "        return np.full((len(images), c), 1.0 / c)"
    assert target in UNIFORM
    return UNIFORM.replace("resolution = 28", f"resolution = {resolution}").replace(
        target, f"        out = np.full((len(images), c), 1.0 / c)\n{body}\n        return out") + header


def test_uniform_columns_match_registry():
    ns = {}
    exec(textwrap.dedent(UNIFORM), ns)
    assert ns["N_COLS"] == {d.flag: d.n_labels for d in registry.datasets()}


# ---------------------------------------------------------------------------------------------
# working submissions
# ---------------------------------------------------------------------------------------------

def test_code_submission_end_to_end(tmp_path, world):
    weights = np.arange(5.0)
    files = {"model.py": UNIFORM + "\nimport pathlib\nW = np.load(pathlib.Path(__file__).parent / 'w.npy')\n",
             "w.npy": _npy_bytes(weights), "helpers/notes.txt": "kept out of the output"}
    rc, out, log = prediction_job(tmp_path, world, files)
    assert rc == 0, log
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"{f}_28.csv" for f in registry.flags()] + ["ingestion_status.json"])
    status = status_of(out)
    assert status["status"] == "ok" and status["track"] == "code" and status["resolution"] == 28
    assert status["images"] == 12 * N_TEST
    assert "images/s" in log and "[12/12]" in log
    rc, err, scores = scoring_job(out, world, tmp_path)
    assert rc == 0, err
    assert scores["resolution"] == 28 and scores["auc"] == pytest.approx(0.5)


def test_wrapping_folder_weights_relative_to_model_and_full_precision(tmp_path, world):
    model = """
        import numpy as np
        from pathlib import Path
        import helper  # a module beside model.py

        class Model:
            def __init__(self):
                self.resolution = int(np.load(Path(__file__).parent / "res.npy"))
                self.batch_size = 7

            def predict(self, dataset, images):
                return helper.scores(dataset, images)
    """
    helper = """
        import numpy as np
        COLS = {COLS}

        def scores(dataset, images):
            c = COLS[dataset]
            x = images.reshape(len(images), -1).astype(np.float64).mean(axis=1, keepdims=True) / 255.0
            s = np.repeat(x, c, axis=1) * np.linspace(0.1, 0.9, c) + 1e-13
            return s.astype(np.float64)
    """.replace("{COLS}", repr({d.flag: d.n_labels for d in registry.datasets()}))
    files = {"mysub/model.py": model, "mysub/helper.py": helper, "mysub/res.npy": _npy_bytes(np.array(28))}
    rc, out, log = prediction_job(tmp_path, world, files)
    assert rc == 0, log
    assert not (out / "mysub").exists()  # the copied submission was removed, folder included
    # the CSV holds the model's float64 values exactly (17 significant digits)
    imgs = np.load(world["input"] / "bloodmnist_28.npy")
    x = imgs.reshape(len(imgs), -1).astype(np.float64).mean(axis=1, keepdims=True) / 255.0
    want = np.repeat(x, 8, axis=1) * np.linspace(0.1, 0.9, 8) + 1e-13
    got = np.loadtxt(out / "bloodmnist_28.csv", delimiter=",", skiprows=1)
    assert np.array_equal(got[:, 0], np.arange(N_TEST)) and np.array_equal(got[:, 1:], want)
    assert scoring_job(out, world, tmp_path)[0] == 0


def test_result_zip_passes_through_untouched(tmp_path, world):
    rng = np.random.default_rng(0)
    preds = {d.flag: rng.random((N_TEST, d.n_labels)) for d in registry.datasets()}
    folder = write_submission(tmp_path / "res_src", preds, 28)
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    rc, out, log = prediction_job(tmp_path, world, files)
    assert rc == 0 and "result submission" in log
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files  # nothing added, removed or changed
    rc, err, scores = scoring_job(out, world, tmp_path)
    assert rc == 0, err


def test_entry_point_script_with_arguments(tmp_path, world):
    prog = make_program(tmp_path / "prog", {"model.py": UNIFORM})
    out = tmp_path / "out"
    shutil.copytree(prog, out)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, str(REPO / "ingestion_program" / "ingest.py"), str(world["input"]),
                          str(out), str(prog), "--data-dir", str(tmp_path / "nodata")],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stderr
    assert status_of(out)["status"] == "ok" and (out / "organsmnist_28.csv").is_file()
    assert not (out / "model.py").exists()
    usage = subprocess.run([sys.executable, str(REPO / "ingestion_program" / "ingest.py"), "only-one"],
                           capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "usage" in usage.stderr


def test_metadata_yaml_documents_the_command():
    import yaml

    meta = yaml.safe_load((REPO / "ingestion_program" / "metadata.yaml").read_text())
    assert meta["command"].split() == ["python3", "/app/program/ingest.py", "/app/input_data", "/app/output",
                                       "/app/ingested_program"]
    cfg = ingestion.load_config(REPO / "ingestion_program" / "config.yaml")
    assert cfg.time_budget_s > cfg.stop_margin_s > 0 and cfg.data_dir == "/app/data"


def test_data_dir_fallback_by_split(tmp_path, world):
    """On an organizer's worker the 64 px images live in /app/data/{split}/ (`big input-data`)."""
    data_dir = tmp_path / "app_data"
    inputdata.write_input_data(world["src"], "test", [64], data_dir / "test", allow_synthetic=True)
    prog = make_program(tmp_path / "prog", {"model.py": UNIFORM.replace("resolution = 28", "resolution = 64")})
    out = tmp_path / "out"
    cfg = ingestion.IngestionConfig(time_budget_s=60, stop_margin_s=1, data_dir=str(data_dir))
    lines = []
    assert ingestion.run_ingestion(world["input"], out, prog, config=cfg, log=lines.append, err=lines.append) == 0
    assert status_of(out)["resolution"] == 64
    assert scoring_job(out, world, tmp_path)[0] == 0


# ---------------------------------------------------------------------------------------------
# faults: each one a clean message at the scorer
# ---------------------------------------------------------------------------------------------

FAULTS = {
    "missing_model_py": ({"my_model.py": UNIFORM, "weights.npz": b"123"},
                         ["neither model.py", "my_model.py"]),
    "model_py_too_deep": ({"a/b/model.py": UNIFORM, "readme.txt": "x"}, ["'a/b/model.py'", "one single wrapping"]),
    "syntax_error": ({"model.py": "import numpy as np\n\nclass Model(\n    resolution = 28\n"},
                     ["syntax error", "model.py"]),
    "import_error": ({"model.py": "import numpy as np\nimport timm_not_installed\n" + UNIFORM},
                     ["importing model.py failed: ModuleNotFoundError", "timm_not_installed"]),
    "missing_model_class": ({"model.py": UNIFORM.replace("class Model:", "class MyNet:")},
                            ["defines no class `Model`", "MyNet"]),
    "missing_predict": ({"model.py": UNIFORM.replace("def predict(", "def forward(")},
                        ["no method `predict"]),
    "bad_resolution": ({"model.py": UNIFORM.replace("resolution = 28", "resolution = 32")},
                       ["Model.resolution must be one of 28, 64, 128, 224", "32"]),
    "init_raises": ({"model.py": UNIFORM + "\n    def __init__(self):\n        raise RuntimeError('no weights')\n"},
                    ["Model() raised RuntimeError: no weights"]),
    "predict_raises": ({"model.py": model_with("if dataset == 'dermamnist':\n    raise ValueError('boom')")},
                       ["predict raised ValueError: boom", "dataset dermamnist, batch 1 of 3", "Traceback",
                        'model.py", line']),
    "wrong_shape": ({"model.py": model_with("out = out[:, :-1]")},
                    ["shape (10, 8), expected (10, 9)", "pathmnist"]),
    "binary_one_column": ({"model.py": model_with("if dataset == 'pneumoniamnist':\n    out = out[:, 1]")},
                          ["pneumoniamnist is binary: give 2 columns"]),
    "nan": ({"model.py": model_with("if dataset == 'octmnist':\n    out[3, 1] = np.nan")},
            ["non-finite", "octmnist", "row 3, column 1"]),
    "out_of_range": ({"model.py": model_with("out = out * 20 - 3")}, ["outside [0, 1]", "not logits"]),
    "wrong_dtype": ({"model.py": model_with("out = out.astype(str)")}, ["dtype <U", "real numbers"]),
    "complex_dtype": ({"model.py": model_with("out = out.astype(complex)")}, ["dtype complex128"]),
    "not_an_array": ({"model.py": model_with("out = out.tolist()")}, ["predict returned a list", "np.asarray"]),
    "size_absent": ({"model.py": UNIFORM.replace("resolution = 28", "resolution = 64")},
                    ["resolution 64 is not available", "sizes present are 28"]),
    "process_killed": ({"model.py": model_with("import os, signal\nif dataset == 'chestmnist':\n"
                                               "    print('about to die', flush=True)\n"
                                               "    os.kill(os.getpid(), signal.SIGKILL)")},
                       ["killed by SIGKILL", "chestmnist", "about to die"]),
    "os_exit": ({"model.py": model_with("import os\nos._exit(3)")}, ["exited with code 3", "pathmnist"]),
    "sys_exit_in_predict": ({"model.py": model_with("import sys\nsys.exit('bye')")}, ["predict raised SystemExit: bye"]),
}


@pytest.mark.parametrize("case", sorted(FAULTS))
def test_fault_ends_in_clean_message_at_scorer(case, tmp_path, world):
    files, expected = FAULTS[case]
    rc, out, log = prediction_job(tmp_path, world, files)
    assert rc == 1
    status = status_of(out)
    assert status["status"] == "failed" and status["track"] == "code"
    for part in expected:
        assert part in status["message"], (part, status["message"])
    # nothing of the submission and no CSV left in the output
    assert sorted(p.name for p in out.iterdir()) == ["ingestion_status.json"]
    rc, err, scores = scoring_job(out, world, tmp_path)
    assert rc == 1 and scores is None
    last = err.strip().splitlines()[-1]
    # a zip the ingestion program could not run (no usable model.py) is not called a failed code submission
    ran = status.get("submission") != "invalid"
    assert ("code submission failed" if ran else "submission not run") in last and "Traceback" not in last
    assert ran == (case not in ("missing_model_py", "model_py_too_deep"))
    assert expected[0] in err


def test_fault_location_fields(tmp_path, world):
    rc, out, _ = prediction_job(tmp_path, world, FAULTS["nan"][0])
    status = status_of(out)
    assert status["dataset"] == "octmnist" and status["batch"] == 1
    assert status["datasets_done"] == ["pathmnist", "chestmnist", "dermamnist"]


def test_participant_traceback_is_theirs(tmp_path, world):
    _, out, log = prediction_job(tmp_path, world, FAULTS["predict_raises"][0])
    msg = status_of(out)["message"]
    first, rest = msg.split("\n", 1)
    assert first.startswith("predict raised ValueError: boom")
    assert "/big/ingestion/" not in rest and "raise ValueError('boom')" in rest
    assert "ERROR: predict raised ValueError" in log


def test_zip_with_metadata(tmp_path, world):
    """CodaBench copies nothing of such a zip to the output; ingestion must say why."""
    files = {"model.py": UNIFORM, "metadata": "description: my model\n"}
    rc, out, log = prediction_job(tmp_path, world, files, copy=False)
    assert rc == 1
    status = status_of(out)
    assert status["status"] == "failed" and "'metadata'" in status["message"] and "Remove" in status["message"]
    rc, err, _ = scoring_job(out, world, tmp_path)
    assert rc == 1 and "'metadata'" in err


def test_result_zip_with_metadata_yaml(tmp_path, world):
    rng = np.random.default_rng(0)
    folder = write_submission(tmp_path / "r", {d.flag: rng.random((N_TEST, d.n_labels)) for d in registry.datasets()}, 28)
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    files["metadata.yaml"] = "command: python run.py\n"
    rc, out, _ = prediction_job(tmp_path, world, files, copy=False)
    assert rc == 1 and "'metadata.yaml'" in status_of(out)["message"]
    assert status_of(out)["submission"] == "invalid"
    rc, err, _ = scoring_job(out, world, tmp_path)  # not a code submission: never called one
    assert rc == 1 and "could not run your submission" in err and "'metadata.yaml'" in err
    assert "code submission" not in err.split("metadata.yaml", 1)[0]


def test_time_budget_exceeded_in_predict(tmp_path, world):
    model = model_with("import time\nif dataset == 'octmnist':\n    time.sleep(60)")
    rc, out, log = prediction_job(tmp_path, world, {"model.py": model}, budget=4.0, margin=0.5)
    assert rc == 1
    status = status_of(out)
    assert status["status"] == "timeout" and status["dataset"] == "octmnist" and status["batch"] == 1
    msg = status["message"]
    assert "time budget exceeded" in msg and "3 of 12 datasets were done" in msg and "octmnist (batch 1 of 3)" in msg
    assert status["elapsed_s"] < 4.0
    assert sorted(p.name for p in out.iterdir()) == ["ingestion_status.json"]  # no CSVs
    rc, err, _ = scoring_job(out, world, tmp_path)
    assert rc == 1 and "code submission timeout" in err


def test_time_budget_exceeded_while_loading(tmp_path, world):
    model = "import time\ntime.sleep(60)\n" + UNIFORM
    rc, out, _ = prediction_job(tmp_path, world, {"model.py": model}, budget=2.5, margin=0.5)
    status = status_of(out)
    assert status["status"] == "timeout" and "still loading" in status["message"] and status["dataset"] is None


def test_model_subprocesses_are_stopped_with_it(tmp_path, world):
    """A model that starts a child process which outlives the budget: the whole group is killed."""
    pidfile = tmp_path / "child.pid"
    model = model_with(f"""
        import subprocess, sys, time
        if dataset == 'pathmnist' and not hasattr(Model, 'child'):
            Model.child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])
            open({str(pidfile)!r}, 'w').write(str(Model.child.pid))
        if dataset == 'chestmnist':
            time.sleep(60)
    """)
    rc, out, _ = prediction_job(tmp_path, world, {"model.py": model}, budget=3.0, margin=0.5)
    assert status_of(out)["status"] == "timeout"
    pid = int(pidfile.read_text())
    import time as _t

    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        # a zombie still answers kill(0); check its state
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                break
        except FileNotFoundError:
            break
        _t.sleep(0.1)
    else:
        pytest.fail(f"the model's child process {pid} survived the time budget")


def test_flooding_stdout_is_capped(tmp_path, world, capfd):
    model = model_with("""
        import os, sys
        sys.stdout.write('x' * 200_000 + '\\n')
        sys.stderr.write('e' * 100_000 + '\\n')
        os.write(1, b'y' * 300_000 + b'\\n')   # below Python, straight to the file descriptor
    """)
    rc, out, log = prediction_job(tmp_path, world, {"model.py": model}, log_head_bytes=20_000, log_tail_bytes=5_000)
    captured = capfd.readouterr()
    assert rc == 0, log
    assert status_of(out)["status"] == "ok"
    printed = captured.out + captured.err
    # ~ 12 datasets x 3 batches x 600 kB flooded; about 25 kB echoed
    assert len(printed) < 60_000
    assert "bytes of model output omitted" in printed
    assert scoring_job(out, world, tmp_path)[0] == 0


def test_status_is_written_when_config_is_broken(tmp_path, world):
    prog = make_program(tmp_path / "prog", {"model.py": UNIFORM})
    cfg = tmp_path / "config.yaml"
    cfg.write_text("time_budget_s: -5\nbogus: 1\n")
    out = tmp_path / "out"
    rc = ingestion.main([str(world["input"]), str(out), str(prog)], config_path=cfg)
    assert rc == 2
    status = status_of(out)
    assert status["status"] == "failed" and "configuration" in status["message"] and "bogus" in status["message"]


def test_missing_input_images_is_an_organizer_message(tmp_path, world):
    empty = tmp_path / "empty_input"
    empty.mkdir()
    prog = make_program(tmp_path / "prog", {"model.py": UNIFORM})
    out = tmp_path / "out"
    cfg = ingestion.IngestionConfig(time_budget_s=60, stop_margin_s=1, data_dir=str(tmp_path / "none"))
    assert ingestion.run_ingestion(empty, out, prog, config=cfg, log=lambda s: None, err=lambda s: None) == 1
    assert "no input images were found" in status_of(out)["message"]


def _npy_bytes(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def test_model_writing_reserved_metadata_file(tmp_path, world):
    """CodaBench fails a job whose output holds `metadata`; ingestion removes one written by model code."""
    target = tmp_path / "output" / "metadata"
    model = model_with(f"open({str(target)!r}, 'w').write('exitCode: 0')")
    rc, out, log = prediction_job(tmp_path, world, {"model.py": model})
    assert rc == 0 and not target.exists() and "reserved" in log


def test_participant_module_named_big_does_not_shadow_ours(tmp_path, world):
    """A `big.py` beside model.py must not break the worker (which imports our package first)."""
    files = {"model.py": UNIFORM, "big.py": "raise RuntimeError('participant big.py imported')\n"}
    rc, out, log = prediction_job(tmp_path, world, files)
    assert rc == 0, log
    assert status_of(out)["status"] == "ok"


def test_big_ingest_verb(tmp_path, world, capsys):
    from big import cli

    prog = make_program(tmp_path / "prog", {"model.py": UNIFORM})
    out = tmp_path / "out"
    assert cli.main(["ingest", str(world["input"]), str(out), str(prog), "--data-dir", "", "--time-budget", "60"]) == 0
    assert status_of(out)["status"] == "ok"
    assert "[12/12]" in capsys.readouterr().out
    bad = make_program(tmp_path / "bad", {"model.py": "raise ImportError('nope')\n"})
    assert cli.main(["ingest", str(world["input"]), str(tmp_path / "out2"), str(bad)]) == 1
    assert "importing model.py failed: ImportError: nope" in capsys.readouterr().err


def test_lingering_participant_thread_does_not_hold_the_run(tmp_path, world):
    """A non-daemon thread left running by the model must not turn a finished run into a timeout."""
    model = UNIFORM.replace("    batch_size = 10\n", "    batch_size = 10\n\n    def __init__(self):\n"
                            "        import threading, time\n"
                            "        threading.Thread(target=time.sleep, args=(120,), daemon=False).start()\n")
    assert "threading.Thread" in model
    rc, out, log = prediction_job(tmp_path, world, {"model.py": model}, budget=20.0, margin=1.0)
    assert rc == 0, log
    status = status_of(out)
    assert status["status"] == "ok" and status["elapsed_s"] < 15
